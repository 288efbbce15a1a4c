//! `flowscale train` then `flowscale export` on a tiny run: the exported weights are the
//! checkpoint's, in every layout, and they load back through the model crate's readers.

mod common;

use common::tiny_run_config;
use std::path::Path;
use std::process::{Command, Output};

fn flowscale(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_flowscale"))
        .args(args)
        .env_remove("LD_LIBRARY_PATH")
        .output()
        .expect("flowscale runs")
}

fn ok(out: &Output) -> String {
    let t = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{t}");
    t
}

/// Two EMAs updated every step, and sample grids at the end.
const OVERRIDES: &[&str] = &[
    "optim.lr=1e-3",
    "optim.warmup_steps=1",
    "ema.decays=[0.9, 0.99]",
    "ema.every=1",
    "samples.every=4",
    "samples.per_class=1",
    "samples.steps=[2]",
    "samples.cfg=[1.0]",
    "checkpoint.keep_last=3",
];

#[test]
fn train_then_export_every_layout() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("tiny.toml");
    std::fs::write(&cfg, tiny_run_config(OVERRIDES)).unwrap();
    let runs = tmp.path().join("runs");
    let set_out = format!("run.out_dir=\"{}\"", runs.display());
    let t = ok(&flowscale(&[
        "train",
        cfg.to_str().unwrap(),
        "--set",
        &set_out,
    ]));
    assert!(
        t.contains("trained to step 4") && t.contains("samples"),
        "{t}"
    );
    let run = runs.join("tiny");
    let run_s = run.to_str().unwrap();

    // diffusers folder of the best-validation EMA 0.99 checkpoint, in bf16.
    let dif = tmp.path().join("dif");
    ok(&flowscale(&[
        "export",
        run_s,
        "--format",
        "diffusers",
        "--weights",
        "ema:0.99",
        "--best-val-loss",
        "--dtype",
        "bf16",
        "--out",
        dif.to_str().unwrap(),
    ]));
    assert!(dif.join("config.json").is_file() && dif.join("README.md").is_file());
    let card = std::fs::read_to_string(dif.join("README.md")).unwrap();
    assert!(
        card.contains("rf/lognorm(0.00, 1.00)") && card.contains("ema:0.99"),
        "{card}"
    );
    let best_step: u64 = card
        .lines()
        .find_map(|l| l.strip_prefix("- step: "))
        .unwrap()
        .parse()
        .unwrap();
    let ck_dir = run.join(format!("checkpoints/step-{best_step:09}"));
    let ema = tch::Tensor::read_safetensors(ck_dir.join("ema-0.99.safetensors")).unwrap();
    let loaded =
        flowscale_models::checkpoint::read(&dif, tch::Kind::Float, tch::Device::Cpu).unwrap();
    let mut compared = 0;
    for (k, v) in &ema {
        if k.starts_with("conditioner.") {
            continue;
        }
        let got = &loaded.state[k];
        let want = v.to_kind(tch::Kind::BFloat16).to_kind(tch::Kind::Float);
        assert!(got.equal(&want), "{k}");
        compared += 1;
    }
    assert!(compared > 10);

    // SD3 single file of the raw weights of step 2 reads back to the same tensors.
    let sd3 = tmp.path().join("model.safetensors");
    ok(&flowscale(&[
        "export",
        run_s,
        "--format",
        "sd3",
        "--weights",
        "raw",
        "--step",
        "2",
        "--out",
        sd3.to_str().unwrap(),
    ]));
    let raw =
        tch::Tensor::read_safetensors(run.join("checkpoints/step-000000002/model.safetensors"))
            .unwrap();
    let back =
        flowscale_models::checkpoint::read(&sd3, tch::Kind::Float, tch::Device::Cpu).unwrap();
    for (k, v) in &raw {
        if !k.starts_with("conditioner.") {
            assert!(back.state[k].equal(v), "{k}");
        }
    }

    // flowscale's own layout keeps the conditioner.
    let plain = tmp.path().join("plain.safetensors");
    ok(&flowscale(&[
        "export",
        run_s,
        "--format",
        "safetensors",
        "--weights",
        "ema:0.9",
        "--out",
        plain.to_str().unwrap(),
    ]));
    let names: Vec<String> = tch::Tensor::read_safetensors(&plain)
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert!(
        names.iter().any(|k| k == "conditioner.context"),
        "{names:?}"
    );

    // Errors name what is wrong.
    let bad = flowscale(&[
        "export",
        run_s,
        "--format",
        "sd3",
        "--weights",
        "ema",
        "--out",
        "x.safetensors",
    ]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("ema:DECAY"));
    let bad = flowscale(&[
        "export",
        run_s,
        "--format",
        "sd3",
        "--step",
        "3",
        "--out",
        "x.safetensors",
    ]);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("no checkpoint of step 3"));
    assert!(!Path::new("x.safetensors").exists());
}
