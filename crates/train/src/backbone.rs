//! The run config's `[model]` and `[conditioning]` sections as an MMDiT architecture.

use crate::config::RunConfig;
use flowscale_models::MmditConfig;

/// The MMDiT a run trains on data with `channels` channels and `side` x `side` pixels (the
/// resolution in pixel space, resolution / downsample factor for latents). The position table is exactly the training grid; larger
/// inputs need a larger `pos_embed_max_size` at export time, which is a property of the weights
/// only through the fixed sin-cos table.
pub fn mmdit_config(cfg: &RunConfig, channels: i64, side: i64) -> MmditConfig {
    let m = &cfg.model;
    let hidden = i64::from(m.hidden_size());
    let heads = i64::from(m.num_heads());
    let resolution = side;
    let patch = i64::from(m.patch_size);
    MmditConfig {
        sample_size: resolution,
        patch_size: patch,
        in_channels: channels,
        num_layers: i64::from(m.depth),
        attention_head_dim: hidden / heads.max(1),
        num_attention_heads: heads,
        joint_attention_dim: i64::from(cfg.conditioning.context_dim),
        caption_projection_dim: hidden,
        pooled_projection_dim: i64::from(cfg.conditioning.pooled_dim),
        out_channels: Some(channels),
        pos_embed_max_size: Some((resolution / patch.max(1)).max(1)),
        qk_norm: m.qk_norm.then(|| "rms_norm".to_owned()),
        dual_attention_layers: Vec::new(),
    }
}
