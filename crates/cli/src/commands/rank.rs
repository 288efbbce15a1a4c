//! `flowscale rank`: the paper's Pareto ranking of runs over settings (crates/eval/src/rank.rs).

use clap::Args;
use flowscale_eval::pareto::parse_metrics;
use flowscale_eval::rank::{rank_rows, RankColumn, RankOptions};
use flowscale_eval::result_rows::read_rows;
use flowscale_study::paper_table1::compare_with_paper;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct RankArgs {
    /// Result tables: CSV (long rows with metric,value or wide rows with a column per metric)
    /// or results.json files of `flowscale eval`.
    #[arg(required = true)]
    results: Vec<PathBuf>,
    /// Metrics and directions, NAME:max or NAME:min, comma-separated (the default names the
    /// rows `flowscale eval` writes with a CLIP model: `clip_score`, `fid`). `A|B:max` is one
    /// metric that each setting takes from whichever of A, B its rows have (e.g.
    /// `class_accuracy|prompt_class_accuracy:max` across a class-conditional and a captioned
    /// dataset).
    #[arg(long, default_value = "clip_score:max,fid:min")]
    metrics: String,
    /// Columns that identify a setting, comma-separated [default: those of dataset, weights,
    /// setting present].
    #[arg(long)]
    group_by: Option<String>,
    /// Columns that identify a candidate, comma-separated [default: `formulation` when the
    /// results have it (the runs of one formulation on several datasets are one candidate, as
    /// in the paper's Table 1), else `run`].
    #[arg(long)]
    candidate: Option<String>,
    /// An extra column of mean ranks, `LABEL=SETTING[+SETTING...]` (e.g. `--column "5
    /// steps=s5_cfg5"`), repeatable [default: the paper's "5 steps" = s5_cfg5 and "50 steps" =
    /// s50_cfg5, each shown when the results have it].
    #[arg(long = "column")]
    columns: Vec<String>,
    /// Also print the ranking next to the paper's Table 1 (its mean ranks over 24 settings)
    /// with Spearman's rho over the formulations both have.
    #[arg(long)]
    against_paper: bool,
    /// Where to write the ranking as CSV.
    #[arg(long, default_value = "ranking.csv")]
    out: PathBuf,
}

fn columns(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(String::from)
        .collect()
}

pub fn run(args: &RankArgs) -> anyhow::Result<()> {
    let mut rows = Vec::new();
    for path in &args.results {
        rows.extend(read_rows(path)?);
    }
    let opts = RankOptions {
        metrics: parse_metrics(&args.metrics)?,
        candidate: args.candidate.as_deref().map(columns).unwrap_or_default(),
        group_by: args.group_by.as_deref().map(columns).unwrap_or_default(),
        columns: if args.columns.is_empty() {
            None
        } else {
            Some(
                args.columns
                    .iter()
                    .map(|c| RankColumn::parse(c))
                    .collect::<Result<_, _>>()?,
            )
        },
    };
    let ranking = rank_rows(&rows, &opts)?;
    print!("{}", ranking.to_table());
    if args.against_paper {
        println!();
        print!("{}", compare_with_paper(&ranking).to_markdown());
    }
    flowscale_core::write_atomic(&args.out, ranking.to_csv().as_bytes())?;
    println!("wrote {}", args.out.display());
    Ok(())
}
