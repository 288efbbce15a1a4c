//! `formulation.shift = "auto"` resolved once and used everywhere: a tiny run at 32 px against a
//! base of 16 px (alpha = sqrt(32^2 / 16^2) = 2) trains, draws its grids and is evaluated
//! exactly as the same run with `shift = 2`, and differently from the unshifted run, so a
//! consumer that read the unresolved setting or the default alpha of 1 would show here.
//! Needs Fashion-MNIST.

use flowscale_eval::config::{EvalConfig, SamplerSpec};
use flowscale_eval::evaluate::{evaluate, EvalOutcome, EvalRequest};
use flowscale_formulations::SamplerFrame;
use flowscale_train::config::{load_str, RunConfig};
use flowscale_train::export::StepChoice;
use flowscale_train::TrainOptions;
use std::path::{Path, PathBuf};

const TINY_RUN: &str = include_str!("../../../tests/fixtures/tiny-run.toml");

fn train(out: &Path, name: &str, shift: &[&str]) -> PathBuf {
    let mut overrides: Vec<String> = vec![
        format!("run.name={name:?}"),
        format!("run.out_dir={:?}", out.display().to_string()),
        "ema.decays=[0.9]".into(),
        "validation.every=4".into(),
        "checkpoint.every=4".into(),
        "samples.every=4".into(),
        "samples.per_class=1".into(),
        "samples.steps=[3]".into(),
        "samples.cfg=[1.0]".into(),
    ];
    overrides.extend(shift.iter().map(|s| s.to_string()));
    let cfg: RunConfig = load_str(TINY_RUN, Path::new("tiny-run.toml"), &overrides).unwrap();
    let opts = TrainOptions {
        quiet: true,
        ..Default::default()
    };
    flowscale_train::train(cfg, opts).unwrap();
    out.join(name)
}

fn eval(run: &Path, out: &Path) -> EvalOutcome {
    let mut c = EvalConfig::default();
    c.eval.device = "cpu".into();
    c.eval.out_dir = out.display().to_string();
    c.eval.weights = vec!["raw".into()];
    c.sampling.n = 4;
    c.sampling.batch_size = 4;
    c.sampling.settings = vec![SamplerSpec {
        steps: 3,
        cfg: 1.0,
        frame: SamplerFrame::Rf,
    }];
    c.sampling.grid_rows = 1;
    c.sampling.grid_cols = 4;
    c.fid.enabled = false;
    c.classifier.enabled = false;
    let req = EvalRequest {
        source: run.to_path_buf(),
        step: StepChoice::Latest,
        config: c,
    };
    evaluate(&req, &mut |_| {}).unwrap()
}

fn bytes(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The trainer's record of its sample grid at step 4: the file's bytes and the logged shift.
fn trainer_grid(run: &Path) -> (Vec<u8>, f64) {
    let metrics = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    let record = metrics
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|v| v["kind"] == "samples" && v["weights"] == "raw")
        .expect("a raw-weights sample grid record");
    let grid = run.join(record["grid"].as_str().unwrap());
    (bytes(&grid), record["shift"].as_f64().unwrap())
}

#[test]
fn auto_shift_is_resolved_once_for_training_grids_and_eval() {
    tch::set_num_threads(2);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let auto = train(
        dir,
        "auto",
        &[
            "formulation.shift=\"auto\"",
            "formulation.shift_base_resolution=16",
        ],
    );
    let two = train(dir, "two", &["formulation.shift=2"]);
    let one = train(dir, "one", &[]);

    // The recorded config holds the alpha, not "auto", and hashes as `shift = 2`.
    let resolved = std::fs::read_to_string(auto.join("config.resolved.toml")).unwrap();
    let table: toml::Table = toml::from_str(&resolved).unwrap();
    let formulation = table["formulation"].as_table().unwrap();
    assert_eq!(formulation["shift"].as_float(), Some(2.0), "{resolved}");
    assert!(
        !formulation.contains_key("shift_base_resolution"),
        "{resolved}"
    );

    // Training: the same timesteps as shift = 2, other ones than no shift.
    let ck = |run: &Path| {
        let p = run.join("checkpoints/step-000000004/model.safetensors");
        bytes(&p)
    };
    assert!(
        ck(&auto) == ck(&two),
        "auto and shift = 2 trained differently"
    );
    assert!(ck(&auto) != ck(&one), "the shift changed no training step");

    // The trainer's sample grids.
    let (grid_auto, shift_auto) = trainer_grid(&auto);
    let (grid_two, _) = trainer_grid(&two);
    let (grid_one, shift_one) = trainer_grid(&one);
    assert_eq!((shift_auto, shift_one), (2.0, 1.0));
    assert!(grid_auto == grid_two && grid_auto != grid_one);

    // flowscale eval of the run: sampled with alpha 2, the same images as the shift = 2 run's.
    let (ea, et) = (
        eval(&auto, &dir.join("eval-auto")),
        eval(&two, &dir.join("eval-two")),
    );
    let sampled: Vec<_> = ea
        .rows
        .iter()
        .filter(|r| r.setting != "validation")
        .collect();
    assert!(!sampled.is_empty());
    assert!(sampled.iter().all(|r| r.shift == Some(2.0)), "{sampled:?}");
    assert_eq!(bytes(&ea.grids[0]), bytes(&et.grids[0]));
    let eo = eval(&one, &dir.join("eval-one"));
    assert!(eo
        .rows
        .iter()
        .filter(|r| r.setting != "validation")
        .all(|r| r.shift == Some(1.0)));
}
