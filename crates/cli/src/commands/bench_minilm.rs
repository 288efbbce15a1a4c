//! `flowscale bench minilm`: sentence-embedding throughput of all-MiniLM-L6-v2 (tokenise, group by
//! length, BERT forward, mean pooling, normalise) on a prompt file, in prompts per second.
//! `scripts/bench/minilm_vs_torch.py` runs it beside sentence-transformers (PyTorch eager).

use super::bench_fwd_bwd::parse_device;
use super::bench_timing::median_seconds;
use super::embed_text::read_prompts;
use clap::Args;
use flowscale_encoders::text::MiniLm;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct MiniLmArgs {
    /// The sentence-transformers folder.
    #[arg(long, default_value = ".assets/all-minilm-l6-v2")]
    model: PathBuf,
    /// Prompt file (one per line); repeated `--repeat` times.
    #[arg(
        long,
        default_value = "crates/encoders/tests/fixtures/text/prompts.txt"
    )]
    prompts: PathBuf,
    #[arg(long, default_value_t = 16)]
    repeat: usize,
    /// Prompts per forward pass (padded to the longest of the batch).
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    /// Untimed passes over all prompts before timing.
    #[arg(long, default_value_t = 1)]
    warmup: usize,
    /// Timed passes; the median is reported.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// `cpu`, `cuda` or `cuda:N`.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Print one JSON line instead of text.
    #[arg(long)]
    json: bool,
}

pub fn run(args: &MiniLmArgs) -> anyhow::Result<()> {
    let device = parse_device(&args.device)?;
    let model = MiniLm::load(&args.model, device)?;
    let lines = read_prompts(&args.prompts)?;
    let prompts: Vec<&str> = (0..args.repeat.max(1))
        .flat_map(|_| lines.iter().map(String::as_str))
        .collect();
    let pass = || -> anyhow::Result<()> {
        let e = model.embed_sorted(&prompts, args.batch_size)?;
        // A host read waits for queued device work.
        let _ = e.f_double_value(&[0, 0])?;
        Ok(())
    };
    let median = median_seconds(args.warmup, args.rounds, pass)?;
    let rate = prompts.len() as f64 / median;
    let threads = tch::get_num_threads();
    if args.json {
        println!(
            "{{\"prompts_per_s\": {rate:.2}, \"prompts\": {}, \"batch\": {}, \"seconds\": {median:.4}, \"device\": \"{}\", \"threads\": {threads}}}",
            prompts.len(),
            args.batch_size,
            args.device
        );
    } else {
        println!(
            "MiniLM: {rate:.1} prompts/s ({} prompts, batch {}, median of {} rounds {median:.3} s, {}, {threads} threads)",
            prompts.len(),
            args.batch_size,
            args.rounds.max(1),
            args.device
        );
    }
    Ok(())
}
