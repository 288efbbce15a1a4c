//! The inputs of `flowscale fid A B`, as `python -m pytorch_fid` takes them: a folder of images
//! (features from a [`FeatureNet`]), a `.npz` with `mu` `[d]` and `sigma` `[d, d]` (pytorch-fid's
//! `--save-stats` format), or a `.npy` of features `[n, d]`; and the FID between two of them.
//! Every error names the argument it is about (`A`, `B`).

use crate::error::{EvalError, Result};
use crate::feature_net::FeatureNet;
use crate::frechet::{frechet_distance, PreparedReference};
use crate::npy::{read_npy, read_npz};
use crate::reference::folder_features;
use crate::stats::FeatureStats;
use std::path::{Path, PathBuf};
use tch::{Kind, Tensor};

/// What an argument names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FidInput {
    /// A folder of `.png` images.
    Folder(PathBuf),
    /// pytorch-fid statistics (`mu`, `sigma`).
    Stats(PathBuf),
    /// Features `[n, d]`.
    Features(PathBuf),
}

impl FidInput {
    /// Classifies `path` (argument `name`) by what it is: a folder, `.npz` or `.npy`.
    pub fn classify(name: &str, path: &Path) -> Result<Self> {
        if path.is_dir() {
            return Ok(FidInput::Folder(path.to_path_buf()));
        }
        let ext = path.extension().map(|e| e.to_string_lossy().to_lowercase());
        match ext.as_deref() {
            Some("npz") => Ok(FidInput::Stats(path.to_path_buf())),
            Some("npy") => Ok(FidInput::Features(path.to_path_buf())),
            _ => Err(EvalError::Invalid(format!(
                "{name} {}: expected a folder of images, a .npz of statistics (mu, sigma) or a \
                 .npy of features [n, d]",
                path.display()
            ))),
        }
    }

    /// Whether reading it needs the feature network.
    pub fn needs_network(&self) -> bool {
        matches!(self, FidInput::Folder(_))
    }
}

/// One side of the distance: statistics, or the features they come from (which allow the
/// low-rank form when there are fewer vectors than dimensions).
#[derive(Debug)]
pub enum FidSide {
    Stats(FeatureStats),
    Features(Tensor),
}

impl FidSide {
    /// Reads `input` (argument `name`); folders go through `net` in batches of `batch_size`.
    pub fn load(
        name: &str,
        input: &FidInput,
        net: Option<&dyn FeatureNet>,
        batch_size: usize,
    ) -> Result<Self> {
        let named = |e: EvalError| EvalError::Invalid(format!("{name}: {e}"));
        match input {
            FidInput::Folder(dir) => {
                let net = net.ok_or_else(|| {
                    EvalError::Invalid(format!("{name}: a folder needs the feature network"))
                })?;
                let feats = folder_features(net, dir, batch_size).map_err(named)?;
                check_features(name, dir, &feats)?;
                Ok(FidSide::Features(feats))
            }
            FidInput::Features(path) => {
                let feats = read_npy(path).map_err(named)?;
                check_features(name, path, &feats)?;
                Ok(FidSide::Features(feats))
            }
            FidInput::Stats(path) => Ok(FidSide::Stats(read_stats(name, path)?)),
        }
    }

    /// The statistics (mean and covariance) of this side.
    pub fn stats(&self) -> Result<FeatureStats> {
        match self {
            FidSide::Stats(s) => Ok(FeatureStats {
                mean: s.mean.shallow_clone(),
                cov: s.cov.shallow_clone(),
                n: s.n,
            }),
            FidSide::Features(f) => FeatureStats::from_features(f),
        }
    }

    fn dim(&self) -> i64 {
        match self {
            FidSide::Stats(s) => s.dim(),
            FidSide::Features(f) => f.size()[1],
        }
    }
}

