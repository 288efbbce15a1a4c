//! A sweep's evaluation results in one table: every run's `flowscale eval` rows at its selected
//! checkpoint (crates/study/src/sweep_eval.rs), the paper's Pareto ranking over them with
//! Table 1's columns (all settings, and per sampler step count), and the correlation of
//! validation loss with each sample metric across runs.

use crate::correlation::{pearson, spearman};
use crate::error::{Result, StudyError};
use crate::sweep::Sweep;
use crate::sweep_eval::EvalStatus;
use flowscale_eval::pareto::{parse_metrics, Direction};
use flowscale_eval::protocol::{substitutions_of_json, Substitution};
use flowscale_eval::rank::{rank_rows, RankOptions, Ranking, Row};
use flowscale_eval::result_rows::{read_json, rows_of_json};
use std::collections::BTreeMap;

/// Sample metrics that are correlated with validation loss, when present: FID and the
/// prompt-adherence scores (CLIP score; class accuracy of class-conditional runs; the
/// prompt-category accuracy of text-to-image runs without CLIP weights).
pub const SAMPLE_METRICS: [&str; 4] = [
    "fid",
    "clip_score",
    "class_accuracy",
    "prompt_class_accuracy",
];

/// The correlation of validation loss with one metric over the runs, for one weight set and
/// sampler setting.
#[derive(Debug, Clone, PartialEq)]
pub struct Correlation {
    pub metric: String,
    pub weights: String,
    pub setting: String,
    /// `(run, validation loss, metric)` pairs.
    pub pairs: Vec<(String, f64, f64)>,
    /// `None` with fewer than 3 pairs, or when the runs use several formulations (each run's
    /// validation loss is its own formulation's loss, so losses do not compare across them).
    pub pearson: Option<f64>,
    pub spearman: Option<f64>,
}

#[derive(Debug, Clone, Default)]
pub struct SweepResults {
    /// Every row of every evaluated run (long format: `metric`, `value`).
    pub rows: Vec<Row>,
    /// Runs whose evaluation is missing or stale, with the reason.
    pub missing: Vec<(String, String)>,
    /// The metric spec ranked on and the ranking (when at least two runs were evaluated and a
    /// ranking metric exists).
    pub ranking: Option<(String, Ranking)>,
    /// How many formulations the evaluated runs use: correlation coefficients (and the report's
    /// loss-vs-metric plots) only mean something with one.
    pub formulations: usize,
    pub correlations: Vec<Correlation>,
    /// Each protocol substitution (docs/protocol.md section 4) with the runs whose evaluation
    /// made it, and the runs whose results predate the record (nothing known about them).
    pub substitutions: Vec<(Substitution, Vec<String>)>,
    pub substitutions_unknown: Vec<String>,
    /// Each run at its best post-hoc EMA length, when the sweep has `[eval] posthoc_stds`.
    pub posthoc: Option<PosthocResults>,
}

/// `(std, the run's averaged metric at that std)` in `posthoc_stds` order.
pub type StdScores = Vec<(f64, Option<f64>)>;

/// One run's post-hoc rows, per std.
type RowsPerStd = Vec<(f64, Vec<Row>)>;

/// The post-hoc EMA evaluations of a sweep ([`crate::sweep_posthoc`]): which std suits each
/// run, and the ranking with every run at its own best.
#[derive(Debug, Clone, Default)]
pub struct PosthocResults {
    /// What the best std is chosen by (`fid:min` when FID was measured: EDM2 chose by FID;
    /// else the first ranking metric), averaged over the sampler settings.
    pub metric: String,
    /// Per run, each std's averaged metric (`None`: no result for that std).
    pub table: Vec<(String, StdScores)>,
    /// Per run, the chosen std.
    pub picks: Vec<(String, f64)>,
    /// Every post-hoc row, with a `posthoc_std` column.
    pub rows: Vec<Row>,
    /// The paper's ranking over the runs' picked rows (weights labelled `phema`).
    pub ranking: Option<(String, Ranking)>,
    /// Runs and stds without up-to-date results, with the reason.
    pub missing: Vec<(String, String)>,
}

