//! `flowscale sample`: RF Euler sampling with the SD3 scheduler's sigmas and CFG from an MMDiT
//! checkpoint of either layout.

use anyhow::{bail, Context};
use clap::Args;
use flowscale_formulations::{guided, sample, sd3_sigmas, Formulation, SamplerMethod};
use flowscale_models::checkpoint::{load_mmdit_with_head_dim, safetensors_io};
use std::collections::BTreeMap;
use std::path::PathBuf;
use tch::{Device, Kind, Tensor};

#[derive(Debug, Args)]
pub struct SampleArgs {
    /// A diffusers folder or an SD3 single .safetensors file.
    #[arg(long)]
    checkpoint: PathBuf,
    /// safetensors with `context` [B, L, D], `pooled` [B, P] and optional `context_uncond`,
    /// `pooled_uncond` (zeros otherwise).
    #[arg(long)]
    cond: PathBuf,
    /// safetensors with the initial noise `noise` [B, C, H, W].
    #[arg(long, conflicts_with = "seed")]
    noise: Option<PathBuf>,
    /// Seed for the initial noise (with --latent-size).
    #[arg(long)]
    seed: Option<i64>,
    /// Latent height and width for seeded noise.
    #[arg(long, num_args = 2, default_values_t = [32, 32])]
    latent_size: Vec<i64>,
    #[arg(long, default_value_t = 28)]
    steps: usize,
    /// Classifier-free guidance scale (1 = no guidance).
    #[arg(long, default_value_t = 5.0)]
    cfg: f64,
    /// Resolution shift alpha of the SD3 scheduler.
    #[arg(long, default_value_t = 3.0)]
    shift: f64,
    /// Head width of an SD3 file without QK-norm (the layout does not record it).
    #[arg(long)]
    head_dim: Option<i64>,
    /// Output safetensors; the samples are stored as `latents`.
    #[arg(long)]
    out: PathBuf,
}

fn read(path: &std::path::Path) -> anyhow::Result<BTreeMap<String, Tensor>> {
    // The reader's errors name the file.
    Ok(safetensors_io::read(path, Kind::Float, Device::Cpu)?
        .tensors
        .into_iter()
        .collect())
}

/// The model as the sampler's `Fn(z, t) -> v`; a forward error stops sampling.
fn model_fn<'a>(
    model: &'a flowscale_models::Backbone,
    ctx: &'a Tensor,
    pool: &'a Tensor,
) -> impl Fn(&Tensor, &Tensor) -> anyhow::Result<Tensor> + 'a {
    move |z, t| {
        model
            .forward(z, t, ctx, pool)
            .map_err(|e| anyhow::anyhow!("model forward failed: {e}"))
    }
}

pub fn run(args: &SampleArgs) -> anyhow::Result<()> {
    let device = Device::cuda_if_available();
    let loaded = load_mmdit_with_head_dim(&args.checkpoint, device, args.head_dim)?;
    let model = &loaded.model;
    let cond = read(&args.cond)?;
    let get = |k: &str| -> anyhow::Result<Tensor> {
        cond.get(k)
            .map(|t| t.to_device(device))
            .with_context(|| format!("{} has no `{k}` tensor", args.cond.display()))
    };
    let context = get("context")?;
    let pooled = get("pooled")?;
    let context_u = get("context_uncond").unwrap_or_else(|_| context.zeros_like());
    let pooled_u = get("pooled_uncond").unwrap_or_else(|_| pooled.zeros_like());
    let batch = context.size()[0];
    let noise = match (&args.noise, args.seed) {
        (Some(path), _) => {
            let n = read(path)?;
            match n.get("noise") {
                Some(t) => t.to_device(device),
                None => bail!("{} has no `noise` tensor", path.display()),
            }
        }
        (None, Some(seed)) => {
            let mc = model.config();
            // The position table covers pos_embed_max_size patches a side; checked before the
            // noise is drawn (a huge --latent-size used to abort inside libtorch).
            let max = mc
                .pos_embed_max_size
                .unwrap_or(mc.sample_size / mc.patch_size.max(1))
                * mc.patch_size;
            if args.latent_size.iter().any(|&s| s < 1 || s > max) {
                bail!(
                    "--latent-size {:?}: this model takes latents of 1 to {max} a side \
                     (pos_embed_max_size {:?} x patch_size {})",
                    args.latent_size,
                    mc.pos_embed_max_size,
                    mc.patch_size
                );
            }
            let c = mc.in_channels;
            flowscale_formulations::with_torch_seed(seed, || {
                Tensor::randn(
                    [batch, c, args.latent_size[0], args.latent_size[1]],
                    (Kind::Float, Device::Cpu),
                )
            })
            .to_device(device)
        }
        (None, None) => bail!("give --noise FILE or --seed S"),
    };
    if noise.size()[0] != batch {
        bail!(
            "noise batch {} != conditioning batch {batch}",
            noise.size()[0]
        );
    }
    let schedule = sd3_sigmas(args.steps, args.shift)?;
    let latents = tch::no_grad(|| {
        let cond_model = model_fn(model, &context, &pooled);
        if args.cfg == 1.0 {
            sample(
                Formulation::Rf,
                &cond_model,
                &noise,
                &schedule,
                SamplerMethod::Euler,
            )
        } else {
            let g = guided(model_fn(model, &context_u, &pooled_u), cond_model, args.cfg);
            sample(Formulation::Rf, &g, &noise, &schedule, SamplerMethod::Euler)
        }
    })?;
    safetensors_io::write(&args.out, &[("latents".to_owned(), latents)], None)?;
    println!(
        "wrote {} ({} samples, {} steps, cfg {}, shift {})",
        args.out.display(),
        batch,
        args.steps,
        args.cfg,
        args.shift
    );
    Ok(())
}
