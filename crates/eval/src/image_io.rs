//! Image folders for FID: 8-bit PNG files, converted to RGB as PIL's `convert("RGB")` does
//! (grey replicated to three channels, alpha dropped).

use crate::error::{EvalError, Result};
use std::path::{Path, PathBuf};
use tch::Tensor;

/// The `.png` files of `folder` (not recursive), sorted by name.
pub fn list_pngs(folder: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(folder).map_err(|e| EvalError::io(folder, e))? {
        let path = entry.map_err(|e| EvalError::io(folder, e))?.path();
        let is_png = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("png"));
        if is_png && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    if files.is_empty() {
        return Err(EvalError::Invalid(format!(
            "{}: no .png images in the folder",
            folder.display()
        )));
    }
    Ok(files)
}

/// Reads one PNG as u8 `[3, H, W]` RGB.
pub fn read_png_rgb(path: &Path) -> Result<Tensor> {
    let file = std::fs::File::open(path).map_err(|e| EvalError::io(path, e))?;
    let mut decoder = png::Decoder::new(std::io::BufReader::new(file));
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let bad = |e: png::DecodingError| EvalError::corrupt(path, e);
    let mut reader = decoder.read_info().map_err(bad)?;
    let size = reader
        .output_buffer_size()
        .ok_or_else(|| EvalError::corrupt(path, "image too large to decode"))?;
    let mut buf = vec![0u8; size];
    let info = reader.next_frame(&mut buf).map_err(bad)?;
    let (w, h) = (info.width as usize, info.height as usize);
    let channels = info.color_type.samples();
    let mut rgb = Vec::with_capacity(3 * w * h);
    for c in 0..3 {
        for p in 0..w * h {
            let px = &buf[p * channels..(p + 1) * channels];
            // Grey (+ alpha): replicate; RGB (+ alpha): take the colour channel.
            rgb.push(if channels < 3 { px[0] } else { px[c] });
        }
    }
    Ok(Tensor::from_slice(&rgb).reshape([3, h as i64, w as i64]))
}

/// Writes u8 `[3, H, W]` or `[1, H, W]` as an 8-bit PNG (sample folders).
pub fn write_png(path: &Path, image: &Tensor) -> Result<()> {
    let size = image.size();
    if size.len() != 3 || !(size[0] == 1 || size[0] == 3) {
        return Err(EvalError::shape(
            format!("image for {}", path.display()),
            "[1 or 3, H, W]",
            &size,
        ));
    }
    let hwc = image
        .f_permute([1, 2, 0])?
        .f_contiguous()?
        .f_to_kind(tch::Kind::Uint8)?;
    let data = Vec::<u8>::try_from(hwc.f_flatten(0, -1)?)?;
    let mut file = flowscale_core::AtomicFile::create(path)?;
    // Unbuffered: a buffer would flush on drop and lose a write error (a full disk).
    let mut enc = png::Encoder::new(&mut file, size[2] as u32, size[1] as u32);
    enc.set_color(if size[0] == 1 {
        png::ColorType::Grayscale
    } else {
        png::ColorType::Rgb
    });
    enc.set_depth(png::BitDepth::Eight);
    let bad = |e: png::EncodingError| EvalError::Invalid(format!("{}: {e}", path.display()));
    let mut writer = enc.write_header().map_err(bad)?;
    writer.write_image_data(&data).map_err(bad)?;
    writer.finish().map_err(bad)?;
    Ok(file.commit()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Kind;

    #[test]
    fn grey_png_round_trips_as_replicated_rgb() {
        let dir = tempfile::tempdir().unwrap();
        let grey = Tensor::arange(12, (Kind::Uint8, tch::Device::Cpu)).reshape([1, 3, 4]);
        let p = dir.path().join("g.png");
        write_png(&p, &grey).unwrap();
        let rgb = read_png_rgb(&p).unwrap();
        assert_eq!(rgb.size(), vec![3, 3, 4]);
        for c in 0..3 {
            assert!(rgb.get(c).equal(&grey.get(0)));
        }
        let colour = Tensor::arange(36, (Kind::Uint8, tch::Device::Cpu)).reshape([3, 3, 4]);
        let q = dir.path().join("c.png");
        write_png(&q, &colour).unwrap();
        assert!(read_png_rgb(&q).unwrap().equal(&colour));
        assert_eq!(list_pngs(dir.path()).unwrap(), vec![q, p], "sorted by name");
    }
}
