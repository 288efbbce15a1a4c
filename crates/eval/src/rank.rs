//! The paper's ranking over a results table: per setting, non-dominated sorting of the
//! candidates on the chosen metrics ([`crate::pareto`]); a candidate's final rank is the mean of
//! its per-setting ranks (docs/protocol.md section 4; the paper's Table 1 averages 24 settings).
//!
//! Input rows come in either of two shapes (CSV, or the `rows` of a results JSON):
//! - long: one row per metric value, with `metric` and `value` columns (what `flowscale eval`
//!   writes);
//! - wide: one row per candidate and setting, with a column per metric.
//!
//! A candidate is identified by the `candidate` columns (default `formulation` when the table
//! has it, as the paper ranks formulations: the runs of one formulation on several datasets are
//! one candidate; else `run`), a setting by the `group_by` columns (default: those of `dataset`,
//! `weights`, `setting` that the table has). Every candidate must have every metric in every
//! setting; gaps are reported, not guessed.
//!
//! Besides the mean over all settings, Table 1 has columns that average a subset: "5 steps" and
//! "50 steps", each one sampler setting (5 or 50 Euler steps at CFG 5.0, our reading of the
//! paper; docs/protocol.md) over both weights and both datasets, 4 of the 24 settings.
//! [`RankColumn`] makes the selection configurable.

use crate::error::{EvalError, Result};
use crate::pareto::{fronts, MetricSpec};
use flowscale_formulations::SamplerFrame;
use std::collections::BTreeMap;

pub type Row = BTreeMap<String, String>;

/// Which columns identify candidates and settings, and which extra columns to average.
#[derive(Debug, Clone)]
pub struct RankOptions {
    pub metrics: Vec<MetricSpec>,
    /// Empty: `formulation` when the table has it, else `run`.
    pub candidate: Vec<String>,
    /// Empty: the default setting columns present in the table.
    pub group_by: Vec<String>,
    /// `None`: the paper's Table 1 columns ([`RankColumn::paper`]), each kept when the table has
    /// its sampler setting. `Some`: exactly these; one that matches no setting is an error.
    pub columns: Option<Vec<RankColumn>>,
}

/// A sampler setting as `flowscale eval` names it, `s<steps>_cfg<scale>`, with `_native` for
/// the native sampler frame ([`flowscale_train::sampling::setting_label`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SamplerKey {
    pub steps: u32,
    pub cfg: f64,
    pub frame: SamplerFrame,
}

impl SamplerKey {
    /// `s50_cfg2.5` -> 50 steps at CFG 2.5 in the RF frame, `s5_cfg5_native` -> 5 steps at
    /// CFG 5 in the native frame; `None` for other names (`validation`).
    pub fn parse(setting: &str) -> Option<Self> {
        let (setting, frame) = SamplerFrame::ALL
            .into_iter()
            .filter(|f| *f != SamplerFrame::Rf)
            .find_map(|f| Some((setting.strip_suffix(&format!("_{f}"))?, f)))
            .unwrap_or((setting, SamplerFrame::Rf));
        let (steps, cfg) = setting.strip_prefix('s')?.split_once("_cfg")?;
        let cfg: f64 = cfg.parse().ok()?;
        cfg.is_finite().then_some(Self {
            steps: steps.parse().ok()?,
            cfg,
            frame,
        })
    }

    /// The same steps, guidance scale and frame (`cfg5` and `cfg5.0` are one setting; a
    /// column of RF-frame settings never takes the native frame's, whose samples differ).
    fn matches(&self, other: &Self) -> bool {
        self.steps == other.steps
            && (self.cfg - other.cfg).abs() < 1e-9
            && self.frame == other.frame
    }
}

/// One of Table 1's extra columns: a candidate's mean rank over the settings whose sampler
/// setting is one of `settings`, over every dataset and weights.
#[derive(Debug, Clone, PartialEq)]
pub struct RankColumn {
    pub label: String,
    pub settings: Vec<SamplerKey>,
}

