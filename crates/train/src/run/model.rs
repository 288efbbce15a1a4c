//! The model of a run: the MMDiT backbone and the conditioning provider, built from the run
//! config's `[model]` and `[conditioning]` sections, with their trained tensors under checkpoint
//! names (the backbone's at its diffusers keys, the provider's under `conditioner.`), loading of
//! a checkpoint's weight sets, and the forward pass under the run's precision.
//!
//! The trainer, `flowscale eval` and `flowscale export` all build their model here, so a run is
//! evaluated and exported by the code that trained it.

use super::checkpoint::RunCheckpoint;
use super::cond_source::CondSource;
use super::data::RunData;
use crate::cond_input::CondInput;
use crate::conditioning::{ClassEmbedding, Conditioning, ConditioningProvider};
use crate::config::{
    ConditioningConfig, ConditioningProviderKind, ModelConfig, PositionGridKind, Precision,
    RunConfig, TimeInputKind, WidthRule,
};
use crate::error::{Result, TrainError};
use crate::sample_text::SampleText;
use crate::text_conditioning::CaptionConditioning;
use flowscale_encoders::text::{TextEncoder, TextSourceSpan};
use flowscale_formulations::{Formulation, NativeTimeInput};
use flowscale_models::checkpoint::LoadedMmdit;
use flowscale_models::{
    forward_cost, match_mmdit_params, AttentionStats, Backbone, BackboneKind, BlockTape,
    Checkpointing, MmditConfig, PositionGrid,
};
use std::collections::{HashMap, HashSet};
use std::path::Path;
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

/// Prefix of the conditioning provider's parameters in optimiser, EMA and checkpoint names.
pub const CONDITIONER_PREFIX: &str = "conditioner.";

/// What the model is conditioned on, as the data tells it.
#[derive(Debug, Clone)]
pub enum ConditionerSpec {
    /// Learned per-class embeddings (`provider = "class_embedding"`).
    Classes(i64),
    /// Each class's caption through the frozen text encoder (`provider = "captions"`).
    ClassCaptions(Vec<String>),
    /// Each sample's own caption (`provider = "text"`).
    Text(TextSpec),
    /// No conditioner: for consumers of the backbone alone (export of a checkpoint without its
    /// run directory).
    None,
}

/// Per-sample text conditioning: where its sources sit and which encoder (if any) runs.
#[derive(Debug, Clone)]
pub struct TextSpec {
    /// Sources and `(context tokens, width, pooled width)` of stored embeddings; `None` when the
    /// encoder gives them.
    pub embedded: Option<(Vec<TextSourceSpan>, (i64, i64, i64))>,
    /// Text-encoder config loaded with the model: captions encoded on the fly, or prompts at
    /// inference. `None` with stored embeddings at train time (no encoder is loaded).
    pub encoder: Option<String>,
}

impl ConditionerSpec {
    /// The provider `[conditioning]` asks for, over what the data conditions on.
    pub fn for_run(c: &ConditioningConfig, data: &RunData) -> Self {
        match (c.provider, data.cond_source()) {
            (_, CondSource::Text(t)) => Self::Text(TextSpec {
                embedded: t.embedded.as_ref().map(|e| {
                    let [tokens, width] = e.context_shape;
                    (e.spans(), (tokens, width, e.pooled_shape[0]))
                }),
                encoder: match t.embedded {
                    Some(_) => None,
                    None => c.text_encoder.clone(),
                },
            }),
            (ConditioningProviderKind::Captions, _) => {
                Self::ClassCaptions(data.class_names().to_vec())
            }
            _ => Self::Classes(data.classes()),
        }
    }
}

/// Everything that decides a run's model, gathered from its config sections.
#[derive(Debug, Clone)]
pub struct RunModelSpec {
    pub backbone: MmditConfig,
    pub conditioning: ConditioningConfig,
    pub conditioner: ConditionerSpec,
    pub precision: Precision,
    /// Initial weights are a function of this seed alone.
    pub seed: u64,
    /// The formulation whose native time input the backbone sees (`formulation.time_input =
    /// "native"`); `None`: the common `1000 t_eq`.
    pub native_time: Option<Formulation>,
}

