//! `train.precision = "bf16"` on the CPU: the backbone runs under bf16 autocast where the CPU has
//! bf16 matrix instructions (AMX-BF16, AVX512-BF16), with fp32 weights, loss, optimiser and EMA;
//! elsewhere it is the fp32 run, bit for bit. The test checks whichever case this machine is.

mod common;

use common::{differing_tensors, final_checkpoint, quiet, tiny_config};
use flowscale_torch_ext::cpu::bf16_matrix_instructions;
use flowscale_train::train;
use tch::Kind;

#[test]
fn bf16_autocasts_exactly_where_the_cpu_has_bf16_matrix_instructions() {
    let tmp = tempfile::tempdir().unwrap();
    let run = |name: &str, precision: &str| {
        let p = format!("train.precision=\"{precision}\"");
        let state = train(
            tiny_config(tmp.path(), name, &["train.steps=3", &p]),
            quiet(),
        )
        .unwrap();
        (state, final_checkpoint(&tmp.path().join(name)))
    };
    let (fp32_state, fp32) = run("fp32", "fp32");
    let (bf16_state, bf16) = run("bf16", "bf16");
    // Master weights, moments and EMAs stay fp32 either way.
    for (group, tensors) in &bf16.groups {
        for (name, t) in tensors {
            assert_eq!(t.kind(), Kind::Float, "{group}/{name}");
        }
    }
    let (differing, compared) = differing_tensors(&bf16, &fp32);
    assert!(compared > 50, "only {compared} tensors compared");
    match bf16_matrix_instructions() {
        Some(isa) => {
            // bf16 products change the gradients, so the trained tensors differ ...
            assert!(
                differing.iter().any(|d| d.starts_with("model/")),
                "a bf16 run on a CPU with {isa} trained bit-identically to fp32"
            );
            // ... but only by bf16 rounding: the validation losses agree closely.
            let loss =
                |s: &flowscale_train::state::TrainState| s.best_val_loss.expect("validated").0;
            let (a, b) = (loss(&bf16_state), loss(&fp32_state));
            assert!(
                (a - b).abs() < 0.05 * b.abs(),
                "validation loss bf16 {a} vs fp32 {b}"
            );
        }
        None => assert!(
            differing.is_empty(),
            "without bf16 matrix instructions a bf16 run is the fp32 run: {}",
            differing.join(", ")
        ),
    }
}
