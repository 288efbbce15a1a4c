//! `flowscale generate` on two tiny runs trained by the binary: a text run on captioned shards
//! (stored MiniLM embeddings; prompts encoded by the run's text encoder) and the class-conditional
//! Fashion-MNIST run of tests/fixtures/tiny-run.toml. Each run is trained once per test binary
//! (under CARGO_TARGET_TMPDIR) and shared by the tests.

mod common;

use common::binary::{fails, flowscale, ok, train, train_text_run};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::OnceLock;

/// A fresh folder for one test's outputs.
fn scratch(name: &str) -> PathBuf {
    common::binary::scratch("generate-tests", name)
}

/// The captioned text run (common::binary::train_text_run).
fn text_run() -> &'static Path {
    static RUN: OnceLock<PathBuf> = OnceLock::new();
    RUN.get_or_init(|| train_text_run(&scratch("text-run")))
}

/// The fixture's class-conditional Fashion-MNIST run.
fn class_run() -> &'static Path {
    static RUN: OnceLock<PathBuf> = OnceLock::new();
    RUN.get_or_init(|| train(&scratch("class-run"), &[]))
}

/// `flowscale generate RUN --out OUT` with 2 sampler steps on the CPU and `extra`.
fn generate(run: &Path, out: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "generate",
        run.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--steps",
        "2",
        "--device",
        "cpu",
    ];
    args.extend_from_slice(extra);
    flowscale(&args)
}

fn bytes(dir: &Path, file: &str) -> Vec<u8> {
    std::fs::read(dir.join(file)).unwrap_or_else(|e| panic!("{}: {e}", dir.join(file).display()))
}

#[test]
fn the_same_seed_gives_the_same_bytes_and_another_seed_other_images() {
    let run = text_run();
    let tmp = scratch("seeds");
    let args = |seed: &'static str| {
        [
            "--prompt",
            "a red square",
            "--prompt",
            "a blue square",
            "--per-prompt",
            "2",
            "--seed",
            seed,
        ]
    };
    let (a, b, c) = (tmp.join("a"), tmp.join("b"), tmp.join("c"));
    ok(&generate(run, &a, &args("3")));
    ok(&generate(run, &b, &args("3")));
    ok(&generate(run, &c, &args("4")));
    for f in ["0000.png", "0001.png", "0002.png", "0003.png", "grid.png"] {
        assert_eq!(bytes(&a, f), bytes(&b, f), "{f} differs for the same seed");
    }
    assert!(!a.join("0004.png").exists());
    assert_ne!(bytes(&a, "0000.png"), bytes(&c, "0000.png"));
    assert_ne!(bytes(&a, "grid.png"), bytes(&c, "grid.png"));
    // Two images of one prompt have their own noise.
    assert_ne!(bytes(&a, "0000.png"), bytes(&a, "0001.png"));
    assert_eq!(
        std::fs::read_to_string(a.join("prompts.txt")).unwrap(),
        "a red square\na blue square\n"
    );
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(a.join("generate.json")).unwrap()).unwrap();
    assert_eq!(record["seed"], 3);
    assert_eq!(record["steps"], 2);
    assert_eq!(record["cfg"], 5.0);
    assert_eq!(record["step"], 6);
    assert_eq!(record["weights"], "ema:0.9");
    assert_eq!(record["per_prompt"], 2);
    assert!(record["negative_prompt"].is_null());
}

