//! `flowscale bench fwd-bwd`: wall time of the MMDiT's forward + backward on random inputs, the
//! number `scripts/bench/vs_diffusers.py fwd-bwd` compares with diffusers' `SD3Transformer2DModel`
//! in PyTorch eager. The architecture comes from a diffusers `config.json`, so both sides are
//! built from the same file. `--precision bf16` runs the forward under bf16 autocast (fp32
//! weights), `--optimizer` adds the fused AdamW update: the backbone's whole training step, with
//! samples/s, the step's FLOPs (the model's analytic count, 3 x forward) and, on a GPU the peak
//! table knows, MFU.

use std::cell::RefCell;
use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use flowscale_models::{
    forward_cost, match_mmdit_params, Backbone, BackboneKind, Checkpointing, MmditConfig,
};
use flowscale_train::optim::{AdamW, AdamWConfig};
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
    /// `fp32`, or `bf16`: the forward under bf16 autocast, weights and optimiser in fp32.
    #[arg(long, default_value = "fp32")]
    precision: String,
    /// Also take a fused AdamW step each iteration (the backbone's whole training step).
    #[arg(long)]
    optimizer: bool,
    /// Activation checkpointing: `none`, `blocks` or `every-N`.
    #[arg(long, default_value = "none")]
    checkpointing: String,
    /// Print one JSON line instead of text.
    #[arg(long)]
    json: bool,
    /// Capture the step as a CUDA graph after the warm-up and time its replays (CUDA only;
    /// fixed shapes: the inputs are the same static tensors every iteration).
    #[arg(long)]
    cuda_graph: bool,
    /// Time another backbone of the config's depth instead (mmdit, mmdit-3, dit, crossdit,
    /// uvit), sized by the matched-params width rule (docs/backbones.md); MMDiT-3 splits the
    /// context in half.
    #[arg(long)]
    backbone: Option<String>,
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
    let mut config = MmditConfig::from_json(&text)
        .with_context(|| format!("parsing {}", args.config_json.display()))?;
    if let Some(name) = &args.backbone {
        anyhow::ensure!(
            config.backbone.is_mmdit(),
            "--backbone sizes a backbone to match the MMDiT of --config-json, but {} is a {} \
             config",
            args.config_json.display(),
            config.backbone
        );
        let kind = BackboneKind::parse(name)?;
        config = match_mmdit_params(&config.as_backbone(kind, (args.context / 2).max(1)))?;
    }
    let device = parse_device(&args.device)?;
    anyhow::ensure!(
        !args.cuda_graph || device.is_cuda(),
        "--cuda-graph needs --device cuda (got {})",
        args.device
    );
    let plan = Checkpointing::parse(&args.checkpointing)?;
    tch::manual_seed(0);
    let vs = nn::VarStore::new(device);
    let model = Backbone::new(&vs.root(), &config)?;
    let (h, w) = (args.latent[0], args.latent[1]);
    let b = args.batch;
    let opts = (Kind::Float, device);
    let x = Tensor::f_randn([b, config.in_channels, h, w], opts)?;
    let t = Tensor::f_rand([b], opts)?.f_mul_scalar(1000.0)?;
    let ctx = Tensor::f_randn([b, args.context, config.joint_attention_dim], opts)?;
    let pooled = Tensor::f_randn([b, config.pooled_projection_dim], opts)?;
    let params: Vec<Tensor> = vs.trainable_variables();
    let autocast = match args.precision.as_str() {
        "fp32" => None,
        "bf16" => Some(Kind::BFloat16),
        other => anyhow::bail!("--precision `{other}`: expected fp32 or bf16"),
    };
    let optimizer = if args.optimizer {
        let mut named: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
        named.sort_by(|a, b| a.0.cmp(&b.0));
        let config = AdamWConfig {
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: 0.0,
        };
        Some(RefCell::new(AdamW::new(&named, config)?))
    } else {
        None
    };
    let iteration = || -> anyhow::Result<Tensor> {
        let forward = || model.forward_planned(&x, &t, &ctx, &pooled, plan);
        let (out, tape) = match autocast {
            Some(kind) => flowscale_torch_ext::autocast::with_autocast(device, kind, forward)??,
            None => forward()?,
        };
        let loss = out
            .f_to_kind(Kind::Float)?
            .f_square()?
            .f_mean(Kind::Float)?;
        loss.f_backward()?;
        if let Some(tape) = tape {
            tape.backward()?;
        }
        if let Some(opt) = &optimizer {
            opt.borrow_mut().step(1e-4)?;
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
    let graph = match (args.cuda_graph, device) {
        (false, _) => None,
        (true, Device::Cuda(i)) => {
            // The captured step's loss lives in the graph's memory; replays overwrite it.
            let captured_loss = RefCell::new(None);
            let graph = flowscale_torch_ext::cuda_graph::CudaGraph::capture(i, 1, || {
                iteration().map(|loss| *captured_loss.borrow_mut() = Some(loss))
            })?;
            Some((graph, captured_loss.into_inner()))
        }
        (true, _) => unreachable!("checked before the model is built"),
    };
    let start = std::time::Instant::now();
    let mut last = None;
    for _ in 0..args.steps {
        match &graph {
            Some((g, _)) => g.replay()?,
            None => last = Some(iteration()?),
        }
    }
    // A host read waits for queued device work.
    if let Some(l) = last
        .as_ref()
        .or(graph.as_ref().and_then(|(_, l)| l.as_ref()))
    {
        l.f_double_value(&[])?;
    }
    let seconds = start.elapsed().as_secs_f64() / args.steps as f64;
    let ms = 1e3 * seconds;
    let samples_per_s = b as f64 / seconds;
    let flops = forward_cost(&config, h, w, args.context)?.train_step_flops(b);
    let mfu = flowscale_train::peak_flops::device_peak_flops(None, device)
        .map(|peak| flowscale_train::peak_flops::mfu(flops / seconds, 1, peak));
    let peak = process_peak_memory(device)?;
    let threads = tch::get_num_threads();
    let mib = |bytes: u64| bytes as f64 / (1u64 << 20) as f64;
    let plan = plan.name();
    let what = match (args.optimizer, args.cuda_graph) {
        (true, false) => "forward+backward+AdamW",
        (false, false) => "forward+backward",
        (true, true) => "forward+backward+AdamW (CUDA graph replay)",
        (false, true) => "forward+backward (CUDA graph replay)",
    };
    if args.json {
        let row = serde_json::json!({
            "ms_per_iter": (ms * 1e3).round() / 1e3,
            "samples_per_s": samples_per_s,
            "train_flops_per_iter": flops,
            "mfu": mfu,
            "batch": b,
            "latent": [h, w],
            "context": args.context,
            "steps": args.steps,
            "device": args.device,
            "precision": args.precision,
            "optimizer": args.optimizer,
            "threads": threads,
            "checkpointing": plan,
            "cuda_graph": args.cuda_graph,
            "step_peak_mib": (mib(step_memory) * 10.0).round() / 10.0,
            "process_peak_mib": (mib(peak) * 10.0).round() / 10.0,
            "backbone": config.backbone.name(),
            "hidden": config.hidden(),
        });
        println!("{row}");
    } else {
        let mfu = mfu.map_or(String::new(), |m| format!(", MFU {:.1}%", 100.0 * m));
        println!(
            "{}: {ms:.1} ms per {what}, {samples_per_s:.1} samples/s{mfu} (hidden {}, batch {b}, latent {h}x{w}, context {}, {}, {} timed after {} warm-up, {}, {threads} threads); checkpointing {plan}: first step peaks {:.1} MiB above the model; process peak {:.1} MiB",
            config.backbone,
            config.hidden(),
            args.context,
            args.precision,
            args.steps,
            args.warmup.max(1),
            args.device,
            mib(step_memory),
            mib(peak),
        );
    }
    Ok(())
}

/// The peak memory of the whole run so far: the caching allocator's peak allocated bytes on
/// CUDA (weights, optimiser state and the step's activations), the resident peak on the CPU.
fn process_peak_memory(device: Device) -> anyhow::Result<u64> {
    Ok(match device {
        Device::Cuda(i) => flowscale_torch_ext::cuda::memory_stats(i)?.peak_allocated,
        _ => flowscale_train::host_memory::resident_and_peak()?.1,
    })
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
