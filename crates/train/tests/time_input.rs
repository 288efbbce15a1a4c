//! `formulation.time_input = "native"`: the backbone sees each family's own time input (the LDM
//! step index, EDM's ln(sigma)/4) instead of the common 1000 t_eq. The switch reaches the
//! backbone in training (the trained weights differ from the default run's, with the same seed
//! and data), and export, whose formats feed 1000 t_eq, refuses such a backbone by name except
//! for rf, where both inputs are the same.

mod common;

use common::{final_checkpoint, quiet, tiny_config};
use flowscale_train::export::{export, ExportFormat, ExportRequest, StepChoice, WeightChoice};
use flowscale_train::train;
use std::path::Path;
use tch::Kind;

fn run(dir: &Path, name: &str, formulation: &str, time_input: &str) {
    let cfg = tiny_config(
        dir,
        name,
        &[
            &format!("formulation.name={formulation:?}"),
            &format!("formulation.time_input={time_input:?}"),
            "samples.every=0",
        ],
    );
    let state = train(cfg, quiet()).unwrap();
    assert!(
        state.best_val_loss.is_some_and(|(v, _)| v.is_finite()),
        "{name}"
    );
}

fn export_to(dir: &Path, name: &str) -> flowscale_train::Result<()> {
    export(&ExportRequest {
        source: dir.join(name),
        format: ExportFormat::Safetensors,
        weights: WeightChoice::Raw,
        step: StepChoice::Latest,
        dtype: Kind::Float,
        out: dir.join(format!("{name}.safetensors")),
    })
    .map(|_| ())
}

#[test]
fn native_time_input_reaches_the_backbone_and_export_refuses_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    run(dir, "ldm-common", "eps/linear", "t_eq");
    run(dir, "ldm-native", "eps/linear", "native");
    let (a, b) = (
        final_checkpoint(&dir.join("ldm-common")),
        final_checkpoint(&dir.join("ldm-native")),
    );
    // The time embedding's first layer sees other inputs, so training takes another course.
    let key = "time_text_embed.timestep_embedder.linear_1.weight";
    let diff = (&a.groups["model"][key] - &b.groups["model"][key])
        .abs()
        .max()
        .double_value(&[]);
    assert!(
        diff > 1e-6,
        "the native time input changed nothing ({diff})"
    );

    assert!(export_to(dir, "ldm-common").is_ok());
    let err = export_to(dir, "ldm-native").unwrap_err().to_string();
    assert!(
        err.contains("formulation.time_input") && err.contains("eps/linear"),
        "{err}"
    );
    // rf's native time is t_eq: the same input, so its export stays valid.
    run(dir, "rf-native", "rf", "native");
    assert!(export_to(dir, "rf-native").is_ok());
}

#[test]
fn an_unknown_time_input_is_refused_by_name() {
    let tmp = tempfile::tempdir().unwrap();
    let err = flowscale_train::config::load_str::<flowscale_train::config::RunConfig>(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/tiny-run.toml"),
        )
        .unwrap(),
        &tmp.path().join("tiny-run.toml"),
        &["formulation.time_input=\"integer\"".to_string()],
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("formulation.time_input") && err.contains("native"),
        "{err}"
    );
}
