//! Subcommands that are part of flowscale's interface but not built yet. They fail loudly with
//! the issue that tracks them instead of pretending to work.

use clap::Args;

#[derive(Debug, Args)]
pub struct PlannedArgs {
    /// Arguments of the future command (ignored).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    args: Vec<String>,
}

pub fn run(name: &str, issue: u32, _args: &PlannedArgs) -> anyhow::Result<()> {
    anyhow::bail!("`flowscale {name}` is not implemented yet; it is tracked in issue #{issue}")
}
