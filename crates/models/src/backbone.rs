//! The backbone: SD3's MMDiT (diffusers `SD3Transformer2DModel`, VarStore names equal to the
//! diffusers checkpoint keys) or one of the backbones the paper compares it with (MMDiT-3, DiT,
//! CrossDiT, UViT; `config.backbone`, docs/backbones.md). All take the same inputs (latents,
//! time, context tokens, pooled vector), share the patch, time and pooled embeddings and the
//! output head, and differ in the token streams their blocks map:
//!
//! | backbone | streams into the blocks                      | image tokens for the head |
//! |----------|----------------------------------------------|---------------------------|
//! | mmdit    | `[image, context]`                           | stream 0                  |
//! | mmdit-3  | `[image, context[..split], context[split..]]`| stream 0                  |
//! | dit      | `[[context; image]]`                         | last N of stream 0        |
//! | uvit     | `[[context; image], kept outputs...]`        | last N of stream 0        |
//! | crossdit | `[image, context]` (context read only)       | stream 0                  |

use crate::activation_checkpointing::{run_blocks, BlockTape, Checkpointing, StreamBlock};
use crate::attention_stats::AttentionStats;
use crate::backbone_block::BackboneBlock;
use crate::backbone_kind::BackboneKind;
use crate::builder::{ParamInfo, Scope};
use crate::config::MmditConfig;
use crate::dit_block::DitBlock;
use crate::embeddings::{PatchEmbed, TimeTextEmbed};
use crate::error::{ModelError, Result};
use crate::joint_block::{JointBlock, Modulation, NORM_EPS};
use crate::layers::{layer_norm, modulate, Linear};
use crate::uvit_block::UvitBlock;
use std::cell::RefCell;
use std::rc::Rc;
use tch::{nn, Tensor};

#[derive(Debug)]
pub struct Backbone {
    config: MmditConfig,
    pos_embed: PatchEmbed,
    time_text_embed: TimeTextEmbed,
    /// `context_embedder`, and MMDiT-3's `context_embedder_2` for its second context stream.
    context_embedders: Vec<Linear>,
    blocks: Vec<Box<dyn BackboneBlock>>,
    norm_out: Modulation,
    proj_out: Linear,
}

impl Backbone {
    /// Creates the model's parameters under `path` (normally a VarStore's root) with the
    /// training-from-scratch initialisation: xavier-uniform linears and patch conv, zero biases,
    /// normal(0.02) timestep and pooled MLPs, zero adaLN modulations and final projection, the
    /// fixed sin-cos position table as a non-trainable variable.
    pub fn new(path: &nn::Path, config: &MmditConfig) -> Result<Self> {
        config.validate()?;
        Self::build(&Scope::store(path.clone()), config)
    }

    /// Every state entry `(key, shape, trainable)` of the model `config` describes, in
    /// creation order, produced by the same constructors as [`Backbone::new`] without
    /// allocating.
    pub fn layout(config: &MmditConfig) -> Result<Vec<ParamInfo>> {
        config.validate()?;
        let out = Rc::new(RefCell::new(Vec::new()));
        Self::build(&Scope::recorder(out.clone()), config)?;
        let list = out.borrow().clone();
        Ok(list)
    }