/// The FID between two sides. A side given as features is the generated side of the prepared
/// form, so it gets the low-rank path when it has fewer vectors than dimensions.
pub fn fid(a: &FidSide, b: &FidSide) -> Result<f64> {
    if a.dim() != b.dim() {
        return Err(EvalError::Invalid(format!(
            "A and B have different feature dimensions ({} and {})",
            a.dim(),
            b.dim()
        )));
    }
    match (a, b) {
        (FidSide::Stats(sa), FidSide::Stats(sb)) => frechet_distance(sa, sb),
        (FidSide::Features(fa), other) | (other, FidSide::Features(fa)) => {
            PreparedReference::new(&other.stats()?)?.distance_to_features(fa)
        }
    }
}

/// Writes `stats` as pytorch-fid's `--save-stats` does: `mu` `[d]` and `sigma` `[d, d]`, float64
/// (`np.load(path)["mu"]`), through a temporary file renamed into place.
pub fn write_stats_npz(stats: &FeatureStats, path: &Path) -> Result<()> {
    if path.extension().is_none_or(|e| e != "npz") {
        return Err(EvalError::Invalid(format!(
            "--save-stats output {}: expected a .npz path",
            path.display()
        )));
    }
    let mu = stats.mean.f_to_kind(Kind::Double)?.f_contiguous()?;
    let sigma = stats.cov.f_to_kind(Kind::Double)?.f_contiguous()?;
    flowscale_core::atomic::write_atomic_with(path, |tmp| {
        Tensor::write_npz(&[("mu", &mu), ("sigma", &sigma)], tmp)
    })
    .map_err(flowscale_core::atomic::AtomicWithError::into_error::<EvalError>)
}

/// `mu` and `sigma` of a statistics `.npz`, checked: float, `[d]` and `[d, d]`, finite.
fn read_stats(name: &str, path: &Path) -> Result<FeatureStats> {
    let arrays = read_npz(path).map_err(|e| EvalError::Invalid(format!("{name}: {e}")))?;
    let get = |key: &str| -> Result<Tensor> {
        arrays
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, t)| t.shallow_clone())
            .ok_or_else(|| {
                let keys: Vec<&str> = arrays.iter().map(|(k, _)| k.as_str()).collect();
                EvalError::Invalid(format!(
                    "{name} {}: no array `{key}` (has {keys:?}); expected pytorch-fid statistics \
                     with mu and sigma",
                    path.display()
                ))
            })
    };
    let (mu, sigma) = (get("mu")?, get("sigma")?);
    let d = mu.size();
    if d.len() != 1 || d[0] < 1 {
        return Err(EvalError::shape(
            format!("{name} {} mu", path.display()),
            "[d]",
            &d,
        ));
    }
    if sigma.size() != [d[0], d[0]] {
        return Err(EvalError::shape(
            format!("{name} {} sigma", path.display()),
            format!("[{0}, {0}]", d[0]),
            &sigma.size(),
        ));
    }
    for (key, t) in [("mu", &mu), ("sigma", &sigma)] {
        check_finite(name, path, key, t)?;
    }
    Ok(FeatureStats {
        mean: mu.f_to_kind(Kind::Double)?,
        cov: sigma.f_to_kind(Kind::Double)?,
        // Not stored by pytorch-fid; unused by the distance.
        n: 0,
    })
}

fn check_features(name: &str, path: &Path, feats: &Tensor) -> Result<()> {
    let size = feats.size();
    if size.len() != 2 || size[0] < 2 || size[1] < 1 {
        return Err(EvalError::shape(
            format!("{name} {} features", path.display()),
            "[n >= 2, d] (the covariance needs two vectors)",
            &size,
        ));
    }
    check_finite(name, path, "features", feats)
}

fn check_finite(name: &str, path: &Path, what: &str, t: &Tensor) -> Result<()> {
    let bad = t
        .f_isfinite()?
        .f_logical_not()?
        .f_sum(Kind::Int64)?
        .int64_value(&[]);
    if bad > 0 {
        return Err(EvalError::Invalid(format!(
            "{name} {}: {what} has {bad} NaN or infinite values",
            path.display()
        )));
    }
    Ok(())
}
