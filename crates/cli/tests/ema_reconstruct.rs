//! `flowscale ema-reconstruct` through the binary: a tiny run tracking power-function EMAs is
//! reconstructed at another std, and the written checkpoint is accepted by `eval` and
//! `generate` with `--weights phema` / `eval.weights = ["phema"]`.

mod common;

use common::binary::{fails, flowscale, ok, scratch, train};

#[test]
fn reconstructed_checkpoint_is_evaluated_and_generated_from() {
    let dir = scratch("ema-reconstruct-tests", "run");
    let run = train(
        &dir,
        &["ema.posthoc={ stds = [0.05, 0.1], snapshot_every = 1 }".to_owned()],
    );
    let run_arg = run.to_str().unwrap();
    let printed = ok(&flowscale(&["ema-reconstruct", run_arg, "--std", "0.08"]));
    let ck = run.join("posthoc/reconstructed/std-0.08/step-000000004");
    assert!(
        printed.contains("std 0.08 (gamma 9.4523) at step 4: 8 snapshots")
            && printed.contains("relative residual of the profile")
            && printed.contains(ck.to_str().unwrap()),
        "{printed}"
    );
    let ck_arg = ck.to_str().unwrap();

    ok(&flowscale(&[
        "eval",
        ck_arg,
        "--set",
        "eval.weights=[\"phema\"]",
        "--set",
        "sampling.n=2",
        "--set",
        "fid.enabled=false",
        "--set",
        "classifier.enabled=false",
        "--set",
        "sampling.settings=[{steps=2, cfg=1.0}]",
    ]));
    let results = run.join("eval/posthoc-std-0.08/step-000000004/results.json");
    let text = std::fs::read_to_string(&results).unwrap();
    assert!(text.contains("phema0.08"), "{text}");

    let out = dir.join("generated");
    let o = out.to_str().unwrap();
    let gen = [
        "generate",
        ck_arg,
        "--class",
        "1",
        "--weights",
        "phema",
        "--steps",
        "2",
    ];
    ok(&flowscale(&[&gen[..], &["--out", o]].concat()));
    let record = std::fs::read_to_string(out.join("generate.json")).unwrap();
    assert!(record.contains("\"weights\": \"phema:0.08\""), "{record}");

    let err = fails(&flowscale(&["ema-reconstruct", run_arg, "--std", "0.3"]));
    assert!(err.contains("std 0.3") && err.contains("gamma"), "{err}");
}
