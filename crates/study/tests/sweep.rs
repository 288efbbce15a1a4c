//! Sweep files: expansion, config-derived run IDs, errors, and running with skip/resume.

use flowscale_study::{RunStatus, Sweep};
use flowscale_train::TrainOptions;
use std::path::Path;

const BASE: &str = r#"
[run]
name = "base"
seed = 5
device = "cpu"
[data]
dataset = "fashion-mnist"
resolution = 32
[model]
depth = 1
patch_size = 8
[conditioning]
context_dim = 16
pooled_dim = 16
[train]
steps = 4
batch_size = 4
precision = "fp32"
[validation]
every = 2
samples = 8
[samples]
every = 0
[checkpoint]
every = 2
keep_last = 3
[logging]
every = 2
"#;

fn write(dir: &Path, sweep: &str) -> std::path::PathBuf {
    std::fs::create_dir_all(dir.join("configs")).unwrap();
    std::fs::write(dir.join("configs/base.toml"), BASE).unwrap();
    let path = dir.join("experiments.toml");
    std::fs::write(
        &path,
        sweep.replace("OUT", &dir.join("out").display().to_string()),
    )
    .unwrap();
    path
}

const GRID: &str = r#"
[sweep]
name = "grid"
base = "configs/base.toml"
out_dir = "OUT"
[set]
"optim.lr" = 2e-3
[axes]
"formulation.name" = ["rf/lognorm(0.00, 1.00)", "eps/linear", "v/cos"]
"model.depth" = [1, 2]
"#;

#[test]
fn axes_expand_to_the_grid_with_stable_ids() {
    let tmp = tempfile::tempdir().unwrap();
    let path = write(tmp.path(), GRID);
    let sweep = Sweep::load(&path).unwrap();
    assert_eq!(sweep.runs.len(), 6);
    assert_eq!(sweep.axes, ["formulation.name", "model.depth"]);
    // First axis slowest.
    let names: Vec<(String, u32)> = sweep
        .runs
        .iter()
        .map(|r| (r.config.formulation.name.clone(), r.config.model.depth))
        .collect();
    assert_eq!(names[0], ("rf/lognorm(0.00, 1.00)".to_string(), 1));
    assert_eq!(names[1], ("rf/lognorm(0.00, 1.00)".to_string(), 2));
    assert_eq!(names[5], ("v/cos".to_string(), 2));
    for r in &sweep.runs {
        assert_eq!(r.config.optim.lr, 2e-3);
        assert_eq!(r.config.run.name, r.id);
        assert!(r.id.starts_with('r') && r.id.len() == 13, "{}", r.id);
    }
    let mut ids: Vec<&String> = sweep.runs.iter().map(|r| &r.id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 6);
    // Same config, same ID: a reordered file with one axis value gives the same run's ID.
    let again = write(
        &tmp.path().join("other"),
        r#"
[sweep]
name = "single"
base = "configs/base.toml"
out_dir = "OUT"
[axes]
"model.depth" = [2]
[set]
"formulation.name" = "eps/linear"
"optim.lr" = 0.002
"#,
    );
    let single = Sweep::load(&again).unwrap();
    assert_eq!(single.runs.len(), 1);
    assert_eq!(single.runs[0].id, sweep.runs[3].id);
}

#[test]
fn bad_sweeps_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    let err = |text: &str| {
        Sweep::load(&write(tmp.path(), text))
            .unwrap_err()
            .to_string()
    };
    let e = err(&GRID.replace("\"model.depth\" = [1, 2]", "\"model.depth\" = [1, 1]"));
    assert!(e.contains("same config"), "{e}");
    let e = err(&GRID.replace("\"model.depth\" = [1, 2]", "\"model.depth\" = []"));
    assert!(e.contains("non-empty array"), "{e}");
    let e = err(&GRID.replace("\"model.depth\" = [1, 2]", "\"model.depthh\" = [1, 2]"));
    assert!(e.contains("depthh"), "{e}");
    let e = err(&GRID.replace("\"eps/linear\"", "\"eps/linar\""));
    assert!(e.contains("eps/linar"), "{e}");
    let e = err(&GRID.replace("configs/base.toml", "configs/missing.toml"));
    assert!(e.contains("missing.toml"), "{e}");
    let e = err(&GRID.replace("[set]", "[set]\n\"run.name\" = \"x\""));
    assert!(e.contains("run.name"), "{e}");
}

