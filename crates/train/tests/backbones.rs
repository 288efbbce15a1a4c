//! Every backbone goes through the same commands as MMDiT (issue #21): it trains, resumes bit
//! for bit, samples grids during training, and exports in its own layout; the backbone is part
//! of the config hash, so a run cannot resume as another architecture.

mod common;

use common::{differing_tensors, final_checkpoint, quiet, tiny_config};
use flowscale_models::checkpoint::{load_mmdit, Layout};
use flowscale_models::BackboneKind;
use flowscale_train::export::{export, ExportFormat, ExportRequest, StepChoice, WeightChoice};
use flowscale_train::resume_compat::config_hash;
use flowscale_train::{train, TrainOptions};

fn overrides(backbone: BackboneKind) -> Vec<String> {
    // The tiny run's one block; UViT needs two for a skip. Two class tokens: MMDiT-3 splits
    // them 1 + 1.
    let depth = if backbone == BackboneKind::Uvit { 2 } else { 1 };
    vec![
        format!("model.backbone={:?}", backbone.name()),
        format!("model.depth={depth}"),
        "conditioning.context_tokens=2".into(),
    ]
}

#[test]
fn every_backbone_trains_resumes_bit_for_bit_and_exports() {
    let tmp = tempfile::tempdir().unwrap();
    let mut hashes = Vec::new();
    for backbone in [
        BackboneKind::Dit,
        BackboneKind::CrossDit,
        BackboneKind::Uvit,
        BackboneKind::Mmdit3,
    ] {
        let o = overrides(backbone);
        let o: Vec<&str> = o.iter().map(String::as_str).collect();
        let name = backbone.name();
        let straight_cfg = tiny_config(tmp.path(), &format!("{name}-straight"), &o);
        hashes.push(config_hash(&straight_cfg).unwrap());
        let straight = train(straight_cfg, quiet()).unwrap();
        assert_eq!(straight.step, 6);
        let cfg = tiny_config(tmp.path(), &format!("{name}-split"), &o);
        let stop = TrainOptions {
            stop_at: Some(3),
            ..quiet()
        };
        train(cfg.clone(), stop).unwrap();
        let resume = TrainOptions {
            resume: true,
            ..quiet()
        };
        train(cfg, resume).unwrap();
        let a = final_checkpoint(&tmp.path().join(format!("{name}-straight")));
        let b = final_checkpoint(&tmp.path().join(format!("{name}-split")));
        let (differing, compared) = differing_tensors(&a, &b);
        assert!(differing.is_empty(), "{name}: {}", differing.join(", "));
        assert!(compared > 25, "{name}: only {compared} tensors");
        // Trained: the zero-initialised output projection moved.
        let proj = &a.groups["model"]["proj_out.weight"];
        assert!(proj.abs().max().double_value(&[]) > 0.0, "{name}");
        // Grids were sampled at the last step (samples.every = 6).
        let samples = tmp.path().join(format!("{name}-straight/samples"));
        let pngs = std::fs::read_dir(&samples)
            .unwrap()
            .filter(|e| e.as_ref().unwrap().path().extension() == Some("png".as_ref()))
            .count();
        assert!(pngs > 0, "{name}: no sample grids in {}", samples.display());

        // Export: flowscale's folder, naming the backbone, loads back to the same weights;
        // the MMDiT layouts are refused by name.
        let out = tmp.path().join(format!("{name}-export"));
        let request = |format, out: &std::path::Path| ExportRequest {
            source: tmp.path().join(format!("{name}-straight")),
            format,
            weights: WeightChoice::Raw,
            step: StepChoice::Latest,
            dtype: tch::Kind::Float,
            out: out.to_path_buf(),
        };
        export(&request(ExportFormat::Flowscale, &out)).unwrap();
        let config = std::fs::read_to_string(out.join("config.json")).unwrap();
        assert!(
            config.contains(&format!("\"backbone\": \"{name}\"")),
            "{config}"
        );
        let loaded = load_mmdit(&out, tch::Device::Cpu).unwrap();
        assert_eq!(loaded.layout, Layout::Flowscale);
        assert_eq!(loaded.model.kind(), backbone);
        let vars = loaded.vs.variables();
        for (k, t) in &a.groups["model"] {
            if !k.starts_with("conditioner.") {
                assert!(vars[k].equal(t), "{name}: exported {k} differs");
            }
        }
        let e = export(&request(ExportFormat::Diffusers, &tmp.path().join("d")))
            .unwrap_err()
            .to_string();
        assert!(e.contains(name) && e.contains("diffusers"), "{e}");
    }
    hashes.push(config_hash(&tiny_config(tmp.path(), "m", &[])).unwrap());
    let mut distinct = hashes.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), hashes.len(), "config hashes {hashes:?}");
}

#[test]
fn backbone_settings_are_checked_by_name() {
    let tmp = tempfile::tempdir().unwrap();
    let bad = |o: &[&str]| {
        let cfg = tiny_config(tmp.path(), "bad", o);
        train(cfg, quiet()).unwrap_err().to_string()
    };
    // MMDiT-3 needs a token on each side of the split.
    let e = bad(&[
        "model.backbone=\"mmdit-3\"",
        "conditioning.context_tokens=1",
    ]);
    assert!(e.contains("mmdit-3") && e.contains("context_tokens"), "{e}");
    let e = bad(&[
        "model.backbone=\"mmdit-3\"",
        "conditioning.context_tokens=3",
        "model.context_split=3",
    ]);
    assert!(e.contains("context_split"), "{e}");
    let parse = |o: &[&str]| {
        let o: Vec<String> = o.iter().map(|s| s.to_string()).collect();
        flowscale_core::config::load_str(common::TINY_RUN, "t.toml".as_ref(), &o)
            .map(|_: flowscale_train::config::RunConfig| ())
            .unwrap_err()
            .to_string()
    };
    let e = parse(&["model.backbone=\"vit\""]);
    assert!(e.contains("vit") && e.contains("crossdit"), "{e}");
    let e = parse(&["model.context_split=2"]);
    assert!(e.contains("context_split") && e.contains("mmdit-3"), "{e}");
}
