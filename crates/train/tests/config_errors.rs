//! The config loader's contract: unknown keys, wrong types and out-of-range values are errors
//! that name the file and the key, overrides behave like the file, and the resolved config
//! round-trips.

use std::path::{Path, PathBuf};

use flowscale_train::config::{load, load_str, to_toml_string, ConfigError, RunConfig};

const MINIMAL: &str = r#"
[run]
name = "t"
[data]
dataset = "fashion-mnist"
resolution = 32
[train]
steps = 10
batch_size = 4
"#;

fn demo_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/demo.toml")
}

fn err_of(text: &str, overrides: &[&str]) -> ConfigError {
    let overrides: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
    load_str::<RunConfig>(text, Path::new("bad.toml"), &overrides).unwrap_err()
}

#[test]
fn the_shipped_demo_config_is_valid() {
    let cfg: RunConfig = load(&demo_path(), &[]).unwrap();
    assert_eq!(cfg.run.name, "demo");
    assert_eq!(cfg.formulation.name, "rf/lognorm(0.00, 1.00)");
    assert_eq!(cfg.model.hidden_size(), 192);
}

#[test]
fn unknown_key_is_named_with_its_section_and_the_allowed_keys() {
    let text = MINIMAL.replace("[train]", "[optim]\nlrr = 1e-4\n[train]");
    let err = err_of(&text, &[]);
    let msg = err.to_string();
    assert_eq!(err.keys(), vec!["optim.lrr"], "{msg}");
    assert!(msg.starts_with("bad.toml: key `optim.lrr`"), "{msg}");
    assert!(
        msg.contains("expected one of") && msg.contains("`lr`"),
        "{msg}"
    );
}

/// `train.grad_accum` meant micro-batches per rank; with `train.batch_size` now the global batch,
/// an old config that sets it is told what replaced it, and a zero micro-batch is refused.
#[test]
fn the_removed_grad_accum_names_its_replacement() {
    let err = err_of(MINIMAL, &["train.grad_accum=2"]);
    let msg = err.to_string();
    assert_eq!(err.keys(), vec!["train.grad_accum"], "{msg}");
    assert!(
        msg.contains("global batch") && msg.contains("train.micro_batch_size"),
        "{msg}"
    );
    let err = err_of(MINIMAL, &["train.micro_batch_size=0"]);
    assert_eq!(err.keys(), vec!["train.micro_batch_size"], "{err}");
}

#[test]
fn unknown_section_is_named() {
    let err = err_of(&format!("{MINIMAL}\n[optimizer]\nlr = 1\n"), &[]);
    assert_eq!(err.keys(), vec!["optimizer"], "{err}");
}

#[test]
fn wrong_type_names_the_key_and_the_expected_type() {
    let text = MINIMAL.replace("steps = 10", "steps = \"ten\"");
    let err = err_of(&text, &[]);
    let msg = err.to_string();
    assert_eq!(err.keys(), vec!["train.steps"], "{msg}");
    assert!(msg.contains("invalid type: string \"ten\""), "{msg}");
}

#[test]
fn bad_enum_value_lists_the_allowed_values() {
    let err = err_of(MINIMAL, &["train.precision=fp8"]);
    let msg = err.to_string();
    assert_eq!(err.keys(), vec!["train.precision"], "{msg}");
    assert!(msg.contains("expected `fp32` or `bf16`"), "{msg}");
    assert!(msg.contains("(set with --set)"), "{msg}");
}

