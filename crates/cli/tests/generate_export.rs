//! `flowscale generate --checkpoint` on the exports of the tiny text run (captioned shards,
//! stored MiniLM embeddings, identity autoencoder): the same prompts and seed give the run's own
//! images byte for byte from the diffusers folder and from the SD3 single file, and whatever
//! an export does not carry (text config, autoencoder, class embedding) is asked for by name.

mod common;

use common::binary::{fails, flowscale, ok, train_text_run};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::OnceLock;

fn scratch(name: &str) -> PathBuf {
    common::binary::scratch("generate-export-tests", name)
}

/// The text run with its EMA exported as a diffusers folder and as an SD3 single file.
struct Exported {
    run: PathBuf,
    /// The MiniLM config the run trained with.
    text_config: PathBuf,
    diffusers: PathBuf,
    sd3: PathBuf,
}

fn exported() -> &'static Exported {
    static RUN: OnceLock<Exported> = OnceLock::new();
    RUN.get_or_init(|| {
        let dir = scratch("text-run");
        let run = train_text_run(&dir);
        let (diffusers, sd3) = (dir.join("diffusers"), dir.join("sd3.safetensors"));
        for (format, out) in [("diffusers", &diffusers), ("sd3", &sd3)] {
            ok(&flowscale(&[
                "export",
                run.to_str().unwrap(),
                "--format",
                format,
                "--weights",
                "ema",
                "--out",
                out.to_str().unwrap(),
            ]));
        }
        Exported {
            run,
            text_config: dir.join("minilm.toml"),
            diffusers,
            sd3,
        }
    })
}

/// `flowscale generate SOURCE... --out OUT` with 2 sampler steps on the CPU.
fn generate(source: &[&str], out: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["generate"];
    args.extend_from_slice(source);
    args.extend_from_slice(&[
        "--out",
        out.to_str().unwrap(),
        "--steps",
        "2",
        "--device",
        "cpu",
    ]);
    args.extend_from_slice(extra);
    flowscale(&args)
}

/// `--checkpoint PATH --text-config T --autoencoder identity`.
fn from_export<'a>(checkpoint: &'a Path, text_config: &'a Path) -> [&'a str; 6] {
    [
        "--checkpoint",
        checkpoint.to_str().unwrap(),
        "--text-config",
        text_config.to_str().unwrap(),
        "--autoencoder",
        "identity",
    ]
}

fn bytes(dir: &Path, file: &str) -> Vec<u8> {
    std::fs::read(dir.join(file)).unwrap_or_else(|e| panic!("{}: {e}", dir.join(file).display()))
}

/// Two prompts, two images each, guided (the default cfg 5), seed 3; the run's formulation and
/// shift are the defaults of --formulation and --shift.
const REQUEST: [&str; 8] = [
    "--prompt",
    "a red square",
    "--prompt",
    "a blue square",
    "--per-prompt",
    "2",
    "--seed",
    "3",
];
const FILES: [&str; 6] = [
    "0000.png",
    "0001.png",
    "0002.png",
    "0003.png",
    "grid.png",
    "prompts.txt",
];

#[test]
fn both_export_layouts_give_the_runs_own_images() {
    let e = exported();
    let tmp = scratch("same-images");
    let own = tmp.join("run");
    ok(&generate(
        &[e.run.to_str().unwrap(), "--weights", "ema"],
        &own,
        &REQUEST,
    ));
    for (name, checkpoint) in [("diffusers", &e.diffusers), ("sd3", &e.sd3)] {
        let out = tmp.join(name);
        ok(&generate(
            &from_export(checkpoint, &e.text_config),
            &out,
            &REQUEST,
        ));
        for f in FILES {
            assert_eq!(bytes(&own, f), bytes(&out, f), "{name}: {f} differs");
        }
        let record: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("generate.json")).unwrap())
                .unwrap();
        assert_eq!(record["layout"], name);
        assert_eq!(record["autoencoder"], "identity");
        assert_eq!(record["formulation"], "rf/lognorm(0.00, 1.00)");
        assert_eq!(record["shift"], 1.0);
        assert_eq!(record["latent_size"], serde_json::json!([8, 8]));
        assert_eq!(record["seed"], 3);
        assert!(record["step"].is_null(), "{record}");
    }
    // A negative prompt goes through the same code from either source.
    let extra = [
        "--prompt",
        "a red square",
        "--negative-prompt",
        "a green square",
    ];
    let (own_neg, out_neg) = (tmp.join("run-negative"), tmp.join("diffusers-negative"));
    ok(&generate(&[e.run.to_str().unwrap()], &own_neg, &extra));
    ok(&generate(
        &from_export(&e.diffusers, &e.text_config),
        &out_neg,
        &extra,
    ));
    assert_eq!(bytes(&own_neg, "0000.png"), bytes(&out_neg, "0000.png"));
    assert_ne!(bytes(&own_neg, "0000.png"), bytes(&own, "0000.png"));
    // Another formulation samples otherwise: the flag is read, not ignored.
    let eps = tmp.join("eps");
    let mut args = REQUEST.to_vec();
    args.extend_from_slice(&["--formulation", "eps/linear"]);
    ok(&generate(
        &from_export(&e.diffusers, &e.text_config),
        &eps,
        &args,
    ));
    assert_ne!(bytes(&own, "0000.png"), bytes(&eps, "0000.png"));
}

