//! A world-size-1 process group runs the data-parallel step (bucketed gradient all-reduce,
//! global loss sum) with no peer: the weights after a few steps must equal those of the plain
//! single-process step, bit for bit in fp32 (the average over one rank is the gradient itself),
//! and within bf16 rounding with bf16 buckets. This is the path `flowscale bench train-step
//! --process-group` times.

mod common;

use common::{quiet, tiny_config};
use flowscale_train::Trainer;

const STEPS: usize = 3;

/// The model's weights after `STEPS` steps, sorted by name.
fn weights_after_steps(mut t: Trainer) -> Vec<(String, tch::Tensor)> {
    assert!(t.device() == tch::Device::Cpu);
    for _ in 0..STEPS {
        t.step().unwrap();
    }
    let mut w: Vec<_> = t.model_store().variables().into_iter().collect();
    w.sort_by(|a, b| a.0.cmp(&b.0));
    w
}

fn largest_difference(a: &[(String, tch::Tensor)], b: &[(String, tch::Tensor)]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|((na, ta), (nb, tb))| {
            assert_eq!(na, nb);
            (ta - tb).abs().max().double_value(&[])
        })
        .fold(0.0, f64::max)
}

#[test]
fn a_gloo_group_of_one_trains_like_no_group() {
    let tmp = tempfile::tempdir().unwrap();
    let cpu = ["run.device=\"cpu\"", "train.steps=10"];
    let plain =
        weights_after_steps(Trainer::new(tiny_config(tmp.path(), "plain", &cpu), quiet()).unwrap());
    let fp32 = weights_after_steps(
        Trainer::with_solo_group(tiny_config(tmp.path(), "gloo", &cpu), quiet()).unwrap(),
    );
    assert_eq!(largest_difference(&plain, &fp32), 0.0);

    let bf16_cfg = tiny_config(
        tmp.path(),
        "gloo-bf16",
        &[cpu[0], cpu[1], "run.dist_grad_dtype=\"bf16\""],
    );
    let bf16 = weights_after_steps(Trainer::with_solo_group(bf16_cfg, quiet()).unwrap());
    let d = largest_difference(&plain, &bf16);
    // Rounded gradients move AdamW's steps a little (|update| <= lr per step), not a lot.
    assert!(d > 0.0 && d < 1e-2, "bf16 buckets: max |diff| {d:e}");
}

#[test]
fn nccl_on_a_cpu_run_is_refused_naming_the_keys() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tiny_config(
        tmp.path(),
        "nccl-cpu",
        &["run.device=\"cpu\"", "run.dist_backend=\"nccl\""],
    );
    let err = match Trainer::with_solo_group(cfg, quiet()) {
        Ok(_) => panic!("an NCCL group on the CPU was accepted"),
        Err(e) => e.to_string(),
    };
    assert!(
        err.contains("run.dist_backend = \"nccl\" needs a CUDA device"),
        "{err}"
    );
}