impl RankColumn {
    /// `LABEL=SETTING[+SETTING...]`, e.g. `5 steps=s5_cfg5` or `50 steps=s50_cfg1+s50_cfg5`.
    pub fn parse(spec: &str) -> Result<Self> {
        let bad = |why: &str| {
            EvalError::Invalid(format!(
                "rank column `{spec}`: {why} (expected LABEL=s<steps>_cfg<scale>[_native][+...], \
                 e.g. `5 steps=s5_cfg5`)"
            ))
        };
        let (label, settings) = spec.split_once('=').ok_or_else(|| bad("no `=`"))?;
        let label = label.trim();
        if label.is_empty() {
            return Err(bad("empty label"));
        }
        let settings = settings
            .split('+')
            .map(|s| {
                SamplerKey::parse(s.trim())
                    .ok_or_else(|| bad(&format!("`{s}` is not a sampler setting")))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            label: label.to_string(),
            settings,
        })
    }

    /// The paper's: "5 steps" and "50 steps", each at CFG 5.0 (docs/protocol.md).
    pub fn paper() -> Vec<Self> {
        [("5 steps", 5), ("50 steps", 50)]
            .into_iter()
            .map(|(label, steps)| Self {
                label: label.to_string(),
                settings: vec![SamplerKey {
                    steps,
                    cfg: 5.0,
                    frame: SamplerFrame::Rf,
                }],
            })
            .collect()
    }
}

