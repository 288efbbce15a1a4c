//! `flowscale precompute CONFIG`: encode a dataset into latent shards (see
//! `flowscale_data::precompute`), with progress bars and a final report.

use clap::Args;
use flowscale_data::precompute::encoders::load_autoencoder;
use flowscale_data::precompute::{
    precompute, PrecomputeConfig, Progress, ShardRecord, ShardShare, Silent,
};
use flowscale_data::{read_latent_shard, LatentSample, ShardManifest};
use flowscale_train::image_grid::save_grid;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Instant;
use tch::{Device, Kind, Tensor};

#[derive(Debug, Args)]
pub struct PrecomputeArgs {
    /// The precompute config (TOML; see docs/data.md).
    config: PathBuf,
    /// Override a key, e.g. `--set output.samples_per_shard=500` (repeatable; later wins).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    overrides: Vec<String>,
    /// This process's share of the shards: every `--num-shards`-th from this index.
    #[arg(long, default_value_t = 0)]
    shard_index: usize,
    #[arg(long, default_value_t = 1)]
    num_shards: usize,
    /// Overrides `output.device` ("cpu", "cuda", "cuda:N", "auto"); the same as
    /// `--set output.device=NAME` given last.
    #[arg(long)]
    device: Option<String>,
    /// After the run, decode the first N train samples (and their mirror images) back to pixels
    /// with the autoencoder and write them as a grid PNG: the visual check of a new cache.
    #[arg(long, value_name = "N")]
    preview: Option<usize>,
    /// No progress output (bars on a terminal, one line per shard otherwise).
    #[arg(long)]
    quiet: bool,
}

/// Two bars: shards (with ETA) and source images (with images/s).
struct Bars {
    shards: ProgressBar,
    images: ProgressBar,
}

impl Progress for Bars {
    fn begin(&self, units: usize, done: usize, listed: Option<u64>) {
        self.shards.set_length(units as u64);
        self.shards.set_position(done as u64);
        if let Some(n) = listed {
            self.images.set_length(n);
        }
    }
    fn samples(&self, n: usize) {
        self.images.inc(n as u64);
    }
    fn unit_done(&self, record: &ShardRecord) {
        self.shards.inc(1);
        self.shards.set_message(format!(
            "{} ({} samples, {} skipped)",
            record.file,
            record.samples,
            record.skipped.len()
        ));
    }
}

/// One line per finished shard, for logs (no terminal).
struct Lines {
    start: Instant,
    state: Mutex<(usize, usize, u64)>,
}

impl Progress for Lines {
    fn begin(&self, units: usize, done: usize, _listed: Option<u64>) {
        *self.state.lock().expect("progress") = (units, done, 0);
        eprintln!("precompute: {units} shards, {done} already done");
    }
    fn samples(&self, n: usize) {
        self.state.lock().expect("progress").2 += n as u64;
    }
    fn unit_done(&self, record: &ShardRecord) {
        let mut s = self.state.lock().expect("progress");
        s.1 += 1;
        let secs = self.start.elapsed().as_secs_f64();
        eprintln!(
            "[{}/{}] {}: {} samples, {} skipped; {:.1} images/s",
            s.1,
            s.0,
            record.file,
            record.samples,
            record.skipped.len(),
            s.2 as f64 / secs.max(1e-9)
        );
    }
}

impl Bars {
    fn new() -> anyhow::Result<Self> {
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
        let shards = multi.add(ProgressBar::new(0));
        shards.set_style(
            ProgressStyle::with_template(
                "shards {elapsed_precise} [{bar:30}] {pos}/{len} eta {eta} {msg}",
            )?
            .progress_chars("=> "),
        );
        let images = multi.add(ProgressBar::new(0));
        images.set_style(ProgressStyle::with_template(
            "images {pos}/{len} {per_sec} eta {eta}",
        )?);
        Ok(Self { shards, images })
    }
}

pub fn run(args: &PrecomputeArgs) -> anyhow::Result<()> {
    let mut overrides = args.overrides.clone();
    if let Some(device) = &args.device {
        overrides.push(format!("output.device={device:?}"));
    }
    let cfg = PrecomputeConfig::load_with(&args.config, &overrides)?;
    let share = ShardShare {
        index: args.shard_index,
        count: args.num_shards,
    };
    let report = if args.quiet {
        precompute(&cfg, share, &Silent)?
    } else if std::io::stderr().is_terminal() {
        let bars = Bars::new()?;
        let report = precompute(&cfg, share, &bars);
        bars.shards.finish();
        bars.images.finish();
        report?
    } else {
        let lines = Lines {
            start: Instant::now(),
            state: Mutex::new((0, 0, 0)),
        };
        precompute(&cfg, share, &lines)?
    };
    println!("{report}");
    if let Some(n) = args.preview {
        let path = preview(&cfg, n)?;
        println!("preview: {}", path.display());
    }
    Ok(())
}

/// Decodes the first `n` samples of the first train shard (rows: image, mirror image) into
/// `<dir>/preview.png`.
fn preview(cfg: &PrecomputeConfig, n: usize) -> anyhow::Result<PathBuf> {
    let dir = &cfg.output.dir;
    let manifest = ShardManifest::load(dir)?;
    let first = manifest
        .splits
        .train
        .first()
        .ok_or_else(|| anyhow::anyhow!("{}: no train shard", dir.display()))?;
    let samples: Vec<LatentSample> = read_latent_shard(&dir.join(&first.file))?
        .into_iter()
        .take(n.max(1))
        .collect();
    let (_, autoencoder) = load_autoencoder(cfg, Device::Cpu)?;
    let stack = |f: &dyn Fn(&LatentSample) -> Option<Tensor>| -> Option<Tensor> {
        let ts: Option<Vec<Tensor>> = samples.iter().map(f).collect();
        ts.map(|t| Tensor::stack(&t, 0).to_kind(Kind::Float))
    };
    let mut rows = vec![stack(&|s| Some(s.mean.shallow_clone())).expect("means")];
    if let Some(flip) = stack(&|s| s.flip.as_ref().map(|f| f.0.shallow_clone())) {
        rows.push(flip);
    }
    let latents = Tensor::cat(&rows, 0);
    let pixels = autoencoder.decode_raw(&latents)?.clamp(-1.0, 1.0);
    let path = dir.join("preview.png");
    save_grid(&pixels, samples.len() as i64, &path)?;
    Ok(path)
}
