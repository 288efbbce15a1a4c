//! `flowscale bench decode`: the precompute's CPU side (decode, short-side resize, centre crop,
//! map to [-1, 1]) in images per second on one core and on all of them. The files are read into
//! memory first, so disk speed is not measured. `scripts/bench/decode_vs_pil.py` runs it beside
//! PIL and torchvision on the same images.

use super::bench_timing::median_seconds;
use anyhow::Context;
use clap::Args;
use flowscale_data::images::{preprocess_bytes, Filter, PreprocessConfig};
use flowscale_data::sources::{read_image_folder, FolderOptions};
use rayon::prelude::*;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct DecodeArgs {
    /// Folder of JPEG/PNG/WebP images (searched recursively).
    #[arg(long)]
    images: PathBuf,
    /// Output side R.
    #[arg(long, default_value_t = 256)]
    resolution: usize,
    /// `bicubic` or `lanczos`.
    #[arg(long, default_value = "bicubic")]
    filter: String,
    /// Threads of the parallel measurement (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Timed passes over all images; the median is reported.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Print one JSON line instead of text.
    #[arg(long)]
    json: bool,
}

pub fn run(args: &DecodeArgs) -> anyhow::Result<()> {
    let (items, _) = read_image_folder(&args.images, FolderOptions::default())?;
    // Captions do not matter here: an image whose sidecar is unreadable is still decoded.
    let samples: Vec<_> = items.into_iter().filter_map(Result::ok).collect();
    anyhow::ensure!(!samples.is_empty(), "{}: no images", args.images.display());
    let files: Vec<(String, Vec<u8>)> = samples
        .iter()
        .map(|s| {
            Ok((
                s.key.clone(),
                s.image.bytes().map_err(anyhow::Error::msg)?.into_owned(),
            ))
        })
        .collect::<anyhow::Result<_>>()?;
    let config = PreprocessConfig {
        filter: Filter::parse(&args.filter).map_err(anyhow::Error::msg)?,
        ..PreprocessConfig::new(args.resolution)
    };
    let one = |(key, bytes): &(String, Vec<u8>)| -> anyhow::Result<()> {
        let out = preprocess_bytes(bytes, &config)
            .map_err(anyhow::Error::msg)
            .with_context(|| key.clone())?;
        std::hint::black_box(out);
        Ok(())
    };
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let all = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()?;
    // Nothing inside `preprocess_bytes` uses rayon, so a plain loop is one core.
    let serial = median_seconds(1, args.rounds, || files.iter().try_for_each(one))?;
    let parallel = median_seconds(1, args.rounds, || {
        all.install(|| files.par_iter().try_for_each(one))
    })?;
    let n = files.len() as f64;
    let (per_core, total) = (n / serial, n / parallel);
    if args.json {
        println!(
            "{{\"images\": {}, \"resolution\": {}, \"filter\": \"{}\", \"per_core_images_per_s\": {per_core:.2}, \"threads\": {threads}, \"all_threads_images_per_s\": {total:.2}}}",
            files.len(),
            args.resolution,
            args.filter
        );
    } else {
        println!(
            "decode+resize+crop to {0}x{0} ({1}, {2} images, median of {3} rounds): {per_core:.1} images/s on one core, {total:.1} images/s on {threads} threads",
            args.resolution,
            args.filter,
            files.len(),
            args.rounds.max(1)
        );
    }
    Ok(())
}
