//! The binary as a user runs it.

#[path = "../../../tests/support/skip.rs"]
mod skip;

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
        "launch",
        "sweep",
        "precompute",
        "sample",
        "eval",
        "fid",
        "rank",
        "plot",
        "report",
        "export",
        "ema-reconstruct",
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

/// `flowscale sweep --set` overrides keys of the sweep file, dotted run-config keys included;
/// a bad override exits non-zero naming it.
#[test]
fn sweep_takes_set_overrides_and_names_a_bad_one() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../experiments/scaling-cpu.toml")
        .display()
        .to_string();
    let tmp = tempfile::tempdir().unwrap();
    let out_dir = format!("sweep.out_dir=\"{}\"", tmp.path().display());
    let out = flowscale(&[
        "sweep",
        &file,
        "--set",
        &out_dir,
        "--set",
        r#"axes."model.depth"=[1, 2]"#,
        "--list",
    ]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(
        t.contains(&format!(
            "sweep scaling-cpu: 2 runs in {}",
            tmp.path().display()
        )),
        "{t}"
    );
    assert!(
        t.contains("model.depth=2") && !t.contains("model.depth=3"),
        "{t}"
    );
    for (set, named) in [
        ("sweep.out_dir", "bad override `sweep.out_dir`"),
        ("sweep.outdir=x", "key `sweep.outdir`"),
        (r#"axes."model.depth"=[]"#, r#"key `axes."model.depth"`"#),
    ] {
        let out = flowscale(&["sweep", &file, "--set", set, "--list"]);
        let t = text(&out);
        assert!(!out.status.success(), "{set}: {t}");
        assert!(t.contains(named), "{set}: {t}");
    }
}

#[test]
fn precompute_encodes_the_emoji_set_and_reports_what_it_did() {
    let emoji = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.assets/emoji-datasource-google");
    if !emoji.join("emoji.json").exists() {
        skip::skipped(
            "precompute_encodes_the_emoji_set_and_reports_what_it_did",
            &format!("{} missing (scripts/setup fetches it)", emoji.display()),
        );
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("shards");
    let config = tmp.path().join("emoji.toml");
    let write = |extra: &str| {
        let text = format!(
            "[source]\nkind = \"emoji\"\npath = {:?}\n[preprocess]\nresolution = 8\n\
             [autoencoder]\nkind = \"identity\"\n[output]\ndir = {:?}\n\
             samples_per_shard = 1000\nval_samples = 11\n{extra}",
            emoji.display().to_string(),
            out.display().to_string()
        );
        std::fs::write(&config, text).unwrap();
    };
    write("");
    let path = config.display().to_string();
    let done = flowscale(&["precompute", &path]);
    let t = text(&done);
    assert!(done.status.success(), "{t}");
    assert!(t.contains("3 written, 0 already done"), "{t}");
    assert!(t.contains("1911 read, 1911 written, 0 skipped"), "{t}");
    assert!(
        t.contains("1900 train samples in 2 shards, 11 val samples in 1 shards"),
        "{t}"
    );
    assert!(out.join("manifest.json").exists());
    // Run again: nothing to do. A bad value is named with its key and file.
    let again = text(&flowscale(&["precompute", &path, "--preview", "4"]));
    assert!(again.contains("0 written, 3 already done"), "{again}");
    // The preview decodes 4 samples into one row of 8-pixel tiles with 2-pixel borders.
    let png = std::fs::read(out.join("preview.png")).unwrap();
    let (w, h) = (
        u32::from_be_bytes(png[16..20].try_into().unwrap()),
        u32::from_be_bytes(png[20..24].try_into().unwrap()),
    );
    assert_eq!((w, h), (4 * 10 + 2, 12), "{again}");
    write("latent_dtype = \"int8\"");
    let bad = flowscale(&["precompute", &path]);
    let t = text(&bad);
    assert!(!bad.status.success());
    assert!(
        t.contains("emoji.toml") && t.contains("output.latent_dtype"),
        "{t}"
    );
}

#[test]
fn precompute_takes_set_overrides_checked_like_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("pc.toml");
    let missing = tmp.path().join("no-such-folder");
    std::fs::write(
        &config,
        format!(
            "[source]\nkind = \"folder\"\npath = {:?}\n[preprocess]\nresolution = 0\n\
             [autoencoder]\nkind = \"identity\"\n[output]\ndir = {:?}\nsamples_per_shard = 0\n",
            missing.display().to_string(),
            tmp.path().join("out").display().to_string()
        ),
    )
    .unwrap();
    let path = config.display().to_string();
    // Both bad values of the file are named at once.
    let t = text(&flowscale(&["precompute", &path]));
    assert!(
        t.contains("pc.toml")
            && t.contains("key `preprocess.resolution`")
            && t.contains("key `output.samples_per_shard`"),
        "{t}"
    );
    // --set fixes them: the run gets past the config to the missing source folder.
    let fixed = flowscale(&[
        "precompute",
        &path,
        "--set",
        "preprocess.resolution=8",
        "--set",
        "output.samples_per_shard=4",
    ]);
    let t = text(&fixed);
    assert!(!fixed.status.success());
    assert!(t.contains("no-such-folder") && !t.contains("key `"), "{t}");
    // A bad override is named as one.
    let t = text(&flowscale(&[
        "precompute",
        &path,
        "--set",
        "preprocess.resolution=8",
        "--set",
        "output.samples_per_shard=4",
        "--device",
        "tpu",
    ]));
    assert!(
        t.contains("key `output.device`") && t.contains("tpu"),
        "{t}"
    );
}

#[test]
fn formulations_list_prints_the_61_canonical_names() {
    let out = flowscale(&["formulations", "list"]);
    let t = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{}", text(&out));
    let names: Vec<&str> = t.lines().collect();
    assert_eq!(names.len(), 61, "{t}");
    assert_eq!(names[0], "eps/linear");
    assert!(names.contains(&"rf/lognorm(0.00, 1.00)"));
    assert!(names.contains(&"edm(-1.20, 1.80)"));
}

#[test]
fn formulations_table_for_every_registry_name_and_custom_parameters() {
    let list = flowscale(&["formulations", "list"]);
    let names = String::from_utf8_lossy(&list.stdout).to_string();
    let mut all: Vec<String> = names.lines().map(str::to_owned).collect();
    all.push("rf/lognorm(0.3,0.7)".to_owned());
    all.push("edm(0.25, 0.9)".to_owned());
    for name in &all {
        let out = flowscale(&[
            "formulations",
            "table",
            name,
            "--points",
            "9",
            "--shift",
            "3",
        ]);
        let t = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(out.status.success(), "{name}: {}", text(&out));
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[0], "t,a,b,lambda,density,weight", "{name}");
        assert_eq!(lines.len(), 10, "{name}: {t}");
        for row in &lines[1..] {
            let values: Vec<f64> = row.split(',').map(|v| v.parse().unwrap()).collect();
            assert_eq!(values.len(), 6, "{name}: {row}");
            assert!(values[4] >= 0.0 && values[5] >= 0.0, "{name}: {row}");
        }
    }
}

