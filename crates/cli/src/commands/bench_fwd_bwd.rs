//! `flowscale bench fwd-bwd`: wall time of the MMDiT's forward + backward on random inputs, the
//! number `scripts/bench/vs_diffusers.py fwd-bwd` compares with diffusers' `SD3Transformer2DModel`
//! in PyTorch eager. The architecture comes from a diffusers `config.json`, so both sides are
//! built from the same file.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use flowscale_models::{Checkpointing, Mmdit, MmditConfig};
use tch::{nn, Device, Kind, Tensor};

#[derive(Debug, Args)]
pub struct FwdBwdArgs {
    /// A diffusers `config.json` of `SD3Transformer2DModel`.
    #[arg(long = "config-json")]
    config_json: PathBuf,
    /// Latent height and width.
    #[arg(long, num_args = 2, default_values_t = [32, 32])]
    latent: Vec<i64>,
    /// Context (text) tokens.
    #[arg(long, default_value_t = 154)]
    context: i64,
    #[arg(long, default_value_t = 8)]
    batch: i64,
    /// Untimed iterations first.
    #[arg(long, default_value_t = 3)]
    warmup: u64,
    /// Timed iterations.
    #[arg(long, default_value_t = 10)]
    steps: u64,
    /// `cpu`, `cuda` or `cuda:N`.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Activation checkpointing: `none`, `blocks` or `every-N`.
    #[arg(long, default_value = "none")]
    checkpointing: String,
    /// Print one JSON line instead of text.
    #[arg(long)]
    json: bool,
}

pub(crate) fn parse_device(s: &str) -> anyhow::Result<Device> {
    match s {
        "cpu" => Ok(Device::Cpu),
        "cuda" => Ok(Device::Cuda(0)),
        _ => match s.strip_prefix("cuda:").map(str::parse::<usize>) {
            Some(Ok(i)) => Ok(Device::Cuda(i)),
            _ => anyhow::bail!("--device `{s}`: expected cpu, cuda or cuda:N"),
        },
    }
}

pub fn run(args: &FwdBwdArgs) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&args.config_json)
        .with_context(|| format!("reading {}", args.config_json.display()))?;
    let config = MmditConfig::from_json(&text)
        .with_context(|| format!("parsing {}", args.config_json.display()))?;
    let device = parse_device(&args.device)?;
    let plan = Checkpointing::parse(&args.checkpointing)?;
    tch::manual_seed(0);
    let vs = nn::VarStore::new(device);
    let model = Mmdit::new(&vs.root(), &config)?;
    let (h, w) = (args.latent[0], args.latent[1]);
    let b = args.batch;
    let opts = (Kind::Float, device);
    let x = Tensor::f_randn([b, config.in_channels, h, w], opts)?;
    let t = Tensor::f_rand([b], opts)?.f_mul_scalar(1000.0)?;
    let ctx = Tensor::f_randn([b, args.context, config.joint_attention_dim], opts)?;
    let pooled = Tensor::f_randn([b, config.pooled_projection_dim], opts)?;
    let params: Vec<Tensor> = vs.trainable_variables();
    let iteration = || -> anyhow::Result<Tensor> {
        let (out, tape) = model.forward_planned(&x, &t, &ctx, &pooled, plan)?;
        let loss = out.f_square()?.f_mean(Kind::Float)?;
        loss.f_backward()?;
        if let Some(tape) = tape {
            tape.backward()?;
        }
        for p in &params {
            // Zeroed in place (the trainer does the same); the peer uses PyTorch's default
            // zero_grad(set_to_none=True).
            let mut g = p.grad();
            if g.defined() {
                let _ = g.f_zero_()?;
            }
        }
        Ok(loss)
    };
    // The first step's memory above what the model and inputs hold: measured before any other
    // step, so memory the allocator kept from an earlier step cannot hide it.
    let step_memory = first_step_memory(device, &iteration)?;
    for _ in 1..args.warmup {
        let _ = iteration()?;
    }
    let start = std::time::Instant::now();
    let mut last = None;
    for _ in 0..args.steps {
        last = Some(iteration()?);
    }
    // A host read waits for queued device work.
    if let Some(l) = last {
        l.f_double_value(&[])?;
    }
    let ms = 1e3 * start.elapsed().as_secs_f64() / args.steps as f64;
    let threads = tch::get_num_threads();
    let mib = step_memory as f64 / (1u64 << 20) as f64;
    let plan = plan.name();
    if args.json {
        println!(
            "{{\"ms_per_iter\": {ms:.3}, \"batch\": {b}, \"latent\": [{h}, {w}], \"context\": {}, \"steps\": {}, \"device\": \"{}\", \"threads\": {threads}, \"checkpointing\": \"{plan}\", \"step_peak_mib\": {mib:.1}}}",
            args.context, args.steps, args.device
        );
    } else {
        println!(
            "{ms:.1} ms per forward+backward, {:.1} samples/s (batch {b}, latent {h}x{w}, context {}, {} timed after {} warm-up, {}, {threads} threads); checkpointing {plan}: first step peaks {mib:.1} MiB above the model",
            1e3 * b as f64 / ms,
            args.context,
            args.steps,
            args.warmup.max(1),
            args.device
        );
    }
    Ok(())
}

/// Runs `step` once and returns its peak memory above the memory in use before it: resident
/// memory on the CPU, the caching allocator's allocated bytes on CUDA.
fn first_step_memory(
    device: Device,
    step: &dyn Fn() -> anyhow::Result<Tensor>,
) -> anyhow::Result<u64> {
    match device {
        Device::Cuda(i) => {
            use flowscale_torch_ext::cuda;
            cuda::reset_peak_memory_stats(i)?;
            let before = cuda::memory_stats(i)?.allocated;
            step()?.f_double_value(&[])?;
            Ok(cuda::memory_stats(i)?.peak_allocated.saturating_sub(before))
        }
        _ => {
            use flowscale_train::host_memory::{reset_peak, resident_and_peak};
            reset_peak()?;
            let (before, _) = resident_and_peak()?;
            let _ = step()?;
            Ok(resident_and_peak()?.1.saturating_sub(before))
        }
    }
}
