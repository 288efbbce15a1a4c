//! `flowscale report` on sweeps whose runs are written, not trained: each run's `metrics.jsonl`
//! holds validation losses from a known law, and a checkpoint holds its model config (so the
//! report knows its size). The report must state what those losses support: fits within one
//! formulation only, ranks within one formulation only, and a fit that the data do not
//! constrain as no result.

use common::write;
use flowscale_study::report::{write_report, Report};
use flowscale_study::Sweep;
use flowscale_train::checkpoint::CheckpointStore;
use std::path::Path;

mod common;

/// Validation steps of every synthetic run.
const STEPS: [u64; 6] = [100, 200, 400, 800, 1600, 3200];

/// Writes run `i` of `sweep` as if trained: training lines giving `flops_per_step`, first-EMA
/// validation losses `loss(step)` at `STEPS`, and a last checkpoint whose `config.json` is the
/// tiny model of the run's depth.
fn fake_run(sweep: &Sweep, i: usize, flops_per_step: f64, loss: impl Fn(u64) -> f64) {
    let dir = sweep.run_dir(i);
    std::fs::create_dir_all(&dir).unwrap();
    let mut lines = Vec::new();
    for step in STEPS {
        lines.push(format!(
            r#"{{"kind":"train","step":{step},"train_loss":1.0,"progress_train_flops":{}}}"#,
            step as f64 * flops_per_step
        ));
        lines.push(format!(
            r#"{{"kind":"validation","step":{step},"weights":"ema0.999","val_loss":{}}}"#,
            loss(step)
        ));
    }
    std::fs::write(dir.join("metrics.jsonl"), lines.join("\n") + "\n").unwrap();
    let depth = sweep.runs[i].config.model.depth;
    let model = flowscale_models::MmditConfig::tiny(depth.into())
        .to_diffusers_json()
        .unwrap();
    let store = CheckpointStore::new(dir.join("checkpoints"), 1, 0);
    store
        .save(
            *STEPS.last().unwrap(),
            &[],
            &[("config.json", model.as_bytes())],
            &0u64,
        )
        .unwrap();
}

/// `L(C) = scale (2 (C / 1e12)^(-b) + 0.5)` at `step` of a run with `flops_per_step`.
fn compute_law(scale: f64, b: f64, flops_per_step: f64) -> impl Fn(u64) -> f64 {
    move |step| scale * (2.0 * (step as f64 * flops_per_step / 1e12).powf(-b) + 0.5)
}

/// A sweep of `axes` (TOML lines) with every run written by `fill(sweep, i)`, and its report.
fn report_of(dir: &Path, axes: &str, fill: impl Fn(&Sweep, usize)) -> (Report, String) {
    let text = format!(
        "[sweep]\nname = \"written\"\nbase = \"configs/base.toml\"\nout_dir = \"OUT\"\n[axes]\n{axes}"
    );
    let sweep = Sweep::load(&write(dir, &text)).unwrap();
    for i in 0..sweep.runs.len() {
        fill(&sweep, i);
    }
    let report = write_report(&sweep).unwrap();
    let md = std::fs::read_to_string(&report.markdown).unwrap();
    (report, md)
}

fn depth(sweep: &Sweep, i: usize) -> f64 {
    sweep.runs[i].config.model.depth as f64
}

/// The SVG of the loss-vs-compute plot: its legend names every series drawn.
fn compute_plot_svg(report: &Report) -> String {
    std::fs::read_to_string(report.markdown.with_file_name("loss-vs-flops.svg")).unwrap()
}

/// The table rows of `md` whose first cells are `lead`.
fn rows<'a>(md: &'a str, lead: &str) -> Vec<&'a str> {
    md.lines().filter(|l| l.starts_with(lead)).collect()
}

