//! `flowscale eval` on text-to-image runs: a tiny run on the synthetic captioned set (captions
//! decide the colour; labels are the colours) is evaluated from its val captions (stored
//! embeddings) and from a COCO-2014-style caption file encoded by the run's MiniLM; rows carry
//! the dataset column that `flowscale rank` groups by; prompt-class adherence comes with its
//! chance level. Needs MiniLM and the Inception weights (scripts/setup).

#[path = "../../../tests/support/captioned_shards.rs"]
mod captioned_shards;
#[path = "common/tiny_clip.rs"]
mod tiny_clip;

use captioned_shards::{text_config, write_set, BOTH};
use flowscale_eval::config::{EvalConfig, SamplerSpec};
use flowscale_eval::evaluate::{evaluate, EvalOutcome, EvalRequest};
use flowscale_eval::rank::{rank_rows, RankOptions};
use flowscale_eval::result_rows::read_rows;
use flowscale_formulations::SamplerFrame;
use flowscale_train::config::{load_str, RunConfig};
use flowscale_train::export::StepChoice;
use flowscale_train::TrainOptions;
use std::path::{Path, PathBuf};
use tch::{Kind, Tensor};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn train_text_run(tmp: &Path) -> PathBuf {
    let text = text_config(tmp);
    let shards = tmp.join("colours");
    write_set(&shards, BOTH, &text);
    let run_text = format!(
        "[run]\nname = \"t2i\"\nout_dir = {:?}\nseed = 3\ndevice = \"cpu\"\n\
         [data]\ndataset = \"latent-shards\"\npath = {:?}\nresolution = 8\nshuffle_buffer = 8\n\
         [model]\ndepth = 1\npatch_size = 2\n\
         [conditioning]\nprovider = \"text\"\ntext_encoder = {:?}\ncontext_tokens = 8\n\
         context_dim = 384\npooled_dim = 384\n\
         [ema]\ndecays = [0.9]\nevery = 1\n[train]\nsteps = 4\nbatch_size = 8\nprecision = \"fp32\"\n\
         [validation]\nevery = 4\nsamples = 12\nbatch_size = 4\n[samples]\nevery = 100\n\
         [checkpoint]\nevery = 4\n[logging]\nevery = 2\n",
        tmp.display().to_string(),
        shards.display().to_string(),
        text.display().to_string(),
    );
    let cfg: RunConfig = load_str(&run_text, Path::new("t2i.toml"), &[]).unwrap();
    flowscale_train::train(
        cfg,
        TrainOptions {
            quiet: true,
            ..Default::default()
        },
    )
    .unwrap();
    tmp.join("t2i")
}

fn eval_config(tmp: &Path, out: &str) -> EvalConfig {
    let mut c = EvalConfig::default();
    c.eval.device = "cpu".into();
    c.eval.weights = vec!["raw".into()];
    c.eval.out_dir = tmp.join(out).display().to_string();
    c.sampling.n = 6;
    c.sampling.batch_size = 4;
    c.sampling.settings = vec![SamplerSpec {
        steps: 2,
        cfg: 2.0,
        frame: SamplerFrame::Rf,
    }];
    c.sampling.grid_rows = 1;
    c.sampling.grid_cols = 3;
    c.fid.weights = root()
        .join(".assets/fid-inception/default_1.pt")
        .display()
        .to_string();
    c.fid.reference_n = 12;
    c.fid.cache_dir = tmp.join("stats").display().to_string();
    c.classifier.path = tmp
        .join("colour-classifier.safetensors")
        .display()
        .to_string();
    c.classifier.train_steps = 40;
    c
}

fn run_eval(run: &Path, c: EvalConfig) -> EvalOutcome {
    let req = EvalRequest {
        source: run.to_path_buf(),
        step: StepChoice::Latest,
        config: c,
    };
    evaluate(&req, &mut |l| println!("{l}")).unwrap()
}

fn value(out: &EvalOutcome, metric: &str) -> f64 {
    out.rows
        .iter()
        .find(|r| r.metric == metric)
        .unwrap_or_else(|| panic!("no {metric} row"))
        .value
}

