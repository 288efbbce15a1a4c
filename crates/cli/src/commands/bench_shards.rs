//! `flowscale bench shards`: latent-shard loading throughput (samples/s) of the streaming loader
//! over one epoch of a shard directory: decode, shuffle buffer, collation into f32 tensors.
//! `--make N` first writes a benchmark set of N samples. `scripts/bench/shards_vs_webdataset.py`
//! reads the same shards with Python webdataset + torch DataLoader.

use anyhow::Context;
use clap::Args;
use flowscale_data::shards::{
    AutoencoderInfo, LatentDtype, ShardEntry, ShardManifest, ShardSplit, Splits,
};
use flowscale_data::{
    LatentSample, LatentShardLoader, LatentShardWriter, LoaderConfig, ShardSource,
};
use std::path::{Path, PathBuf};
use std::time::Instant;
use tch::{Device, Kind, Tensor};

#[derive(Debug, Args)]
pub struct ShardsArgs {
    /// The shard directory (with manifest.json).
    #[arg(long)]
    dir: PathBuf,
    #[arg(long, default_value_t = 64)]
    batch: usize,
    /// Decode threads.
    #[arg(long, default_value_t = 2)]
    workers: usize,
    #[arg(long, default_value_t = 1000)]
    shuffle_buffer: usize,
    #[arg(long, default_value_t = 4)]
    prefetch: usize,
    /// Timed passes over an epoch; the median is reported.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// First write a benchmark set of this many samples into --dir (16x32x32 float16 mean and
    /// std, a flipped pair and a label each, 512 samples per shard), then time it.
    #[arg(long)]
    make: Option<usize>,
    /// Print one JSON line instead of text.
    #[arg(long)]
    json: bool,
}

const SHAPE: [i64; 3] = [16, 32, 32];
const PER_SHARD: usize = 512;

/// A benchmark shard set: random latents of SD3-VAE shape at 256 px, labels of 1000 classes.
fn make_set(dir: &Path, samples: usize) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| dir.display().to_string())?;
    let mut entries = Vec::new();
    let half = |t: Tensor| t.to_kind(Kind::Half);
    flowscale_formulations::with_torch_seed(0, || -> anyhow::Result<()> {
        for (i, start) in (0..samples).step_by(PER_SHARD).enumerate() {
            let file = format!("train-{i:06}.tar");
            let mut w = LatentShardWriter::create(&dir.join(&file))?;
            let n = PER_SHARD.min(samples - start);
            for k in start..start + n {
                let r = || Tensor::randn(SHAPE, (Kind::Float, Device::Cpu));
                w.append(&LatentSample {
                    key: format!("{k:08}"),
                    mean: half(r()),
                    std: half(r().abs() * 0.1),
                    flip: Some((half(r()), half(r().abs() * 0.1))),
                    label: Some((k % 1000) as i64),
                    captions: Vec::new(),
                })?;
            }
            let bytes = w.finish()?;
            entries.push(ShardEntry {
                file,
                samples: n as u64,
                bytes,
                bucket: None,
            });
        }
        Ok(())
    })?;
    ShardManifest {
        format_version: 1,
        autoencoder: AutoencoderInfo {
            kind: "autoencoder-kl".into(),
            name: "benchmark (random latents)".into(),
            weights_sha256: None,
            latent_channels: SHAPE[0],
            downsample_factor: 8,
            scaling_factor: 1.5305,
            shift_factor: 0.0609,
        },
        resolution: 256,
        latent_shape: SHAPE,
        latent_dtype: LatentDtype::Float16,
        has_flip: true,
        latent_stats: None,
        has_labels: true,
        class_names: (0..1000).map(|c| format!("class {c}")).collect(),
        has_captions: false,
        text: None,
        caption_fields: Vec::new(),
        buckets: Vec::new(),
        splits: Splits {
            train: entries,
            val: vec![],
        },
    }
    .save(dir)?;
    Ok(())
}

pub fn run(a: &ShardsArgs) -> anyhow::Result<()> {
    if let Some(n) = a.make {
        make_set(&a.dir, n)?;
    }
    let manifest = ShardManifest::load(&a.dir)?;
    let cfg = LoaderConfig {
        shuffle_buffer: a.shuffle_buffer,
        workers: a.workers,
        prefetch: a.prefetch,
        latent_shape: Some(manifest.latent_shape),
        ..LoaderConfig::new(
            ShardSource::from_manifest(&a.dir, &manifest, ShardSplit::Train),
            a.batch,
            0,
        )
    };
    let mut rates = Vec::new();
    let mut batches = 0;
    for round in 0..a.rounds.max(1) {
        let start = Instant::now();
        let mut loader = LatentShardLoader::new(LoaderConfig {
            seed: round as u64,
            ..cfg.clone()
        })?;
        batches = loader.batches_in_epoch(0);
        for _ in 0..batches {
            let b = loader.next_batch()?;
            anyhow::ensure!(b.mean.size()[0] == a.batch as i64);
        }
        rates.push((batches as usize * a.batch) as f64 / start.elapsed().as_secs_f64());
    }
    rates.sort_by(f64::total_cmp);
    let median = rates[rates.len() / 2];
    if a.json {
        println!(
            "{}",
            serde_json::json!({"loader": "flowscale", "batch": a.batch, "workers": a.workers,
                "samples_per_s": median, "batches": batches, "rounds": rates})
        );
    } else {
        println!(
            "flowscale loader: {median:.0} samples/s (median of {} epochs of {batches} batches of \
             {}, {} workers, shuffle buffer {})",
            rates.len(),
            a.batch,
            a.workers,
            a.shuffle_buffer
        );
    }
    Ok(())
}