/// `samples.frame` is `rf` (the default) or `native`; a native grid the formulation's schedule
/// refuses (the LDM schedule takes no shift) is named before the run starts.
#[test]
fn the_sampler_frame_is_rf_or_native_and_checked_up_front() {
    let cfg: RunConfig = load_str(MINIMAL, Path::new("m.toml"), &[]).unwrap();
    assert_eq!(cfg.samples.frame, flowscale_formulations::SamplerFrame::Rf);
    let native: RunConfig = load_str(
        MINIMAL,
        Path::new("m.toml"),
        &["samples.frame=\"native\"".into()],
    )
    .unwrap();
    assert_eq!(
        native.samples.frame,
        flowscale_formulations::SamplerFrame::Native
    );
    let err = err_of(MINIMAL, &["samples.frame=\"ddim\""]);
    let msg = err.to_string();
    assert_eq!(err.keys(), vec!["samples.frame"], "{msg}");
    assert!(msg.contains("expected `rf` or `native`"), "{msg}");
    let err = err_of(
        MINIMAL,
        &[
            "samples.frame=\"native\"",
            "formulation.name=\"eps/linear\"",
            "formulation.shift=3.0",
        ],
    );
    let msg = err.to_string();
    assert_eq!(err.keys(), vec!["samples.frame"], "{msg}");
    assert!(
        msg.contains("eps/linear") && msg.contains("shift 3"),
        "{msg}"
    );
}

#[test]
fn out_of_range_values_are_all_reported_with_their_ranges() {
    let err = err_of(
        MINIMAL,
        &[
            "optim.lr=-1",
            "optim.betas=[0.9, 1.5]",
            "ema.decays=[0.5, 1.2]",
            "data.resolution=30",
        ],
    );
    let msg = err.to_string();
    assert_eq!(
        err.keys(),
        vec![
            "data.resolution",
            "optim.lr",
            "optim.betas[1]",
            "ema.decays[1]"
        ],
        "{msg}"
    );
    assert!(
        msg.contains("key `optim.lr`: must be finite and > 0, got -1"),
        "{msg}"
    );
    assert!(msg.contains("must be in [0, 1), got 1.5"), "{msg}");
    assert!(msg.contains("multiple of 8"), "{msg}");
}

#[test]
fn heads_must_divide_hidden_size() {
    let err = err_of(MINIMAL, &["model.depth=3", "model.num_heads=5"]);
    assert_eq!(err.keys(), vec!["model.num_heads"], "{err}");
}

#[test]
fn missing_required_key_is_named() {
    let text = MINIMAL.replace("batch_size = 4", "");
    let err = err_of(&text, &[]);
    let msg = err.to_string();
    assert!(msg.contains("missing field `batch_size`"), "{msg}");
    assert!(msg.contains("`train`"), "{msg}");
}