    fn build(scope: &Scope, cfg: &MmditConfig) -> Result<Self> {
        let hidden = cfg.hidden();
        let depth = cfg.num_layers;
        let (heads, head_dim, qk) = (
            cfg.num_attention_heads,
            cfg.attention_head_dim,
            cfg.qk_norm(),
        );
        let blocks = (0..depth)
            .map(|i| -> Result<Box<dyn BackboneBlock>> {
                let s = scope.sub("transformer_blocks").sub(i);
                Ok(match cfg.backbone {
                    BackboneKind::Mmdit | BackboneKind::Mmdit3 => Box::new(JointBlock::new(
                        &s,
                        hidden,
                        heads,
                        head_dim,
                        qk,
                        i == depth - 1,
                        cfg.backbone.context_streams(),
                    )?),
                    BackboneKind::Dit | BackboneKind::CrossDit => Box::new(DitBlock::new(
                        &s,
                        hidden,
                        heads,
                        head_dim,
                        qk,
                        cfg.backbone == BackboneKind::CrossDit,
                    )?),
                    BackboneKind::Uvit => {
                        Box::new(UvitBlock::new(&s, i, depth, hidden, heads, head_dim, qk)?)
                    }
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let pos_embed = PatchEmbed::new(
            &scope.sub("pos_embed"),
            cfg.in_channels,
            hidden,
            cfg.patch_size,
            cfg.pos_max(),
            cfg.sample_size / cfg.patch_size,
            cfg.position_grid,
        )?;
        let time_text_embed = TimeTextEmbed::new(
            &scope.sub("time_text_embed"),
            cfg.pooled_projection_dim,
            hidden,
        )?;
        let embedder = |name: &str| {
            Linear::xavier(
                &scope.sub(name),
                cfg.joint_attention_dim,
                cfg.caption_projection_dim,
            )
        };
        let mut context_embedders = vec![embedder("context_embedder")?];
        let norm_out = Modulation::new(&scope.sub("norm_out"), hidden, 2)?;
        let proj_out = Linear::zeros(
            &scope.sub("proj_out"),
            hidden,
            cfg.patch_size * cfg.patch_size * cfg.out_channels(),
        )?;
        // Last, so that everything MMDiT also has draws its initial values in MMDiT's order.
        if cfg.backbone == BackboneKind::Mmdit3 {
            context_embedders.push(embedder("context_embedder_2")?);
        }
        Ok(Backbone {
            pos_embed,
            time_text_embed,
            context_embedders,
            blocks,
            norm_out,
            proj_out,
            config: cfg.clone(),
        })
    }

    pub fn config(&self) -> &MmditConfig {
        &self.config
    }

    pub fn kind(&self) -> BackboneKind {
        self.config.backbone
    }

    /// The position embedding `[1, h*w, hidden]` (fp32) the forward adds to an `h x w` patch
    /// grid: the cropped table or the interpolated grid of `config.position_grid`.
    pub fn position_embedding(&self, h: i64, w: i64) -> Result<Tensor> {
        self.pos_embed.positions(h, w)
    }

    fn check_inputs(
        &self,
        latents: &Tensor,
        timestep: &Tensor,
        context: &Tensor,
        pooled: &Tensor,
    ) -> Result<()> {
        let cfg = &self.config;
        let (ls, ts, cs, ps) = (
            latents.size(),
            timestep.size(),
            context.size(),
            pooled.size(),
        );
        let p = cfg.patch_size;
        let bad = |what: String| Err(ModelError::Input(what));
        if ls.len() != 4 || ls[1] != cfg.in_channels || ls[2] % p != 0 || ls[3] % p != 0 {
            return bad(format!(
                "latents must be [B, {}, H, W] with H, W multiples of {p}; got {ls:?}",
                cfg.in_channels
            ));
        }
        let b = ls[0];
        if ts != [b] {
            return bad(format!("timestep must be [{b}]; got {ts:?}"));
        }
        if cs.len() != 3 || cs[0] != b || cs[2] != cfg.joint_attention_dim {
            return bad(format!(
                "context must be [{b}, L, {}]; got {cs:?}",
                cfg.joint_attention_dim
            ));
        }
        if let (BackboneKind::Mmdit3, Some(split)) = (cfg.backbone, cfg.context_split) {
            if cs[1] <= split {
                return bad(format!(
                    "the mmdit-3 backbone takes the first {split} context tokens as its first \
                     stream and the rest as its second; got {} tokens",
                    cs[1]
                ));
            }
        }
        if ps != [b, cfg.pooled_projection_dim] {
            return bad(format!(
                "pooled must be [{b}, {}]; got {ps:?}",
                cfg.pooled_projection_dim
            ));
        }
        Ok(())
    }

    /// Predicts `[B, out_channels, H, W]` from latents `[B, C, H, W]`, timesteps `[B]` on the
    /// 0..1000 scale, context `[B, L, joint_attention_dim]` and pooled `[B, pooled_projection_dim]`.
    /// Follows the inputs' dtype (and autocast, if enabled).
    pub fn forward(
        &self,
        latents: &Tensor,
        timestep: &Tensor,
        context: &Tensor,
        pooled: &Tensor,
    ) -> Result<Tensor> {
        let (streams, c) = self.embed(latents, timestep, context, pooled)?;
        self.run_blocks(streams, &c, &latents.size())
    }

    /// The forward from the conditioning vector `c` `[B, hidden]` on (the time and pooled
    /// embedding already applied); the DiT parity test's entry point.
    #[cfg(test)]
    fn forward_conditioned(
        &self,
        latents: &Tensor,
        context: &Tensor,
        c: &Tensor,
    ) -> Result<Tensor> {
        let x = self.pos_embed.forward(latents)?;
        self.run_blocks(self.streams(x, context)?, c, &latents.size())
    }

    /// The blocks and the head over the embedded `streams`.
    fn run_blocks(&self, mut streams: Vec<Tensor>, c: &Tensor, size: &[i64]) -> Result<Tensor> {
        for block in &self.blocks {
            streams = block.forward_streams(&streams, c)?;
        }
        self.head(&streams[0], c, size)
    }

    /// [`Backbone::forward`] (the same output up to float rounding) with every block's
    /// attention in the explicit math form, returning the output and each block's attention
    /// statistics in block order (CrossDiT: its self-attention). Runs without autograd; for
    /// diagnostics, not training (it materialises the `[B, heads, N, N]` logits).
    pub fn forward_with_attention_stats(
        &self,
        latents: &Tensor,
        timestep: &Tensor,
        context: &Tensor,
        pooled: &Tensor,
    ) -> Result<(Tensor, Vec<AttentionStats>)> {
        let _no_grad = tch::no_grad_guard();
        let (mut streams, c) = self.embed(latents, timestep, context, pooled)?;
        let mut stats = Vec::with_capacity(self.blocks.len());
        for block in &self.blocks {
            let (next, s) = block.forward_streams_with_stats(&streams, &c)?;
            streams = next;
            stats.push(s);
        }
        Ok((self.head(&streams[0], &c, &latents.size())?, stats))
    }

    /// [`Backbone::forward`] for training with activation checkpointing `plan`: the output's
    /// graph ends at the blocks, so after `loss.backward()` the caller must call the returned
    /// tape's [`BlockTape::backward`] to reach the blocks' and embeddings' parameters.
    pub fn forward_checkpointed(
        &self,
        latents: &Tensor,
        timestep: &Tensor,
        context: &Tensor,
        pooled: &Tensor,
        plan: Checkpointing,
    ) -> Result<(Tensor, BlockTape<'_>)> {
        let (streams, c) = self.embed(latents, timestep, context, pooled)?;
        let blocks = self.blocks.iter().map(|b| b.as_ref() as &dyn StreamBlock);
        let (streams, c_leaf, tape) = run_blocks(blocks, streams, &c, plan)?;
        Ok((self.head(&streams[0], &c_leaf, &latents.size())?, tape))
    }

    /// The forward of a training step under `plan`: [`Backbone::forward`] and no tape for
    /// [`Checkpointing::None`], else [`Backbone::forward_checkpointed`] and its tape, which the
    /// caller must finish after the loss's `backward()`.
    pub fn forward_planned(
        &self,
        latents: &Tensor,
        timestep: &Tensor,
        context: &Tensor,
        pooled: &Tensor,
        plan: Checkpointing,
    ) -> Result<(Tensor, Option<BlockTape<'_>>)> {
        if plan.is_none() {
            return Ok((self.forward(latents, timestep, context, pooled)?, None));
        }
        let (out, tape) = self.forward_checkpointed(latents, timestep, context, pooled, plan)?;
        Ok((out, Some(tape)))
    }

    /// The checked inputs' streams and the conditioning vector.
    fn embed(
        &self,
        latents: &Tensor,
        timestep: &Tensor,
        context: &Tensor,
        pooled: &Tensor,
    ) -> Result<(Vec<Tensor>, Tensor)> {
        self.check_inputs(latents, timestep, context, pooled)?;
        let x = self.pos_embed.forward(latents)?;
        let c = self.time_text_embed.forward(timestep, pooled)?;
        Ok((self.streams(x, context)?, c))
    }

    /// The patch-embedded image tokens `x` and the projected context, arranged as the
    /// backbone's blocks take them (see the table at the top).
    fn streams(&self, x: Tensor, context: &Tensor) -> Result<Vec<Tensor>> {
        let project = |i: usize, ctx: &Tensor| -> Result<Tensor> {
            Ok(self.context_embedders[i].forward(ctx)?)
        };
        Ok(match self.config.backbone {
            BackboneKind::Mmdit | BackboneKind::CrossDit => vec![x, project(0, context)?],
            BackboneKind::Mmdit3 => {
                let split = self.config.context_split.unwrap_or(0);
                let l = context.size()[1];
                vec![
                    x,
                    project(0, &context.f_narrow(1, 0, split)?)?,
                    project(1, &context.f_narrow(1, split, l - split)?)?,
                ]
            }
            BackboneKind::Dit | BackboneKind::Uvit => {
                vec![Tensor::f_cat(&[project(0, context)?, x], 1)?]
            }
        })
    }

    /// The final adaLN, projection and unpatchify to the shape of latents `size`, from the
    /// first stream (its last `h*w` tokens are the image's).
    fn head(&self, stream: &Tensor, c: &Tensor, size: &[i64]) -> Result<Tensor> {
        let p = self.config.patch_size;
        let (b, h, w) = (size[0], size[2] / p, size[3] / p);
        let n = stream.size()[1];
        let x = stream.f_narrow(1, n - h * w, h * w)?;
        // AdaLayerNormContinuous: (scale, shift).
        let m = self.norm_out.forward(c)?;
        let x = modulate(&layer_norm(&x, NORM_EPS)?, &m[1], &m[0])?;
        let x = self.proj_out.forward(&x)?;
        let cout = self.config.out_channels();
        Ok(x.f_reshape([b, h, w, p, p, cout])?
            .f_permute([0, 5, 1, 3, 2, 4])?
            .f_reshape([b, cout, h * p, w * p])?)
    }
}

#[cfg(test)]
pub(crate) mod parity {
    use super::*;

    /// [`Backbone`]'s forward from a given conditioning vector (the DiT parity test: diffusers'
    /// class-conditional DiT computes it from class labels, which this backbone does not take).
    pub(crate) fn forward_conditioned(
        model: &Backbone,
        latents: &Tensor,
        context: &Tensor,
        c: &Tensor,
    ) -> Result<Tensor> {
        model.forward_conditioned(latents, context, c)
    }
}
