//! `evaluate` on a latent-shard run: shards precomputed with the real TAEF2 autoencoder, a tiny
//! run trained on them, then validation loss and FID with the samples decoded by TAEF2 and the
//! reference decoded from the val split, and class accuracy from a classifier fitted on the
//! decoded shards. Skipped when `../shared/assets/taef2` is missing; needs
//! `.assets/fid-inception/default_1.pt` (scripts/setup).

#[path = "../../../tests/support/skip.rs"]
mod skip;

#[path = "../../train/tests/common/class_pngs.rs"]
mod class_pngs;

use class_pngs::png;
use flowscale_data::precompute::{precompute, PrecomputeConfig, ShardShare, Silent};
use flowscale_eval::config::{EvalConfig, SamplerSpec};
use flowscale_eval::evaluate::{evaluate, EvalRequest};
use flowscale_formulations::SamplerFrame;
use flowscale_train::config::{load_str, RunConfig};
use flowscale_train::export::StepChoice;
use flowscale_train::TrainOptions;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn a_taef2_latent_run_is_evaluated_through_its_autoencoder() {
    let taef2 = root().join("../shared/assets/taef2");
    if !taef2.join("taef2_encoder.safetensors").exists() {
        skip::skipped(
            "a_taef2_latent_run_is_evaluated_through_its_autoencoder",
            &format!("TAEF2 assets not found ({})", taef2.display()),
        );
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let images = tmp.path().join("images");
    for i in 0..10 {
        png(&images.join(format!("dark/{i}.png")), 0, i);
        png(&images.join(format!("light/{i}.png")), 1, i);
    }
    let shards = tmp.path().join("shards");
    let text = format!(
        "[source]\nkind = \"folder\"\npath = {:?}\nlabels_from_subfolders = true\n\
         [preprocess]\nresolution = 32\n[autoencoder]\nkind = \"taef2\"\npath = {:?}\n\
         [output]\ndir = {:?}\nval_samples = 8\n",
        images.display().to_string(),
        taef2.display().to_string(),
        shards.display().to_string()
    );
    let pc = PrecomputeConfig::from_toml(&text, Path::new("pc.toml")).unwrap();
    precompute(&pc, ShardShare::default(), &Silent).unwrap();

    let run_text = format!(
        "[run]\nname = \"lat\"\nout_dir = {:?}\nseed = 3\ndevice = \"cpu\"\n\
         [data]\ndataset = \"latent-shards\"\npath = {:?}\nresolution = 32\nshuffle_buffer = 4\n\
         [model]\ndepth = 1\npatch_size = 2\n[conditioning]\ncontext_dim = 16\npooled_dim = 16\n\
         [ema]\ndecays = [0.9]\nevery = 1\n[train]\nsteps = 4\nbatch_size = 4\nprecision = \"fp32\"\n\
         [validation]\nevery = 4\nsamples = 8\nbatch_size = 4\n[samples]\nevery = 100\n\
         [checkpoint]\nevery = 4\n[logging]\nevery = 2\n",
        tmp.path().display().to_string(),
        shards.display().to_string()
    );
    let cfg: RunConfig = load_str(&run_text, Path::new("lat.toml"), &[]).unwrap();
    flowscale_train::train(
        cfg,
        TrainOptions {
            quiet: true,
            ..Default::default()
        },
    )
    .unwrap();

    let mut c = EvalConfig::default();
    c.eval.device = "cpu".into();
    c.eval.weights = vec!["raw".into()];
    c.eval.out_dir = tmp.path().join("eval").display().to_string();
    c.sampling.n = 6;
    c.sampling.batch_size = 3;
    c.sampling.settings = vec![SamplerSpec {
        steps: 2,
        cfg: 1.0,
        frame: SamplerFrame::Rf,
    }];
    c.sampling.grid_rows = 1;
    c.sampling.grid_cols = 3;
    c.fid.weights = root()
        .join(".assets/fid-inception/default_1.pt")
        .display()
        .to_string();
    c.fid.reference_n = 8;
    c.fid.cache_dir = tmp.path().join("stats").display().to_string();
    c.classifier.enabled = false;
    let req = EvalRequest {
        source: tmp.path().join("lat"),
        step: StepChoice::Latest,
        config: c.clone(),
    };
    let out = evaluate(&req, &mut |l| println!("{l}")).unwrap();
    let get = |m: &str| out.rows.iter().find(|r| r.metric == m).unwrap().value;
    assert!(get("val_loss").is_finite());
    let fid = get("fid");
    assert!(fid.is_finite() && fid > 0.0, "{fid}");

    // The validation loss is the trainer's, on the same val latents and fixed noise.
    let metrics = std::fs::read_to_string(tmp.path().join("lat/metrics.jsonl")).unwrap();
    let logged = metrics
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|v| v["kind"] == "validation" && v["weights"] == "raw" && v["step"] == 4)
        .unwrap();
    let trainer = logged["val_loss"].as_f64().unwrap();
    assert!(
        (get("val_loss") - trainer).abs() < 1e-5 * trainer,
        "{} vs {trainer}",
        get("val_loss")
    );
    // Samples were decoded: the grid has 32-px RGB tiles (3 in a row with 2-px borders).
    let grid = &out.grids[0];
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(grid).unwrap()));
    let info = decoder.read_info().unwrap().info().clone();
    assert_eq!(
        (info.width, info.height),
        (3 * 34 + 2, 36),
        "{}",
        grid.display()
    );
    assert_eq!(info.color_type, png::ColorType::Rgb);
    let results = std::fs::read_to_string(out.out_dir.join("results.json")).unwrap();
    assert!(
        results.contains("posterior means decoded by the taef2"),
        "{results}"
    );

    // Class accuracy: the classifier is fitted on the labelled shards' images, decoded by the
    // run's autoencoder (latent shards hold no images of their own).
    c.classifier.enabled = true;
    c.classifier.path = tmp.path().join("decoded.safetensors").display().to_string();
    c.classifier.train_steps = 30;
    c.classifier.max_images = 6;
    let mut lines = Vec::new();
    let out = evaluate(&EvalRequest { config: c, ..req }, &mut |l| {
        lines.push(l.to_owned())
    })
    .unwrap();
    let acc = out
        .rows
        .iter()
        .find(|r| r.metric == "class_accuracy")
        .expect("a class accuracy row")
        .value;
    assert!((0.0..=1.0).contains(&acc), "{acc}");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("training the class-accuracy classifier")),
        "{lines:?}"
    );
    assert!(tmp.path().join("decoded.safetensors").is_file());
}