#[test]
fn formulations_table_writes_a_csv_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.csv");
    let out = flowscale(&[
        "formulations",
        "table",
        "rf/cosmap",
        "--points",
        "5",
        "--out",
        path.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let csv = std::fs::read_to_string(&path).unwrap();
    assert_eq!(csv.lines().count(), 6, "{csv}");
    assert!(!dir.path().join("w.csv.partial").exists());
}

#[test]
fn unknown_formulation_is_an_error_with_suggestions() {
    let out = flowscale(&["formulations", "table", "rf/lognrm(0.00, 1.00)"]);
    let t = text(&out);
    assert!(!out.status.success());
    assert!(t.contains("rf/lognorm"), "{t}");
}

#[test]
fn rank_reproduces_the_documented_table_2_example() {
    let dir = tempfile::tempdir().unwrap();
    let out_csv = dir.path().join("ranking.csv");
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/examples/sd3-table2.csv");
    let out = flowscale(&[
        "rank",
        example.to_str().unwrap(),
        "--metrics",
        "clip:max,fid:min",
        "--out",
        out_csv.to_str().unwrap(),
    ]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains("s1: imagenet s25"), "{t}");
    let csv = std::fs::read_to_string(&out_csv).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[1], "\"rf/lognorm(0.00, 1.00)\",1.5000,2,2,1");
    assert_eq!(lines[4], "rf,3.5000,2,3,4");
    // Next to the paper's Table 1: ours (lognorm 1.5, mode(1.75) 2.0, eps 2.5, rf 3.5) against
    // the paper's order lognorm < eps < mode(1.75) < rf: d^2 sums to 2, rho = 1 - 12/60.
    let out = flowscale(&[
        "rank",
        example.to_str().unwrap(),
        "--metrics",
        "clip:max,fid:min",
        "--against-paper",
        "--out",
        out_csv.to_str().unwrap(),
    ]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains("| eps/linear | 2.88 | 2.50 |"), "{t}");
    assert!(
        t.contains("Spearman's rho over 4 formulations: 0.800"),
        "{t}"
    );
}

