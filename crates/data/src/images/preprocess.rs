//! The SD3 paper's image protocol: resize so the short side is R, centre-crop R x R, map to
//! [-1, 1]; optionally a horizontally flipped copy (stored as a second latent). With aspect
//! buckets the output is the image's bucket instead of the square: resized (aspect kept) so it
//! covers the bucket, centre-cropped to it, the same code path with two output sides.

use super::buckets::AspectBuckets;
use super::decode::{decode_rgb, RgbImage};
use super::resample::{resize_window, Filter};
use tch::Tensor;

/// How images become model inputs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreprocessConfig {
    /// Output side R in pixels.
    pub resolution: usize,
    pub filter: Filter,
    /// Also produce the horizontally flipped image.
    pub flip: bool,
    /// Crop each image to its nearest bucket instead of the `resolution` square.
    pub buckets: Option<AspectBuckets>,
}

impl PreprocessConfig {
    pub fn new(resolution: usize) -> Self {
        Self {
            resolution,
            filter: Filter::Bicubic,
            flip: false,
            buckets: None,
        }
    }
}

/// Where the crop lies in the resized image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CropGeometry {
    /// The image resized (aspect ratio kept, rounded) so it covers the output: one side equals
    /// the output's, the other is at least the output's.
    pub resized_width: usize,
    pub resized_height: usize,
    /// Top-left corner of the crop: the centre, rounded down (as ADM's `center_crop_arr`,
    /// which SD-style pipelines use).
    pub left: usize,
    pub top: usize,
}

/// The short-side resize and centre crop of a `width x height` image to `resolution` squared.
pub fn crop_geometry(width: usize, height: usize, resolution: usize) -> CropGeometry {
    cover_crop_geometry(width, height, resolution, resolution)
}

/// The resize that covers `out_width x out_height` and the centre crop to it. The side whose
/// ratio to the output is the smaller one is scaled to the output exactly; for a square output
/// that is the short side, as in [`crop_geometry`].
pub fn cover_crop_geometry(
    width: usize,
    height: usize,
    out_width: usize,
    out_height: usize,
) -> CropGeometry {
    // out_w / w >= out_h / h, compared without division.
    let by_width = out_width * height >= out_height * width;
    let (resized_width, resized_height) = if by_width {
        let scale = out_width as f64 / width as f64;
        let h = ((height as f64 * scale).round() as usize).max(out_height);
        (out_width, h)
    } else {
        let scale = out_height as f64 / height as f64;
        let w = ((width as f64 * scale).round() as usize).max(out_width);
        (w, out_height)
    };
    CropGeometry {
        resized_width,
        resized_height,
        left: (resized_width - out_width) / 2,
        top: (resized_height - out_height) / 2,
    }
}

/// One preprocessed image: `[3, height, width]` planar, values in [-1, 1].
#[derive(Debug, Clone, PartialEq)]
pub struct Preprocessed {
    pub width: usize,
    pub height: usize,
    /// The index of the image's aspect bucket, when the config has buckets.
    pub bucket: Option<usize>,
    pub pixels: Vec<f32>,
    /// The same image mirrored left-right, when the config asks for it.
    pub flipped: Option<Vec<f32>>,
}

impl Preprocessed {
    fn shape(&self) -> [i64; 3] {
        [3, self.height as i64, self.width as i64]
    }

    /// `[3, R, R]` float tensor on the CPU.
    pub fn tensor(&self) -> Tensor {
        Tensor::from_slice(&self.pixels).reshape(self.shape())
    }

    pub fn flipped_tensor(&self) -> Option<Tensor> {
        self.flipped
            .as_ref()
            .map(|f| Tensor::from_slice(f).reshape(self.shape()))
    }
}

/// Resize, crop and normalise a decoded image (to its bucket when the config has buckets).
pub fn preprocess_rgb(image: &RgbImage, config: &PreprocessConfig) -> Result<Preprocessed, String> {
    let r = config.resolution;
    if r == 0 {
        return Err("resolution must be positive".into());
    }
    if image.width == 0 || image.height == 0 {
        return Err(format!("empty image ({}x{})", image.width, image.height));
    }
    let (bucket, w, h) = match &config.buckets {
        Some(b) => {
            let i = b.nearest(image.width, image.height);
            let s = b.sizes()[i];
            (Some(i), s.width, s.height)
        }
        None => (None, r, r),
    };
    let g = cover_crop_geometry(image.width, image.height, w, h);
    let mut pixels = resize_window(
        image,
        g.resized_width,
        g.resized_height,
        g.left..g.left + w,
        g.top..g.top + h,
        config.filter,
    );
    for v in &mut pixels {
        *v = (*v / 127.5 - 1.0).clamp(-1.0, 1.0);
    }
    let flipped = config.flip.then(|| mirror(&pixels, w));
    Ok(Preprocessed {
        width: w,
        height: h,
        bucket,
        pixels,
        flipped,
    })
}

/// Decode, then [`preprocess_rgb`].
pub fn preprocess_bytes(bytes: &[u8], config: &PreprocessConfig) -> Result<Preprocessed, String> {
    preprocess_rgb(&decode_rgb(bytes)?, config)
}

/// Planar `[3][h][width]` mirrored left-right.
fn mirror(pixels: &[f32], width: usize) -> Vec<f32> {
    let mut out = pixels.to_vec();
    for row in out.chunks_exact_mut(width) {
        row.reverse();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geometry_of_both_orientations() {
        let land = crop_geometry(500, 375, 256);
        assert_eq!((land.resized_width, land.resized_height), (341, 256));
        assert_eq!((land.left, land.top), (42, 0));
        let port = crop_geometry(375, 500, 256);
        assert_eq!((port.resized_width, port.resized_height), (256, 341));
        assert_eq!((port.left, port.top), (0, 42));
        let square = crop_geometry(64, 64, 256);
        assert_eq!(
            square,
            CropGeometry {
                resized_width: 256,
                resized_height: 256,
                left: 0,
                top: 0
            }
        );
    }

    #[test]
    fn cover_geometry_scales_the_tighter_side_and_centres_the_crop() {
        // 200x100 into 48x32: 48/200 < 32/100, so the height is scaled to 32 and the width to 64.
        let g = cover_crop_geometry(200, 100, 48, 32);
        assert_eq!((g.resized_width, g.resized_height), (64, 32));
        assert_eq!((g.left, g.top), (8, 0));
        // 100x200 into 48x32: the width goes to 48, the height to 96.
        let g = cover_crop_geometry(100, 200, 48, 32);
        assert_eq!((g.resized_width, g.resized_height), (48, 96));
        assert_eq!((g.left, g.top), (0, 32));
        // A square output is the short-side rule.
        for (w, h) in [(500, 375), (375, 500), (33, 97), (64, 64)] {
            assert_eq!(cover_crop_geometry(w, h, 40, 40), crop_geometry(w, h, 40));
        }
    }
}
