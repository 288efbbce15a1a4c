//! Small labelled PNGs for the latent-shard tests of the train and eval crates (the eval crate
//! includes this file by path).

use std::path::Path;

/// A 40x40 RGB PNG: dark for class 0, light for class 1, with a pattern from `i`.
pub fn png(path: &Path, class: u8, i: u32) {
    let data: Vec<u8> = (0..40u32 * 40)
        .flat_map(|p| {
            let (x, y) = (p % 40, p / 40);
            let base = 40 + 150 * class;
            [
                base + ((x * i) % 50) as u8,
                base,
                base + ((y * 3) % 50) as u8,
            ]
        })
        .collect();
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut out = Vec::new();
    {
        let mut e = png::Encoder::new(&mut out, 40, 40);
        e.set_color(png::ColorType::Rgb);
        e.set_depth(png::BitDepth::Eight);
        e.write_header().unwrap().write_image_data(&data).unwrap();
    }
    std::fs::write(path, out).unwrap();
}
