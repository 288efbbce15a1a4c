//! `flowscale bench fwd-bwd`: wall time of the MMDiT's forward + backward on random inputs, the
//! number `scripts/bench/vs_diffusers.py fwd-bwd` compares with diffusers' `SD3Transformer2DModel`
//! in PyTorch eager. The architecture comes from a diffusers `config.json`, so both sides are
//! built from the same file.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use flowscale_models::{Mmdit, MmditConfig};
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
        let out = model.forward(&x, &t, &ctx, &pooled)?;
        let loss = out.f_square()?.f_mean(Kind::Float)?;
        loss.f_backward()?;
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
    for _ in 0..args.warmup {
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
    if args.json {
        println!(
            "{{\"ms_per_iter\": {ms:.3}, \"batch\": {b}, \"latent\": [{h}, {w}], \"context\": {}, \"steps\": {}, \"device\": \"{}\", \"threads\": {threads}}}",
            args.context, args.steps, args.device
        );
    } else {
        println!(
            "{ms:.1} ms per forward+backward, {:.1} samples/s (batch {b}, latent {h}x{w}, context {}, {} timed after {} warm-up, {}, {threads} threads)",
            1e3 * b as f64 / ms,
            args.context,
            args.steps,
            args.warmup,
            args.device
        );
    }
    Ok(())
}