/// Two formulations on different loss scales (5x apart) with different exponents: each is
/// fitted alone and recovers its own law; no law, frontier or rank spans both.
#[test]
fn a_two_formulation_report_fits_and_ranks_each_formulation_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let axes = "\"formulation.name\" = [\"rf\", \"eps/linear\"]\n\"model.depth\" = [1, 2, 3]\n";
    let (report, md) = report_of(tmp.path(), axes, |sweep, i| {
        let fps = 1e9 * depth(sweep, i);
        let law = if sweep.runs[i].config.formulation.name == "rf" {
            compute_law(1.0, 0.3, fps)
        } else {
            compute_law(5.0, 0.5, fps)
        };
        fake_run(sweep, i, fps, law);
    });
    let names: Vec<&str> = report
        .scaling
        .iter()
        .map(|s| s.formulation.as_str())
        .collect();
    assert_eq!(names, ["eps/linear", "rf"]);
    for (s, b) in report.scaling.iter().zip([0.5, 0.3]) {
        assert_eq!(s.compute_points.len(), 3 * STEPS.len());
        assert!(s
            .compute_points
            .iter()
            .all(|p| report.runs[p.2].formulation == s.formulation));
        let fit = s.fit.as_ref().unwrap();
        assert!((fit.law.b - b).abs() < 1e-4, "{}: {fit:?}", s.formulation);
        assert_eq!(fit.unconstrained(), None);
        assert_eq!(s.frontier_curves.len(), 3);
        assert!(s
            .frontier_curves
            .iter()
            .all(|c| c.label.contains(&s.formulation)));
    }
    // One line per formulation, each with its own exponent; no fit over every run.
    assert!(
        md.contains("No law or frontier is fitted across the 2 formulations"),
        "{md}"
    );
    assert!(
        !md.contains("Compute fit over every validation point of every run"),
        "{md}"
    );
    let line = |name: &str| rows(&md, &format!("- `{name}`: "))[0].to_owned();
    assert!(line("rf").contains("b = 0.3000 ["), "{md}");
    assert!(line("eps/linear").contains("b = 0.5000 ["), "{md}");
    assert!(md.contains("Compute-optimal frontier: `rf`"), "{md}");
    assert!(
        md.contains("Compute-optimal frontier: `eps/linear`"),
        "{md}"
    );
    let svg = compute_plot_svg(&report);
    assert!(
        svg.contains("fit (rf): b = 0.300"),
        "fit curve per formulation"
    );
    assert!(svg.contains("fit (eps/linear): b = 0.500"));
    // Ranked within each formulation, best (largest model: most compute per step) first.
    assert!(
        md.contains("| formulation | rank in formulation | run |"),
        "{md}"
    );
    assert!(rows(&md, "| rank |").is_empty(), "{md}");
    for name in ["rf", "eps/linear"] {
        let group = rows(&md, &format!("| `{name}` | "));
        assert_eq!(group.len(), 3, "{md}");
        for (k, row) in group.iter().enumerate() {
            assert!(
                row.starts_with(&format!("| `{name}` | {} | ", k + 1)),
                "{row}"
            );
            assert!(row.contains(&format!("model.depth={}", 3 - k)), "{row}");
        }
    }
}

/// One formulation: the runs keep their single ranking, and a law the data determine is
/// reported with its numbers and drawn.
#[test]
fn a_one_formulation_report_keeps_the_rank_and_reports_a_measured_fit() {
    let tmp = tempfile::tempdir().unwrap();
    let (report, md) = report_of(tmp.path(), "\"model.depth\" = [1, 2, 3]\n", |sweep, i| {
        let fps = 1e9 * depth(sweep, i);
        fake_run(sweep, i, fps, compute_law(1.0, 0.3, fps));
    });
    assert_eq!(report.scaling.len(), 1);
    assert!(md.contains("| rank | run | setting |"), "{md}");
    assert!(!md.contains("rank in formulation"), "{md}");
    let first = rows(&md, "| 1 |");
    assert_eq!(first.len(), 1);
    assert!(first[0].contains("model.depth=3"), "{md}");
    assert!(md.contains("Compute fit over every validation point of every run"));
    assert!(md.contains("b = 0.3000 [0.3000, 0.3000]"), "{md}");
    assert!(!md.contains("not constrained"), "{md}");
    assert!(compute_plot_svg(&report).contains("fit: b = 0.300"));
}

/// Losses that do not fall with compute (noise around a constant): the compute fit's exponent
/// is whatever the search range allows, so the report says it is not constrained, gives the
/// evidence, states no law and draws no fit curve.
#[test]
fn a_fit_the_data_do_not_constrain_is_reported_as_no_result() {
    let tmp = tempfile::tempdir().unwrap();
    // Fixed pseudo-random wiggles of up to 3% around 1.0, different per run and step.
    let noise = |i: usize, step: u64| {
        let h = (i as u64 * 7919 + step * 104_729) % 1000;
        1.0 + 0.03 * (h as f64 / 500.0 - 1.0)
    };
    let (report, md) = report_of(tmp.path(), "\"model.depth\" = [1, 2]\n", |sweep, i| {
        fake_run(sweep, i, 1e9 * depth(sweep, i), |step| noise(i, step));
    });
    let fit = report.scaling[0].fit.as_ref().unwrap();
    let free = fit.unconstrained().expect("flagged");
    assert_eq!(free.parameter, "b");
    let expected = format!(
        "`L(C) = a (C / C0)^(-b) + c`: not constrained by the data, so no law is reported: \
         the exponent b (estimate {:.4}, 95% bootstrap interval {:.4} to {:.4})",
        fit.law.b, fit.b_ci.0, fit.b_ci.1
    );
    assert!(md.contains(&expected), "{md}");
    // No `b = <number> [` anywhere: the exponent is not presented as a result.
    let as_result = md.match_indices("b = ").any(|(at, _)| {
        md[at + 4..]
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_digit())
    });
    assert!(!as_result, "{md}");
    assert!(!compute_plot_svg(&report).contains("fit: b ="));
}