#[test]
fn a_prompt_longer_than_the_tokenizer_reads_warns_and_still_generates() {
    let run = text_run();
    let out = scratch("long");
    // 300 words, each one WordPiece token, plus [CLS] and [SEP]; MiniLM reads 256.
    let long = vec!["red"; 300].join(" ");
    // 10 words: read in full, but the run's 8-token context keeps only the first 8 states.
    let medium = "a red square on a red square on red paper";
    let log = ok(&generate(
        run,
        &out,
        &[
            "--prompt",
            &long,
            "--prompt",
            "a red square",
            "--prompt",
            medium,
        ],
    ));
    let head: String = long.chars().take(40).collect();
    assert!(
        log.contains("truncated") && log.contains(&head) && log.contains("302 minilm tokens"),
        "{log}"
    );
    assert!(log.contains("256"), "{log}");
    // Only the long prompt is truncated; the medium one loses context states only.
    assert_eq!(log.matches("truncated").count(), 1, "{log}");
    assert!(
        log.contains("12 minilm tokens; the context keeps the first 8"),
        "{log}"
    );
    assert!(!log.contains("\"a red square\""), "{log}");
    assert!(out.join("0000.png").is_file() && out.join("0001.png").is_file());
}

#[test]
fn an_empty_prompt_is_the_all_zero_conditioning() {
    let run = text_run();
    let tmp = scratch("empty");
    let (empty, dropped, prompted) = (tmp.join("empty"), tmp.join("dropped"), tmp.join("prompted"));
    ok(&generate(run, &empty, &["--prompt", ""]));
    // Dropping the run's only source zeroes all of its conditioning, whatever the prompt.
    ok(&generate(
        run,
        &dropped,
        &["--prompt", "a red square", "--drop-source", "minilm"],
    ));
    ok(&generate(run, &prompted, &["--prompt", "a red square"]));
    assert_eq!(bytes(&empty, "0000.png"), bytes(&dropped, "0000.png"));
    assert_ne!(bytes(&empty, "0000.png"), bytes(&prompted, "0000.png"));
    // An unknown source is named with the model's.
    let e = fails(&generate(
        run,
        &tmp.join("t5"),
        &["--prompt", "x", "--drop-source", "t5"],
    ));
    assert!(e.contains("\"t5\"") && e.contains("minilm"), "{e}");
}

#[test]
fn a_negative_prompt_replaces_the_unconditional_branch() {
    let run = text_run();
    let tmp = scratch("negative");
    let (plain, blank, negative) = (tmp.join("plain"), tmp.join("blank"), tmp.join("negative"));
    ok(&generate(run, &plain, &["--prompt", "a red square"]));
    // An empty negative prompt is the all-zero conditioning guidance uses anyway.
    ok(&generate(
        run,
        &blank,
        &["--prompt", "a red square", "--negative-prompt", ""],
    ));
    ok(&generate(
        run,
        &negative,
        &[
            "--prompt",
            "a red square",
            "--negative-prompt",
            "a blue square",
        ],
    ));
    assert_eq!(bytes(&plain, "0000.png"), bytes(&blank, "0000.png"));
    assert_ne!(bytes(&plain, "0000.png"), bytes(&negative, "0000.png"));
    let record = std::fs::read_to_string(negative.join("generate.json")).unwrap();
    assert!(record.contains("a blue square"), "{record}");
}