#[test]
fn a_text_run_is_evaluated_on_its_val_captions_and_on_a_coco_style_set() {
    let tmp = tempfile::tempdir().unwrap();
    let run = train_text_run(tmp.path());

    // Val captions (the stored embeddings the run trained on) with a CLIP model for the score.
    let mut c = eval_config(tmp.path(), "eval-val");
    c.clip.model = tiny_clip::tiny_clip(tmp.path()).display().to_string();
    c.clip.tokenizer = tiny_clip::bpe().display().to_string();
    let out = run_eval(&run, c.clone());
    assert!(value(&out, "val_loss").is_finite());
    let fid = value(&out, "fid");
    assert!(fid.is_finite() && fid > 0.0, "{fid}");
    assert!(value(&out, "clip_score").abs() <= 1.0);
    let acc = value(&out, "prompt_class_accuracy");
    let chance = value(&out, "prompt_class_chance");
    assert!((0.0..=1.0).contains(&acc) && (0.0..=1.0).contains(&chance));
    assert!(
        out.rows.iter().all(|r| r.dataset == "colours"),
        "{:?}",
        out.rows[0]
    );
    let results = std::fs::read_to_string(out.out_dir.join("results.json")).unwrap();
    assert!(
        results.contains("captions of the first 6 val samples"),
        "{results}"
    );
    let csv = std::fs::read_to_string(out.out_dir.join("results.csv")).unwrap();
    assert!(
        csv.lines().next().unwrap().starts_with("run,dataset,"),
        "{csv}"
    );

    // The same checkpoint under another dataset name: rank groups settings by dataset.
    c.clip.model.clear();
    c.eval.dataset = "other-set".into();
    c.eval.out_dir = tmp.path().join("eval-other").display().to_string();
    let other = run_eval(&run, c);
    let mut rows = read_rows(&out.out_dir.join("results.csv")).unwrap();
    rows.extend(read_rows(&other.out_dir.join("results.csv")).unwrap());
    let ranking = rank_rows(
        &rows,
        &RankOptions {
            metrics: flowscale_eval::pareto::parse_metrics("fid:min").unwrap(),
            candidate: vec!["formulation".into()],
            group_by: Vec::new(),
            columns: None,
        },
    )
    .unwrap();
    assert_eq!(ranking.settings.len(), 2, "{:?}", ranking.settings);
    assert!(ranking.settings.iter().any(|s| s.starts_with("other-set")));

    // A COCO-2014-style set: captions file and image folder, encoded by the run's MiniLM.
    let coco = tmp.path().join("coco");
    let images = coco.join("val2014");
    std::fs::create_dir_all(&images).unwrap();
    let mut entries = Vec::new();
    let mut annotations = Vec::new();
    for (i, (colour, rgb)) in [
        ("red", [220u8, 20, 20]),
        ("green", [20, 200, 20]),
        ("blue", [20, 20, 220]),
    ]
    .iter()
    .enumerate()
    {
        let file = format!("COCO_val2014_{i:012}.png");
        // Not square and not the run's size: resized and centre-cropped like training images.
        let img = Tensor::from_slice(rgb)
            .view([3, 1, 1])
            .expand([3, 12, 20], true);
        flowscale_eval::image_io::write_png(&images.join(&file), &img.to_kind(Kind::Uint8))
            .unwrap();
        entries.push(serde_json::json!({"id": 100 + i, "file_name": file}));
        annotations.push(serde_json::json!({"id": 7 * i, "image_id": 100 + i, "caption": format!("a {colour} square")}));
    }
    let captions = coco.join("captions_val2014.json");
    std::fs::write(
        &captions,
        serde_json::json!({"images": entries, "annotations": annotations}).to_string(),
    )
    .unwrap();
    let mut c = eval_config(tmp.path(), "eval-coco");
    c.prompts.coco_captions = captions.display().to_string();
    c.prompts.coco_images = images.display().to_string();
    c.classifier.enabled = false;
    let out = run_eval(&run, c.clone());
    assert!(value(&out, "fid").is_finite());
    let results = std::fs::read_to_string(out.out_dir.join("results.json")).unwrap();
    assert!(results.contains("3 COCO images"), "{results}");
    // COCO prompts with the COCO images as reference: neither is a substitution.
    let subs = flowscale_eval::protocol::read_substitutions(&out.out_dir.join("results.json"))
        .unwrap()
        .unwrap();
    let items: Vec<&str> = subs.iter().map(|s| s.item.as_str()).collect();
    assert!(
        !items.contains(&"prompts.source") && !items.contains(&"fid.reference"),
        "{items:?}"
    );
    // An explicit text-encoder config is used; a missing one is named.
    c.prompts.text_encoder = tmp.path().join("absent.toml").display().to_string();
    let req = EvalRequest {
        source: run.clone(),
        step: StepChoice::Latest,
        config: c,
    };
    let e = evaluate(&req, &mut |_| {}).unwrap_err().to_string();
    assert!(e.contains("absent.toml"), "{e}");
}

#[test]
fn prompt_sources_that_do_not_fit_the_run_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let run = train_text_run(tmp.path());
    let mut c = eval_config(tmp.path(), "eval");
    c.prompts.source = "classes".into();
    let req = EvalRequest {
        source: run,
        step: StepChoice::Latest,
        config: c,
    };
    let e = evaluate(&req, &mut |_| {}).unwrap_err().to_string();
    assert!(e.contains("conditions on captions"), "{e}");
}
