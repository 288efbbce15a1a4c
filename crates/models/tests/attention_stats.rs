//! The diagnostic forward: it gives the network's output, one statistic per block, and shows
//! what QK-norm is for (SD3 section 5.3.2): with plain attention the logits grow with the
//! scale of the q, k projections, with QK-norm they stay bounded.

mod common;

use flowscale_models::Backbone;
use std::sync::Mutex;
use tch::{nn, Device, Kind, Tensor};

/// A model with every parameter re-randomised (the adaLN-Zero initialisation zeroes the
/// output), and inputs with 12 image and 3 context tokens.
fn setup(depth: i64, qk_norm: bool) -> (Backbone, nn::VarStore, [Tensor; 4]) {
    // Tests run on parallel threads and torch's generator is global: one setup at a time, so
    // every call draws the same values.
    static SEEDED: Mutex<()> = Mutex::new(());
    let _one_at_a_time = SEEDED.lock().unwrap_or_else(|e| e.into_inner());
    tch::manual_seed(11);
    let vs = nn::VarStore::new(Device::Cpu);
    let model = Backbone::new(&vs.root(), &common::small_config(depth, qk_norm)).unwrap();
    // In name order: the store's own order is a hash map's, and two calls must draw the
    // same values.
    let mut vars: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    tch::no_grad(|| {
        for (_, mut v) in vars.into_iter().filter(|(_, v)| v.requires_grad()) {
            v.copy_(&(Tensor::randn_like(&v) * 0.3));
        }
    });
    let o = (Kind::Float, Device::Cpu);
    let inputs = [
        Tensor::randn([2, 2, 4, 6], o),
        Tensor::rand([2], o) * 1000.0,
        Tensor::randn([2, 3, 6], o),
        Tensor::randn([2, 5], o),
    ];
    (model, vs, inputs)
}

#[test]
fn the_diagnostic_forward_gives_the_forward_output_and_one_statistic_per_block() {
    let depth = 3;
    let (model, _vs, [x, t, ctx, pooled]) = setup(depth, true);
    let plain = tch::no_grad(|| model.forward(&x, &t, &ctx, &pooled)).unwrap();
    let (out, stats) = model
        .forward_with_attention_stats(&x, &t, &ctx, &pooled)
        .unwrap();
    let scale = plain.abs().max().double_value(&[]);
    assert!(scale > 1e-3, "the output must not be trivially zero");
    let err = (&out - &plain).abs().max().double_value(&[]);
    assert!(
        err <= 1e-5 * scale,
        "output differs by {err} (scale {scale})"
    );
    assert!(!out.requires_grad());
    assert_eq!(stats.len(), depth as usize);
    let tokens = 12.0 + 3.0;
    for s in &stats {
        assert!(s.max_logit.is_finite(), "{s:?}");
        assert!(
            s.entropy > 0.0 && s.entropy <= f64::ln(tokens) + 1e-6,
            "{s:?}"
        );
    }
}

/// Each block's max logit after multiplying every q and k projection (weight and bias) by
/// `factor`, with the QK-norm gains at their initial 1.
fn max_logits(qk_norm: bool, factor: f64) -> Vec<f64> {
    let (model, vs, [x, t, ctx, pooled]) = setup(2, qk_norm);
    tch::no_grad(|| {
        for (name, mut v) in vs.variables() {
            let qk = ["to_q.", "to_k.", "add_q_proj.", "add_k_proj."];
            if qk.iter().any(|p| name.contains(p)) {
                let scaled = &v * factor;
                v.copy_(&scaled);
            }
            if name.contains(".norm_q.")
                || name.contains(".norm_k.")
                || name.contains("norm_added_")
            {
                let _ = v.fill_(1.0);
            }
        }
    });
    let (_, stats) = model
        .forward_with_attention_stats(&x, &t, &ctx, &pooled)
        .unwrap();
    stats.iter().map(|s| s.max_logit).collect()
}

#[test]
fn qk_norm_bounds_the_max_logit_that_grows_without_it() {
    let (base, big) = (max_logits(false, 1.0), max_logits(false, 8.0));
    // The first block sees the same inputs, so its logits scale with factor^2 exactly.
    let ratio = big[0] / base[0];
    assert!((ratio - 64.0).abs() < 64.0 * 1e-4, "plain ratio {ratio}");
    // With QK-norm (RMSNorm weights 1) |q| = |k| = sqrt(d), so q.k / sqrt(d) <= sqrt(d) = 2,
    // at any scale of the projections.
    for factor in [1.0, 8.0, 64.0] {
        for (i, m) in max_logits(true, factor).iter().enumerate() {
            assert!(
                *m <= 2.0 + 1e-5,
                "block {i}, factor {factor}: max logit {m}"
            );
            assert!(*m > 0.5, "block {i}, factor {factor}: max logit {m}");
        }
    }
    assert!(
        big[0] > 10.0,
        "plain attention at 8x must exceed the QK-norm bound: {big:?}"
    );
}