impl RunModelSpec {
    /// The model of run `cfg` on `data`.
    pub fn for_run(cfg: &RunConfig, data: &RunData) -> Result<Self> {
        let conditioner = ConditionerSpec::for_run(&cfg.conditioning, data);
        let split = context_split(&cfg.model, &cfg.conditioning, &conditioner)?;
        let mut backbone = backbone_config(
            &cfg.model,
            &cfg.conditioning,
            data.channels(),
            data.side(),
            split,
        )?;
        // Aspect buckets: the table covers the longest bucket side (SD3's extended grid, each
        // batch taking its centred crop); the interpolated grid needs no table.
        let patch = backbone.patch_size.max(1);
        backbone.pos_embed_max_size = backbone
            .pos_embed_max_size
            .map(|m| m.max(data.max_side() / patch));
        backbone.position_grid = position_grid(&cfg.model, data)?;
        Ok(Self {
            backbone,
            conditioning: cfg.conditioning.clone(),
            conditioner,
            precision: cfg.train.precision,
            seed: cfg.run.seed,
            native_time: native_time_of(cfg),
        })
    }

    /// Loads the text encoder of `config` with a text model (to encode prompts at inference,
    /// where training used stored embeddings). An error for class-conditioned models.
    pub fn with_text_encoder(mut self, config: &str) -> Result<Self> {
        match &mut self.conditioner {
            ConditionerSpec::Text(t) => {
                t.encoder = Some(config.to_owned());
                Ok(self)
            }
            _ => Err(TrainError::Invalid(
                "a text encoder was given for a class-conditioned model".into(),
            )),
        }
    }

    /// The model a checkpoint holds, without the run's data: the backbone of its `config.json`
    /// and, when it trained class embeddings (`conditioner.*` tensors), a conditioner of their
    /// shapes. Caption conditioners have no trained tensors and are left out (their text encoder
    /// is not loaded). The seed is the run's when its config is known.
    pub fn for_checkpoint(ck: &RunCheckpoint) -> Result<Self> {
        let config_path = ck.dir().join("config.json");
        let backbone = ck.backbone_config()?;
        let run = ck.run_config().ok();
        let mut conditioning = run
            .as_ref()
            .map(|r| r.conditioning.clone())
            .unwrap_or_default();
        conditioning.context_dim = u32::try_from(backbone.joint_attention_dim)
            .map_err(|_| TrainError::corrupt(&config_path, "joint_attention_dim out of range"))?;
        conditioning.pooled_dim = u32::try_from(backbone.pooled_projection_dim)
            .map_err(|_| TrainError::corrupt(&config_path, "pooled_projection_dim out of range"))?;
        // Class embeddings when the run says so (or, without its config, when the checkpoint
        // holds conditioner tensors); their class count and token count come from the tensors
        // that are there, and whatever is missing is named when the weights are loaded.
        let model = ck.group("model")?;
        let pooled = model.get(&format!("{CONDITIONER_PREFIX}pooled"));
        let context = model.get(&format!("{CONDITIONER_PREFIX}context"));
        let class_embedding = match &run {
            Some(r) => r.conditioning.provider == ConditioningProviderKind::ClassEmbedding,
            None => model.keys().any(|k| k.starts_with(CONDITIONER_PREFIX)),
        };
        let conditioner = if class_embedding {
            if let (None, Some(c)) = (&run, context.filter(|c| c.dim() == 2)) {
                let width = i64::from(conditioning.context_dim).max(1);
                conditioning.context_tokens = u32::try_from(c.size()[1] / width).map_err(|_| {
                    TrainError::corrupt(&config_path, "context tokens out of range")
                })?;
            }
            let rows = pooled.or(context).filter(|t| t.dim() == 2);
            ConditionerSpec::Classes(rows.map_or(0, |t| t.size()[0]))
        } else {
            ConditionerSpec::None
        };
        Ok(Self {
            backbone,
            conditioning,
            conditioner,
            precision: run.as_ref().map_or(Precision::Fp32, |r| r.train.precision),
            seed: run.as_ref().map_or(0, |r| r.run.seed),
            native_time: run.as_ref().and_then(native_time_of),
        })
    }
}