/// The ranking: settings in first-seen order, candidates sorted by mean rank (then name).
#[derive(Debug, Clone, PartialEq)]
pub struct Ranking {
    pub settings: Vec<String>,
    /// Table 1's extra columns ([`RankColumn`]): label -> the indices into `settings` whose
    /// mean rank the column shows.
    pub step_subsets: Vec<(String, Vec<usize>)>,
    pub rows: Vec<RankedCandidate>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RankedCandidate {
    pub candidate: String,
    /// Rank per setting, in `Ranking::settings` order.
    pub ranks: Vec<u32>,
    pub mean: f64,
    /// Mean rank over each of `Ranking::step_subsets`.
    pub subset_means: Vec<f64>,
}

pub const DEFAULT_SETTING_COLUMNS: [&str; 3] = ["dataset", "weights", "setting"];

/// Ranks the candidates of `rows`.
pub fn rank_rows(rows: &[Row], opts: &RankOptions) -> Result<Ranking> {
    let first = rows
        .first()
        .ok_or_else(|| EvalError::Invalid("no result rows to rank".into()))?;
    let candidate: Vec<String> = match opts.candidate.is_empty() {
        false => opts.candidate.clone(),
        true if first.contains_key("formulation") => vec!["formulation".into()],
        true => vec!["run".into()],
    };
    let group_by: Vec<String> = if opts.group_by.is_empty() {
        DEFAULT_SETTING_COLUMNS
            .iter()
            .filter(|c| first.contains_key(**c))
            .map(|c| c.to_string())
            .collect()
    } else {
        opts.group_by.clone()
    };
    for col in candidate.iter().chain(&group_by) {
        if !first.contains_key(col) {
            return Err(EvalError::Invalid(format!(
                "column `{col}` is not in the results (columns: {})",
                first.keys().cloned().collect::<Vec<_>>().join(", ")
            )));
        }
    }
    let long = first.contains_key("metric") && first.contains_key("value");
    // (setting, candidate) -> metric -> value.
    let mut table: BTreeMap<(String, String), BTreeMap<String, f64>> = BTreeMap::new();
    let mut settings: Vec<String> = Vec::new();
    let mut setting_keys: Vec<Option<SamplerKey>> = Vec::new();
    let mut candidates: Vec<String> = Vec::new();
    for row in rows {
        let key = |cols: &[String]| -> String {
            cols.iter()
                .map(|c| row.get(c).cloned().unwrap_or_default())
                .collect::<Vec<_>>()
                .join(" ")
        };
        let (setting, cand) = (key(&group_by), key(&candidate));
        let mut put = |metric: &str, text: &str| -> Result<()> {
            let value: f64 = text.trim().parse().map_err(|_| {
                EvalError::Invalid(format!(
                    "value `{text}` of metric `{metric}` for `{cand}` in setting `{setting}` is not a number"
                ))
            })?;
            if !value.is_finite() {
                return Err(EvalError::Invalid(format!(
                    "metric `{metric}` for `{cand}` in setting `{setting}` is {value}"
                )));
            }
            let slot = table.entry((setting.clone(), cand.clone())).or_default();
            if slot.insert(metric.to_string(), value).is_some() {
                return Err(EvalError::Invalid(format!(
                    "metric `{metric}` appears twice for `{cand}` in setting `{setting}`: \
                     candidates are identified by {candidate:?}; with several runs per \
                     candidate (depths, seeds), rank by `run` or add the column that tells \
                     them apart"
                )));
            }
            Ok(())
        };
        if long {
            let metric = &row["metric"];
            if opts
                .metrics
                .iter()
                .any(|m| m.alternatives.iter().any(|a| a == metric))
            {
                put(metric, &row["value"])?;
            } else {
                continue;
            }
        } else {
            for name in opts.metrics.iter().flat_map(|m| &m.alternatives) {
                if let Some(v) = row.get(name) {
                    put(name, v)?;
                }
            }
        }
        if !settings.contains(&setting) {
            settings.push(setting.clone());
            let sampler = group_by
                .iter()
                .any(|c| c == "setting")
                .then(|| row.get("setting").and_then(|v| SamplerKey::parse(v)))
                .flatten();
            setting_keys.push(sampler);
        }
        if !candidates.contains(&cand) {
            candidates.push(cand.clone());
        }
    }
    if settings.is_empty() {
        return Err(EvalError::Invalid(format!(
            "none of the metrics {:?} is in the results",
            opts.metrics.iter().map(|m| &m.name).collect::<Vec<_>>()
        )));
    }
    let dirs: Vec<_> = opts.metrics.iter().map(|m| m.direction).collect();
    let mut ranks: BTreeMap<&str, Vec<u32>> = BTreeMap::new();
    let mut missing = Vec::new();
    for setting in &settings {
        // Per metric, the alternative this setting uses: the first any candidate has here, so
        // every candidate of the setting is compared on the same score.
        let used: Vec<&str> = opts
            .metrics
            .iter()
            .map(|m| {
                m.alternatives
                    .iter()
                    .find(|a| {
                        candidates.iter().any(|c| {
                            table
                                .get(&(setting.clone(), c.clone()))
                                .is_some_and(|v| v.contains_key(*a))
                        })
                    })
                    .unwrap_or(&m.alternatives[0])
                    .as_str()
            })
            .collect();
        let mut points = Vec::new();
        for cand in &candidates {
            let values = table.get(&(setting.clone(), cand.clone()));
            let point: Option<Vec<f64>> = used
                .iter()
                .map(|name| values.and_then(|v| v.get(*name).copied()))
                .collect();
            match point {
                Some(p) => points.push(p),
                None => {
                    let lacks: Vec<&str> = used
                        .iter()
                        .copied()
                        .filter(|name| !values.is_some_and(|v| v.contains_key(*name)))
                        .collect();
                    missing.push(format!("`{cand}` in `{setting}` ({})", lacks.join(", ")))
                }
            }
        }
        if missing.is_empty() {
            for (cand, r) in candidates.iter().zip(fronts(&points, &dirs)) {
                ranks.entry(cand).or_default().push(r);
            }
        }
    }
    if !missing.is_empty() {
        return Err(EvalError::Invalid(format!(
            "metrics missing (every candidate needs every metric in every setting): {}",
            missing.join(", ")
        )));
    }
    let step_subsets = column_settings(&settings, &setting_keys, opts.columns.as_deref())?;
    let mean_of = |r: &[u32], idx: &mut dyn Iterator<Item = usize>| -> f64 {
        let v: Vec<f64> = idx.map(|i| r[i] as f64).collect();
        v.iter().sum::<f64>() / v.len() as f64
    };
    let mut rows: Vec<RankedCandidate> = ranks
        .into_iter()
        .map(|(c, r)| RankedCandidate {
            candidate: c.to_string(),
            mean: mean_of(&r, &mut (0..r.len())),
            subset_means: step_subsets
                .iter()
                .map(|(_, idx)| mean_of(&r, &mut idx.iter().copied()))
                .collect(),
            ranks: r,
        })
        .collect();
    rows.sort_by(|a, b| {
        a.mean
            .total_cmp(&b.mean)
            .then(a.candidate.cmp(&b.candidate))
    });
    Ok(Ranking {
        settings,
        step_subsets,
        rows,
    })
}

/// Each extra column with the indices of the settings it averages. The paper's columns are kept
/// when the table has their setting; a requested column that matches none is an error.
fn column_settings(
    settings: &[String],
    keys: &[Option<SamplerKey>],
    requested: Option<&[RankColumn]>,
) -> Result<Vec<(String, Vec<usize>)>> {
    let paper = RankColumn::paper();
    let columns = requested.unwrap_or(&paper);
    let mut out = Vec::new();
    for column in columns {
        let idx: Vec<usize> = (0..settings.len())
            .filter(|&i| keys[i].is_some_and(|k| column.settings.iter().any(|c| c.matches(&k))))
            .collect();
        if idx.is_empty() {
            if requested.is_some() {
                return Err(EvalError::Invalid(format!(
                    "rank column `{}` matches none of the settings: {}",
                    column.label,
                    settings.join(", ")
                )));
            }
            continue;
        }
        out.push((column.label.clone(), idx));
    }
    Ok(out)
}

impl Ranking {
    /// CSV: `candidate,mean_rank,n_settings,mean_rank[<n> steps]...,rank[<setting>]...`.
    pub fn to_csv(&self) -> String {
        let mut header = vec![
            "candidate".to_string(),
            "mean_rank".into(),
            "n_settings".into(),
        ];
        header.extend(
            self.step_subsets
                .iter()
                .map(|(l, _)| format!("mean_rank[{l}]")),
        );
        header.extend(self.settings.iter().map(|s| format!("rank[{s}]")));
        let mut out = crate::csv::line(&header);
        for r in &self.rows {
            let mut f = vec![
                r.candidate.clone(),
                format!("{:.4}", r.mean),
                r.ranks.len().to_string(),
            ];
            f.extend(r.subset_means.iter().map(|m| format!("{m:.4}")));
            f.extend(r.ranks.iter().map(|x| x.to_string()));
            out.push_str(&crate::csv::line(&f));
        }
        out
    }

