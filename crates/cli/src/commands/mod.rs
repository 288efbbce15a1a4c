//! One module per subcommand; this file declares the command tree.

mod bench;
mod bench_decode;
mod bench_frechet;
mod bench_fwd_bwd;
mod bench_memory;
mod bench_minilm;
mod bench_shards;
mod bench_timing;
mod bench_train;
mod config;
mod ema_reconstruct;
mod embed_text;
mod eval;
mod export;
mod fid;
mod formulations;
mod generate;
mod info;
mod launch;
mod precompute;
mod rank;
mod report;
mod sample;
mod sweep;
mod train;

use clap::{Parser, Subcommand};

/// flowscale: rectified-flow and diffusion scaling studies on libtorch.
#[derive(Debug, Parser)]
#[command(name = "flowscale", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Versions, the libtorch library in use, CUDA devices and threads.
    Info(info::InfoArgs),
    /// Print the resolved run config (defaults filled in, --set applied), or the error.
    Config(config::ConfigArgs),
    /// Train a model from a run config (resume with --resume).
    Train(train::TrainArgs),
    /// Start N data-parallel ranks of a flowscale command with torchrun's environment.
    Launch(launch::LaunchArgs),
    /// Expand a sweep file into runs; list them, run them here, or write a Slurm array.
    Sweep(sweep::SweepArgs),
    /// Encode a dataset into latent shards (resumable; --shard-index/--num-shards split it).
    Precompute(precompute::PrecomputeArgs),
    /// Encode prompts (one per line) with a text encoder into `context` and `pooled` for sample.
    EmbedText(embed_text::EmbedTextArgs),
    /// Sample latents from an MMDiT checkpoint (RF Euler, SD3 scheduler sigmas, CFG).
    Sample(sample::SampleArgs),
    /// Images from a trained run (prompts or classes) or an exported backbone (prompts) to PNGs.
    // Boxed: its options make it by far the largest variant.
    Generate(Box<generate::GenerateArgs>),
    /// Evaluate a run: validation loss, and per sampler setting FID and class accuracy.
    Eval(eval::EvalArgs),
    /// FID between two image folders, .npz statistics or .npy features (like python -m pytorch_fid).
    Fid(fid::FidArgs),
    /// Rank runs: Pareto fronts per setting (e.g. CLIP up, FID down), mean rank over settings.
    Rank(rank::RankArgs),
    /// Plot the validation curves of runs (PNG and SVG).
    Plot(report::PlotArgs),
    /// Write a sweep's report: table, plots, compute fit (Markdown).
    Report(report::ReportArgs),
    /// EDM2's post-hoc EMA: reconstruct EMAs of other lengths from a run's snapshots, as
    /// checkpoints (--weights phema).
    EmaReconstruct(ema_reconstruct::EmaReconstructArgs),
    /// Export a run's weights in diffusers, SD3 or plain safetensors layout, with a model card.
    Export(export::ExportArgs),
    /// List the 61 noise formulations and tabulate their schedules and weights.
    Formulations(formulations::FormulationsArgs),
    /// Benchmarks: MMDiT parameter counts and FLOPs, forward+backward and training-step timings.
    Bench(bench::BenchArgs),
}

impl Cli {
    pub fn run(self) -> anyhow::Result<()> {
        match self.command {
            Command::Info(args) => info::run(&args),
            Command::Config(args) => config::run(&args),
            Command::Train(args) => train::run(&args),
            Command::Launch(args) => launch::run(&args),
            Command::Sweep(args) => sweep::run(&args),
            Command::Precompute(args) => precompute::run(&args),
            Command::EmaReconstruct(args) => ema_reconstruct::run(&args),
            Command::EmbedText(args) => embed_text::run(&args),
            Command::Sample(args) => sample::run(&args),
            Command::Generate(args) => generate::run(&args),
            Command::Eval(args) => eval::run(&args),
            Command::Fid(args) => fid::run(&args),
            Command::Rank(args) => rank::run(&args),
            Command::Plot(args) => report::plot(&args),
            Command::Report(args) => report::report(&args),
            Command::Export(args) => export::run(&args),
            Command::Formulations(args) => formulations::run(&args),
            Command::Bench(args) => bench::run(&args),
        }
    }
}
