//! What a user sees when something is wrong: one `error:` line naming the file once, in words
//! (not a library's variant name), and no backtrace even with RUST_BACKTRACE set.

mod common;

use std::path::Path;
use std::process::Command;

fn flowscale(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_flowscale"))
        .args(args)
        .env("RUST_BACKTRACE", "1")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn assert_clean(stderr: &str, path: &Path) {
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert!(!stderr.to_lowercase().contains("backtrace"), "{stderr}");
    let shown = path.display().to_string();
    assert_eq!(stderr.matches(&shown).count(), 1, "the path once: {stderr}");
}

#[test]
fn a_damaged_safetensors_file_is_described_in_words_once() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out.safetensors");
    // A header length larger than the file, and a file whose data ends early.
    let long_header = tmp.path().join("long-header.safetensors");
    std::fs::write(&long_header, 1_000_000u64.to_le_bytes()).unwrap();
    let header = br#"{"x":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}"#;
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header);
    bytes.extend_from_slice(&[0u8; 8]);
    let truncated = tmp.path().join("truncated.safetensors");
    std::fs::write(&truncated, bytes).unwrap();
    for (file, words) in [
        (&long_header, "header length is larger than the file"),
        (&truncated, "do not cover the data exactly"),
    ] {
        let (ok, stderr) = flowscale(&[
            "sample",
            "--checkpoint",
            file.to_str().unwrap(),
            "--cond",
            file.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ]);
        assert!(!ok);
        assert!(stderr.contains(words), "{stderr}");
        for debug_name in ["InvalidHeaderLength", "MetadataIncompleteBuffer"] {
            assert!(!stderr.contains(debug_name), "{stderr}");
        }
        assert_clean(&stderr, file);
    }
}

/// A cause that its error already quotes is not printed again (anyhow's `{:#}` printed the io
/// error twice after "cannot read config").
#[test]
fn each_cause_is_printed_once() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("missing.toml");
    let (ok, stderr) = flowscale(&["train", missing.to_str().unwrap()]);
    assert!(!ok);
    assert!(stderr.contains("cannot read config"), "{stderr}");
    assert_eq!(
        stderr.matches("No such file or directory").count(),
        1,
        "{stderr}"
    );
    assert_clean(&stderr, &missing);
}

#[test]
fn a_config_error_prints_no_backtrace() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("run.toml");
    std::fs::write(
        &config,
        "[run]\nname = \"x\"\n[data]\ndataset = \"fashion-mnist\"\nresolution = 32\n[train]\nsteps = 0\nbatch_size = 4\n",
    )
    .unwrap();
    let (ok, stderr) = flowscale(&["train", config.to_str().unwrap()]);
    assert!(!ok);
    assert!(stderr.contains("train.steps"), "{stderr}");
    assert!(!stderr.to_lowercase().contains("backtrace"), "{stderr}");
    assert!(stderr.starts_with("error: "), "{stderr}");
}

#[test]
fn a_run_writes_a_progress_line_per_logging_point_when_its_output_is_not_a_terminal() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("tiny.toml");
    let out = format!("run.out_dir={:?}", tmp.path().display().to_string());
    std::fs::write(
        &config,
        common::tiny_run_config(&[out.as_str(), "logging.every=2", "validation.every=0"]),
    )
    .unwrap();
    // stderr is a pipe here, as in a log file or a Slurm output file.
    let (ok, stderr) = flowscale(&["train", config.to_str().unwrap()]);
    assert!(ok, "{stderr}");
    for step in [2, 4] {
        assert!(
            stderr.contains(&format!("step {step}/4 | loss ")),
            "{stderr}"
        );
    }
    // `--progress false` silences it.
    let (ok, stderr) = flowscale(&[
        "train",
        config.to_str().unwrap(),
        "--progress",
        "false",
        "--set",
        "run.name=\"quiet\"",
    ]);
    assert!(ok, "{stderr}");
    assert!(!stderr.contains("step 2/4"), "{stderr}");
}
