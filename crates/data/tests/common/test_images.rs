//! Small generated images and files for the precompute tests.

use image::ImageEncoder;
use std::path::Path;

/// A small RGB image whose content depends on `seed`, as PNG or JPEG.
pub fn image_bytes(seed: u32, jpeg: bool) -> Vec<u8> {
    let (w, h) = (20 + seed % 7, 14 + seed % 5);
    let data: Vec<u8> = (0..w * h)
        .flat_map(|i| {
            let (x, y) = (i % w, i / w);
            [
                (x * 11 + seed * 37) as u8,
                (y * 17) as u8,
                (seed * 53 + x * y) as u8,
            ]
        })
        .collect();
    let mut out = Vec::new();
    if jpeg {
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90)
            .write_image(&data, w, h, image::ExtendedColorType::Rgb8)
            .unwrap();
    } else {
        image::codecs::png::PngEncoder::new(&mut out)
            .write_image(&data, w, h, image::ExtendedColorType::Rgb8)
            .unwrap();
    }
    out
}

pub fn write(path: &Path, bytes: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}