/// The backbone's position grid from `model.position_grid`: the table, or the interpolated grid
/// whose base side in patches is `model.position_base_resolution` pixels over the data's
/// downsample factor (1 in pixel space) and the patch size.
fn position_grid(m: &ModelConfig, data: &RunData) -> Result<PositionGrid> {
    if m.position_grid == PositionGridKind::Table {
        return Ok(PositionGrid::Table);
    }
    let base = i64::from(m.position_base_resolution());
    let downsample = (data.resolution() / data.side().max(1)).max(1);
    let unit = downsample * i64::from(m.patch_size).max(1);
    if base % unit != 0 {
        return Err(TrainError::Invalid(format!(
            "model.position_base_resolution = {base} px is not a whole number of patches of \
             {unit} px ({downsample} px a model pixel x patch_size {})",
            m.patch_size
        )));
    }
    Ok(PositionGrid::Interpolated {
        base_size: base / unit,
    })
}

/// The formulation whose native time input run `cfg`'s backbone takes, if it takes one (the name
/// was checked when the config loaded).
fn native_time_of(cfg: &RunConfig) -> Option<Formulation> {
    match cfg.formulation.time_input {
        TimeInputKind::TEq => None,
        TimeInputKind::Native => Formulation::parse(&cfg.formulation.name).ok(),
    }
}

/// MMDiT-3's split of the context tokens (`None` for the other backbones): `model.context_split`,
/// else the first text source's tokens when the stored context holds several sources (CLIP's
/// in SD3's stack, T5's after them), else half the context tokens. The split must leave tokens
/// on both sides.
fn context_split(
    m: &ModelConfig,
    c: &ConditioningConfig,
    conditioner: &ConditionerSpec,
) -> Result<Option<i64>> {
    if m.backbone != BackboneKind::Mmdit3 {
        return Ok(None);
    }
    let tokens = i64::from(c.context_tokens);
    let first_source = match conditioner {
        ConditionerSpec::Text(TextSpec {
            embedded: Some((spans, _)),
            ..
        }) if spans.len() > 1 => spans.first().map(|s| s.tokens[1] - s.tokens[0]),
        _ => None,
    };
    let split = m
        .context_split
        .map(i64::from)
        .or(first_source)
        .unwrap_or(tokens / 2);
    if split < 1 || split >= tokens {
        return Err(TrainError::Invalid(format!(
            "model.backbone = \"mmdit-3\" splits the {tokens} context tokens \
             (conditioning.context_tokens) at {split} (model.context_split); both streams need \
             at least one token"
        )));
    }
    Ok(Some(split))
}

/// The backbone of `[model]` on data with `channels` channels and `side` x `side` inputs (the
/// resolution in pixel space, resolution / downsample factor for latents), attending to context
/// tokens of `[conditioning]`'s widths, with the position table (the run's `position_grid` is
/// set by [`RunModelSpec::for_run`]) and MMDiT-3's `context_split`. A backbone other than
/// MMDiT without `model.hidden_size` is sized by `model.width_rule`. The position table is
/// exactly the training grid; larger inputs need a larger `pos_embed_max_size` at export time,
/// which is a property of the weights only through the fixed sin-cos table.
pub fn backbone_config(
    m: &ModelConfig,
    c: &ConditioningConfig,
    channels: i64,
    side: i64,
    context_split: Option<i64>,
) -> Result<MmditConfig> {
    let hidden = i64::from(m.hidden_size());
    let heads = i64::from(m.num_heads());
    let patch = i64::from(m.patch_size);
    let config = MmditConfig {
        sample_size: side,
        patch_size: patch,
        in_channels: channels,
        num_layers: i64::from(m.depth),
        attention_head_dim: hidden / heads.max(1),
        num_attention_heads: heads,
        joint_attention_dim: i64::from(c.context_dim),
        caption_projection_dim: hidden,
        pooled_projection_dim: i64::from(c.pooled_dim),
        out_channels: Some(channels),
        pos_embed_max_size: Some((side / patch.max(1)).max(1)),
        qk_norm: m.qk_norm.then(|| "rms_norm".to_owned()),
        dual_attention_layers: Vec::new(),
        position_grid: PositionGrid::Table,
        backbone: m.backbone,
        context_split,
    };
    if m.hidden_size.is_none() && m.width_rule == WidthRule::MatchedParams {
        return Ok(match_mmdit_params(&config)?);
    }
    Ok(config)
}

pub struct RunModel {
    device: Device,
    precision: Precision,
    /// The CPU's bf16 matrix instructions, if any (a bf16 run on the CPU autocasts only then).
    cpu_bf16: Option<&'static str>,
    model_vs: VarStore,
    model: Backbone,
    cond_vs: VarStore,
    conditioner: Option<Box<dyn ConditioningProvider>>,
    context_tokens: i64,
    /// See [`RunModelSpec::native_time`]; built once on the model's device.
    native_time: Option<NativeTimeInput>,
}

