//! Checkpoint I/O: every layout is read into, and written from, a state keyed by diffusers
//! names (flowscale's own VarStore names). [`sd3`] holds the one key map to the SD3 layout.

pub mod diffusers;
pub mod safetensors_io;
pub mod sd3;

use crate::backbone::Backbone;
use crate::backbone_kind::BackboneKind;
use crate::builder::ParamInfo;
use crate::config::MmditConfig;
use crate::error::{KeyReport, ModelError, Result};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use tch::{nn, Device, Kind, Tensor};

/// A model state keyed by diffusers names.
pub type StateDict = BTreeMap<String, Tensor>;

/// Safetensors metadata key under which flowscale stores its config in single files.
pub const CONFIG_METADATA_KEY: &str = "flowscale.mmdit_config";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// A diffusers `SD3Transformer2DModel` folder.
    Diffusers,
    /// An SD3 original single `.safetensors` file.
    Sd3 { prefixed: bool },
    /// flowscale's folder for the backbones other than MMDiT (which have no diffusers or SD3
    /// model): the same two files as a diffusers folder, `config.json` (diffusers' field names
    /// plus `backbone`, which names the architecture) and `diffusion_pytorch_model.safetensors`
    /// at flowscale's keys (docs/backbones.md).
    Flowscale,
}

impl Layout {
    /// The layout of a checkpoint of `backbone` in a folder.
    fn of_folder(backbone: BackboneKind) -> Self {
        if backbone.is_mmdit() {
            Layout::Diffusers
        } else {
            Layout::Flowscale
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Layout::Diffusers => "diffusers",
            Layout::Sd3 { .. } => "sd3",
            Layout::Flowscale => "flowscale",
        }
    }
}

/// A checkpoint read into diffusers keys.
pub struct Checkpoint {
    pub config: MmditConfig,
    pub state: StateDict,
    pub layout: Layout,
}

/// Reads a checkpoint of either layout: a folder is a diffusers model, a `.safetensors` file an
/// SD3 single file (with or without the `model.diffusion_model.` prefix; its architecture is
/// inferred from shapes). Floating tensors are converted to `kind` on `device`.
pub fn read(path: &Path, kind: Kind, device: Device) -> Result<Checkpoint> {
    read_with_head_dim(path, kind, device, None)
}

/// [`read`], with the head width of an SD3 file without QK-norm given (the layout does not record
/// the head count; SD3's own models use 64, the default).
pub fn read_with_head_dim(
    path: &Path,
    kind: Kind,
    device: Device,
    head_dim: Option<i64>,
) -> Result<Checkpoint> {
    if path.is_dir() {
        let (config, state) = diffusers::read(path, kind, device)?;
        return Ok(Checkpoint {
            layout: Layout::of_folder(config.backbone),
            config,
            state,
        });
    }
    let contents = safetensors_io::read(path, kind, device)?;
    let raw: StateDict = contents.tensors.into_iter().collect();
    let prefixed = raw.keys().all(|k| k.starts_with(sd3::SD3_PREFIX)) && !raw.is_empty();
    let raw = sd3::strip_prefix(raw);
    if raw.keys().any(|k| k.starts_with("transformer_blocks.")) {
        return Err(ModelError::format(
            path,
            "diffusers keys in a single file: pass the diffusers folder (with config.json)",
        ));
    }
    let config = sd3::infer_config(&raw, &contents.metadata, head_dim, path)?;
    if !config.backbone.is_mmdit() {
        return Err(ModelError::format(
            path,
            format!(
                "a {} backbone in an SD3 single file: only MMDiT has that layout; the others \
                 are flowscale folders (config.json + weights)",
                config.backbone
            ),
        ));
    }
    let state = sd3::from_sd3(&config, raw, path)?;
    Ok(Checkpoint {
        config,
        state,
        layout: Layout::Sd3 { prefixed },
    })
}

