//! Pixel preprocessing for pixel-space training: u8 `[0, 255]` to float `[-1, 1]`, padded to a
//! target size with the value of black (-1), which is the background of MNIST-style data.

use crate::error::{DataError, Result};
use tch::{Kind, Tensor};

/// u8 `[B, C, H, W]` -> f32 `[B, C, size_h, size_w]` in [-1, 1], centred with symmetric padding
/// (the extra pixel of an odd margin goes to the bottom/right).
pub fn to_model_pixels(images: &Tensor, size: (i64, i64)) -> Result<Tensor> {
    let s = images.size();
    if s.len() != 4 || images.kind() != Kind::Uint8 {
        return Err(DataError::Invalid(format!(
            "expected u8 [B, C, H, W] images, got {:?} {:?}",
            images.kind(),
            s
        )));
    }
    let (h, w) = (s[2], s[3]);
    if size.0 < h || size.1 < w {
        return Err(DataError::Invalid(format!(
            "cannot pad {h}x{w} images to {}x{}: the target is smaller (cropping is not done here)",
            size.0, size.1
        )));
    }
    let x = images
        .f_to_kind(Kind::Float)?
        .f_mul_scalar(2.0 / 255.0)?
        .f_sub_scalar(1.0)?;
    let (top, left) = ((size.0 - h) / 2, (size.1 - w) / 2);
    let (bottom, right) = (size.0 - h - top, size.1 - w - left);
    if top + bottom + left + right == 0 {
        return Ok(x);
    }
    Ok(x.f_pad([left, right, top, bottom].as_slice(), "constant", -1.0)?)
}

/// Inverse for viewing: float [-1, 1] -> u8 [0, 255] (clamped, rounded).
pub fn to_u8_pixels(x: &Tensor) -> Result<Tensor> {
    Ok(x.f_clamp(-1.0, 1.0)?
        .f_add_scalar(1.0)?
        .f_mul_scalar(127.5)?
        .f_round()?
        .f_to_kind(Kind::Uint8)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_range_and_pads_with_black() {
        let img = Tensor::from_slice(&[0u8, 255, 255, 0]).view([1, 1, 2, 2]);
        let x = to_model_pixels(&img, (4, 5)).unwrap();
        assert_eq!(x.size(), vec![1, 1, 4, 5]);
        let v: Vec<f32> = Vec::try_from(x.flatten(0, -1)).unwrap();
        // Interior at rows 1..3, cols 1..3 (left margin 1, right 2).
        let expect = [
            -1., -1., -1., -1., -1., //
            -1., -1., 1., -1., -1., //
            -1., 1., -1., -1., -1., //
            -1., -1., -1., -1., -1.,
        ];
        assert_eq!(v, expect);
        let back = to_u8_pixels(&x.narrow(2, 1, 2).narrow(3, 1, 2)).unwrap();
        assert!(back.equal(&img));
        assert!(to_model_pixels(&img, (1, 1)).is_err());
        assert!(to_model_pixels(&img.to_kind(Kind::Float), (2, 2)).is_err());
    }
}