/// Which metrics the ranking uses: the paper's (CLIP score up, FID down) when CLIP rows exist,
/// else the classifier's prompt-adherence score with FID: class accuracy for class-conditional
/// runs, prompt-category accuracy for text-to-image runs, and the two as one metric when the
/// rows hold both (one adherence score per setting, as `flowscale rank` takes `A|B`).
pub fn ranking_metrics(rows: &[Row]) -> Option<String> {
    let has = |m: &str| rows.iter().any(|r| r.get("metric").is_some_and(|x| x == m));
    let adherence = if has("clip_score") {
        Some("clip_score")
    } else {
        match (has("class_accuracy"), has("prompt_class_accuracy")) {
            (true, true) => Some("class_accuracy|prompt_class_accuracy"),
            (true, false) => Some("class_accuracy"),
            (false, true) => Some("prompt_class_accuracy"),
            (false, false) => None,
        }
    };
    let adherence = adherence.map(|a| format!("{a}:max"));
    let fid = has("fid").then(|| "fid:min".to_owned());
    match (adherence, fid) {
        (Some(a), Some(f)) => Some(format!("{a},{f}")),
        (a, f) => a.or(f),
    }
}

fn value(row: &Row) -> Option<f64> {
    row.get("value")?.trim().parse().ok()
}

/// Correlations over runs of `val_loss` (the eval's own, same checkpoint and weights) with each
/// sample metric, per weight set and sampler setting; coefficients only when every run uses the
/// same formulation.
pub fn correlations(rows: &[Row]) -> Vec<Correlation> {
    let comparable = formulation_count(rows) <= 1;
    // (run, weights) -> validation loss; (metric, weights, setting) -> run -> value.
    let mut val: BTreeMap<(String, String), f64> = BTreeMap::new();
    let mut metric: BTreeMap<(String, String, String), BTreeMap<String, f64>> = BTreeMap::new();
    for r in rows {
        let (Some(run), Some(w), Some(s), Some(m), Some(v)) = (
            r.get("run"),
            r.get("weights"),
            r.get("setting"),
            r.get("metric"),
            value(r),
        ) else {
            continue;
        };
        if m == "val_loss" && s == "validation" {
            val.insert((run.clone(), w.clone()), v);
        } else if SAMPLE_METRICS.contains(&m.as_str()) {
            metric
                .entry((m.clone(), w.clone(), s.clone()))
                .or_default()
                .insert(run.clone(), v);
        }
    }
    let mut out = Vec::new();
    for ((m, w, s), by_run) in metric {
        let pairs: Vec<(String, f64, f64)> = by_run
            .iter()
            .filter_map(|(run, &y)| {
                val.get(&(run.clone(), w.clone()))
                    .map(|&x| (run.clone(), x, y))
            })
            .collect();
        let x: Vec<f64> = pairs.iter().map(|p| p.1).collect();
        let y: Vec<f64> = pairs.iter().map(|p| p.2).collect();
        out.push(Correlation {
            pearson: pearson(&x, &y).filter(|_| comparable),
            spearman: spearman(&x, &y).filter(|_| comparable),
            metric: m,
            weights: w,
            setting: s,
            pairs,
        });
    }
    out
}

/// Collects the evaluation rows of every run of the sweep that has up-to-date results.
pub fn collect(sweep: &Sweep) -> Result<SweepResults> {
    let mut out = SweepResults::default();
    for i in 0..sweep.runs.len() {
        let id = sweep.runs[i].id.clone();
        match sweep.eval_status(i)? {
            EvalStatus::Done(_, dir) => {
                let path = dir.join("results.json");
                let eval_error = |e| StudyError::Eval {
                    id: id.clone(),
                    source: Box::new(e),
                };
                // One read and parse for the rows and the substitutions.
                let what = path.display().to_string();
                let doc = read_json(&path).map_err(eval_error)?;
                out.rows
                    .extend(rows_of_json(&doc, &what).map_err(eval_error)?);
                match substitutions_of_json(&doc, &what).map_err(eval_error)? {
                    Some(list) => {
                        for s in list {
                            match out.substitutions.iter_mut().find(|(x, _)| *x == s) {
                                Some((_, runs)) => runs.push(id.clone()),
                                None => out.substitutions.push((s, vec![id.clone()])),
                            }
                        }
                    }
                    None => out.substitutions_unknown.push(id.clone()),
                }
            }
            EvalStatus::NotConfigured => {}
            other => out.missing.push((id, other.to_string())),
        }
    }
    let evaluated: Vec<&String> = {
        let mut runs: Vec<&String> = out.rows.iter().filter_map(|r| r.get("run")).collect();
        runs.sort();
        runs.dedup();
        runs
    };
    if evaluated.len() >= 2 {
        if let Some(spec) = ranking_metrics(&out.rows) {
            let ranking = rank_runs(&out.rows, &spec, &sweep.name)?;
            out.ranking = Some((spec, ranking));
        }
    }
    if !sweep.posthoc_stds.is_empty() {
        out.posthoc = Some(collect_posthoc(sweep)?);
    }
    out.formulations = formulation_count(&out.rows);
    out.correlations = correlations(&out.rows);
    Ok(out)
}

