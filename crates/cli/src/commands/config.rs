//! `flowscale config CONFIG [--set key=value]... [--out FILE]`.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use flowscale_train::config::{load, to_toml_string, RunConfig};

#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// Run config (TOML).
    config: PathBuf,
    /// Override a key, e.g. `--set optim.lr=3e-4` (repeatable; later wins).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    overrides: Vec<String>,
    /// Write the resolved config here instead of printing it.
    #[arg(long)]
    out: Option<PathBuf>,
}

pub fn run(args: &ConfigArgs) -> anyhow::Result<()> {
    // As the trainer records it: `formulation.shift = "auto"` becomes its alpha.
    let config = load::<RunConfig>(&args.config, &args.overrides)?
        .with_resolved_shift()
        .context("formulation.shift")?;
    let text = to_toml_string(&config).context("serialising the resolved config")?;
    match &args.out {
        Some(path) => flowscale_core::write_atomic(path, text.as_bytes())?,
        None => print!("{text}"),
    }
    Ok(())
}
