//! A caption-conditioned run (`provider = "captions"`: each class's caption through the frozen
//! MiniLM encoder) is evaluated through the same run layer as a class-conditioned one: its
//! checkpoint holds no conditioner tensors (a class embedding would not load), the evaluation
//! rebuilds the caption conditioner from the run config, and its validation loss is the
//! trainer's. Needs `.assets/all-minilm-l6-v2` (scripts/setup).

use flowscale_eval::config::{EvalConfig, SamplerSpec};
use flowscale_eval::evaluate::{evaluate, EvalRequest};
use flowscale_formulations::SamplerFrame;
use flowscale_train::checkpoint::{CheckpointStore, LoadedCheckpoint};
use flowscale_train::config::{load_str, RunConfig};
use flowscale_train::export::StepChoice;
use flowscale_train::state::TrainState;
use flowscale_train::TrainOptions;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn caption_run(out: &Path) -> PathBuf {
    let assets = root().join(".assets/all-minilm-l6-v2");
    assert!(
        assets.is_dir(),
        "run scripts/setup: {} missing",
        assets.display()
    );
    let encoder = out.join("minilm.toml");
    std::fs::write(
        &encoder,
        format!(
            "encoder = \"minilm\"\n[minilm]\npath = {:?}\ntokens = 8\n",
            assets.display().to_string()
        ),
    )
    .unwrap();
    let text = format!(
        "[run]\nname = \"cap\"\nout_dir = {:?}\nseed = 4\ndevice = \"cpu\"\n\
         [data]\ndataset = \"fashion-mnist\"\nresolution = 32\n\
         [model]\ndepth = 1\npatch_size = 8\n\
         [conditioning]\nprovider = \"captions\"\ntext_encoder = {:?}\ncontext_tokens = 8\n\
         context_dim = 384\npooled_dim = 384\n\
         [ema]\ndecays = [0.9]\nevery = 1\n[train]\nsteps = 3\nbatch_size = 4\nprecision = \"fp32\"\n\
         [validation]\nevery = 3\nsamples = 6\nbatch_size = 3\n[samples]\nevery = 100\n\
         [checkpoint]\nevery = 3\n[logging]\nevery = 3\n",
        out.display().to_string(),
        encoder.display().to_string()
    );
    let cfg: RunConfig = load_str(&text, Path::new("cap.toml"), &[]).unwrap();
    flowscale_train::train(
        cfg,
        TrainOptions {
            quiet: true,
            ..Default::default()
        },
    )
    .unwrap();
    out.join("cap")
}

#[test]
fn a_caption_conditioned_run_is_evaluated_like_a_class_conditioned_one() {
    let tmp = tempfile::tempdir().unwrap();
    let run_dir = caption_run(tmp.path());

    // The frozen encoder is neither trained nor checkpointed: only backbone tensors.
    let (_, latest) = CheckpointStore::new(run_dir.join("checkpoints"), 1, 0)
        .latest()
        .unwrap()
        .unwrap();
    let ck: LoadedCheckpoint<TrainState> = CheckpointStore::load(&latest).unwrap();
    assert!(
        ck.groups["model"]
            .keys()
            .all(|k| !k.starts_with("conditioner.")),
        "a caption run stored conditioner tensors"
    );

    let mut c = EvalConfig::default();
    c.eval.device = "cpu".into();
    c.eval.out_dir = tmp.path().join("eval").display().to_string();
    c.sampling.n = 4;
    c.sampling.batch_size = 2;
    c.sampling.settings = vec![SamplerSpec {
        steps: 2,
        cfg: 2.0,
        frame: SamplerFrame::Rf,
    }];
    c.sampling.grid_rows = 1;
    c.sampling.grid_cols = 4;
    c.fid.enabled = false;
    c.classifier.enabled = false;
    let req = EvalRequest {
        source: run_dir.clone(),
        step: StepChoice::Latest,
        config: c,
    };
    let out = evaluate(&req, &mut |l| println!("{l}")).unwrap();

    // Each weight set's validation loss is the one the trainer logged at step 3.
    let metrics = std::fs::read_to_string(run_dir.join("metrics.jsonl")).unwrap();
    for weights in ["raw", "ema0.9"] {
        let logged = metrics
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .find(|v| v["kind"] == "validation" && v["weights"] == weights && v["step"] == 3)
            .unwrap_or_else(|| panic!("no logged validation of {weights}:\n{metrics}"));
        let trainer = logged["val_loss"].as_f64().unwrap();
        let evaluated = out
            .rows
            .iter()
            .find(|r| r.metric == "val_loss" && r.weights == weights)
            .unwrap()
            .value;
        assert!(
            (evaluated - trainer).abs() < 1e-5 * trainer,
            "{weights}: {evaluated} vs {trainer}"
        );
    }
    // Guided samples came out of the caption conditioner (a grid of 4 finite 32-px tiles).
    assert_eq!(out.grids.len(), 2, "{:?}", out.grids);
    assert!(out.grids.iter().all(|g| g.is_file()));
}
