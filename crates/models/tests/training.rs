//! Backward: finite-difference gradient check (float64) and overfitting one batch.

use flowscale_models::{Backbone, MmditConfig};
use tch::nn::OptimizerConfig;
use tch::{nn, Device, Kind, Tensor};

fn small(qk_norm: bool, head_dim: i64) -> MmditConfig {
    MmditConfig {
        sample_size: 8,
        patch_size: 2,
        in_channels: 2,
        num_layers: 2,
        attention_head_dim: head_dim,
        num_attention_heads: 2,
        joint_attention_dim: 6,
        caption_projection_dim: 2 * head_dim,
        pooled_projection_dim: 5,
        out_channels: Some(2),
        pos_embed_max_size: Some(8),
        qk_norm: qk_norm.then(|| "rms_norm".to_owned()),
        dual_attention_layers: vec![],
        position_grid: flowscale_models::PositionGrid::Table,
        backbone: Default::default(),
        context_split: None,
    }
}

struct Batch {
    x: Tensor,
    t: Tensor,
    ctx: Tensor,
    pooled: Tensor,
}

fn batch(cfg: &MmditConfig, b: i64, kind: Kind) -> Batch {
    let o = (kind, Device::Cpu);
    Batch {
        x: Tensor::randn([b, cfg.in_channels, 4, 6], o),
        t: Tensor::rand([b], o) * 1000.0,
        ctx: Tensor::randn([b, 3, cfg.joint_attention_dim], o),
        pooled: Tensor::randn([b, cfg.pooled_projection_dim], o),
    }
}

#[test]
fn gradients_match_finite_differences() {
    tch::manual_seed(0);
    let cfg = small(true, 4);
    let mut vs = nn::VarStore::new(Device::Cpu);
    let model = Backbone::new(&vs.root(), &cfg).unwrap();
    vs.double();
    // Re-randomise every parameter (adaLN-Zero would make most gradients trivially zero).
    tch::no_grad(|| {
        for mut v in vs.trainable_variables() {
            let r = Tensor::randn_like(&v) * 0.4;
            v.copy_(&r);
        }
    });
    let data = batch(&cfg, 2, Kind::Double);
    let weights = Tensor::randn([2, 2, 4, 6], (Kind::Double, Device::Cpu));
    let loss = || -> Tensor {
        let out = model
            .forward(&data.x, &data.t, &data.ctx, &data.pooled)
            .unwrap();
        (out * &weights).sum(Kind::Double)
    };
    let l = loss();
    l.backward();
    let vars = vs.variables();
    let mut checked = 0;
    let mut worst: f64 = 0.0;
    for (name, var) in &vars {
        if !var.requires_grad() {
            continue;
        }
        let grad = var.grad().flatten(0, -1);
        let n = var.numel() as i64;
        for idx in [0, n / 2, n - 1] {
            let eps = 1e-6;
            let mut flat = var.flatten(0, -1);
            let orig = flat.double_value(&[idx]);
            let set = |val: f64, flat: &mut Tensor| {
                tch::no_grad(|| {
                    let _ = flat.get(idx).fill_(val);
                })
            };
            set(orig + eps, &mut flat);
            let plus = tch::no_grad(loss).double_value(&[]);
            set(orig - eps, &mut flat);
            let minus = tch::no_grad(loss).double_value(&[]);
            set(orig, &mut flat);
            let numeric = (plus - minus) / (2.0 * eps);
            let analytic = grad.double_value(&[idx]);
            let err = (numeric - analytic).abs() / (1.0 + analytic.abs());
            worst = worst.max(err);
            assert!(
                err < 1e-6,
                "{name}[{idx}]: analytic {analytic}, numeric {numeric}"
            );
            checked += 1;
        }
    }
    println!("checked {checked} entries, worst relative error {worst:.2e}");
    assert!(checked > 90);
}

#[test]
fn tiny_model_overfits_one_batch() {
    tch::manual_seed(1);
    let cfg = small(false, 16);
    let vs = nn::VarStore::new(Device::Cpu);
    let model = Backbone::new(&vs.root(), &cfg).unwrap();
    let data = batch(&cfg, 4, Kind::Float);
    let target = Tensor::randn([4, 2, 4, 6], (Kind::Float, Device::Cpu));
    let mut opt = nn::Adam::default().build(&vs, 3e-3).unwrap();
    let mut first = None;
    let mut last = 0.0;
    for _ in 0..300 {
        let out = model
            .forward(&data.x, &data.t, &data.ctx, &data.pooled)
            .unwrap();
        let loss = (out - &target).square().mean(Kind::Float);
        last = loss.double_value(&[]);
        first.get_or_insert(last);
        opt.backward_step(&loss);
    }
    let first = first.unwrap();
    println!("loss {first:.4} -> {last:.6}");
    assert!(last < 0.01 * first, "loss {first} -> {last}");
}
