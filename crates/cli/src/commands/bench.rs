//! `flowscale bench params`: parameter count (from the model's own layout) and analytic FLOPs;
//! the other benchmarks are dispatched from here.

use anyhow::Context;
use clap::{Args, Subcommand};
use flowscale_models::{
    forward_cost, match_mmdit_params, param_count, BackboneKind, MmditConfig, BACKBONES,
};

#[derive(Debug, Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    command: BenchCommand,
}

#[derive(Debug, Subcommand)]
enum BenchCommand {
    /// Parameter count and forward/training FLOPs of a backbone (or all five) at one size.
    Params(ParamsArgs),
    /// Time full training steps (data, forward, backward, clipping, AdamW, EMA) of a run config.
    TrainStep(super::bench_train::TrainStepArgs),
    /// Time the MMDiT's forward + backward on random inputs (architecture from a config.json).
    FwdBwd(super::bench_fwd_bwd::FwdBwdArgs),
    /// Sentence-embedding throughput of all-MiniLM-L6-v2 (prompts/s).
    Minilm(super::bench_minilm::MiniLmArgs),
    /// Image decode + resize + centre-crop throughput (images/s, per core and on all cores).
    Decode(super::bench_decode::DecodeArgs),
    /// Latent-shard loading throughput of the streaming loader (samples/s).
    Shards(super::bench_shards::ShardsArgs),
    /// The Frechet part of an eval row (FID statistics and distance), before and after the
    /// prepared reference; with --weights, Inception's per-image cost too.
    Frechet(super::bench_frechet::FrechetArgs),
    /// Memory per device (weights, gradients, AdamW, EMAs, measured activations) and whether
    /// it fits; the world size ZeRO would need.
    Memory(super::bench_memory::MemoryArgs),
}

#[derive(Debug, Args)]
struct ParamsArgs {
    /// Depth d (hidden 64 d, d heads); the paper's scaling rule.
    #[arg(long, conflicts_with = "preset")]
    depth: Option<i64>,
    /// A named preset (d15 ... d38, sd3-medium, sd3.5-large, tiny-d2, tiny-d4).
    #[arg(long)]
    preset: Option<String>,
    /// Add QK RMSNorm.
    #[arg(long)]
    qk_norm: bool,
    /// Image resolution in pixels (latent = resolution / 8).
    #[arg(long, default_value_t = 256)]
    resolution: i64,
    /// Text context tokens.
    #[arg(long, default_value_t = 154)]
    context: i64,
    /// Batch size for the training FLOPs per step.
    #[arg(long, default_value_t = 1)]
    batch: i64,
    /// mmdit, mmdit-3, dit, crossdit, uvit, or `all` for a table of the five.
    #[arg(long, default_value = "mmdit")]
    backbone: String,
    /// Width of a backbone other than MMDiT: `matched-params` (the head width whose parameter
    /// count is closest to the MMDiT's of the same depth) or `depth` (hidden 64 d).
    #[arg(long, default_value = "matched-params")]
    width_rule: String,
    /// MMDiT-3: context tokens of its first stream (CLIP's 77 of SD3's 154).
    #[arg(long, default_value_t = 77)]
    context_split: i64,
}

fn grouped(n: i64) -> String {
    let s = n.abs().to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 {
        format!("-{out}")
    } else {
        out
    }
}