    /// A plain-text table like the paper's Table 1: position, candidate, mean rank, and the
    /// per-setting ranks (settings listed below the table).
    pub fn to_table(&self) -> String {
        let width = self
            .rows
            .iter()
            .map(|r| r.candidate.len())
            .max()
            .unwrap_or(9)
            .max(9);
        let mut s = format!("{:>3}  {:<width$}  {:>9}", "#", "candidate", "mean rank");
        for (label, _) in &self.step_subsets {
            s.push_str(&format!(" {label:>9}"));
        }
        for i in 0..self.settings.len() {
            s.push_str(&format!(" {:>4}", format!("s{}", i + 1)));
        }
        s.push('\n');
        for (i, r) in self.rows.iter().enumerate() {
            s.push_str(&format!(
                "{:>3}  {:<width$}  {:>9.2}",
                i + 1,
                r.candidate,
                r.mean
            ));
            for m in &r.subset_means {
                s.push_str(&format!(" {m:>9.2}"));
            }
            for x in &r.ranks {
                s.push_str(&format!(" {x:>4}"));
            }
            s.push('\n');
        }
        s.push_str("settings:\n");
        for (i, st) in self.settings.iter().enumerate() {
            s.push_str(&format!("  s{}: {st}\n", i + 1));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pareto::parse_metrics;

    /// A row from `(column, value)` pairs.
    fn row<V: ToString>(pairs: &[(&str, V)]) -> Row {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn wide(rows: &[(&str, &str, f64, f64)]) -> Vec<Row> {
        rows.iter()
            .map(|(c, s, clip, fid)| {
                row(&[
                    ("run", c.to_string()),
                    ("setting", s.to_string()),
                    ("clip", clip.to_string()),
                    ("fid", fid.to_string()),
                ])
            })
            .collect()
    }

    fn opts() -> RankOptions {
        RankOptions {
            metrics: parse_metrics("clip:max,fid:min").unwrap(),
            candidate: vec!["run".into()],
            group_by: vec![],
            columns: None,
        }
    }

    /// The paper's Table 2 (25 sampling steps; CLIP / FID on ImageNet and CC12M) for four
    /// formulations, ranked by hand:
    /// ImageNet: mode(1.75) dominates all -> 1; lognorm dominates rf and eps -> 2; rf and eps
    /// trade off -> 3, 3. CC12M: lognorm dominates all -> 1; eps dominates mode and rf -> 2;
    /// mode dominates rf -> 3; rf -> 4. Means: lognorm 1.5, mode 2.0, eps 2.5, rf 3.5.
    #[test]
    fn table_2_by_hand() {
        let rows = wide(&[
            ("rf", "imagenet", 0.247, 49.70),
            ("eps/linear", "imagenet", 0.245, 48.42),
            ("rf/lognorm(0.00, 1.00)", "imagenet", 0.250, 45.78),
            ("rf/mode(1.75)", "imagenet", 0.253, 44.39),
            ("rf", "cc12m", 0.217, 94.90),
            ("eps/linear", "cc12m", 0.222, 90.34),
            ("rf/lognorm(0.00, 1.00)", "cc12m", 0.224, 89.91),
            ("rf/mode(1.75)", "cc12m", 0.218, 94.06),
        ]);
        let r = rank_rows(&rows, &opts()).unwrap();
        assert_eq!(r.settings, vec!["imagenet", "cc12m"]);
        let got: Vec<(&str, Vec<u32>, f64)> = r
            .rows
            .iter()
            .map(|x| (x.candidate.as_str(), x.ranks.clone(), x.mean))
            .collect();
        assert_eq!(
            got,
            vec![
                ("rf/lognorm(0.00, 1.00)", vec![2, 1], 1.5),
                ("rf/mode(1.75)", vec![1, 3], 2.0),
                ("eps/linear", vec![3, 2], 2.5),
                ("rf", vec![3, 4], 3.5),
            ]
        );
        let csv = r.to_csv();
        assert!(csv.starts_with("candidate,mean_rank,n_settings,rank[imagenet],rank[cc12m]\n"));
        assert!(
            csv.contains("\"rf/lognorm(0.00, 1.00)\",1.5000,2,2,1\n"),
            "{csv}"
        );
    }

    #[test]
    fn single_setting_and_ties() {
        let rows = wide(&[
            ("a", "s", 0.2, 10.0),
            ("b", "s", 0.2, 10.0),
            ("c", "s", 0.1, 10.0),
        ]);
        let r = rank_rows(&rows, &opts()).unwrap();
        let got: Vec<(&str, f64)> = r
            .rows
            .iter()
            .map(|x| (x.candidate.as_str(), x.mean))
            .collect();
        assert_eq!(got, vec![("a", 1.0), ("b", 1.0), ("c", 2.0)]);
    }

    #[test]
    fn long_rows_group_by_weights_and_setting() {
        // Two weights x one sampler setting = two settings; other metrics are ignored.
        let mut rows = Vec::new();
        for (run, weights, clip, fid) in [
            ("x", "ema", 0.3, 5.0),
            ("y", "ema", 0.2, 6.0),
            ("x", "raw", 0.1, 9.0),
            ("y", "raw", 0.2, 6.0),
        ] {
            for (metric, value) in [("clip", clip), ("fid", fid), ("val_loss", 1.0)] {
                let value = value.to_string();
                rows.push(row(&[
                    ("run", run),
                    ("weights", weights),
                    ("setting", "s50_cfg5"),
                    ("metric", metric),
                    ("value", &value),
                ]));
            }
        }
        let r = rank_rows(&rows, &opts()).unwrap();
        assert_eq!(r.settings, vec!["ema s50_cfg5", "raw s50_cfg5"]);
        assert_eq!(r.rows[0].mean, 1.5);
        assert_eq!(r.rows[1].mean, 1.5);
    }

    /// Table 1's columns: the mean rank over all settings and over the paper's 5-step and
    /// 50-step settings (CFG 5). Candidate `x` wins every 50-step setting and loses the 5-step
    /// one.
    #[test]
    fn step_count_columns() {
        let mut rows = Vec::new();
        for (setting, x_fid, y_fid) in [
            ("s50_cfg1", 5.0, 6.0),
            ("s50_cfg5", 4.0, 7.0),
            ("s5_cfg5", 9.0, 8.0),
        ] {
            for (run, fid) in [("x", x_fid), ("y", y_fid)] {
                for weights in ["raw", "ema0.99"] {
                    rows.push(row(&[
                        ("run", run.to_string()),
                        ("weights", weights.to_string()),
                        ("setting", setting.to_string()),
                        ("clip", "0.2".to_string()),
                        ("fid", fid.to_string()),
                    ]));
                }
            }
        }
        let r = rank_rows(&rows, &opts()).unwrap();
        let labels: Vec<&str> = r.step_subsets.iter().map(|(l, _)| l.as_str()).collect();
        assert_eq!(labels, vec!["5 steps", "50 steps"]);
        // One sampler setting each (s50_cfg1 is not in "50 steps"), under both weights.
        assert_eq!(r.step_subsets[0].1.len(), 2);
        assert_eq!(r.step_subsets[1].1.len(), 2);
        let x = r.rows.iter().find(|c| c.candidate == "x").unwrap();
        let y = r.rows.iter().find(|c| c.candidate == "y").unwrap();
        assert_eq!(x.subset_means, vec![2.0, 1.0]);
        assert_eq!(y.subset_means, vec![1.0, 2.0]);
        assert!((x.mean - 8.0 / 6.0).abs() < 1e-12);
        let csv = r.to_csv();
        assert!(
            csv.starts_with(
                "candidate,mean_rank,n_settings,mean_rank[5 steps],mean_rank[50 steps],"
            ),
            "{csv}"
        );
        assert!(r.to_table().contains("50 steps"));
        let key = SamplerKey::parse("s25_cfg5").unwrap();
        assert!(key.matches(&SamplerKey::parse("s25_cfg5.0").unwrap()));
        assert_eq!((key.steps, key.cfg), (25, 5.0));
        assert_eq!(SamplerKey::parse("validation"), None);
        assert_eq!(SamplerKey::parse("s5_cfgNaN"), None);
        // A chosen column: both 50-step settings.
        let mut o = opts();
        o.columns = Some(vec![RankColumn::parse("all 50=s50_cfg1+s50_cfg5").unwrap()]);
        let r = rank_rows(&rows, &o).unwrap();
        assert_eq!(r.step_subsets[0].1.len(), 4);
        o.columns = Some(vec![RankColumn::parse("25=s25_cfg5").unwrap()]);
        let e = rank_rows(&rows, &o).unwrap_err().to_string();
        assert!(e.contains("rank column `25` matches none"), "{e}");
        for bad in ["s5_cfg5", "=s5_cfg5", "x=s5", "x=s5_cfg5+"] {
            assert!(RankColumn::parse(bad).is_err(), "{bad}");
        }
    }

    /// Settings of the native sampler frame (`s5_cfg5_native`) are other settings than the RF
    /// frame's: the paper's "5 steps" column takes only `s5_cfg5`, and a column asks for the
    /// native ones by name. `x` wins the RF setting, `y` the native one.
    #[test]
    fn sampler_keys_keep_the_frame_apart() {
        let mut rows = Vec::new();
        for (setting, x_fid, y_fid) in [("s5_cfg5", 4.0, 6.0), ("s5_cfg5_native", 7.0, 5.0)] {
            for (run, fid) in [("x", x_fid), ("y", y_fid)] {
                rows.push(row(&[
                    ("run", run.to_string()),
                    ("setting", setting.to_string()),
                    ("clip", "0.2".to_string()),
                    ("fid", fid.to_string()),
                ]));
            }
        }
        let r = rank_rows(&rows, &opts()).unwrap();
        assert_eq!(r.step_subsets.len(), 1, "{:?}", r.step_subsets);
        let x = r.rows.iter().find(|c| c.candidate == "x").unwrap();
        assert_eq!((x.mean, x.subset_means.clone()), (1.5, vec![1.0]));
        let mut o = opts();
        o.columns = Some(vec![RankColumn::parse("5 native=s5_cfg5_native").unwrap()]);
        let r = rank_rows(&rows, &o).unwrap();
        let y = r.rows.iter().find(|c| c.candidate == "y").unwrap();
        assert_eq!(y.subset_means, vec![1.0]);
        let native = SamplerKey::parse("s5_cfg5_native").unwrap();
        assert_eq!(
            (native.steps, native.cfg, native.frame),
            (5, 5.0, SamplerFrame::Native)
        );
        assert!(!native.matches(&SamplerKey::parse("s5_cfg5").unwrap()));
        for frame in SamplerFrame::ALL {
            let label = flowscale_train::sampling::setting_label(25, 2.5, frame);
            let key = SamplerKey::parse(&label).unwrap();
            assert_eq!((key.steps, key.cfg, key.frame), (25, 2.5, frame), "{label}");
        }
        assert_eq!(SamplerKey::parse("s5_cfg5_ddim"), None);
    }

    /// The acceptance table of the protocol: 3 formulations x 2 datasets x 6 sampler settings x
    /// EMA/raw = 24 settings, long rows as `flowscale eval` writes them, each formulation trained
    /// once per dataset (two run ids). Ranks per setting, chosen by hand (equal CLIP, so FID
    /// orders them, except one setting where A and B trade CLIP for FID):
    /// - s5_cfg5 (4 settings): B 1, C 2, A 3;
    /// - s50_cfg5: imagenet A 1, B 2, C 3; cc12m C 1, A 2, B 3;
    /// - the other four sampler settings (16 settings): A 1, B 2, C 3, except cc12m raw
    ///   s10_cfg5: A and B on the front (1, 1), C 2.
    ///
    /// All: A (4*3 + 2*1 + 2*2 + 16*1) / 24 = 34/24; B (4*1 + 2*2 + 2*3 + 15*2 + 1) / 24 =
    /// 45/24; C (4*2 + 2*3 + 2*1 + 15*3 + 2) / 24 = 63/24. 5 steps: A 3, B 1, C 2. 50 steps:
    /// A 1.5, B 2.5, C 2.
    #[test]
    fn table_1_from_synthetic_rows() {
        let sampler = [
            "s50_cfg1",
            "s50_cfg2.5",
            "s50_cfg5",
            "s5_cfg5",
            "s10_cfg5",
            "s25_cfg5",
        ];
        let mut rows = Vec::new();
        for dataset in ["imagenet", "cc12m"] {
            for weights in ["ema0.99", "raw"] {
                for setting in sampler {
                    // (CLIP, FID) of A, B, C. With equal CLIP the FID is the rank.
                    let by_fid = |ranks: [f64; 3]| ranks.map(|r| (0.25, r));
                    let points = match (setting, dataset) {
                        ("s5_cfg5", _) => by_fid([3.0, 1.0, 2.0]),
                        ("s50_cfg5", "imagenet") => by_fid([1.0, 2.0, 3.0]),
                        ("s50_cfg5", _) => by_fid([2.0, 3.0, 1.0]),
                        // A and B trade CLIP for FID (one front), both dominate C.
                        ("s10_cfg5", "cc12m") if weights == "raw" => {
                            [(0.30, 2.0), (0.20, 1.0), (0.10, 9.0)]
                        }
                        _ => by_fid([1.0, 2.0, 3.0]),
                    };
                    for (formulation, (clip, fid)) in ["A", "B", "C"].into_iter().zip(points) {
                        for (metric, value) in [("clip_score", clip), ("fid", fid)] {
                            rows.push(row(&[
                                ("run", format!("{formulation}-{dataset}")),
                                ("dataset", dataset.to_string()),
                                ("formulation", formulation.to_string()),
                                ("depth", "2".to_string()),
                                ("weights", weights.to_string()),
                                ("setting", setting.to_string()),
                                ("metric", metric.to_string()),
                                ("value", value.to_string()),
                            ]));
                        }
                    }
                }
            }
        }
        let o = RankOptions {
            metrics: parse_metrics("clip_score:max,fid:min").unwrap(),
            candidate: Vec::new(),
            group_by: Vec::new(),
            columns: None,
        };
        let r = rank_rows(&rows, &o).unwrap();
        assert_eq!(r.settings.len(), 24);
        let labels: Vec<&str> = r.step_subsets.iter().map(|(l, _)| l.as_str()).collect();
        assert_eq!(labels, ["5 steps", "50 steps"]);
        assert!(r.step_subsets.iter().all(|(_, idx)| idx.len() == 4));
        let got: Vec<(&str, f64, Vec<f64>)> = r
            .rows
            .iter()
            .map(|c| (c.candidate.as_str(), c.mean * 24.0, c.subset_means.clone()))
            .collect();
        let want = [
            ("A", 34.0, vec![3.0, 1.5]),
            ("B", 45.0, vec![1.0, 2.5]),
            ("C", 63.0, vec![2.0, 2.0]),
        ];
        assert_eq!(got.len(), 3);
        for ((c, all, cols), (wc, wall, wcols)) in got.iter().zip(want) {
            assert_eq!(*c, wc);
            assert!(
                (all - wall).abs() < 1e-9,
                "{c}: {all} / 24, want {wall} / 24"
            );
            assert_eq!(*cols, wcols, "{c}");
        }
        // By run, each run lacks the other dataset's settings: the gap is named, not ranked.
        let by_run = RankOptions {
            candidate: vec!["run".into()],
            ..o
        };
        let e = rank_rows(&rows, &by_run).unwrap_err().to_string();
        assert!(e.contains("`A-imagenet` in `cc12m "), "{e}");
    }

    #[test]
    fn gaps_and_unknown_columns_are_named() {
        let rows = wide(&[
            ("a", "s1", 0.2, 10.0),
            ("b", "s1", 0.2, 9.0),
            ("a", "s2", 0.1, 1.0),
        ]);
        let e = rank_rows(&rows, &opts()).unwrap_err().to_string();
        assert!(e.contains("`b` in `s2`"), "{e}");
        let mut o = opts();
        o.group_by = vec!["dataset".into()];
        let e = rank_rows(&rows, &o).unwrap_err().to_string();
        assert!(e.contains("column `dataset`"), "{e}");
    }

    /// One adherence score across two datasets that name it differently (class accuracy on a
    /// class-conditional set, prompt-class accuracy on a captioned one): each setting ranks on
    /// the name its rows have, and a candidate lacking that name is a gap, not a rank computed
    /// on the other score.
    #[test]
    fn metric_alternatives_span_datasets() {
        let mut rows = Vec::new();
        // fashion: p has the better accuracy and the worse FID (a trade-off: both front 1);
        // emoji: q dominates p.
        for (dataset, metric, cand, acc, fid) in [
            ("fashion", "class_accuracy", "p", 0.9, 20.0),
            ("fashion", "class_accuracy", "q", 0.8, 10.0),
            ("emoji", "prompt_class_accuracy", "p", 0.3, 50.0),
            ("emoji", "prompt_class_accuracy", "q", 0.4, 40.0),
        ] {
            for (m, v) in [(metric, acc), ("fid", fid)] {
                rows.push(row(&[
                    ("formulation", cand.to_string()),
                    ("dataset", dataset.to_string()),
                    ("setting", "s5_cfg5".to_string()),
                    ("metric", m.to_string()),
                    ("value", v.to_string()),
                ]));
            }
        }
        let mut o = opts();
        o.candidate = vec![];
        o.metrics = parse_metrics("class_accuracy|prompt_class_accuracy:max,fid:min").unwrap();
        let r = rank_rows(&rows, &o).unwrap();
        assert_eq!(r.settings, vec!["fashion s5_cfg5", "emoji s5_cfg5"]);
        let got: Vec<(&str, f64)> = r
            .rows
            .iter()
            .map(|c| (c.candidate.as_str(), c.mean))
            .collect();
        assert_eq!(got, vec![("q", 1.0), ("p", 1.5)]);
        // Without the alternative, the emoji settings lack the score: an error naming it.
        o.metrics = parse_metrics("class_accuracy:max,fid:min").unwrap();
        let e = rank_rows(&rows, &o).unwrap_err().to_string();
        assert!(e.contains("`p` in `emoji s5_cfg5` (class_accuracy)"), "{e}");
        // A candidate that has the other name in a setting is a gap naming the metric.
        for r in rows.iter_mut() {
            if r["formulation"] == "p" && r["metric"] == "prompt_class_accuracy" {
                r.insert("metric".into(), "class_accuracy".into());
            }
        }
        o.metrics = parse_metrics("class_accuracy|prompt_class_accuracy:max,fid:min").unwrap();
        let e = rank_rows(&rows, &o).unwrap_err().to_string();
        assert!(e.contains("`q` in `emoji s5_cfg5` (class_accuracy)"), "{e}");
    }
}