#[test]
fn eval_of_a_missing_run_names_it() {
    let out = flowscale(&["eval", "no/such/run", "--set", "sampling.n=4"]);
    let t = text(&out);
    assert!(!out.status.success(), "{t}");
    assert!(t.contains("no/such/run"), "{t}");
    let out = flowscale(&["eval", "no/such/run", "--set", "sampling.n=1"]);
    let t = text(&out);
    assert!(!out.status.success(), "{t}");
    assert!(t.contains("sampling.n"), "{t}");
}

#[test]
fn bench_fwd_bwd_takes_a_bf16_training_step_and_reports_its_flops() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("config.json");
    // depth 2, hidden 64, patch 2, 4 channels, 32-d text: an 8x8 latent has 16 image tokens.
    std::fs::write(
        &config,
        r#"{"sample_size": 8, "patch_size": 2, "in_channels": 4, "num_layers": 2,
            "attention_head_dim": 32, "num_attention_heads": 2, "joint_attention_dim": 32,
            "caption_projection_dim": 64, "pooled_projection_dim": 16, "out_channels": 4,
            "pos_embed_max_size": 8}"#,
    )
    .unwrap();
    let c = config.to_str().unwrap();
    let common = [
        "bench",
        "fwd-bwd",
        "--config-json",
        c,
        "--latent",
        "8",
        "8",
        "--context",
        "5",
        "--batch",
        "2",
        "--warmup",
        "1",
        "--steps",
        "1",
        "--json",
    ];
    let out = flowscale(&[&common[..], &["--precision", "bf16", "--optimizer"]].concat());
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    let row: serde_json::Value = serde_json::from_str(t.trim().lines().last().unwrap()).unwrap();
    assert_eq!(row["precision"], "bf16");
    assert_eq!(row["optimizer"], true);
    assert!(row["samples_per_s"].as_f64().unwrap() > 0.0, "{row}");
    // The analytic count: 3 x forward FLOPs x batch, independent of the timing.
    let cfg = flowscale_models::MmditConfig::from_json(&std::fs::read_to_string(&config).unwrap())
        .unwrap();
    let want = flowscale_models::forward_cost(&cfg, 8, 8, 5)
        .unwrap()
        .train_step_flops(2);
    assert_eq!(row["train_flops_per_iter"].as_f64().unwrap(), want);
    // No MFU without a known peak (the CPU has none).
    assert!(row["mfu"].is_null(), "{row}");
    let bad = flowscale(&[&common[..], &["--precision", "fp8"]].concat());
    assert!(!bad.status.success());
    assert!(text(&bad).contains("--precision `fp8`"), "{}", text(&bad));
    // CUDA graphs are CUDA-only: refused by name on the CPU, before any step runs.
    let bad = flowscale(&[&common[..], &["--cuda-graph"]].concat());
    assert!(!bad.status.success());
    assert!(
        text(&bad).contains("--cuda-graph needs --device cuda"),
        "{}",
        text(&bad)
    );
}