pub fn run(args: &BenchArgs) -> anyhow::Result<()> {
    let a = match &args.command {
        BenchCommand::Params(a) => a,
        BenchCommand::TrainStep(t) => return super::bench_train::run(t),
        BenchCommand::FwdBwd(f) => return super::bench_fwd_bwd::run(f),
        BenchCommand::Minilm(m) => return super::bench_minilm::run(m),
        BenchCommand::Decode(d) => return super::bench_decode::run(d),
        BenchCommand::Shards(s) => return super::bench_shards::run(s),
        BenchCommand::Frechet(f) => return super::bench_frechet::run(f),
        BenchCommand::Memory(m) => return super::bench_memory::run(m),
    };
    let mut base = match (&a.preset, a.depth) {
        (Some(p), _) => MmditConfig::preset(p)?,
        (None, Some(d)) => MmditConfig::from_depth(d),
        (None, None) => anyhow::bail!("give --depth D or --preset NAME"),
    };
    if a.qk_norm {
        base.qk_norm = Some("rms_norm".into());
    }
    let matched = match a.width_rule.as_str() {
        "matched-params" => true,
        "depth" => false,
        other => anyhow::bail!("--width-rule {other}: expected matched-params or depth"),
    };
    let sized = |kind: BackboneKind| -> anyhow::Result<MmditConfig> {
        let cfg = base.as_backbone(kind, a.context_split);
        Ok(if matched {
            match_mmdit_params(&cfg)?
        } else {
            cfg
        })
    };
    if a.backbone == "all" {
        return params_table(a, &sized);
    }
    let cfg = sized(BackboneKind::parse(&a.backbone)?)?;
    let params = param_count(&cfg).context("counting parameters")?;
    let latent = a.resolution / 8;
    let cost = forward_cost(&cfg, latent, latent, a.context)?;
    println!(
        "{} depth {} (hidden {}, {} heads of {}, patch {}, qk_norm {})",
        cfg.backbone,
        cfg.num_layers,
        cfg.hidden(),
        cfg.num_attention_heads,
        cfg.attention_head_dim,
        cfg.patch_size,
        cfg.qk_norm.as_deref().unwrap_or("none")
    );
    println!("parameters (trainable): {}", grouped(params.trainable));
    println!(
        "position table (fixed buffer in the checkpoint, not a parameter): {}",
        grouped(params.buffers)
    );
    println!(
        "forward per sample at {0}x{0} px ({1}x{1} latent, {2} image tokens) + {3} context tokens:",
        a.resolution, latent, cost.image_tokens, cost.context_tokens
    );
    println!(
        "  multiply-adds: {} ({:.4e})",
        grouped(cost.macs()),
        cost.macs() as f64
    );
    println!("  FLOPs (2 x multiply-adds): {:.4e}", cost.flops());
    println!(
        "  of which attention QK^T/AV: {:.1}%, MLP: {:.1}%, projections: {:.1}%",
        100.0 * cost.attention_macs as f64 / cost.macs() as f64,
        100.0 * cost.mlp_macs as f64 / cost.macs() as f64,
        100.0 * cost.projection_macs as f64 / cost.macs() as f64
    );
    println!(
        "training FLOPs per step (batch {}, 3 x forward): {:.4e}",
        a.batch,
        cost.train_step_flops(a.batch)
    );
    println!(
        "convention: matrix products only (linears, patch conv, QK^T, AV); FLOP = 2 x multiply-add"
    );
    Ok(())
}

/// `--backbone all`: the five backbones at one depth, with parameters and forward FLOPs
/// relative to MMDiT's.
fn params_table(
    a: &ParamsArgs,
    sized: &dyn Fn(BackboneKind) -> anyhow::Result<MmditConfig>,
) -> anyhow::Result<()> {
    let latent = a.resolution / 8;
    let mmdit = sized(BackboneKind::Mmdit)?;
    let ref_params = param_count(&mmdit)?.trainable as f64;
    let ref_flops = forward_cost(&mmdit, latent, latent, a.context)?.flops();
    println!(
        "depth {}, {res}x{res} px + {} context tokens; width rule: {}",
        mmdit.num_layers,
        a.context,
        if a.width_rule == "depth" {
            "hidden 64 d for every backbone"
        } else {
            "d heads, head width chosen so the parameters are closest to MMDiT's"
        },
        res = a.resolution
    );
    println!(
        "| backbone | hidden | heads x width | parameters | vs MMDiT | forward FLOPs | vs MMDiT |"
    );
    println!("|---|---|---|---|---|---|---|");
    for kind in BACKBONES {
        let cfg = sized(kind)?;
        let p = param_count(&cfg)?.trainable;
        let f = forward_cost(&cfg, latent, latent, a.context)?.flops();
        println!(
            "| {kind} | {} | {} x {} | {} | {:.3} | {:.4e} | {:.3} |",
            cfg.hidden(),
            cfg.num_attention_heads,
            cfg.attention_head_dim,
            grouped(p),
            p as f64 / ref_params,
            f,
            f / ref_flops
        );
    }
    Ok(())
}
