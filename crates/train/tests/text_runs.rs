//! Text-to-image runs (`conditioning.provider = "text"`) on a synthetic captioned set whose
//! captions decide the image's colour: caption-only shards (encoded on the fly by MiniLM),
//! stored embeddings, shards with labels and captions trained either way, a caption mix with
//! per-source dropout resuming bit for bit, and a model whose samples follow held-out prompts.
//! Identity "autoencoder": the latents are 3 x 8 x 8 pixels. Needs the MiniLM weights that
//! scripts/setup fetches into .assets.

#[path = "../../../tests/support/captioned_shards.rs"]
mod captioned_shards;
mod common;

use captioned_shards::{
    colours, text_config, text_run_overrides, write_set, SetKind, BOTH, CAPTIONS_ONLY, COLOURS,
    LABELS_ONLY, SIDE,
};
use common::{differing_tensors, final_checkpoint, quiet, tiny_config};
use flowscale_train::cond_input::{CondInput, TextBatch};
use flowscale_train::config::RunConfig;
use flowscale_train::run::{RunCheckpoint, RunData, RunModel, RunModelSpec, StepChoice, WeightSet};
use flowscale_train::sampling::{generate, SamplerSetting};
use flowscale_train::{train, TrainOptions};
use std::path::Path;
use tch::{Device, Kind, Tensor};

fn config(out: &Path, name: &str, shards: &Path, text: &Path, extra: &[&str]) -> RunConfig {
    let mut o = text_run_overrides(shards, text);
    o.push("samples.text_rows=3".into());
    o.extend(extra.iter().map(|s| s.to_string()));
    let o: Vec<&str> = o.iter().map(String::as_str).collect();
    tiny_config(out, name, &o)
}

#[test]
fn caption_only_shards_train_with_captions_encoded_on_the_fly() {
    let tmp = tempfile::tempdir().unwrap();
    let text = text_config(tmp.path());
    let shards = tmp.path().join("captions-only");
    let kind = CAPTIONS_ONLY;
    write_set(&shards, kind, &text);
    let state = train(config(tmp.path(), "otf", &shards, &text, &[]), quiet()).unwrap();
    assert_eq!(state.step, 6);
    assert!(state.best_val_loss.is_some_and(|(v, _)| v.is_finite()));
    // The grids name their prompts.
    let grids = tmp.path().join("otf/samples");
    let caption_files: Vec<_> = std::fs::read_dir(&grids)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "txt"))
        .collect();
    assert!(!caption_files.is_empty());
    let rows = std::fs::read_to_string(caption_files[0].path()).unwrap();
    assert_eq!(rows.lines().count(), 3, "{rows}");
    assert_eq!(rows.lines().next(), Some("a red square"), "{rows}");

    // The same shards for a class-conditional run: no labels, a clear error.
    let mut cfg = config(tmp.path(), "class", &shards, &text, &[]);
    cfg.conditioning.provider = flowscale_train::config::ConditioningProviderKind::ClassEmbedding;
    let e = train(cfg, quiet()).unwrap_err().to_string();
    assert!(
        e.contains("no class labels") && e.contains("provider = \"text\""),
        "{e}"
    );
    // Without a text encoder there is nothing to turn the captions into conditioning.
    let mut cfg = config(tmp.path(), "noenc", &shards, &text, &[]);
    cfg.conditioning.text_encoder = None;
    let e = train(cfg, quiet()).unwrap_err().to_string();
    assert!(e.contains("text_encoder"), "{e}");
}

