//! The SD3 paper's image protocol: resize so the short side is R, centre-crop R x R, map to
//! [-1, 1]; optionally a horizontally flipped copy (stored as a second latent).

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
}

impl PreprocessConfig {
    pub fn new(resolution: usize) -> Self {
        Self {
            resolution,
            filter: Filter::Bicubic,
            flip: false,
        }
    }
}

/// Where the crop lies in the resized image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CropGeometry {
    /// The image resized so its short side is the resolution (aspect ratio kept, rounded).
    pub resized_width: usize,
    pub resized_height: usize,
    /// Top-left corner of the R x R crop: the centre, rounded down (as ADM's `center_crop_arr`,
    /// which SD-style pipelines use).
    pub left: usize,
    pub top: usize,
}

/// The short-side resize and centre crop for a `width x height` image.
pub fn crop_geometry(width: usize, height: usize, resolution: usize) -> CropGeometry {
    let short = width.min(height) as f64;
    let scale = resolution as f64 / short;
    let side = |n: usize| ((n as f64 * scale).round() as usize).max(resolution);
    let (resized_width, resized_height) = if width <= height {
        (resolution, side(height))
    } else {
        (side(width), resolution)
    };
    CropGeometry {
        resized_width,
        resized_height,
        left: (resized_width - resolution) / 2,
        top: (resized_height - resolution) / 2,
    }
}

/// One preprocessed image: `[3, R, R]` planar, values in [-1, 1].
#[derive(Debug, Clone, PartialEq)]
pub struct Preprocessed {
    pub resolution: usize,
    pub pixels: Vec<f32>,
    /// The same image mirrored left-right, when the config asks for it.
    pub flipped: Option<Vec<f32>>,
}

impl Preprocessed {
    fn shape(&self) -> [i64; 3] {
        let r = self.resolution as i64;
        [3, r, r]
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

/// Resize, crop and normalise a decoded image.
pub fn preprocess_rgb(image: &RgbImage, config: &PreprocessConfig) -> Result<Preprocessed, String> {
    let r = config.resolution;
    if r == 0 {
        return Err("resolution must be positive".into());
    }
    if image.width == 0 || image.height == 0 {
        return Err(format!("empty image ({}x{})", image.width, image.height));
    }
    let g = crop_geometry(image.width, image.height, r);
    let mut pixels = resize_window(
        image,
        g.resized_width,
        g.resized_height,
        g.left..g.left + r,
        g.top..g.top + r,
        config.filter,
    );
    for v in &mut pixels {
        *v = (*v / 127.5 - 1.0).clamp(-1.0, 1.0);
    }
    let flipped = config.flip.then(|| mirror(&pixels, r));
    Ok(Preprocessed {
        resolution: r,
        pixels,
        flipped,
    })
}

/// Decode, then [`preprocess_rgb`].
pub fn preprocess_bytes(bytes: &[u8], config: &PreprocessConfig) -> Result<Preprocessed, String> {
    preprocess_rgb(&decode_rgb(bytes)?, config)
}

/// Planar `[3][r][r]` mirrored left-right.
fn mirror(pixels: &[f32], r: usize) -> Vec<f32> {
    let mut out = pixels.to_vec();
    for row in out.chunks_exact_mut(r) {
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
}
