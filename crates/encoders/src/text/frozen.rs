//! A frozen model loaded from a Hugging Face folder, with the VarStore that owns its weights.

use crate::error::Result;
use crate::weights;
use std::path::Path;
use tch::{nn, Device, Kind};

/// A model and its variables (no gradients are tracked: every forward here runs under
/// `no_grad` or is called by code that does).
#[derive(Debug)]
pub struct Frozen<M> {
    pub vs: nn::VarStore,
    pub model: M,
}

/// Reads `dir/config.json` into `C`, builds the model with `build` in a new VarStore on
/// `device`, converts it to `kind` and copies the folder's weights in after checking every key
/// (`ignored`: stored buffers the model recomputes; `fixup` may rename keys first).
pub fn load_folder<C, M>(
    dir: &Path,
    kind: Kind,
    device: Device,
    ignored: &[&str],
    build: impl FnOnce(&nn::Path, &C, &Path) -> Result<M>,
    fixup: impl FnOnce(&mut weights::StateDict),
) -> Result<(C, Frozen<M>)>
where
    C: serde::de::DeserializeOwned,
{
    let config: C = weights::read_config(dir)?;
    let mut vs = nn::VarStore::new(device);
    // Variables are created in `kind` directly: no fp32 copy of a large model is ever allocated.
    vs.set_kind(kind);
    let model = build(&vs.root(), &config, &dir.join(weights::CONFIG_FILE))?;
    vs.freeze();
    let mut state = weights::read_folder(dir, kind, device)?;
    fixup(&mut state);
    weights::copy_into(&vs, &state, ignored, dir)?;
    Ok((config, Frozen { vs, model }))
}

/// Fills every variable of `vs` with `N(0, std)` from torch's generator seeded with `seed`
/// (norm scales with `1 + N(0, std)`): random encoders for tests and benchmarks, since models
/// here start at zero and are meant to be loaded.
pub fn randomize(vs: &nn::VarStore, seed: i64, std: f64) -> Result<()> {
    tch::manual_seed(seed);
    let mut vars: Vec<(String, tch::Tensor)> = vs.variables().into_iter().collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    tch::no_grad(|| -> Result<()> {
        for (name, var) in vars {
            let noise =
                tch::Tensor::f_randn(var.size(), (Kind::Float, var.device()))?.f_mul_scalar(std)?;
            let is_scale = name.to_lowercase().contains("norm") && name.ends_with("weight");
            let value = if is_scale {
                noise.f_add_scalar(1.0)?
            } else {
                noise
            };
            let mut var = var;
            var.f_copy_(&value.f_to_kind(var.kind())?)?;
        }
        Ok(())
    })
}