#[test]
fn shards_with_labels_and_captions_train_either_way_and_label_only_shards_refuse_text() {
    let tmp = tempfile::tempdir().unwrap();
    let text = text_config(tmp.path());
    let shards = tmp.path().join("both");
    write_set(&shards, BOTH, &text);
    let as_text = train(config(tmp.path(), "text", &shards, &text, &[]), quiet()).unwrap();
    let mut cfg = config(tmp.path(), "class", &shards, &text, &[]);
    cfg.conditioning.provider = flowscale_train::config::ConditioningProviderKind::ClassEmbedding;
    cfg.conditioning.context_dim = 16;
    cfg.conditioning.pooled_dim = 16;
    let as_class = train(cfg, quiet()).unwrap();
    assert_eq!((as_text.step, as_class.step), (6, 6));
    // Class runs learn embeddings; text runs have no trained conditioner.
    let has_conditioner = |run: &str| {
        final_checkpoint(&tmp.path().join(run)).groups["model"]
            .keys()
            .any(|k| k.starts_with("conditioner."))
    };
    assert!(has_conditioner("class") && !has_conditioner("text"));
    // Stored embeddings whose width is not the configured one are named.
    let mut cfg = config(tmp.path(), "wide", &shards, &text, &[]);
    cfg.conditioning.context_dim = 16;
    let e = train(cfg, quiet()).unwrap_err().to_string();
    assert!(e.contains("context_dim = 384"), "{e}");

    let labels_only = tmp.path().join("labels-only");
    let kind = LABELS_ONLY;
    write_set(&labels_only, kind, &text);
    let e = train(config(tmp.path(), "t2", &labels_only, &text, &[]), quiet())
        .unwrap_err()
        .to_string();
    assert!(e.contains("no captions"), "{e}");
}

#[test]
fn a_text_run_with_a_caption_mix_and_dropout_resumes_bit_for_bit() {
    let tmp = tempfile::tempdir().unwrap();
    let text = text_config(tmp.path());
    let shards = tmp.path().join("mix");
    let kind = SetKind {
        synthetic: true,
        ..BOTH
    };
    write_set(&shards, kind, &text);
    let extra = [
        "conditioning.caption_mix={ txt = 0.5, syn = 0.5 }",
        "conditioning.source_dropout={ minilm = 0.4 }",
    ];
    let straight = train(
        config(tmp.path(), "straight", &shards, &text, &extra),
        quiet(),
    )
    .unwrap();
    let cfg = config(tmp.path(), "split", &shards, &text, &extra);
    train(
        cfg.clone(),
        TrainOptions {
            stop_at: Some(3),
            ..quiet()
        },
    )
    .unwrap();
    let resumed = train(
        cfg,
        TrainOptions {
            resume: true,
            ..quiet()
        },
    )
    .unwrap();
    assert_eq!(resumed.rng_state, straight.rng_state);
    let a = final_checkpoint(&tmp.path().join("straight"));
    let b = final_checkpoint(&tmp.path().join("split"));
    let (differing, compared) = differing_tensors(&a, &b);
    assert!(compared > 10);
    assert!(differing.is_empty(), "{differing:?}");

    // The caption mix changes what is trained on: a txt-only run ends elsewhere.
    let txt_only = [extra[1]];
    train(
        config(tmp.path(), "txt", &shards, &text, &txt_only),
        quiet(),
    )
    .unwrap();
    let c = final_checkpoint(&tmp.path().join("txt"));
    assert!(!differing_tensors(&a, &c).0.is_empty());

    // The realised dropout rate is logged per source and for all sources.
    let metrics = std::fs::read_to_string(tmp.path().join("straight/metrics.jsonl")).unwrap();
    let line = metrics
        .lines()
        .find(|l| l.contains("cond_drop_minilm"))
        .expect("a train line with the dropout rate");
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    let rate = v["cond_drop_minilm"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&rate));
    assert_eq!(
        v["cond_drop_all"].as_f64(),
        Some(rate),
        "one source: all = it"
    );

    // A dropout or grid setting for a source the run does not have is named with the ones it has.
    for bad in [
        "conditioning.source_dropout={ t5 = 0.5 }",
        "samples.drop_sources=[\"clip_l\"]",
    ] {
        let e = train(config(tmp.path(), "src", &shards, &text, &[bad]), quiet())
            .unwrap_err()
            .to_string();
        assert!(e.contains("[\"minilm\"]"), "{bad}: {e}");
    }

    // A mix naming a field the shards lack lists the ones they have.
    let bad = ["conditioning.caption_mix={ txt = 0.5, cogvlm = 0.5 }"];
    let e = train(config(tmp.path(), "bad", &shards, &text, &bad), quiet())
        .unwrap_err()
        .to_string();
    assert!(e.contains("cogvlm") && e.contains("syn"), "{e}");
}

