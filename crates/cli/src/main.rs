//! The `flowscale` command-line tool.

mod commands;

use clap::Parser;

fn main() -> anyhow::Result<()> {
    let cli = commands::Cli::parse();
    cli.run()
}
