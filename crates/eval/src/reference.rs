//! Reference statistics: mean and covariance of the feature network over an image folder,
//! computed once and cached with their provenance.
//!
//! A cache entry is `<cache_dir>/<key>.safetensors` (tensors `mean` `[d]` and `cov` `[d, d]`,
//! float64) plus `<key>.json` ([`StatsProvenance`]). The key is the SHA-256 of the provenance
//! inputs (the folder's file names and contents, the feature network's hash, the preprocessing),
//! so a changed image, weight file or resize mode gives a new entry. The statistics' own hash (of
//! the safetensors file) is what results cite as the reference stats hash. The covariance's square
//! root, which every FID against these statistics needs, is cached next to the entry by
//! `crate::reference_root`.

use crate::error::{EvalError, Result};
use crate::feature_net::FeatureNet;
use crate::hash::{read_verified_sidecar, sha256_bytes, sha256_file};
use crate::image_io::{list_pngs, read_png_rgb};
use crate::stats::FeatureStats;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use tch::{Kind, Tensor};

/// Where reference statistics came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatsProvenance {
    pub source: String,
    pub n_images: usize,
    /// SHA-256 over the sorted file names and their contents.
    pub images_sha256: String,
    pub feature_network: String,
    pub feature_weights_sha256: String,
    pub resize_mode: String,
    /// SHA-256 of the statistics file.
    pub stats_sha256: String,
}

/// Statistics with their provenance.
#[derive(Debug)]
pub struct ReferenceStats {
    pub stats: FeatureStats,
    pub provenance: StatsProvenance,
    /// The cached statistics file (`<cache_dir>/<key>.safetensors`); the covariance root is
    /// cached next to it (`crate::reference_root`).
    pub path: PathBuf,
}

/// Features of every PNG of `folder` (sorted by name), in batches of `batch_size`.
pub fn folder_features(net: &dyn FeatureNet, folder: &Path, batch_size: usize) -> Result<Tensor> {
    let files = list_pngs(folder)?;
    let mut feats = Vec::new();
    for chunk in files.chunks(batch_size.max(1)) {
        let imgs = chunk
            .iter()
            .map(|f| Ok(read_png_rgb(f)?.f_unsqueeze(0)?))
            .collect::<Result<Vec<Tensor>>>()?;
        // Images of one folder may differ in size: a mixed chunk goes one image at a time (the
        // network's preprocessing brings each to its input size).
        if imgs.iter().all(|i| i.size() == imgs[0].size()) {
            feats.push(net.features_u8(&Tensor::f_cat(&imgs, 0)?, batch_size)?);
        } else {
            for img in &imgs {
                feats.push(net.features_u8(img, 1)?);
            }
        }
    }
    Ok(Tensor::f_cat(&feats, 0)?)
}

/// SHA-256 over the folder's PNG names and bytes.
pub fn folder_hash(folder: &Path) -> Result<String> {
    let mut all = Vec::new();
    for f in list_pngs(folder)? {
        let name = f.file_name().map(|n| n.to_string_lossy().into_owned());
        all.extend_from_slice(name.unwrap_or_default().as_bytes());
        all.push(0);
        all.extend_from_slice(sha256_file(&f)?.as_bytes());
    }
    Ok(sha256_bytes(&all))
}

/// The cached statistics of `folder`, computing and storing them under `cache_dir` if absent.
pub fn folder_reference_stats(
    net: &dyn FeatureNet,
    folder: &Path,
    cache_dir: &Path,
    batch_size: usize,
) -> Result<ReferenceStats> {
    let images_sha256 = folder_hash(folder)?;
    cached(
        net,
        &folder.display().to_string(),
        images_sha256,
        cache_dir,
        || FeatureStats::from_features(&folder_features(net, folder, batch_size)?),
    )
}

/// The cached statistics of u8 images `[N, C, H, W]` (e.g. a dataset split); `source` describes
/// them in the provenance, the hash covers their shape and bytes.
pub fn tensor_reference_stats(
    net: &dyn FeatureNet,
    images: &Tensor,
    source: &str,
    cache_dir: &Path,
    batch_size: usize,
) -> Result<ReferenceStats> {
    let size = images.size();
    if size.len() != 4 || images.kind() != Kind::Uint8 {
        return Err(EvalError::shape(
            format!("reference images ({source})"),
            "u8 [N, C, H, W]",
            &size,
        ));
    }
    let bytes = Vec::<u8>::try_from(images.f_contiguous()?.f_flatten(0, -1)?)?;
    let images_sha256 = sha256_bytes(format!("{size:?}\n{}", sha256_bytes(&bytes)).as_bytes());
    cached(net, source, images_sha256, cache_dir, || {
        FeatureStats::from_features(&net.features_u8(images, batch_size)?)
    })
}

fn cached(
    net: &dyn FeatureNet,
    source: &str,
    images_sha256: String,
    cache_dir: &Path,
    compute: impl FnOnce() -> Result<FeatureStats>,
) -> Result<ReferenceStats> {
    let key_input = format!(
        "{images_sha256}\n{}\n{}\n{}",
        net.weights_sha256(),
        net.name(),
        net.resize_mode()
    );
    let key = sha256_bytes(key_input.as_bytes());
    let (st, js) = cache_paths(cache_dir, &key[..16]);
    if st.is_file() && js.is_file() {
        return load_reference_stats(&st);
    }
    let stats = compute()?;
    std::fs::create_dir_all(cache_dir).map_err(|e| EvalError::io(cache_dir, e))?;
    flowscale_core::atomic::write_atomic_with(&st, |tmp| {
        Tensor::write_safetensors(&[("mean", &stats.mean), ("cov", &stats.cov)], tmp)
    })
    .map_err(flowscale_core::atomic::AtomicWithError::into_error::<EvalError>)?;
    let provenance = StatsProvenance {
        source: source.to_string(),
        n_images: stats.n,
        images_sha256,
        feature_network: net.name(),
        feature_weights_sha256: net.weights_sha256(),
        resize_mode: net.resize_mode(),
        stats_sha256: sha256_file(&st)?,
    };
    let text = serde_json::to_string_pretty(&provenance).expect("provenance serialises");
    flowscale_core::write_atomic(&js, (text + "\n").as_bytes())?;
    Ok(ReferenceStats {
        stats,
        provenance,
        path: st,
    })
}

/// Loads `<key>.safetensors` and its `<key>.json`, checking the recorded hash.
pub fn load_reference_stats(path: &Path) -> Result<ReferenceStats> {
    let provenance: StatsProvenance =
        read_verified_sidecar(path, "stats_sha256", |p: &StatsProvenance| &p.stats_sha256)?;
    let tensors = Tensor::read_safetensors(path)?;
    let get = |name: &str| -> Result<Tensor> {
        tensors
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, t)| t.to_kind(Kind::Double))
            .ok_or_else(|| EvalError::corrupt(path, format!("no tensor `{name}`")))
    };
    let stats = FeatureStats {
        mean: get("mean")?,
        cov: get("cov")?,
        n: provenance.n_images,
    };
    stats.check(&path.display().to_string())?;
    Ok(ReferenceStats {
        stats,
        provenance,
        path: path.to_path_buf(),
    })
}

fn cache_paths(dir: &Path, key: &str) -> (PathBuf, PathBuf) {
    (
        dir.join(format!("{key}.safetensors")),
        dir.join(format!("{key}.json")),
    )
}
