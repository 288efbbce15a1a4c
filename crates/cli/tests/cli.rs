//! The binary as a user runs it.

use std::path::Path;
use std::process::{Command, Output};

fn flowscale(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_flowscale"))
        .args(args)
        // Prove the rpath: the binary must find libtorch with no help from the environment.
        .env_remove("LD_LIBRARY_PATH")
        .output()
        .expect("flowscale runs")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn demo() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../configs/demo.toml")
        .display()
        .to_string()
}

#[test]
fn info_reports_libtorch_2_11_and_cuda_state() {
    let out = flowscale(&["info"]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains("libtorch 2.11.0"), "{t}");
    assert!(t.contains("libtorch_cpu.so"), "{t}");
    assert!(t.contains("libtorch_cuda loaded yes"), "{t}");
    let cuda = tch::Cuda::is_available();
    assert!(t.contains(&format!("CUDA available {cuda}")), "{t}");
}

#[test]
fn help_lists_every_subcommand() {
    let t = text(&flowscale(&["--help"]));
    for cmd in [
        "train",
        "sweep",
        "precompute",
        "sample",
        "eval",
        "rank",
        "plot",
        "export",
        "formulations",
        "bench",
        "info",
        "config",
    ] {
        assert!(
            t.contains(&format!("\n  {cmd} ")),
            "{cmd} missing from:\n{t}"
        );
    }
}

#[test]
fn config_prints_the_resolved_config_with_overrides() {
    let out = flowscale(&["config", &demo(), "--set", "optim.lr=0.0005"]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains("lr = 0.0005"), "{t}");
    assert!(t.contains("[train]"), "{t}");
}

#[test]
fn bad_config_exits_non_zero_naming_the_key() {
    for (set, key) in [
        ("optim.lrr=1", "optim.lrr"),
        ("train.steps=\"many\"", "train.steps"),
        ("optim.lr=-3", "optim.lr"),
    ] {
        let out = flowscale(&["config", &demo(), "--set", set]);
        let t = text(&out);
        assert!(!out.status.success(), "{set}: {t}");
        assert!(t.contains(&format!("key `{key}`")), "{set}: {t}");
        assert!(t.contains("demo.toml"), "{set}: {t}");
    }
}

#[test]
fn planned_subcommands_fail_and_name_their_issue() {
    let out = flowscale(&["sample", "--checkpoint", "x"]);
    let t = text(&out);
    assert!(!out.status.success());
    assert!(t.contains("issue #4"), "{t}");
}
