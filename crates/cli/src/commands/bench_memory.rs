//! `flowscale bench memory`: the memory plan of one device (weights, gradients, AdamW state,
//! EMAs from the model's layout; activations measured at the model's width), whether it fits,
//! and the world size ZeRO would need. The plan itself is `flowscale_train::memory`.

use clap::Args;
use flowscale_models::{Checkpointing, MmditConfig};
use flowscale_train::config::Precision;
use flowscale_train::memory::{gib, MemoryPlan, PlanSpec, ZeroStage};

#[derive(Debug, Args)]
pub struct MemoryArgs {
    /// Depth d (hidden 64 d, d heads); the paper's scaling rule.
    #[arg(long, conflicts_with = "preset")]
    depth: Option<i64>,
    /// A named preset (d15 ... d38, sd3-medium, sd3.5-large, tiny-d2, tiny-d4).
    #[arg(long)]
    preset: Option<String>,
    /// Per-device micro-batch (samples one device runs forward and backward at once).
    #[arg(long)]
    batch: u64,
    /// Data-parallel ranks.
    #[arg(long, default_value_t = 1)]
    world: u64,
    /// `fp32` or `bf16` (fp32 master weights, bf16 autocast forward).
    #[arg(long, default_value = "bf16")]
    precision: String,
    /// `none`, `blocks` or `every-N`.
    #[arg(long, default_value = "none")]
    checkpointing: String,
    /// ZeRO stage 0, 1 (AdamW moments sharded) or 2 (gradients too), as `train.zero_stage`.
    #[arg(long, default_value = "0")]
    zero: String,
    /// Image resolution in pixels (latent = resolution / 8).
    #[arg(long, default_value_t = 256)]
    resolution: i64,
    /// Text context tokens.
    #[arg(long, default_value_t = 154)]
    context: i64,
    /// EMA copies of the weights (ema.decays plus post-hoc stds).
    #[arg(long, default_value_t = 1)]
    emas: u64,
    /// Where the activations are measured: `cpu`, `cuda` or `cuda:N`.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Device memory the plan must fit, in GiB.
    #[arg(long = "gpu-memory-gib", default_value_t = 80.0)]
    gpu_memory_gib: f64,
}

/// The largest world size searched for a fit.
const MAX_WORLD: u64 = 4096;

pub fn run(a: &MemoryArgs) -> anyhow::Result<()> {
    let config = match (&a.preset, a.depth) {
        (Some(p), _) => MmditConfig::preset(p)?,
        (None, Some(d)) if d >= 1 => MmditConfig::from_depth(d),
        (None, Some(d)) => anyhow::bail!("--depth {d}: expected at least 1"),
        (None, None) => anyhow::bail!("give --depth D or --preset NAME"),
    };
    let precision = match a.precision.as_str() {
        "fp32" => Precision::Fp32,
        "bf16" => Precision::Bf16,
        p => anyhow::bail!("--precision `{p}`: expected fp32 or bf16"),
    };
    anyhow::ensure!(a.batch >= 1, "--batch {}: expected at least 1", a.batch);
    anyhow::ensure!(a.world >= 1, "--world {}: expected at least 1", a.world);
    anyhow::ensure!(
        a.resolution >= 8 && a.resolution % 8 == 0,
        "--resolution {}: expected a positive multiple of 8",
        a.resolution
    );
    anyhow::ensure!(
        a.context >= 1,
        "--context {}: expected at least 1",
        a.context
    );
    anyhow::ensure!(
        a.gpu_memory_gib.is_finite() && a.gpu_memory_gib > 0.0,
        "--gpu-memory-gib {}: expected a positive number",
        a.gpu_memory_gib
    );
    let spec = PlanSpec {
        config,
        side: a.resolution / 8,
        context_tokens: a.context,
        micro_batch: a.batch,
        world: a.world,
        precision,
        checkpointing: Checkpointing::parse(&a.checkpointing)
            .map_err(|e| anyhow::anyhow!("--checkpointing: {e}"))?,
        zero: ZeroStage::parse("--zero", &a.zero)?,
        emas: a.emas,
    };
    let device = super::bench_fwd_bwd::parse_device(&a.device)?;
    let (plan, profile) = MemoryPlan::measure(&spec, device)?;
    let capacity = (a.gpu_memory_gib * (1u64 << 30) as f64) as u64;
    let s = &plan.states;
    let act = &plan.activations;
    println!(
        "MMDiT depth {} (hidden {}), {} trainable parameters; {}x{} px, {} context tokens, \
         {}, micro-batch {} per device, world {}, checkpointing {}, ZeRO {}",
        spec.config.num_layers,
        spec.config.hidden(),
        plan.params,
        a.resolution,
        a.resolution,
        a.context,
        a.precision,
        a.batch,
        a.world,
        spec.checkpointing.name(),
        spec.zero.number(),
    );
    println!("per device, GiB:");
    println!("  weights (fp32)             {:8.2}", gib(s.weights));
    println!("  gradients (fp32)           {:8.2}", gib(s.gradients));
    println!("  AdamW moments (2 x fp32)   {:8.2}", gib(s.optimizer));
    println!("  EMAs ({} x fp32)            {:8.2}", a.emas, gib(s.emas));
    println!("  activations saved          {:8.2}", gib(act.saved));
    println!("  recompute (one block)      {:8.2}", gib(act.recompute));
    println!("  total                      {:8.2}", gib(plan.total()));
    let verdict = if plan.total() <= capacity {
        "fits"
    } else {
        "does NOT fit"
    };
    println!("{verdict} in {} GiB", a.gpu_memory_gib);
    for zero in [ZeroStage::Optimizer, ZeroStage::Gradients] {
        let world = plan.smallest_world(a.emas, zero, capacity, MAX_WORLD)?;
        let found = world.map_or(format!("none up to {MAX_WORLD}"), |w| w.to_string());
        println!(
            "smallest world size that fits with ZeRO {} at this micro-batch: {found}",
            zero.number()
        );
    }
    println!("activations: {}", profile.provenance());
    println!(
        "not included: backward's transient activation gradients, communication buckets, \
         allocator fragmentation, the CUDA context"
    );
    Ok(())
}