/// Copies a directory tree.
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[test]
fn a_run_without_a_text_encoder_needs_a_text_config() {
    let run = text_run();
    let tmp = scratch("no-encoder");
    // The same run as if trained on its stored embeddings without naming an encoder.
    let bare = tmp.join("bare");
    copy_tree(run, &bare);
    let config = bare.join("config.resolved.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    let kept: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with("text_encoder"))
        .collect();
    assert_eq!(kept.len() + 1, text.lines().count(), "{text}");
    std::fs::write(&config, kept.join("\n")).unwrap();
    let e = fails(&generate(
        &bare,
        &tmp.join("none"),
        &["--prompt", "a red square"],
    ));
    assert!(
        e.contains("--text-config") && e.contains("conditioning.text_encoder"),
        "{e}"
    );
    // With the config the run recorded, the images are the original run's.
    let minilm = run.join("../../minilm.toml");
    let given = tmp.join("given");
    ok(&generate(
        &bare,
        &given,
        &[
            "--prompt",
            "a red square",
            "--text-config",
            minilm.to_str().unwrap(),
        ],
    ));
    let own = tmp.join("own");
    ok(&generate(run, &own, &["--prompt", "a red square"]));
    assert_eq!(bytes(&given, "0000.png"), bytes(&own, "0000.png"));
    // A checkpoint folder inside the run works as the run does.
    let ck = run.join("checkpoints/step-000000006");
    let from_ck = tmp.join("ck");
    ok(&generate(&ck, &from_ck, &["--prompt", "a red square"]));
    assert_eq!(bytes(&from_ck, "0000.png"), bytes(&own, "0000.png"));
}

#[test]
fn classes_by_name_or_index_and_errors_say_what_a_run_conditions_on() {
    let run = class_run();
    let tmp = scratch("classes");
    let (by_index, by_name) = (tmp.join("index"), tmp.join("name"));
    ok(&generate(run, &by_index, &["--class", "1", "--class", "0"]));
    ok(&generate(
        run,
        &by_name,
        &["--class", "trouser", "--class", "T-shirt/top"],
    ));
    for f in ["0000.png", "0001.png", "grid.png"] {
        assert_eq!(bytes(&by_index, f), bytes(&by_name, f), "{f}");
    }
    assert_ne!(bytes(&by_index, "0000.png"), bytes(&by_index, "0001.png"));
    assert_eq!(
        std::fs::read_to_string(by_index.join("prompts.txt")).unwrap(),
        "Trouser\nT-shirt/top\n"
    );

    let e = fails(&generate(run, &tmp.join("x"), &["--class", "nosuch"]));
    assert!(
        e.contains("\"nosuch\"")
            && e.contains("0 \"T-shirt/top\"")
            && e.contains("9 \"Ankle boot\""),
        "{e}"
    );
    let e = fails(&generate(run, &tmp.join("x"), &["--class", "10"]));
    assert!(
        e.contains("class index 10") && e.contains("Ankle boot"),
        "{e}"
    );
    let e = fails(&generate(run, &tmp.join("x"), &["--prompt", "a shoe"]));
    assert!(e.contains("class labels") && e.contains("--class"), "{e}");
    let e = fails(&generate(
        run,
        &tmp.join("x"),
        &["--class", "1", "--negative-prompt", "a shoe"],
    ));
    assert!(
        e.contains("negative prompt") && e.contains("class labels"),
        "{e}"
    );
    // And a text run refuses classes.
    let e = fails(&generate(text_run(), &tmp.join("x"), &["--class", "1"]));
    assert!(e.contains("--prompt") && e.contains("not classes"), "{e}");
}

/// `--frame native` reaches the sampler setting, which generate.json records from the setting
/// that sampled (the default is rf); another name is refused with the allowed ones. The images
/// cannot tell the frames apart here: the fixture's model starts with a zero final projection
/// and, 4 steps into its learning-rate warm-up, still outputs about 0, a velocity of 0 in both
/// frames. The frames' effect on samples is tested in flowscale-formulations and the setting's
/// in flowscale-train.
#[test]
fn the_sampler_frame_is_chosen_by_name_and_recorded() {
    let run = class_run();
    let tmp = scratch("frames");
    let (rf, native) = (tmp.join("rf"), tmp.join("native"));
    ok(&generate(run, &rf, &["--class", "1"]));
    ok(&generate(
        run,
        &native,
        &["--class", "1", "--frame", "native"],
    ));
    for (dir, frame) in [(&rf, "rf"), (&native, "native")] {
        let record: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("generate.json")).unwrap())
                .unwrap();
        assert_eq!(record["frame"], frame);
    }
    let e = fails(&generate(
        run,
        &tmp.join("x"),
        &["--class", "1", "--frame", "ddim"],
    ));
    assert!(
        e.contains("--frame") && e.contains("\"rf\" or \"native\""),
        "{e}"
    );
}
