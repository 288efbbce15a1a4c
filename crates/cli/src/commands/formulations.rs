//! `flowscale formulations list | table NAME --points N [--shift A] [--out FILE]`.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use flowscale_formulations::{registry, table, write_csv, Formulation, Shift};

#[derive(Debug, Args)]
pub struct FormulationsArgs {
    #[command(subcommand)]
    command: FormulationsCommand,
}

#[derive(Debug, Subcommand)]
enum FormulationsCommand {
    /// The 61 formulations of the SD3 study, one canonical name per line.
    List,
    /// Tabulate a formulation over t: a, b, log-SNR, timestep density and effective loss weight.
    Table(TableArgs),
}

#[derive(Debug, Args)]
struct TableArgs {
    /// Formulation name, e.g. "rf/lognorm(0.00, 1.00)"; any parameters are accepted.
    name: String,
    /// Number of t values (midpoints of equal cells in [0, 1]).
    #[arg(long, default_value_t = 101)]
    points: usize,
    /// Resolution-dependent timestep shift alpha (SD3: 3.0 at 1024^2).
    #[arg(long)]
    shift: Option<f64>,
    /// Write the CSV here instead of standard output.
    #[arg(long)]
    out: Option<PathBuf>,
}

pub fn run(args: &FormulationsArgs) -> anyhow::Result<()> {
    match &args.command {
        FormulationsCommand::List => {
            for f in registry() {
                println!("{f}");
            }
            Ok(())
        }
        FormulationsCommand::Table(t) => {
            anyhow::ensure!(t.points >= 1, "--points must be at least 1");
            let formulation = Formulation::parse(&t.name)?;
            let shift = t.shift.map(Shift::new).transpose()?;
            let rows = table(formulation, t.points, shift);
            match &t.out {
                Some(path) => {
                    // Atomic, so a failed write leaves no truncated table behind.
                    let mut file = flowscale_core::AtomicFile::create(path)?;
                    let mut out = std::io::BufWriter::new(&mut file);
                    write_csv(&rows, &mut out)
                        .and_then(|()| Ok(std::io::Write::flush(&mut out)?))
                        .with_context(|| format!("writing {}", path.display()))?;
                    drop(out);
                    file.commit()?;
                }
                None => write_csv(&rows, std::io::stdout().lock())?,
            }
            Ok(())
        }
    }
}