/// The paper's ranking of the runs in `rows` (sample settings only) on the metrics `spec`.
fn rank_runs(rows: &[Row], spec: &str, sweep: &str) -> Result<Ranking> {
    let sample_rows: Vec<Row> = rows
        .iter()
        .filter(|r| r.get("setting").is_some_and(|s| s != "validation"))
        .cloned()
        .collect();
    let eval_error = |e| StudyError::Eval {
        id: sweep.to_owned(),
        source: Box::new(e),
    };
    let opts = RankOptions {
        metrics: parse_metrics(spec).map_err(eval_error)?,
        candidate: vec!["run".into()],
        group_by: Vec::new(),
        columns: None,
    };
    rank_rows(&sample_rows, &opts).map_err(eval_error)
}

/// The post-hoc rows of every run and std, each run's best std, and the ranking at the picks.
fn collect_posthoc(sweep: &Sweep) -> Result<PosthocResults> {
    let mut out = PosthocResults::default();
    let mut per_run: Vec<(String, RowsPerStd)> = Vec::new();
    for i in 0..sweep.runs.len() {
        let id = sweep.runs[i].id.clone();
        let mut stds = Vec::new();
        for (std, status) in sweep.posthoc_status(i)? {
            match status {
                EvalStatus::Done(_, dir) => {
                    let path = dir.join("results.json");
                    let what = path.display().to_string();
                    let eval_error = |e| StudyError::Eval {
                        id: id.clone(),
                        source: Box::new(e),
                    };
                    let doc = read_json(&path).map_err(eval_error)?;
                    let mut rows = rows_of_json(&doc, &what).map_err(eval_error)?;
                    for r in &mut rows {
                        r.insert("posthoc_std".into(), std.to_string());
                    }
                    stds.push((std, rows));
                }
                other => out
                    .missing
                    .push((id.clone(), format!("std {std}: {other}"))),
            }
        }
        per_run.push((id, stds));
    }
    out.rows = per_run
        .iter()
        .flat_map(|(_, s)| s.iter().flat_map(|(_, r)| r.iter().cloned()))
        .collect();
    let has_fid = out
        .rows
        .iter()
        .any(|r| r.get("metric").is_some_and(|m| m == "fid"));
    let Some(spec) = (if has_fid {
        Some("fid:min".to_owned())
    } else {
        ranking_metrics(&out.rows).and_then(|s| s.split(',').next().map(str::to_owned))
    }) else {
        return Ok(out);
    };
    // Parsed as the ranking parses it, so an `A|B` adherence score reads whichever of A and B
    // each run's rows have.
    let parsed = parse_metrics(&spec).map_err(|e| StudyError::Eval {
        id: sweep.name.clone(),
        source: Box::new(e),
    })?;
    let Some(metric) = parsed.into_iter().next() else {
        return Ok(out);
    };
    out.metric = spec;
    let maximise = metric.direction == Direction::Max;
    let mut picked_rows = Vec::new();
    for (run, stds) in &per_run {
        let scores: StdScores = sweep
            .posthoc_stds
            .iter()
            .map(|std| {
                let rows = stds.iter().find(|(s, _)| s == std).map(|(_, r)| r);
                (
                    *std,
                    rows.and_then(|r| mean_over_settings(r, &metric.alternatives)),
                )
            })
            .collect();
        // Best score; a tie goes to the shorter EMA (listed order does not matter).
        let best = scores.iter().filter_map(|(s, v)| v.map(|v| (*s, v))).fold(
            None::<(f64, f64)>,
            |acc, (s, v)| match acc {
                None => Some((s, v)),
                Some((bs, bv)) => {
                    let better = if maximise { v > bv } else { v < bv };
                    if better || (v == bv && s < bs) {
                        Some((s, v))
                    } else {
                        Some((bs, bv))
                    }
                }
            },
        );
        if let Some((std, _)) = best {
            out.picks.push((run.clone(), std));
            if let Some((_, rows)) = stds.iter().find(|(s, _)| *s == std) {
                picked_rows.extend(rows.iter().cloned().map(|mut r| {
                    r.insert("weights".into(), "phema".into());
                    r
                }));
            }
        }
        out.table.push((run.clone(), scores));
    }
    if out.picks.len() >= 2 {
        if let Some(rank_spec) = ranking_metrics(&picked_rows) {
            let ranking = rank_runs(&picked_rows, &rank_spec, &sweep.name)?;
            out.ranking = Some((rank_spec, ranking));
        }
    }
    Ok(out)
}

