//! Parameter counts and the layout/VarStore agreement.

use flowscale_models::{forward_cost, param_count, Backbone, MmditConfig};
use tch::{nn, Device};

#[test]
fn paper_depths_have_the_reference_parameter_counts() {
    // docs/protocol.md section 5 (diffusers SD3Transformer2DModel, C = 16, no QK-norm).
    let expected = [
        (15, 496_066_624),
        (18, 856_159_552),
        (21, 1_358_950_720),
        (24, 2_028_328_000),
        (30, 3_962_392_384),
        (38, 8_056_617_792),
    ];
    for (d, n) in expected {
        let c = param_count(&MmditConfig::from_depth(d)).unwrap();
        assert_eq!(c.trainable, n, "depth {d}");
        assert_eq!(c.buffers, 192 * 192 * 64 * d, "depth {d} position table");
    }
    let large = param_count(&MmditConfig::preset("sd3.5-large").unwrap()).unwrap();
    assert_eq!(large.trainable, 8_056_617_792 + 9_728);
}

#[test]
fn layout_matches_the_instantiated_var_store() {
    for cfg in [
        MmditConfig::tiny(2),
        MmditConfig::preset("tiny-d4").unwrap(),
    ] {
        let vs = nn::VarStore::new(Device::Cpu);
        Backbone::new(&vs.root(), &cfg).unwrap();
        let vars = vs.variables();
        let layout = Backbone::layout(&cfg).unwrap();
        assert_eq!(vars.len(), layout.len());
        for p in &layout {
            assert_eq!(vars[&p.key].size(), p.shape, "{}", p.key);
            assert_eq!(vars[&p.key].requires_grad(), p.trainable, "{}", p.key);
        }
        let trainable: i64 = vs
            .trainable_variables()
            .iter()
            .map(|t| t.numel() as i64)
            .sum();
        assert_eq!(trainable, param_count(&cfg).unwrap().trainable);
    }
}

#[test]
fn forward_cost_counts_block_matmuls_per_token() {
    // At 256^2 (32x32 latent: 256 image tokens) with 154 text tokens: every token goes through
    // 12 H^2 of block weights (qkv 3, out 1, MLP 8), except the last block's text tokens (only
    // qkv), plus 2 S^2 H for attention.
    let cfg = MmditConfig::from_depth(24);
    let cost = forward_cost(&cfg, 32, 32, 154).unwrap();
    assert_eq!(cost.image_tokens, 256);
    let h = cfg.hidden();
    let per_block_stream = 12 * h * h; // qkv 3 + out 1 + mlp 8
    let expected = 24 * per_block_stream * (256 + 154) - 9 * h * h * 154 + 24 * 2 * 410 * 410 * h;
    assert_eq!(
        cost.projection_macs + cost.mlp_macs + cost.attention_macs,
        expected
    );
    // Block weights dominate: total MACs within 2% of (block params) x tokens + attention.
    let rel = (cost.macs() - expected) as f64 / cost.macs() as f64;
    assert!((0.0..0.02).contains(&rel), "non-block share {rel}");
    assert!((cost.train_step_flops(2) / cost.flops() - 6.0).abs() < 1e-12);
}