impl RunModel {
    /// Builds the model on `device`, initialised from `spec.seed` alone (whatever else runs in
    /// the process). A caption conditioner loads its frozen text encoder here.
    pub fn build(spec: &RunModelSpec, device: Device) -> Result<Self> {
        let c = &spec.conditioning;
        flowscale_core::with_torch_seed(spec.seed as i64, || -> Result<_> {
            let model_vs = VarStore::new(device);
            let model = Backbone::new(&model_vs.root(), &spec.backbone)?;
            let cond_vs = VarStore::new(device);
            let conditioner: Option<Box<dyn ConditioningProvider>> = match &spec.conditioner {
                ConditionerSpec::Classes(classes) => Some(Box::new(ClassEmbedding::new(
                    &cond_vs.root(),
                    *classes,
                    i64::from(c.context_tokens),
                    i64::from(c.context_dim),
                    i64::from(c.pooled_dim),
                )?)),
                ConditionerSpec::ClassCaptions(names) => {
                    Some(Box::new(caption_conditioning(c, names, device)?))
                }
                ConditionerSpec::Text(t) => Some(Box::new(sample_text(c, t, device)?)),
                ConditionerSpec::None => None,
            };
            Ok(Self {
                device,
                precision: spec.precision,
                cpu_bf16: flowscale_torch_ext::cpu::bf16_matrix_instructions(),
                model_vs,
                model,
                cond_vs,
                conditioner,
                context_tokens: i64::from(c.context_tokens),
                native_time: spec
                    .native_time
                    .map(|f| NativeTimeInput::new(f, device))
                    .transpose()?,
            })
        })
    }

    /// A backbone loaded from an exported checkpoint (`flowscale_models::checkpoint`) with a
    /// `conditioner` built apart, in fp32: generation from an export, which carries neither a
    /// run config nor a conditioner. `context_tokens` only sizes the FLOP count.
    pub fn from_backbone(
        loaded: LoadedMmdit,
        conditioner: Box<dyn ConditioningProvider>,
        context_tokens: i64,
        device: Device,
    ) -> Self {
        Self {
            device,
            // The export records no training precision; fp32 is what it stores.
            precision: Precision::Fp32,
            cpu_bf16: None,
            model_vs: loaded.vs,
            model: loaded.model,
            cond_vs: VarStore::new(device),
            conditioner: Some(conditioner),
            context_tokens,
            // Exports carry SD3's convention, the common input.
            native_time: None,
        }
    }

    pub fn backbone(&self) -> &Backbone {
        &self.model
    }

    pub fn config(&self) -> &MmditConfig {
        self.model.config()
    }

    pub fn backbone_store(&self) -> &VarStore {
        &self.model_vs
    }

