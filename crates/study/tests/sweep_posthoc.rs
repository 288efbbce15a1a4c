//! `[eval] posthoc_stds`: a sweep evaluates each run also at reconstructed post-hoc EMA lengths
//! (EDM2), and the report picks each run's best and ranks the runs at their picks. Needs
//! Fashion-MNIST (the shared tiny run).

use common::write;
use flowscale_eval::evaluate::reconstructed_eval_dir;
use flowscale_study::{EvalStatus, Sweep};
use flowscale_train::TrainOptions;

mod common;

fn sweep_text(tmp: &std::path::Path, stds: &str, posthoc: bool) -> String {
    let set_posthoc = if posthoc {
        r#""ema.posthoc" = { stds = [0.05, 0.10], snapshot_every = 2 }"#
    } else {
        ""
    };
    format!(
        r#"
[sweep]
name = "posthoc"
base = "configs/base.toml"
out_dir = "OUT"
[set]
"train.steps" = 6
"checkpoint.keep_last" = 1
{set_posthoc}
[axes]
"formulation.name" = ["rf/lognorm(0.00, 1.00)", "eps/linear"]
[eval]
posthoc_stds = {stds}
set = [
    "eval.device=\"cpu\"",
    "eval.weights=[\"ema\"]",
    "sampling.n=6",
    "sampling.batch_size=6",
    "sampling.settings=[{{steps = 2, cfg = 1.0}}, {{steps = 5, cfg = 5.0}}]",
    "sampling.grid_rows=1",
    "sampling.grid_cols=3",
    "fid.enabled=false",
    "classifier.path=\"{cls}\"",
    "classifier.train_steps=20",
]
"#,
        cls = tmp.join("cls/c.safetensors").display(),
    )
}

/// The mean class accuracy over the sampler settings of one results.json, read independently.
fn mean_accuracy(dir: &std::path::Path) -> f64 {
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("results.json")).unwrap()).unwrap();
    let rows = doc["rows"].as_array().expect("rows");
    let values: Vec<f64> = rows
        .iter()
        .filter(|r| r["metric"] == "class_accuracy" && r["setting"] != "validation")
        .map(|r| {
            r["value"]
                .as_f64()
                .or_else(|| r["value"].as_str().and_then(|s| s.parse().ok()))
                .unwrap()
        })
        .collect();
    assert_eq!(values.len(), 2, "{rows:?}");
    values.iter().sum::<f64>() / 2.0
}

#[test]
fn each_run_is_evaluated_at_every_posthoc_std_and_ranked_at_its_best() {
    tch::set_num_threads(2);
    let tmp = tempfile::tempdir().unwrap();
    let path = write(tmp.path(), &sweep_text(tmp.path(), "[0.05, 0.15]", true));
    let sweep = Sweep::load(&path).unwrap();
    assert_eq!(sweep.posthoc_stds, vec![0.05, 0.15]);
    let quiet = TrainOptions {
        quiet: true,
        ..Default::default()
    };
    assert!(sweep
        .posthoc_status(0)
        .unwrap()
        .iter()
        .all(|(_, s)| *s == EvalStatus::NotTrained));
    for i in 0..2 {
        sweep.run_one(i, &quiet).unwrap();
        sweep.evaluate_run(i, &mut |_| {}).unwrap().unwrap();
        assert!(sweep
            .posthoc_status(i)
            .unwrap()
            .iter()
            .all(|(_, s)| *s == EvalStatus::Pending(6)));
        let done = sweep.evaluate_posthoc(i, &mut |_| {}).unwrap();
        assert_eq!(done.len(), 2);
        for (std, dir) in &done {
            assert_eq!(*dir, reconstructed_eval_dir(&sweep.run_dir(i), *std, 6));
            assert!(dir.join("results.json").is_file());
        }
    }
    // Up to date: a second call evaluates nothing.
    let first = reconstructed_eval_dir(&sweep.run_dir(0), 0.05, 6).join("results.json");
    let stamp = std::fs::metadata(&first).unwrap().modified().unwrap();
    sweep.evaluate_posthoc(0, &mut |_| {}).unwrap();
    assert_eq!(
        std::fs::metadata(&first).unwrap().modified().unwrap(),
        stamp
    );

    let report = flowscale_study::report::write_report(&sweep).unwrap();
    let p = report.results.posthoc.as_ref().expect("post-hoc results");
    assert!(p.missing.is_empty(), "{:?}", p.missing);
    assert_eq!(p.metric, "class_accuracy:max");
    // Each pick is the std with the higher mean accuracy (the shorter one on a tie).
    for i in 0..2 {
        let id = &sweep.runs[i].id;
        let a = mean_accuracy(&reconstructed_eval_dir(&sweep.run_dir(i), 0.05, 6));
        let b = mean_accuracy(&reconstructed_eval_dir(&sweep.run_dir(i), 0.15, 6));
        let want = if b > a { 0.15 } else { 0.05 };
        let got = p.picks.iter().find(|(r, _)| r == id).unwrap().1;
        assert_eq!(got, want, "run {id}: accuracies {a} (0.05) and {b} (0.15)");
    }
    // Post-hoc rows name their std and the power-function EMA weights.
    assert_eq!(
        p.rows
            .iter()
            .filter(|r| r["metric"] == "class_accuracy")
            .count(),
        2 * 2 * 2
    );
    assert!(p.rows.iter().all(|r| r["weights"].starts_with("phema")));
    let (_, ranking) = p.ranking.as_ref().expect("ranked at the picks");
    assert_eq!(ranking.rows.len(), 2);
    // One weight set (the picked phema) x 2 sampler settings.
    assert_eq!(ranking.settings.len(), 2);
    // The fixed-EMA results hold no post-hoc rows.
    assert!(report
        .results
        .rows
        .iter()
        .all(|r| !r["weights"].starts_with("phema")));
    let md = std::fs::read_to_string(&report.markdown).unwrap();
    for needle in [
        "### Post-hoc EMA: each run at its best EMA length",
        "| run | setting | std 0.05 | std 0.15 | best |",
        "| # | run | setting | best std | all | fixed-EMA place |",
    ] {
        assert!(md.contains(needle), "{needle}\n{md}");
    }
    assert!(report
        .markdown
        .with_file_name("posthoc-ranking.csv")
        .is_file());
}

#[test]
fn posthoc_stds_are_checked_and_need_snapshots_in_every_run() {
    let tmp = tempfile::tempdir().unwrap();
    let path = write(
        tmp.path(),
        &sweep_text(tmp.path(), "[0.05, 0.4, 0.05]", true),
    );
    let e = Sweep::load(&path).unwrap_err().to_string();
    assert!(
        e.contains("eval.posthoc_stds[1]") && e.contains("eval.posthoc_stds[2]"),
        "{e}"
    );
    assert!(!e.contains("posthoc_stds[0]"), "{e}");
    let path = write(tmp.path(), &sweep_text(tmp.path(), "[0.05]", false));
    let e = Sweep::load(&path).unwrap_err().to_string();
    assert!(
        e.contains("eval.posthoc_stds") && e.contains("ema.posthoc"),
        "{e}"
    );
}