#[test]
fn samples_follow_held_out_prompts() {
    let tmp = tempfile::tempdir().unwrap();
    let text = text_config(tmp.path());
    let shards = tmp.path().join("colours");
    let kind = SetKind {
        labels: false,
        ..BOTH
    };
    write_set(&shards, kind, &text);
    let cfg = config(
        tmp.path(),
        "adherence",
        &shards,
        &text,
        &[
            "model.depth=2",
            "train.steps=150",
            "train.batch_size=32",
            "optim.lr=2e-3",
            "optim.warmup_steps=10",
            "conditioning.dropout=0.1",
            "validation.every=0",
            "samples.every=0",
            "checkpoint.every=150",
            "logging.every=50",
        ],
    );
    train(cfg, quiet()).unwrap();

    // Prompts in phrasings the run never saw, encoded by the run's text encoder.
    let held_out = [
        "an image that is {}",
        "{} colour everywhere",
        "something {}",
    ];
    let prompts: Vec<String> = held_out
        .iter()
        .flat_map(|t| COLOURS.iter().map(move |c| t.replace("{}", c)))
        .collect();
    let want: Vec<usize> = (0..prompts.len()).map(|i| i % 3).collect();
    let ck = RunCheckpoint::open(&tmp.path().join("adherence"), StepChoice::Latest).unwrap();
    let run = ck.run_config().unwrap();
    let data = RunData::open(&run.data, &run.conditioning, Device::Cpu, true).unwrap();
    let spec = RunModelSpec::for_run(&run, &data)
        .unwrap()
        .with_text_encoder(&text.display().to_string())
        .unwrap();
    let model = RunModel::build(&spec, Device::Cpu).unwrap();
    ck.load_weights(&model, WeightSet::Raw).unwrap();
    let input = CondInput::Text(TextBatch {
        captions: Some(prompts.clone()),
        embedding: None,
    });
    let cond = model.encode_all(&input).unwrap();
    let formulation = flowscale_formulations::Formulation::parse(&run.formulation.name).unwrap();
    let noise = flowscale_formulations::with_torch_seed(11, || {
        Tensor::randn(
            [prompts.len() as i64, 3, SIDE, SIDE],
            (Kind::Float, Device::Cpu),
        )
    });
    let setting = SamplerSetting {
        steps: 10,
        cfg: 2.0,
        shift: 1.0,
        method: flowscale_formulations::SamplerMethod::Euler,
        frame: flowscale_formulations::SamplerFrame::Rf,
    };
    let x = generate(formulation, setting, &noise, &cond, |x, t, c| {
        model.forward(x, t, c)
    })
    .unwrap();
    let got = colours(&x);
    let hits = got.iter().zip(&want).filter(|(a, b)| a == b).count();
    eprintln!("adherence: {hits}/9 (chance 3/9): {got:?} vs {want:?}");
    // Chance is 1/3 (3 of 9).
    assert!(
        hits >= 8,
        "{hits}/9 samples match their prompt's colour: {got:?} vs {want:?}"
    );
    // And without the text (all sources dropped) the colour no longer follows the prompt.
    let uncond = model
        .encode_without(&input, &["minilm".to_owned()])
        .unwrap();
    assert_eq!(uncond.context.abs().sum(Kind::Float).double_value(&[]), 0.0);
    assert!(model.encode_without(&input, &["t5".to_owned()]).is_err());
}