    /// Trainable tensors of backbone and conditioner under their checkpoint names, sorted by
    /// name (a fixed order makes every reduction over parameters, and so a run, reproducible).
    pub fn params(&self) -> Vec<(String, Tensor)> {
        let mut out: Vec<(String, Tensor)> = self
            .model_vs
            .variables()
            .into_iter()
            .filter(|(_, t)| t.requires_grad())
            .chain(
                self.cond_vs
                    .variables()
                    .into_iter()
                    .filter(|(_, t)| t.requires_grad())
                    .map(|(k, t)| (format!("{CONDITIONER_PREFIX}{k}"), t)),
            )
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// The backbone's fixed buffers (the position table): a function of the config, stored in
    /// checkpoints so a folder exports without it.
    pub fn buffers(&self) -> Vec<(String, Tensor)> {
        let mut out: Vec<(String, Tensor)> = self
            .model_vs
            .variables()
            .into_iter()
            .filter(|(_, t)| !t.requires_grad())
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Every tensor by checkpoint name: the trained ones and the fixed buffers.
    pub fn named_tensors(&self) -> HashMap<String, Tensor> {
        self.params().into_iter().chain(self.buffers()).collect()
    }

    /// Copies a checkpoint group (`tensors`, read from `source`) into the model after checking
    /// every name, shape and dtype: each trained tensor must be there, the fixed buffers may be,
    /// and nothing else may. Every problem is named at once.
    pub fn load_weights(&self, tensors: &HashMap<String, Tensor>, source: &Path) -> Result<()> {
        let params = self.params();
        let buffers = self.buffers();
        let optional: HashSet<String> = buffers.iter().map(|(k, _)| k.clone()).collect();
        let expects: Vec<(String, Tensor)> = params
            .iter()
            .chain(&buffers)
            .map(|(k, t)| (k.clone(), t.shallow_clone()))
            .collect();
        if let Some(problems) =
            crate::checkpoint::tensor_match::mismatch(&expects, &optional, tensors)
        {
            return Err(TrainError::corrupt(
                source,
                format!("checkpoint does not match the model: {problems}"),
            ));
        }
        let _guard = tch::no_grad_guard();
        for (name, p) in params.iter().chain(&buffers) {
            if let Some(value) = tensors.get(name) {
                p.shallow_clone().f_copy_(value)?;
            }
        }
        Ok(())
    }

    /// Names of the independently droppable conditioning sources, in keep-mask order (none
    /// without a conditioner).
    pub fn conditioning_sources(&self) -> Vec<String> {
        self.conditioner
            .as_ref()
            .map_or_else(Vec::new, |c| c.source_names())
    }

    /// The frozen text encoder of a text model built with one (see
    /// [`RunModelSpec::with_text_encoder`]); `None` for class models and stored embeddings.
    pub fn text_encoder(&self) -> Option<&TextEncoder> {
        self.conditioner.as_ref().and_then(|c| c.text_encoder())
    }

    fn conditioner(&self) -> Result<&dyn ConditioningProvider> {
        self.conditioner.as_deref().ok_or_else(|| {
            TrainError::Invalid("this model was built without its conditioner".into())
        })
    }

    /// Conditioning of `input` with per-source keep masks (1 keep, 0 drop).
    pub fn encode(&self, input: &CondInput, keep: &[Tensor]) -> Result<Conditioning> {
        self.conditioner()?.encode(input, keep)
    }

    /// Conditioning of `input` with nothing dropped.
    pub fn encode_all(&self, input: &CondInput) -> Result<Conditioning> {
        self.encode_without(input, &[])
    }

    /// Conditioning of `input` with the sources named in `dropped` left out (zeros) for every
    /// sample: the paper drops T5 at inference. An unknown name lists the model's sources.
    pub fn encode_without(&self, input: &CondInput, dropped: &[String]) -> Result<Conditioning> {
        let names = self.conditioning_sources();
        if let Some(unknown) = dropped.iter().find(|d| !names.contains(d)) {
            return Err(TrainError::Invalid(format!(
                "no conditioning source {unknown:?}; this model has {names:?}"
            )));
        }
        let b = input.len();
        let keep = names
            .iter()
            .map(|n| {
                let v = if dropped.contains(n) { 0.0 } else { 1.0 };
                Tensor::f_full([b], v, (Kind::Float, self.device))
            })
            .collect::<std::result::Result<Vec<_>, _>>()?;
        self.encode(input, &keep)
    }

    /// The backbone under the run's precision: bf16 autocast on CUDA, fp32 otherwise; the output
    /// is fp32.
    pub fn forward(&self, x: &Tensor, t: &Tensor, cond: &Conditioning) -> Result<Tensor> {
        let t = self.time_input(t)?;
        let out =
            self.under_precision(|| Ok(self.model.forward(x, &t, &cond.context, &cond.pooled)?))?;
        Ok(out.f_to_kind(Kind::Float)?)
    }

    /// Each backbone block's attention statistics on `(x, t, cond)`, from the diagnostic
    /// forward under the run's precision (its logits in fp32); no autograd.
    pub fn attention_stats(
        &self,
        x: &Tensor,
        t: &Tensor,
        cond: &Conditioning,
    ) -> Result<Vec<AttentionStats>> {
        let t = self.time_input(t)?;
        let (_, stats) = self.under_precision(|| {
            Ok(self
                .model
                .forward_with_attention_stats(x, &t, &cond.context, &cond.pooled)?)
        })?;
        Ok(stats)
    }

    /// [`RunModel::forward`] for a training step with activation checkpointing `plan`. With a
    /// plan other than none, the returned tape must be finished by [`RunModel::finish_backward`]
    /// after the loss's `backward()`, or the blocks and embeddings get no gradient.
    pub fn forward_for_training(
        &self,
        x: &Tensor,
        t: &Tensor,
        cond: &Conditioning,
        plan: Checkpointing,
    ) -> Result<(Tensor, Option<BlockTape<'_>>)> {
        let t = self.time_input(t)?;
        let (out, tape) = self.under_precision(|| {
            Ok(self
                .model
                .forward_planned(x, &t, &cond.context, &cond.pooled, plan)?)
        })?;
        Ok((out.f_to_kind(Kind::Float)?, tape))
    }

    /// Back-propagates through the blocks of a checkpointed forward, recomputing them under the
    /// same precision as the forward. Call after the loss's `backward()`.
    pub fn finish_backward(&self, tape: Option<BlockTape<'_>>) -> Result<()> {
        match tape {
            Some(tape) => self.under_precision(|| Ok(tape.backward()?)),
            None => Ok(()),
        }
    }

    /// Every caller passes the common input `1000 t_eq`; a native-time run converts it here,
    /// once, for training, validation and sampling alike.
    fn time_input(&self, t: &Tensor) -> Result<Tensor> {
        Ok(match &self.native_time {
            Some(native) => native.apply(t)?,
            None => t.shallow_clone(),
        })
    }

    /// Runs `f` under bf16 autocast when the run trains in bf16 on CUDA, or on a CPU with bf16
    /// matrix instructions ([`autocasts`]).
    fn under_precision<T>(&self, f: impl FnOnce() -> Result<T>) -> Result<T> {
        if autocasts(self.precision, self.device, self.cpu_bf16) {
            flowscale_torch_ext::autocast::with_autocast(self.device, Kind::BFloat16, f)?
        } else {
            f()
        }
    }

    /// How the backbone runs, for the start-up line: e.g. `bf16 autocast on the CPU (AMX-BF16)`.
    pub fn precision_description(&self) -> String {
        let autocast = autocasts(self.precision, self.device, self.cpu_bf16);
        match (self.precision, autocast, self.device.is_cuda()) {
            (Precision::Fp32, ..) => "fp32".into(),
            (Precision::Bf16, true, true) => "bf16 autocast on CUDA".into(),
            (Precision::Bf16, true, false) => format!(
                "bf16 autocast on the CPU ({})",
                self.cpu_bf16.unwrap_or_default()
            ),
            (Precision::Bf16, false, _) => {
                "fp32: train.precision = \"bf16\" but this CPU has no bf16 matrix instructions \
                 (AMX-BF16 or AVX512-BF16), where bf16 autocast would only add conversions"
                    .into()
            }
        }
    }

    /// Training FLOPs per sample (forward and backward: 3x the forward) at `side` x `side`.
    pub fn train_flops_per_sample(&self, side: i64) -> Result<f64> {
        self.train_flops_per_sample_at(side, side)
    }

    /// [`RunModel::train_flops_per_sample`] for `height x width` latents (an aspect bucket).
    pub fn train_flops_per_sample_at(&self, height: i64, width: i64) -> Result<f64> {
        Ok(
            forward_cost(self.model.config(), height, width, self.context_tokens)?
                .train_step_flops(1),
        )
    }
}

/// Whether the backbone runs under bf16 autocast: a bf16 run on CUDA, or on a CPU whose bf16
/// matrix instructions are `cpu_bf16` (the loss, optimiser and EMA stay fp32 either way).
fn autocasts(precision: Precision, device: Device, cpu_bf16: Option<&str>) -> bool {
    precision == Precision::Bf16 && (device.is_cuda() || cpu_bf16.is_some())
}

/// `conditioning: the text ... gives ...; set ...` when `got` differs from the configured shapes.
fn check_text_shapes(c: &ConditioningConfig, got: (i64, i64, i64), what: &str) -> Result<()> {
    let want = (
        i64::from(c.context_tokens),
        i64::from(c.context_dim),
        i64::from(c.pooled_dim),
    );
    let (tokens, width, pooled) = got;
    if got != want {
        return Err(TrainError::Invalid(format!(
            "conditioning: {what} gives {tokens} context tokens of {width} and a pooled vector of \
             {pooled}; set conditioning.context_tokens = {tokens}, context_dim = {width}, \
             pooled_dim = {pooled} (now {}, {}, {})",
            want.0, want.1, want.2
        )));
    }
    Ok(())
}

/// Per-sample text: stored embeddings (checked against the configured shapes) and/or the
/// frozen encoder of `t.encoder`.
fn sample_text(c: &ConditioningConfig, t: &TextSpec, device: Device) -> Result<SampleText> {
    let encoder = t
        .encoder
        .as_deref()
        .map(|p| TextEncoder::load_file(Path::new(p), device))
        .transpose()?;
    let (spans, shapes) = match (&t.embedded, &encoder) {
        (Some((spans, shapes)), _) => {
            check_text_shapes(c, *shapes, "the shards' stored text embeddings")?;
            (spans.clone(), *shapes)
        }
        (None, Some(e)) => (e.source_spans(), e.shapes()),
        (None, None) => {
            return Err(TrainError::Invalid(
                "conditioning.provider = \"text\" without stored embeddings needs \
                 conditioning.text_encoder"
                    .into(),
            ))
        }
    };
    if let (Some(e), Some(p)) = (&encoder, &t.encoder) {
        check_text_shapes(c, e.shapes(), &format!("the text encoder of {p}"))?;
    }
    SampleText::new(spans, shapes, encoder, device)
}

/// The class captions of `conditioning.caption_template`, encoded by the frozen text encoder of
/// `conditioning.text_encoder`, whose shapes must be the configured context and pooled shapes.
fn caption_conditioning(
    c: &ConditioningConfig,
    class_names: &[String],
    device: Device,
) -> Result<CaptionConditioning> {
    let path = c.text_encoder.as_deref().ok_or_else(|| {
        TrainError::Invalid(
            "conditioning.text_encoder is required with provider = \"captions\"".into(),
        )
    })?;
    let encoder = TextEncoder::load_file(Path::new(path), device)?;
    check_text_shapes(c, encoder.shapes(), &format!("the text encoder of {path}"))?;
    let captions: Vec<String> = class_names
        .iter()
        .map(|n| c.caption_template.replace("{}", n))
        .collect();
    let refs: Vec<&str> = captions.iter().map(String::as_str).collect();
    CaptionConditioning::new(&encoder, &refs, 32, device)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(name: &str, tokens: [i64; 2]) -> TextSourceSpan {
        TextSourceSpan {
            name: name.into(),
            tokens,
            context_channels: [0, 16],
            pooled_channels: None,
        }
    }

    fn stored(spans: Vec<TextSourceSpan>, tokens: i64) -> ConditionerSpec {
        ConditionerSpec::Text(TextSpec {
            embedded: Some((spans, (tokens, 16, 16))),
            encoder: None,
        })
    }

    #[test]
    fn mmdit3_splits_at_the_first_text_source_else_in_half_unless_told() {
        let m = |split: Option<u32>| ModelConfig {
            backbone: BackboneKind::Mmdit3,
            context_split: split,
            ..ModelConfig::default()
        };
        let c = |tokens: u32| ConditioningConfig {
            context_tokens: tokens,
            ..ConditioningConfig::default()
        };
        // SD3's stack: CLIP's 77 tokens, then T5's 77.
        let sd3 = stored(vec![span("clip_l", [0, 77]), span("t5", [77, 154])], 154);
        assert_eq!(context_split(&m(None), &c(154), &sd3).unwrap(), Some(77));
        // One source (MiniLM): half the tokens; class tokens likewise.
        let one = stored(vec![span("minilm", [0, 24])], 24);
        assert_eq!(context_split(&m(None), &c(24), &one).unwrap(), Some(12));
        let classes = ConditionerSpec::Classes(10);
        assert_eq!(context_split(&m(None), &c(5), &classes).unwrap(), Some(2));
        // An explicit split wins; one that leaves a stream empty is refused by name.
        assert_eq!(context_split(&m(Some(5)), &c(154), &sd3).unwrap(), Some(5));
        let e = context_split(&m(Some(24)), &c(24), &one)
            .unwrap_err()
            .to_string();
        assert!(e.contains("context_split") && e.contains("24"), "{e}");
        let e = context_split(&m(None), &c(1), &classes)
            .unwrap_err()
            .to_string();
        assert!(e.contains("context_tokens"), "{e}");
        // Other backbones have no split.
        let mmdit = ModelConfig::default();
        assert_eq!(context_split(&mmdit, &c(154), &sd3).unwrap(), None);
    }
}