/// The mean over the sampler settings of `rows` (validation rows excluded) of the first of
/// `alternatives` (a parsed metric's names, [`flowscale_eval::pareto::MetricSpec`]) they have.
fn mean_over_settings(rows: &[Row], alternatives: &[String]) -> Option<f64> {
    alternatives.iter().find_map(|metric| {
        let values: Vec<f64> = rows
            .iter()
            .filter(|r| {
                r.get("metric").is_some_and(|m| m == metric)
                    && r.get("setting").is_some_and(|s| s != "validation")
            })
            .filter_map(value)
            .collect();
        (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
    })
}

/// How many different formulations `rows` come from.
pub fn formulation_count(rows: &[Row]) -> usize {
    let mut names: Vec<&String> = rows.iter().filter_map(|r| r.get("formulation")).collect();
    names.sort();
    names.dedup();
    names.len()
}

/// The rows as one CSV with the eval's columns (`flowscale rank` reads it).
pub fn rows_csv(rows: &[Row]) -> String {
    let cols = flowscale_eval::results::CSV_COLUMNS;
    let mut out = flowscale_eval::csv::line(&cols);
    for r in rows {
        let fields: Vec<String> = cols
            .iter()
            .map(|c| r.get(*c).cloned().unwrap_or_default())
            .collect();
        out.push_str(&flowscale_eval::csv::line(&fields));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(run: &str, weights: &str, setting: &str, metric: &str, value: f64) -> Row {
        [
            ("run", run.to_string()),
            ("weights", weights.to_string()),
            ("setting", setting.to_string()),
            ("metric", metric.to_string()),
            ("value", value.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    /// FID rises with validation loss across four runs (perfect rank agreement), class
    /// accuracy falls; the validation loss of another weight set is not mixed in.
    #[test]
    fn correlates_per_weights_and_setting() {
        let mut rows = Vec::new();
        for (run, loss, fid, acc) in [
            ("a", 0.30, 20.0, 0.9),
            ("b", 0.32, 25.0, 0.85),
            ("c", 0.35, 24.0, 0.7),
            ("d", 0.40, 40.0, 0.5),
        ] {
            rows.push(row(run, "ema0.99", "validation", "val_loss", loss));
            rows.push(row(run, "raw", "validation", "val_loss", 1.0 - loss));
            rows.push(row(run, "ema0.99", "s25_cfg5", "fid", fid));
            rows.push(row(run, "ema0.99", "s25_cfg5", "class_accuracy", acc));
        }
        let c = correlations(&rows);
        assert_eq!(c.len(), 2);
        let fid = c.iter().find(|c| c.metric == "fid").unwrap();
        assert_eq!(fid.weights, "ema0.99");
        assert_eq!(fid.pairs.len(), 4);
        assert!((fid.spearman.unwrap() - 0.8).abs() < 1e-12, "{fid:?}");
        let x = [0.30, 0.32, 0.35, 0.40];
        let y = [20.0, 25.0, 24.0, 40.0];
        assert_eq!(fid.pearson, pearson(&x, &y));
        assert!(fid.pearson.unwrap() > 0.9);
        let acc = c.iter().find(|c| c.metric == "class_accuracy").unwrap();
        assert_eq!(acc.spearman, Some(-1.0));
        assert_eq!(
            ranking_metrics(&rows).as_deref(),
            Some("class_accuracy:max,fid:min")
        );
    }

    /// A text-to-image sweep without CLIP weights ranks on its prompt-category accuracy with
    /// FID (not on FID alone), a sweep over both kinds of run takes either score per setting,
    /// and CLIP score is the paper's adherence score whenever it exists.
    #[test]
    fn the_ranking_uses_each_kind_of_runs_adherence_score() {
        let rows_of = |metrics: &[&str]| -> Vec<Row> {
            metrics
                .iter()
                .map(|m| row("a", "ema0.99", "s25_cfg5", m, 0.5))
                .collect()
        };
        let spec = |metrics: &[&str]| ranking_metrics(&rows_of(metrics));
        assert_eq!(
            spec(&["fid", "prompt_class_accuracy"]).as_deref(),
            Some("prompt_class_accuracy:max,fid:min")
        );
        assert_eq!(
            spec(&["fid", "class_accuracy", "prompt_class_accuracy"]).as_deref(),
            Some("class_accuracy|prompt_class_accuracy:max,fid:min")
        );
        assert_eq!(
            spec(&["fid", "clip_score", "prompt_class_accuracy"]).as_deref(),
            Some("clip_score:max,fid:min")
        );
        assert_eq!(spec(&["fid"]).as_deref(), Some("fid:min"));
        assert_eq!(
            spec(&["prompt_class_accuracy"]).as_deref(),
            Some("prompt_class_accuracy:max")
        );
        assert_eq!(spec(&["val_loss"]), None);
        // Every spec parses as `flowscale rank --metrics` takes it.
        let both = spec(&["fid", "class_accuracy", "prompt_class_accuracy"]).unwrap();
        assert_eq!(parse_metrics(&both).unwrap().len(), 2);
    }

    /// The post-hoc pick averages a run's adherence score through the parsed metric: with
    /// `A|B` it reads whichever of the two the run's rows have.
    #[test]
    fn the_posthoc_mean_reads_the_metric_a_run_has() {
        let rows = vec![
            row("a", "phema", "s5_cfg5", "prompt_class_accuracy", 0.25),
            row("a", "phema", "s50_cfg5", "prompt_class_accuracy", 0.75),
            row("a", "phema", "validation", "prompt_class_accuracy", 9.0),
        ];
        let both = &parse_metrics("class_accuracy|prompt_class_accuracy:max").unwrap()[0];
        assert_eq!(mean_over_settings(&rows, &both.alternatives), Some(0.5));
        let class = &parse_metrics("class_accuracy:max").unwrap()[0];
        assert_eq!(mean_over_settings(&rows, &class.alternatives), None);
    }

    /// Losses of different formulations are on different scales: the pairs are kept (the
    /// metric tables show them) but no coefficient is computed.
    #[test]
    fn no_coefficients_across_formulations() {
        let mut rows = Vec::new();
        for (run, form, loss, fid) in [
            ("a", "rf", 0.30, 20.0),
            ("b", "rf", 0.32, 25.0),
            ("c", "eps/linear", 0.17, 40.0),
        ] {
            for mut r in [
                row(run, "ema0.99", "validation", "val_loss", loss),
                row(run, "ema0.99", "s25_cfg5", "fid", fid),
            ] {
                r.insert("formulation".into(), form.into());
                rows.push(r);
            }
        }
        let c = correlations(&rows);
        assert_eq!(c[0].pairs.len(), 3);
        assert_eq!((c[0].pearson, c[0].spearman), (None, None));
        rows.retain(|r| r["run"] != "c");
        rows.push(row("d", "ema0.99", "validation", "val_loss", 0.5));
        rows.push(row("d", "ema0.99", "s25_cfg5", "fid", 50.0));
        for r in rows.iter_mut() {
            r.insert("formulation".into(), "rf".into());
        }
        assert!(correlations(&rows)[0].pearson.is_some());
    }
}
