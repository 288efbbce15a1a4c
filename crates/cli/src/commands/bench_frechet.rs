//! `flowscale bench frechet`: the Frechet part of one eval row (statistics of the samples'
//! features and the distance to the reference) on synthetic 2048-d features, computed as before
//! the prepared reference (statistics, then two `d x d` eigendecompositions per row) and with it
//! (the reference root once; per row the low-rank form for n < d, or one eigendecomposition).
//! With `--weights`, it also times Inception features per image, for the FID share of an eval.

use super::bench_timing::median_seconds;
use clap::Args;
use flowscale_eval::feature_net::FeatureNet;
use flowscale_eval::inception::FidInception;
use flowscale_eval::{frechet_distance, FeatureStats, PreparedReference, TraceForm};
use std::path::PathBuf;
use std::time::Instant;
use tch::{Device, Kind, Tensor};

#[derive(Debug, Args)]
pub struct FrechetArgs {
    /// Generated samples per row.
    #[arg(long, default_value_t = 1000)]
    n: i64,
    /// Feature dimension.
    #[arg(long, default_value_t = 2048)]
    dim: i64,
    /// Reference feature vectors (their covariance is full rank when this exceeds --dim).
    #[arg(long, default_value_t = 10000)]
    reference_n: i64,
    /// Sampler settings per eval (rows sharing one reference).
    #[arg(long, default_value_t = 6)]
    settings: i64,
    /// Timed repetitions; the median is reported.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// FID Inception TorchScript file: also time its features per image (CPU).
    #[arg(long)]
    weights: Option<PathBuf>,
    /// Side of the random images given to Inception (it resizes them to 299).
    #[arg(long, default_value_t = 32)]
    image_size: i64,
    /// Images in the Inception timing.
    #[arg(long, default_value_t = 32)]
    images: i64,
}

/// Correlated, non-negative features like Inception's pool3 (ReLU of a random mixture).
fn features(n: i64, d: i64, scale: f64) -> anyhow::Result<Tensor> {
    let opts = (Kind::Float, Device::Cpu);
    let mix = Tensor::f_randn([d, d], opts)?.f_div_scalar((d as f64).sqrt())?;
    Ok(Tensor::f_randn([n, d], opts)?
        .f_matmul(&mix)?
        .f_mul_scalar(scale)?
        .f_add_scalar(0.3)?
        .f_clamp_min(0.0)?)
}

pub fn run(args: &FrechetArgs) -> anyhow::Result<()> {
    tch::manual_seed(0);
    let reference = FeatureStats::from_features(&features(args.reference_n, args.dim, 1.0)?)?;
    let generated = features(args.n, args.dim, 1.1)?;
    println!(
        "Frechet part of one row: n = {} samples x {} features against a reference of {} \
         ({} torch threads)",
        args.n,
        args.dim,
        args.reference_n,
        tch::get_num_threads()
    );

    let before = median_seconds(0, args.rounds, || {
        let s = FeatureStats::from_features(&generated)?;
        std::hint::black_box(frechet_distance(&s, &reference)?);
        Ok(())
    })?;
    let start = Instant::now();
    let prepared = PreparedReference::new(&reference)?;
    let prepare = start.elapsed().as_secs_f64();
    let after = median_seconds(0, args.rounds, || {
        std::hint::black_box(prepared.distance_to_features(&generated)?);
        Ok(())
    })?;
    let full = median_seconds(0, args.rounds, || {
        std::hint::black_box(prepared.distance_to_features_in(&generated, TraceForm::Full)?);
        Ok(())
    })?;
    let v_before = frechet_distance(&FeatureStats::from_features(&generated)?, &reference)?;
    let v_after = prepared.distance_to_features(&generated)?;
    let v_full = prepared.distance_to_features_in(&generated, TraceForm::Full)?;
    let form = TraceForm::for_shape(args.n, args.dim);
    println!("before (stats + two eigh per row): {before:.3} s, FID {v_before:.9}");
    println!("prepare reference (once): {prepare:.3} s");
    println!("after, {form:?} form per row: {after:.3} s, FID {v_after:.9}");
    println!("after, Full form per row: {full:.3} s, FID {v_full:.9}");
    let rows = args.settings as f64;
    println!(
        "{} rows: before {:.2} s, after {:.2} s (prepare once + rows)",
        args.settings,
        rows * before,
        prepare + rows * after
    );

    if let Some(weights) = &args.weights {
        let net = FidInception::load(weights, Device::Cpu)?;
        let s = args.image_size;
        let images = Tensor::f_randint(256, [args.images, 3, s, s], (Kind::Uint8, Device::Cpu))?;
        let per_image = median_seconds(1, args.rounds, || {
            let _ = std::hint::black_box(net.features_u8(&images, 50)?);
            Ok(())
        })? / args.images as f64;
        let inception = rows * args.n as f64 * per_image;
        let frechet = prepare + rows * after;
        println!(
            "Inception features: {per_image:.4} s per image, {inception:.1} s for {} rows of {}",
            args.settings, args.n
        );
        println!(
            "Frechet share of (Frechet + Inception), an upper bound on its share of an eval \
             (sampling excluded): after {:.2} %, before {:.2} %",
            100.0 * frechet / (frechet + inception),
            100.0 * rows * before / (rows * before + inception)
        );
    }
    Ok(())
}