#[test]
fn an_interrupted_sweep_continues_without_redoing_finished_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let path = write(
        tmp.path(),
        &GRID.replace(
            "\"formulation.name\" = [\"rf/lognorm(0.00, 1.00)\", \"eps/linear\", \"v/cos\"]\n",
            "",
        ),
    );
    let sweep = Sweep::load(&path).unwrap();
    assert_eq!(sweep.runs.len(), 2);
    let quiet = TrainOptions {
        quiet: true,
        ..Default::default()
    };
    // Run 0 finishes; run 1 is interrupted at step 2 (as a killed job leaves it).
    assert_eq!(sweep.run_one(0, &quiet).unwrap(), RunStatus::Done);
    let stopped = TrainOptions {
        stop_at: Some(2),
        ..quiet.clone()
    };
    assert_eq!(sweep.run_one(1, &stopped).unwrap(), RunStatus::Partial(2));
    let metrics0 = sweep.run_dir(0).join("metrics.jsonl");
    let before = std::fs::read_to_string(&metrics0).unwrap();
    let modified = std::fs::metadata(&metrics0).unwrap().modified().unwrap();

    // The rerun: run 0 untouched, run 1 resumed from its step-2 checkpoint to the end.
    let sweep = Sweep::load(&path).unwrap();
    assert_eq!(sweep.status(0).unwrap(), RunStatus::Done);
    assert_eq!(sweep.status(1).unwrap(), RunStatus::Partial(2));
    for i in 0..2 {
        assert_eq!(sweep.run_one(i, &quiet).unwrap(), RunStatus::Done);
    }
    assert_eq!(std::fs::read_to_string(&metrics0).unwrap(), before);
    assert_eq!(
        std::fs::metadata(&metrics0).unwrap().modified().unwrap(),
        modified
    );
    // Resumed, not restarted: run 1's log starts at step 2 once and ends at step 4.
    let log1 = std::fs::read_to_string(sweep.run_dir(1).join("metrics.jsonl")).unwrap();
    let train_steps: Vec<u64> = log1
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["kind"] == "train")
        .map(|v| v["step"].as_u64().unwrap())
        .collect();
    assert_eq!(train_steps, [2, 4]);
    let index = sweep.write_index().unwrap();
    let text = std::fs::read_to_string(index).unwrap();
    assert_eq!(text.matches("\"status\": \"done\"").count(), 2, "{text}");

    // The report ranks both runs by their best EMA validation loss and draws the plots.
    let report = flowscale_study::report::write_report(&sweep).unwrap();
    let md = std::fs::read_to_string(&report.markdown).unwrap();
    for r in &report.runs {
        assert!(md.contains(&r.id), "{md}");
        let (step, loss) = r.best.expect("validated");
        assert!(step == 2 || step == 4);
        assert!(md.contains(&format!("{loss:.5}")), "{md}");
    }
    let best: Vec<f64> = report.runs.iter().map(|r| r.best.unwrap().1).collect();
    let first_row = md.lines().find(|l| l.starts_with("| 1 |")).unwrap();
    let winner = &report.runs[if best[0] <= best[1] { 0 } else { 1 }].id;
    assert!(first_row.contains(winner.as_str()), "{md}");
    for name in [
        "validation-loss.png",
        "loss-vs-flops.png",
        "loss-vs-flops.svg",
    ] {
        assert!(report.markdown.with_file_name(name).is_file(), "{name}");
    }
}

#[test]
fn the_shipped_experiments_load() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../experiments");
    let load = |name: &str| Sweep::load(&dir.join(name)).unwrap();
    let all = load("formulations.toml");
    let names: Vec<String> = all
        .runs
        .iter()
        .map(|r| r.config.formulation.name.clone())
        .collect();
    let registry: Vec<String> = flowscale_formulations_names();
    assert_eq!(names, registry);
    assert_eq!(load("formulations-cpu.toml").runs.len(), 8);
    let depths: Vec<u32> = load("scaling-cpu.toml")
        .runs
        .iter()
        .map(|r| r.config.model.depth)
        .collect();
    assert_eq!(depths, [1, 2, 3, 4]);
    assert_eq!(load("scaling.toml").runs.len(), 6);
}

fn flowscale_formulations_names() -> Vec<String> {
    flowscale_formulations::registry()
        .iter()
        .map(|f| f.to_string())
        .collect()
}
