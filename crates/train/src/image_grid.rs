//! Sample grids: a batch `[N, C, H, W]` in [-1, 1] tiled into rows of `ncol` images with a
//! 2-pixel border, encoded as PNG (grey for 1 channel, RGB for 3).

use crate::error::{Result, TrainError};
use crate::run_dir::write_atomic;
use flowscale_data::to_u8_pixels;
use std::path::Path;
use tch::{Kind, Tensor};

/// A grid as PNG bytes, with its (height, width, channels).
pub fn grid_png(images: &Tensor, ncol: i64) -> Result<(Vec<u8>, u32, u32, u32)> {
    let s = images.size();
    if s.len() != 4 || !(s[1] == 1 || s[1] == 3) || ncol < 1 {
        return Err(TrainError::Invalid(format!(
            "a sample grid needs [N, 1 or 3, H, W] images and ncol >= 1, got {s:?}, ncol {ncol}"
        )));
    }
    let (n, c, h, w) = (s[0], s[1], s[2], s[3]);
    let pad = 2;
    let nrow = (n + ncol - 1) / ncol;
    let (gh, gw) = (nrow * (h + pad) + pad, ncol * (w + pad) + pad);
    let pixels = to_u8_pixels(
        &images
            .f_to_device(tch::Device::Cpu)?
            .f_to_kind(Kind::Float)?,
    )?;
    let grid = Tensor::f_full([c, gh, gw].as_slice(), 255, (Kind::Uint8, tch::Device::Cpu))?;
    for i in 0..n {
        let (r, col) = (i / ncol, i % ncol);
        let mut cell =
            grid.f_narrow(1, pad + r * (h + pad), h)?
                .f_narrow(2, pad + col * (w + pad), w)?;
        cell.f_copy_(&pixels.get(i))?;
    }
    let hwc = grid.f_permute([1, 2, 0].as_slice())?.f_contiguous()?;
    let raw: Vec<u8> = Vec::<u8>::try_from(hwc.f_flatten(0, -1)?)?;
    let mut png = vec![];
    {
        let mut enc = png::Encoder::new(&mut png, gw as u32, gh as u32);
        enc.set_color(if c == 1 {
            png::ColorType::Grayscale
        } else {
            png::ColorType::Rgb
        });
        enc.set_depth(png::BitDepth::Eight);
        let mut writer = enc
            .write_header()
            .map_err(|e| TrainError::Invalid(format!("PNG encoding: {e}")))?;
        writer
            .write_image_data(&raw)
            .map_err(|e| TrainError::Invalid(format!("PNG encoding: {e}")))?;
    }
    Ok((png, gh as u32, gw as u32, c as u32))
}

/// Writes a grid PNG atomically; returns what [`grid_png`] returns.
pub fn save_grid(images: &Tensor, ncol: i64, path: &Path) -> Result<(Vec<u8>, u32, u32, u32)> {
    let out = grid_png(images, ncol)?;
    write_atomic(path, &out.0)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiles_cells_in_row_major_order() {
        // 3 grey 2x2 images, values -1, 0, 1 -> grid of 2 columns.
        let imgs = Tensor::cat(
            &[
                Tensor::full([1, 1, 2, 2], -1.0, (Kind::Float, tch::Device::Cpu)),
                Tensor::full([1, 1, 2, 2], 0.0, (Kind::Float, tch::Device::Cpu)),
                Tensor::full([1, 1, 2, 2], 1.0, (Kind::Float, tch::Device::Cpu)),
            ],
            0,
        );
        let (png_bytes, h, w, c) = grid_png(&imgs, 2).unwrap();
        assert_eq!((h, w, c), (10, 10, 1));
        let decoder = png::Decoder::new(std::io::Cursor::new(png_bytes));
        let mut reader = decoder.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size().unwrap()];
        reader.next_frame(&mut buf).unwrap();
        let at = |y: usize, x: usize| buf[y * 10 + x];
        assert_eq!(at(0, 0), 255); // border
        assert_eq!(at(2, 2), 0); // image 0 (black)
        assert_eq!(at(2, 6), 128); // image 1 (grey, 127.5 rounds to 128)
        assert_eq!(at(6, 2), 255); // image 2 (white)
        assert_eq!(at(6, 6), 255); // empty cell stays border-white
    }
}
