//! `flowscale embed-text`: prompts (one per line) -> `context` and `pooled` in a safetensors file
//! that `flowscale sample --cond` reads.

use super::bench_fwd_bwd::parse_device;
use anyhow::Context;
use clap::Args;
use flowscale_encoders::text::{TextEncoder, TextEncoderConfig};
use flowscale_models::checkpoint::safetensors_io;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use tch::Kind;

#[derive(Debug, Args)]
pub struct EmbedTextArgs {
    /// Text-encoder config (TOML: `encoder = "minilm"` or `"sd3"`; see configs/text/).
    #[arg(long)]
    config: PathBuf,
    /// Override a key of the text-encoder config, e.g. `--set minilm.tokens=32` (repeatable;
    /// later wins).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    overrides: Vec<String>,
    /// UTF-8 text file, one prompt per line (an empty line is the empty prompt).
    #[arg(long)]
    prompts: PathBuf,
    /// Output safetensors with `context` [N, L, D] and `pooled` [N, P].
    #[arg(long)]
    out: PathBuf,
    /// `cpu`, `cuda` or `cuda:N`.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Prompts per forward pass.
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    /// Store fp16 (as precomputed shards do) instead of fp32.
    #[arg(long)]
    fp16: bool,
}

/// The prompts of a file: its lines without line endings; a final newline ends the last prompt.
pub fn read_prompts(path: &Path) -> anyhow::Result<Vec<String>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading prompts from {}", path.display()))?;
    let mut lines: Vec<String> = text
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l).to_owned())
        .collect();
    if text.ends_with('\n') || text.is_empty() {
        lines.pop();
    }
    if lines.is_empty() {
        anyhow::bail!("{}: no prompts", path.display());
    }
    Ok(lines)
}

pub fn run(args: &EmbedTextArgs) -> anyhow::Result<()> {
    let device = parse_device(&args.device)?;
    let cfg = TextEncoderConfig::load_with(&args.config, &args.overrides)?;
    let prompts = read_prompts(&args.prompts)?;
    let encoder = TextEncoder::load(&cfg, device)
        .with_context(|| format!("loading the encoder of {}", args.config.display()))?;
    let refs: Vec<&str> = prompts.iter().map(String::as_str).collect();
    let c = encoder.encode_batched(&refs, args.batch_size)?;
    let kind = if args.fp16 { Kind::Half } else { Kind::Float };
    let c = c.to_kind(kind)?;
    let metadata = HashMap::from([
        (
            "flowscale.prompts".to_owned(),
            serde_json::to_string(&prompts)?,
        ),
        (
            "flowscale.text_encoder".to_owned(),
            serde_json::to_string(&cfg)?,
        ),
    ]);
    safetensors_io::write(
        &args.out,
        &[
            ("context".to_owned(), c.context.shallow_clone()),
            ("pooled".to_owned(), c.pooled.shallow_clone()),
        ],
        Some(metadata),
    )?;
    println!(
        "{} prompts -> {}: context {:?}, pooled {:?} ({:?})",
        prompts.len(),
        args.out.display(),
        c.context.size(),
        c.pooled.size(),
        kind
    );
    Ok(())
}
