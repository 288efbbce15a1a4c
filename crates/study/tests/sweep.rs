//! Sweep files: expansion, config-derived run IDs, errors, and running with skip/resume.

use common::write;
use flowscale_study::{EvalStatus, RunStatus, StudyError, Sweep};
use flowscale_train::config::ShiftSetting;
use flowscale_train::TrainOptions;
use std::path::Path;

mod common;

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

/// Everything wrong with the sweep file itself comes in one error that names the file and
/// each problem's dotted key (keys of `[set]` and `[axes]` quoted, as `--set` takes them).
#[test]
fn every_problem_of_a_sweep_file_is_reported_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let text = GRID
        .replace("name = \"grid\"", "name = \"my grid\"")
        .replace(
            "\"model.depth\" = [1, 2]",
            "\"model.depth\" = []\n\"optim.lr\" = [1e-3]",
        )
        .replace("[set]", "[set]\n\"run.out_dir\" = \"x\"");
    let e = Sweep::load(&write(tmp.path(), &text)).unwrap_err();
    let StudyError::Config(config) = &e else {
        panic!("not a config error: {e}");
    };
    let mut keys = config.keys();
    keys.sort();
    assert_eq!(
        keys,
        [
            r#"axes."model.depth""#,
            r#"axes."optim.lr""#,
            r#"set."run.out_dir""#,
            "sweep.name"
        ]
    );
    let msg = e.to_string();
    for needle in [
        "experiments.toml",
        "use letters, digits, '-', '_' and '.' only, got \"my grid\"",
        "non-empty array",
        "also in [set]",
        "chosen by the sweep",
    ] {
        assert!(msg.contains(needle), "{needle}\n{msg}");
    }
    // A missing base and a missing eval config: both named, each under its key.
    let text = GRID.replace("configs/base.toml", "configs/missing.toml")
        + "[eval]\nconfig = \"configs/no-eval.toml\"\n";
    let e = Sweep::load(&write(tmp.path(), &text)).unwrap_err();
    let StudyError::Config(config) = &e else {
        panic!("not a config error: {e}");
    };
    assert_eq!(config.keys(), ["sweep.base", "eval.config"]);
    assert!(e.to_string().contains("no-eval.toml"), "{e}");
}

#[test]
fn an_unknown_key_of_a_sweep_file_is_named_with_the_allowed_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let e = Sweep::load(&write(
        tmp.path(),
        &GRID.replace("[set]", "outdir = \"x\"\n[set]"),
    ))
    .unwrap_err()
    .to_string();
    assert!(e.contains("experiments.toml"), "{e}");
    assert!(e.contains("sweep.outdir"), "{e}");
    assert!(e.contains("`out_dir`"), "{e}");
    let e = Sweep::load(&write(tmp.path(), &(GRID.to_owned() + "[axis]\n")))
        .unwrap_err()
        .to_string();
    assert!(e.contains("axis") && e.contains("`axes`"), "{e}");
}

/// `--set` changes any key of the sweep file, dotted run-config keys included; the Slurm
/// script and `sweep.json` repeat the overrides so every later reader sees the same runs.
#[test]
fn set_overrides_change_the_sweep() {
    let tmp = tempfile::tempdir().unwrap();
    let path = write(tmp.path(), GRID);
    let elsewhere = tmp.path().join("elsewhere it's");
    let overrides = [
        format!("sweep.out_dir={:?}", elsewhere.display().to_string()),
        r#"axes."model.depth"=[3]"#.to_owned(),
        r#"set."optim.lr"=1e-3"#.to_owned(),
    ];
    let plain = Sweep::load(&path).unwrap();
    let sweep = Sweep::load_with(&path, &overrides).unwrap();
    assert_eq!(sweep.out_dir, elsewhere);
    assert_eq!(sweep.runs.len(), 3);
    for r in &sweep.runs {
        assert_eq!(r.config.model.depth, 3);
        assert_eq!(r.config.optim.lr, 1e-3);
        assert!(plain.runs.iter().all(|p| p.id != r.id));
    }
    let script = sweep.slurm_script(Path::new("/bin/flowscale"));
    let expected = format!(
        "--set 'sweep.out_dir=\"{}/elsewhere it'\\''s\"' --set 'axes.\"model.depth\"=[3]' \
         --set 'set.\"optim.lr\"=1e-3' --run",
        tmp.path().display()
    );
    assert!(script.contains(&expected), "{expected}\n{script}");
    assert!(!plain
        .slurm_script(Path::new("/bin/flowscale"))
        .contains("--set"));
    let index: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(sweep.write_index().unwrap()).unwrap())
            .unwrap();
    assert_eq!(index["set"], serde_json::json!(overrides));
}