#[test]
fn overrides_set_values_and_create_sections() {
    let ov: Vec<String> = ["optim.lr=3e-4", "model.qk_norm=true", "run.name=other-run"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let cfg: RunConfig = load_str(MINIMAL, Path::new("m.toml"), &ov).unwrap();
    assert_eq!(cfg.optim.lr, 3e-4);
    assert!(cfg.model.qk_norm);
    assert_eq!(cfg.run.name, "other-run");
}

#[test]
fn later_overrides_win() {
    let ov = vec!["train.steps=5".to_string(), "train.steps=7".to_string()];
    let cfg: RunConfig = load_str(MINIMAL, Path::new("m.toml"), &ov).unwrap();
    assert_eq!(cfg.train.steps, 7);
}

#[test]
fn malformed_overrides_are_rejected() {
    for (arg, needle) in [
        ("optim.lr", "expected KEY=VALUE"),
        ("=3", "dotted path"),
        ("optim..lr=3", "dotted path"),
        ("optim.lr=", "no value"),
        ("run.name.x=1", "`run.name` is a string, not a section"),
    ] {
        let msg = err_of(MINIMAL, &[arg]).to_string();
        assert!(msg.contains(needle), "{arg}: {msg}");
        assert!(msg.contains(arg), "{arg}: {msg}");
    }
}

#[test]
fn syntax_errors_name_the_file_and_line() {
    let msg = err_of("[run\nname = 1", &[]).to_string();
    assert!(msg.starts_with("bad.toml: not valid TOML"), "{msg}");
    assert!(msg.contains("line 1"), "{msg}");
}

#[test]
fn missing_file_is_named() {
    let err = load::<RunConfig>(Path::new("/nonexistent/x.toml"), &[]).unwrap_err();
    assert!(err.to_string().contains("/nonexistent/x.toml"), "{err}");
}

#[test]
fn resolved_config_round_trips_with_defaults_filled_in() {
    let cfg: RunConfig = load_str(MINIMAL, Path::new("m.toml"), &[]).unwrap();
    let text = to_toml_string(&cfg).unwrap();
    assert!(text.contains("warmup_steps = 1000"), "{text}");
    assert!(text.contains("name = \"rf/lognorm(0.00, 1.00)\""), "{text}");
    let back: RunConfig = load_str(&text, Path::new("resolved.toml"), &[]).unwrap();
    assert_eq!(back, cfg);
}

#[test]
fn sizes_that_cannot_be_allocated_and_shifts_that_fail_late_are_refused_up_front() {
    // depth 1000 is 64000 wide: tens of TB of weights, an allocation abort without this check.
    let err = err_of(
        MINIMAL,
        &[
            "model.depth=1000",
            "model.patch_size=1000",
            "formulation.shift=1e300",
        ],
    );
    let keys = err.keys();
    for key in [
        "model.depth",
        "model.hidden_size",
        "model.num_heads",
        "model.patch_size",
        "formulation.shift",
    ] {
        assert!(keys.contains(&key), "{key} not named: {err}");
    }
    let msg = err.to_string();
    assert!(msg.contains("must be in [1, 96], got 1000"), "{msg}");
    // The paper's largest model is well inside the limits.
    let ok = load_str::<RunConfig>(
        MINIMAL,
        Path::new("d38.toml"),
        &["model.depth=38".into(), "formulation.shift=3.0".into()],
    );
    assert!(ok.is_ok(), "{:?}", ok.err());
}

/// `logging.attention_every` is a step count: a negative one names the key.
#[test]
fn a_negative_attention_every_names_its_key() {
    let err = err_of(MINIMAL, &["logging.attention_every=-4"]);
    assert_eq!(err.keys(), vec!["logging.attention_every"], "{err}");
}

/// `formulation.shift` takes a positive number or `"auto"`; everything else, and a base
/// resolution `"auto"` cannot divide by, is named by its key.
#[test]
fn bad_shift_values_are_named_by_key() {
    let cases: [(&str, &str); 6] = [
        ("formulation.shift=\"Auto\"", "formulation.shift"),
        ("formulation.shift=0", "formulation.shift"),
        ("formulation.shift=-2", "formulation.shift"),
        ("formulation.shift=nan", "formulation.shift"),
        (
            "formulation.shift_base_resolution=0",
            "formulation.shift_base_resolution",
        ),
        (
            "formulation.shift_base_resolution=-256",
            "formulation.shift_base_resolution",
        ),
    ];
    for (set, key) in cases {
        let err = err_of(MINIMAL, &[set]);
        let msg = err.to_string();
        assert_eq!(err.keys(), vec![key], "{set}: {msg}");
    }
    let msg = err_of(MINIMAL, &["formulation.shift=\"Auto\""]).to_string();
    assert!(msg.contains("\"auto\""), "{msg}");
}

/// `[init]` and the position grid: a weight set that is not one of `--weights`' spellings and a
/// base resolution without the interpolated grid are named by their keys; the shipped pair of
/// finetune configs loads.
#[test]
fn init_and_position_grid_values_are_checked() {
    let err = err_of(
        MINIMAL,
        &[
            "init.from=\"runs/parent\"",
            "init.weights=\"best\"",
            "model.position_base_resolution=32",
            "model.qk_norm=true",
        ],
    );
    let msg = err.to_string();
    let mut keys = err.keys();
    keys.sort();
    assert_eq!(
        keys,
        vec!["init.weights", "model.position_base_resolution"],
        "{msg}"
    );
    assert!(
        msg.contains("ema:DECAY") && msg.contains("\"interpolated\""),
        "{msg}"
    );
    let err = err_of(MINIMAL, &["init.weights=\"raw\""]);
    assert!(err.to_string().contains("from"), "{err}");
    let configs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs");
    let child: RunConfig = load(&configs.join("finetune-64.toml"), &[]).unwrap();
    let init = child.init.expect("[init]");
    assert_eq!(
        (init.from.as_str(), init.weights.as_str()),
        ("runs/finetune-parent", "ema")
    );
    let parent: RunConfig = load(&configs.join("finetune-parent.toml"), &[]).unwrap();
    assert!(parent.init.is_none());
}