#[test]
fn a_text_config_of_other_widths_is_refused_naming_both() {
    let e = exported();
    let tmp = scratch("widths");
    // SD3's stack without its weights (every encoder absent contributes zeros of SD3's shapes):
    // 154 context tokens of 4096 and a pooled vector of 2048.
    let sd3 = tmp.join("sd3-text.toml");
    std::fs::write(&sd3, "encoder = \"sd3\"\n[sd3]\ncontext_width = 4096\n").unwrap();
    let err = fails(&generate(
        &from_export(&e.diffusers, &sd3),
        &tmp.join("out"),
        &["--prompt", "a red square"],
    ));
    assert!(
        err.contains("width 4096")
            && err.contains("pooled vector of 2048")
            && err.contains("joint_attention_dim 384")
            && err.contains("pooled_projection_dim 384"),
        "{err}"
    );
    assert!(!tmp.join("out/0000.png").exists());
}

#[test]
fn what_an_export_does_not_carry_is_asked_for() {
    let e = exported();
    let tmp = scratch("asked-for");
    let ck = e.diffusers.to_str().unwrap();
    let text = e.text_config.to_str().unwrap();
    let out = tmp.join("out");
    // Classes: an export has no class embedding.
    let err = fails(&generate(
        &from_export(&e.diffusers, &e.text_config),
        &out,
        &["--class", "red"],
    ));
    assert!(
        err.contains("--class") && err.contains("class embedding") && err.contains("run directory"),
        "{err}"
    );
    // No text config.
    let err = fails(&generate(
        &["--checkpoint", ck, "--autoencoder", "identity"],
        &out,
        &["--prompt", "a red square"],
    ));
    assert!(err.contains("--text-config") && err.contains(ck), "{err}");
    // No autoencoder.
    let err = fails(&generate(
        &["--checkpoint", ck, "--text-config", text],
        &out,
        &["--prompt", "a red square"],
    ));
    assert!(
        err.contains("--autoencoder") && err.contains("identity"),
        "{err}"
    );
    // An autoencoder kind precompute does not know, and one without its folder.
    let with = |ae: &'static str| {
        fails(&generate(
            &[
                "--checkpoint",
                ck,
                "--text-config",
                text,
                "--autoencoder",
                ae,
            ],
            &out,
            &["--prompt", "a red square"],
        ))
    };
    let err = with("vae:/x");
    assert!(
        err.contains("\"vae\"") && err.contains("kl, taef2, identity"),
        "{err}"
    );
    let err = with("kl");
    assert!(
        err.contains("--autoencoder kl") && err.contains("weights folder"),
        "{err}"
    );
    // A run's weight choice means nothing for an export.
    let err = fails(&generate(
        &from_export(&e.diffusers, &e.text_config),
        &out,
        &["--prompt", "a red square", "--weights", "raw"],
    ));
    assert!(
        err.contains("--weights") && err.contains("--checkpoint"),
        "{err}"
    );
    // And what only an export takes means nothing for a run.
    let err = fails(&generate(
        &[e.run.to_str().unwrap(), "--autoencoder", "identity"],
        &out,
        &["--prompt", "a red square"],
    ));
    assert!(
        err.contains("--autoencoder") && err.contains("RUN"),
        "{err}"
    );
    // A latent grid beyond the position table (4 patches of 2 a side).
    let err = fails(&generate(
        &from_export(&e.diffusers, &e.text_config),
        &out,
        &["--prompt", "a red square", "--latent-size", "64", "64"],
    ));
    assert!(err.contains("[64, 64]") && err.contains("up to 8"), "{err}");
    assert!(!out.join("0000.png").exists());
}
