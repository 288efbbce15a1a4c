//! SD3's MMDiT (diffusers `SD3Transformer2DModel`), with VarStore names equal to the diffusers
//! checkpoint keys.

use crate::activation_checkpointing::{run_blocks, BlockTape, Checkpointing, StreamBlock};
use crate::attention_stats::AttentionStats;
use crate::builder::{ParamInfo, Scope};
use crate::config::MmditConfig;
use crate::embeddings::{PatchEmbed, TimeTextEmbed};
use crate::error::{ModelError, Result};
use crate::joint_block::{JointBlock, Modulation, NORM_EPS};
use crate::layers::{layer_norm, modulate, Linear};
use std::cell::RefCell;
use std::rc::Rc;
use tch::{nn, Tensor};

#[derive(Debug)]
pub struct Mmdit {
    config: MmditConfig,
    pos_embed: PatchEmbed,
    time_text_embed: TimeTextEmbed,
    context_embedder: Linear,
    blocks: Vec<JointBlock>,
    norm_out: Modulation,
    proj_out: Linear,
}

impl Mmdit {
    /// Creates the model's parameters under `path` (normally a VarStore's root) with the
    /// training-from-scratch initialisation: xavier-uniform linears and patch conv, zero biases,
    /// normal(0.02) timestep and pooled MLPs, zero adaLN modulations and final projection, the
    /// fixed sin-cos position table as a non-trainable variable.
    pub fn new(path: &nn::Path, config: &MmditConfig) -> Result<Self> {
        config.validate()?;
        Self::build(&Scope::store(path.clone()), config)
    }

    /// Every state entry `(diffusers key, shape, trainable)` of the model `config` describes, in
    /// creation order, produced by the same constructors as [`Mmdit::new`] without allocating.
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
        let blocks = (0..depth)
            .map(|i| {
                JointBlock::new(
                    &scope.sub("transformer_blocks").sub(i),
                    hidden,
                    cfg.num_attention_heads,
                    cfg.attention_head_dim,
                    cfg.qk_norm(),
                    i == depth - 1,
                )
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Mmdit {
            pos_embed: PatchEmbed::new(
                &scope.sub("pos_embed"),
                cfg.in_channels,
                hidden,
                cfg.patch_size,
                cfg.pos_max(),
                cfg.sample_size / cfg.patch_size,
                cfg.position_grid,
            )?,
            time_text_embed: TimeTextEmbed::new(
                &scope.sub("time_text_embed"),
                cfg.pooled_projection_dim,
                hidden,
            )?,
            context_embedder: Linear::xavier(
                &scope.sub("context_embedder"),
                cfg.joint_attention_dim,
                cfg.caption_projection_dim,
            )?,
            blocks,
            norm_out: Modulation::new(&scope.sub("norm_out"), hidden, 2)?,
            proj_out: Linear::zeros(
                &scope.sub("proj_out"),
                hidden,
                cfg.patch_size * cfg.patch_size * cfg.out_channels(),
            )?,
            config: cfg.clone(),
        })
    }

    pub fn config(&self) -> &MmditConfig {
        &self.config
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
        let (mut x, mut ctx, c) = self.embed(latents, timestep, context, pooled)?;
        for block in &self.blocks {
            let (nx, nctx) = block.forward(&x, &ctx, &c)?;
            x = nx;
            if let Some(nctx) = nctx {
                ctx = nctx;
            }
        }
        self.head(&x, &c, &latents.size())
    }

    /// [`Mmdit::forward`] (the same output up to float rounding) with every block's attention in
    /// the explicit math form, returning the output and each block's attention statistics in
    /// block order. Runs without autograd; for diagnostics, not training (it materialises the
    /// `[B, heads, N, N]` logits).
    pub fn forward_with_attention_stats(
        &self,
        latents: &Tensor,
        timestep: &Tensor,
        context: &Tensor,
        pooled: &Tensor,
    ) -> Result<(Tensor, Vec<AttentionStats>)> {
        let _no_grad = tch::no_grad_guard();
        let (mut x, mut ctx, c) = self.embed(latents, timestep, context, pooled)?;
        let mut stats = Vec::with_capacity(self.blocks.len());
        for block in &self.blocks {
            let (nx, nctx, s) = block.forward_with_stats(&x, &ctx, &c)?;
            x = nx;
            if let Some(nctx) = nctx {
                ctx = nctx;
            }
            stats.push(s);
        }
        Ok((self.head(&x, &c, &latents.size())?, stats))
    }

    /// [`Mmdit::forward`] for training with activation checkpointing `plan`: the output's graph
    /// ends at the blocks, so after `loss.backward()` the caller must call the returned tape's
    /// [`BlockTape::backward`] to reach the blocks' and embeddings' parameters.
    pub fn forward_checkpointed(
        &self,
        latents: &Tensor,
        timestep: &Tensor,
        context: &Tensor,
        pooled: &Tensor,
        plan: Checkpointing,
    ) -> Result<(Tensor, BlockTape<'_>)> {
        let (x, ctx, c) = self.embed(latents, timestep, context, pooled)?;
        let blocks = self.blocks.iter().map(|b| b as &dyn StreamBlock);
        let (streams, c_leaf, tape) = run_blocks(blocks, vec![x, ctx], &c, plan)?;
        Ok((self.head(&streams[0], &c_leaf, &latents.size())?, tape))
    }

    /// The forward of a training step under `plan`: [`Mmdit::forward`] and no tape for
    /// [`Checkpointing::None`], else [`Mmdit::forward_checkpointed`] and its tape, which the
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

    /// Patch and position embedding, the conditioning vector, the context projection.
    fn embed(
        &self,
        latents: &Tensor,
        timestep: &Tensor,
        context: &Tensor,
        pooled: &Tensor,
    ) -> Result<(Tensor, Tensor, Tensor)> {
        self.check_inputs(latents, timestep, context, pooled)?;
        let x = self.pos_embed.forward(latents)?;
        let c = self.time_text_embed.forward(timestep, pooled)?;
        let ctx = self.context_embedder.forward(context)?;
        Ok((x, ctx, c))
    }

    /// The final adaLN, projection and unpatchify to the shape of latents `size`.
    fn head(&self, x: &Tensor, c: &Tensor, size: &[i64]) -> Result<Tensor> {
        let p = self.config.patch_size;
        let (b, h, w) = (size[0], size[2] / p, size[3] / p);
        // AdaLayerNormContinuous: (scale, shift).
        let m = self.norm_out.forward(c)?;
        let x = modulate(&layer_norm(x, NORM_EPS)?, &m[1], &m[0])?;
        let x = self.proj_out.forward(&x)?;
        let cout = self.config.out_channels();
        Ok(x.f_reshape([b, h, w, p, p, cout])?
            .f_permute([0, 5, 1, 3, 2, 4])?
            .f_reshape([b, cout, h * p, w * p])?)
    }
}