/// Writes `state` (diffusers keys) in `layout` at `path` (a folder for diffusers, a file for SD3).
pub fn write(path: &Path, config: &MmditConfig, state: &StateDict, layout: Layout) -> Result<()> {
    let native = match config.backbone.is_mmdit() {
        true => matches!(layout, Layout::Diffusers | Layout::Sd3 { .. }),
        false => layout == Layout::Flowscale,
    };
    if !native {
        return Err(ModelError::Config(format!(
            "{}: a {} backbone does not export in the {} layout ({})",
            path.display(),
            config.backbone,
            layout.name(),
            if config.backbone.is_mmdit() {
                "MMDiT exports as diffusers or sd3"
            } else {
                "only MMDiT has diffusers and SD3 layouts; the others export as flowscale folders"
            }
        )));
    }
    let report = check_keys(&Backbone::layout(config)?, state);
    if !report.is_empty() {
        return Err(ModelError::Keys {
            path: path.to_owned(),
            report,
        });
    }
    match layout {
        Layout::Diffusers if !config.position_grid.is_table() => Err(ModelError::Config(format!(
            "{}: diffusers' SD3Transformer2DModel has only the cropped position table; a model \
             with position_grid {:?} exports as an SD3 single file (which records it)",
            path.display(),
            config.position_grid
        ))),
        Layout::Diffusers | Layout::Flowscale => diffusers::write(path, config, state, None),
        Layout::Sd3 { prefixed } => {
            let prefix = if prefixed { sd3::SD3_PREFIX } else { "" };
            let tensors: Vec<(String, Tensor)> = sd3::to_sd3(config, state)?
                .into_iter()
                .map(|(k, t)| (format!("{prefix}{k}"), t))
                .collect();
            safetensors_io::write(path, &tensors, Some(config_metadata(config)?))
        }
    }
}

/// The safetensors metadata that carries `config` in flowscale's single files (SD3 layout,
/// plain safetensors exports), read back by [`sd3::infer_config`].
pub fn config_metadata(config: &MmditConfig) -> Result<HashMap<String, String>> {
    let json = serde_json::to_string(config)
        .map_err(|e| ModelError::Config(format!("config JSON: {e}")))?;
    Ok(HashMap::from([(CONFIG_METADATA_KEY.to_owned(), json)]))
}

/// The VarStore's variables (parameters and the position table) as a state.
pub fn state_dict(vs: &nn::VarStore) -> StateDict {
    vs.variables().into_iter().collect()
}

/// Missing, unexpected and mis-shaped keys of `state` against a model layout.
pub fn check_keys(layout: &[ParamInfo], state: &StateDict) -> KeyReport {
    let mut report = KeyReport::default();
    for p in layout {
        match state.get(&p.key) {
            None => report.missing.push(p.key.clone()),
            Some(t) if t.size() != p.shape => {
                report
                    .mis_shaped
                    .push((p.key.clone(), p.shape.clone(), t.size()))
            }
            Some(_) => {}
        }
    }
    let known: std::collections::HashSet<&str> = layout.iter().map(|p| p.key.as_str()).collect();
    report.unexpected = state
        .keys()
        .filter(|k| !known.contains(k.as_str()))
        .cloned()
        .collect();
    report
}

/// Copies `state` into the variables of `vs` (which must hold a model of `config`), after
/// checking every key and shape.
pub fn copy_into(
    vs: &nn::VarStore,
    config: &MmditConfig,
    state: &StateDict,
    path: &Path,
) -> Result<()> {
    let report = check_keys(&Backbone::layout(config)?, state);
    if !report.is_empty() {
        return Err(ModelError::Keys {
            path: path.to_owned(),
            report,
        });
    }
    let vars = vs.variables();
    tch::no_grad(|| -> Result<()> {
        for (k, src) in state {
            if let Some(dst) = vars.get(k) {
                let mut dst = dst.shallow_clone();
                dst.f_copy_(src)?;
            }
        }
        Ok(())
    })
}

/// A model loaded from a checkpoint, with the VarStore that owns its variables.
pub struct LoadedMmdit {
    pub vs: nn::VarStore,
    pub model: Backbone,
    pub layout: Layout,
}

/// Loads a checkpoint of either layout into a new fp32 model on `device`.
pub fn load_mmdit(path: &Path, device: Device) -> Result<LoadedMmdit> {
    load_mmdit_with_head_dim(path, device, None)
}

/// [`load_mmdit`] with the head width of an SD3 file given (see [`read_with_head_dim`]).
pub fn load_mmdit_with_head_dim(
    path: &Path,
    device: Device,
    head_dim: Option<i64>,
) -> Result<LoadedMmdit> {
    let ckpt = read_with_head_dim(path, Kind::Float, device, head_dim)?;
    let vs = nn::VarStore::new(device);
    let model = Backbone::new(&vs.root(), &ckpt.config)?;
    copy_into(&vs, &ckpt.config, &ckpt.state, path)?;
    Ok(LoadedMmdit {
        vs,
        model,
        layout: ckpt.layout,
    })
}

/// Saves a model's VarStore in `layout`.
pub fn save_mmdit(
    vs: &nn::VarStore,
    config: &MmditConfig,
    path: &Path,
    layout: Layout,
) -> Result<()> {
    write(path, config, &state_dict(vs), layout)
}