#[test]
fn a_bad_set_override_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let path = write(tmp.path(), GRID);
    let err = |set: &str| {
        Sweep::load_with(&path, &[set.to_owned()])
            .unwrap_err()
            .to_string()
    };
    let e = err("sweep.name");
    assert!(e.contains("bad override `sweep.name`"), "{e}");
    let e = err("sweep.nmae=x");
    assert!(
        e.contains("sweep.nmae") && e.contains("(set with --set)"),
        "{e}"
    );
    let e = err(r#"sweep.name="a b""#);
    assert!(
        e.contains("key `sweep.name`") && e.contains("(set with --set)"),
        "{e}"
    );
    let e = err(r#"axes."model.depth"=[]"#);
    assert!(
        e.contains(
            r#"key `axes."model.depth"`: must be a non-empty array of values (set with --set)"#
        ),
        "{e}"
    );
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
    // The shift sweep: "auto" resolves to 32 px / 16 px = 2, beside the three numbers.
    let shifts: Vec<ShiftSetting> = load("shift-cpu.toml")
        .runs
        .iter()
        .map(|r| r.config.formulation.shift)
        .collect();
    let alphas = [1.0, 1.5, 3.0, 2.0].map(ShiftSetting::Alpha);
    assert_eq!(shifts, alphas);
}

/// An "auto" shift gets the run ID of the alpha it resolves to, so a sweep that lists both is
/// refused as two runs of one config.
#[test]
fn an_auto_shift_equal_to_a_listed_alpha_is_one_run() {
    let tmp = tempfile::tempdir().unwrap();
    let sweep = |axis: &str| {
        let text = format!(
            "[sweep]\nname = \"s\"\nbase = \"configs/base.toml\"\nout_dir = \"OUT\"\n\
             [set]\n\"formulation.shift_base_resolution\" = 8\n[axes]\n\"formulation.shift\" = {axis}\n"
        );
        Sweep::load(&write(tmp.path(), &text))
    };
    let ok = sweep("[1.0, \"auto\"]").unwrap();
    let resolution = f64::from(ok.runs[1].config.data.resolution);
    assert_eq!(
        ok.runs[1].config.formulation.shift,
        ShiftSetting::Alpha(resolution / 8.0)
    );
    let err = sweep(&format!("[{}, \"auto\"]", resolution / 8.0))
        .unwrap_err()
        .to_string();
    assert!(err.contains("resolve to the same config"), "{err}");
}

fn flowscale_formulations_names() -> Vec<String> {
    flowscale_formulations::registry()
        .iter()
        .map(|f| f.to_string())
        .collect()
}

/// A sweep with `[eval]`: each finished run is evaluated once at its selected checkpoint, a
/// changed eval config makes the results stale, and the report ranks the runs (Table 1's
/// columns for the paper's settings that were evaluated), correlates validation loss with class
/// accuracy across runs, and finds the compute-optimal frontier over the three model sizes. FID is off to keep
/// the test short (the eval crate's tests cover it; the ranking with FID is `rank`'s unit tests).
/// Needs Fashion-MNIST.
#[test]
fn a_sweep_with_eval_ranks_correlates_and_finds_the_frontier() {
    tch::set_num_threads(2);
    let tmp = tempfile::tempdir().unwrap();
    let eval = format!(
        r#"
[eval]
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
        cls = tmp.path().join("cls/c.safetensors").display(),
    );
    let sweep_text = format!(
        r#"
[sweep]
name = "scaled"
base = "configs/base.toml"
out_dir = "OUT"
[set]
"train.steps" = 6
"checkpoint.keep_last" = 1
[axes]
"model.depth" = [1, 2, 3]
{eval}"#
    );
    let path = write(tmp.path(), &sweep_text);
    let sweep = Sweep::load(&path).unwrap();
    let quiet = TrainOptions {
        quiet: true,
        ..Default::default()
    };
    assert_eq!(sweep.eval_status(0).unwrap(), EvalStatus::NotTrained);
    for i in 0..3 {
        sweep.run_one(i, &quiet).unwrap();
        let step = sweep.selected_step(i).unwrap().expect("validated");
        assert_eq!(sweep.eval_status(i).unwrap(), EvalStatus::Pending(step));
        let dir = sweep.evaluate_run(i, &mut |_| {}).unwrap().unwrap();
        assert_eq!(dir, sweep.eval_dir(i, step));
        assert_eq!(
            sweep.eval_status(i).unwrap(),
            EvalStatus::Done(step, dir.clone())
        );
    }
    // Up to date: evaluating again does nothing.
    let results0 = sweep.eval_dir(0, sweep.selected_step(0).unwrap().unwrap());
    let stamp = std::fs::metadata(results0.join("results.json"))
        .unwrap()
        .modified()
        .unwrap();
    sweep.evaluate_run(0, &mut |_| {}).unwrap();
    assert_eq!(
        std::fs::metadata(results0.join("results.json"))
            .unwrap()
            .modified()
            .unwrap(),
        stamp
    );
    // Another eval config: stale.
    let changed = write(
        tmp.path(),
        &sweep_text.replace("\"sampling.n=6\"", "\"sampling.n=7\""),
    );
    let other = Sweep::load(&changed).unwrap();
    assert!(matches!(
        other.eval_status(0).unwrap(),
        EvalStatus::Stale(_)
    ));
    write(tmp.path(), &sweep_text);

    let report = flowscale_study::report::write_report(&sweep).unwrap();
    let res = &report.results;
    assert!(res.missing.is_empty(), "{:?}", res.missing);
    let (spec, ranking) = res.ranking.as_ref().expect("ranked");
    assert_eq!(spec, "class_accuracy:max");
    assert_eq!(ranking.rows.len(), 3);
    let subsets: Vec<&str> = ranking
        .step_subsets
        .iter()
        .map(|(l, _)| l.as_str())
        .collect();
    // Table 1's columns are the paper's sampler settings: this sweep evaluated s5_cfg5, not
    // s50_cfg5, so only "5 steps" shows (over its one setting), none made up from others.
    assert_eq!(subsets, ["5 steps"]);
    assert_eq!(ranking.step_subsets[0].1.len(), 1);
    // 1 weight set x 2 sampler settings.
    assert_eq!(ranking.settings.len(), 2);
    let c: Vec<_> = res
        .correlations
        .iter()
        .filter(|c| c.metric == "class_accuracy")
        .collect();
    assert_eq!(c.len(), 2);
    for x in c {
        assert_eq!(x.pairs.len(), 3);
        // Each pair's loss is that run's eval validation loss for the same weights.
        for (run, loss, _) in &x.pairs {
            let row = res
                .rows
                .iter()
                .find(|r| {
                    r["run"] == *run && r["weights"] == x.weights && r["metric"] == "val_loss"
                })
                .unwrap();
            assert_eq!(row["value"].parse::<f64>().unwrap(), *loss);
        }
    }
    let md = std::fs::read_to_string(&report.markdown).unwrap();
    for needle in [
        "### Protocol substitutions",
        "| `fid.enabled` | FID on CLIP L/14 features | no FID | 3 |",
        "| `prompts.source` | COCO-2014 val captions |",
        "### Ranking",
        "| # | run | setting | all | 5 steps |",
        "### Validation loss vs sample metrics",
        "## Compute-optimal frontier",
        "val-loss-vs-class_accuracy.png",
    ] {
        assert!(md.contains(needle), "{needle}\n{md}");
    }
    // One formulation at three depths is not a formulation ranking: no Table 1 comparison.
    assert!(!md.contains("Next to the paper's Table 1"), "{md}");
    for r in &report.runs {
        assert!(md.contains(&r.id));
        assert!(r.params.unwrap() > 0.0);
    }
    let params: Vec<f64> = report.runs.iter().map(|r| r.params.unwrap()).collect();
    assert!(params[0] < params[1] && params[1] < params[2], "{params:?}");
    let frontier = &report.scaling[0].frontier;
    assert!(!frontier.is_empty());
    // Over the three sizes, at increasing budgets, with real losses.
    assert!(frontier.iter().all(|p| p.run < 3), "{frontier:?}");
    assert!(frontier.windows(2).all(|w| w[0].compute < w[1].compute));
    assert!(frontier.iter().all(|p| p.loss.is_finite() && p.loss > 0.0));
    let csv = std::fs::read_to_string(report.markdown.with_file_name("results.csv")).unwrap();
    assert!(csv.starts_with("run,dataset,formulation,depth,step,weights,setting,metric,value"));
    assert_eq!(
        csv.lines()
            .filter(|l| l.contains(",class_accuracy,"))
            .count(),
        3 * 2
    );
    assert!(report.markdown.with_file_name("ranking.csv").is_file());
}
