//! Every backbone (`BACKBONES`: DiT, CrossDiT, UViT, MMDiT, MMDiT-3) through the public API:
//! layout, gradients (finite differences, activation checkpointing), fitting one batch, the
//! diagnostic forward, the flowscale checkpoint folder, the matched-params width rule and the
//! analytic cost. (Parity with diffusers' DiT and PixArt block: src/parity_tests.rs.)

use flowscale_models::checkpoint::{self, Layout};
use flowscale_models::{
    forward_cost, load_mmdit, match_mmdit_params, param_count, save_mmdit, Backbone, BackboneKind,
    Checkpointing, MmditConfig, ModelError, PositionGrid, BACKBONES,
};
use std::sync::Mutex;
use std::time::Instant;
use tch::nn::OptimizerConfig;
use tch::{nn, Device, Kind, Tensor};

/// Context tokens of the test inputs; MMDiT-3 takes the first as its first context stream.
const CONTEXT_LEN: i64 = 3;

/// A tiny model of `kind`: 2 heads of `head_dim`, 2 latent channels, patch 2, a 4 x 4 position
/// table (latents up to 8 x 8), 6-d context, 5-d pooled.
fn tiny(kind: BackboneKind, depth: i64, head_dim: i64) -> MmditConfig {
    MmditConfig {
        sample_size: 4,
        patch_size: 2,
        in_channels: 2,
        num_layers: depth,
        attention_head_dim: head_dim,
        num_attention_heads: 2,
        joint_attention_dim: 6,
        caption_projection_dim: 2 * head_dim,
        pooled_projection_dim: 5,
        out_channels: Some(2),
        pos_embed_max_size: Some(4),
        qk_norm: None,
        dual_attention_layers: vec![],
        position_grid: PositionGrid::Table,
        backbone: kind,
        context_split: (kind == BackboneKind::Mmdit3).then_some(1),
    }
}

struct Inputs {
    x: Tensor,
    t: Tensor,
    ctx: Tensor,
    pooled: Tensor,
}

/// `b` samples of 4 x 4 latents (4 image tokens) and `CONTEXT_LEN` context tokens.
fn inputs(cfg: &MmditConfig, b: i64, kind: Kind) -> Inputs {
    let o = (kind, Device::Cpu);
    Inputs {
        x: Tensor::randn([b, cfg.in_channels, 4, 4], o),
        t: Tensor::rand([b], o) * 1000.0,
        ctx: Tensor::randn([b, CONTEXT_LEN, cfg.joint_attention_dim], o),
        pooled: Tensor::randn([b, cfg.pooled_projection_dim], o),
    }
}

/// Torch's generator is global and tests run on parallel threads: model setups that must draw
/// the same values every time hold this lock.
static SEEDED: Mutex<()> = Mutex::new(());

/// A model of `cfg` (in `kind`) with every trainable parameter re-randomised as
/// `normal * scale`, in name order (the adaLN-Zero initialisation makes most gradients zero),
/// and `b` input samples.
fn randomised(
    cfg: &MmditConfig,
    kind: Kind,
    scale: f64,
    b: i64,
) -> (Backbone, nn::VarStore, Inputs) {
    let _one_at_a_time = SEEDED.lock().unwrap_or_else(|e| e.into_inner());
    tch::manual_seed(5);
    let mut vs = nn::VarStore::new(Device::Cpu);
    let model = Backbone::new(&vs.root(), cfg).unwrap();
    if kind == Kind::Double {
        vs.double();
    }
    let mut vars: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    tch::no_grad(|| {
        for (_, mut v) in vars.into_iter().filter(|(_, v)| v.requires_grad()) {
            v.copy_(&(Tensor::randn_like(&v) * scale));
        }
    });
    let inp = inputs(cfg, b, kind);
    (model, vs, inp)
}

fn keys(cfg: &MmditConfig) -> Vec<String> {
    Backbone::layout(cfg)
        .unwrap()
        .into_iter()
        .map(|p| p.key)
        .collect()
}

#[test]
fn layout_matches_the_var_store_for_every_backbone() {
    for kind in BACKBONES {
        for depth in [3, 4] {
            let cfg = tiny(kind, depth, 8);
            let vs = nn::VarStore::new(Device::Cpu);
            Backbone::new(&vs.root(), &cfg).unwrap();
            let vars = vs.variables();
            let layout = Backbone::layout(&cfg).unwrap();
            assert_eq!(vars.len(), layout.len(), "{kind} depth {depth}");
            for p in &layout {
                let v = vars
                    .get(&p.key)
                    .unwrap_or_else(|| panic!("{kind}: {} not in the store", p.key));
                assert_eq!(v.size(), p.shape, "{kind}: {}", p.key);
                assert_eq!(v.requires_grad(), p.trainable, "{kind}: {}", p.key);
            }
            let trainable: i64 = vs
                .trainable_variables()
                .iter()
                .map(|t| t.numel() as i64)
                .sum();
            assert_eq!(trainable, param_count(&cfg).unwrap().trainable, "{kind}");

            let keys = keys(&cfg);
            let has = |k: &str| keys.iter().any(|key| key == k);
            let any = |f: &dyn Fn(&str) -> bool| keys.iter().any(|k| f(k));
            // The second context stream's weights, only in MMDiT-3, in every block.
            assert_eq!(
                has("context_embedder_2.weight"),
                kind == BackboneKind::Mmdit3,
                "{kind}"
            );
            for i in 0..depth {
                let k = format!("transformer_blocks.{i}.attn.add_k_proj_2.weight");
                assert_eq!(has(&k), kind == BackboneKind::Mmdit3, "{kind}: {k}");
            }
            if kind != BackboneKind::Mmdit3 {
                assert!(
                    !any(&|k| k.contains("_2.") && !k.contains("linear_2.")),
                    "{kind}"
                );
            }
            // Cross-attention only in CrossDiT.
            assert_eq!(
                any(&|k| k.contains(".attn2.")),
                kind == BackboneKind::CrossDit,
                "{kind}"
            );
            // UViT's skips exactly in the second-half blocks.
            let skip_blocks: Vec<i64> = (0..depth)
                .filter(|i| has(&format!("transformer_blocks.{i}.skip_linear.weight")))
                .collect();
            let want: Vec<i64> = match (kind, depth) {
                (BackboneKind::Uvit, 3) => vec![2],
                (BackboneKind::Uvit, 4) => vec![2, 3],
                _ => vec![],
            };
            assert_eq!(skip_blocks, want, "{kind} depth {depth}");
            if kind == BackboneKind::Uvit {
                let k = format!("transformer_blocks.{}.skip_linear.weight", depth - 1);
                let shape = &Backbone::layout(&cfg)
                    .unwrap()
                    .into_iter()
                    .find(|p| p.key == k)
                    .unwrap()
                    .shape;
                assert_eq!(shape, &vec![16, 32], "Linear(2H, H)");
            }
        }
    }
}

/// Entries checked by finite differences: parameters from different parts of each backbone.
fn checked_params(kind: BackboneKind) -> Vec<&'static str> {
    let mut names = vec![
        "pos_embed.proj.weight",
        "time_text_embed.timestep_embedder.linear_1.weight",
        "time_text_embed.text_embedder.linear_2.weight",
        "context_embedder.weight",
        "transformer_blocks.1.norm1.linear.weight",
        "transformer_blocks.1.ff.net.0.proj.weight",
        "norm_out.linear.weight",
        "proj_out.weight",
    ];
    match kind {
        BackboneKind::Mmdit | BackboneKind::Mmdit3 => {
            names.extend([
                "transformer_blocks.0.attn.to_q.weight",
                "transformer_blocks.0.attn.add_k_proj.weight",
                "transformer_blocks.0.norm1_context.linear.weight",
            ]);
            if kind == BackboneKind::Mmdit3 {
                names.extend([
                    "context_embedder_2.weight",
                    "transformer_blocks.0.attn.add_v_proj_2.weight",
                    "transformer_blocks.1.ff_context_2.net.2.weight",
                ]);
            }
        }
        _ => {
            names.extend([
                "transformer_blocks.0.attn1.to_q.weight",
                "transformer_blocks.2.attn1.to_out.0.weight",
            ]);
            match kind {
                BackboneKind::CrossDit => names.extend([
                    "transformer_blocks.0.attn2.to_q.weight",
                    "transformer_blocks.1.attn2.to_k.weight",
                    "transformer_blocks.2.attn2.to_out.0.bias",
                ]),
                BackboneKind::Uvit => names.extend([
                    "transformer_blocks.2.skip_linear.weight",
                    "transformer_blocks.2.skip_linear.bias",
                ]),
                _ => {}
            }
        }
    }
    names
}

#[test]
fn gradients_match_finite_differences_for_every_backbone() {
    for kind in BACKBONES {
        let cfg = tiny(kind, 3, 8);
        let (model, vs, inp) = randomised(&cfg, Kind::Double, 0.3, 2);
        let weights = Tensor::randn([2, 2, 4, 4], (Kind::Double, Device::Cpu));
        let loss = || {
            let out = model
                .forward(&inp.x, &inp.t, &inp.ctx, &inp.pooled)
                .unwrap();
            (out * &weights).sum(Kind::Double)
        };
        loss().backward();
        let vars = vs.variables();
        let (mut worst, mut nontrivial, mut checked) = (0f64, 0, 0);
        for name in checked_params(kind) {
            let var = vars
                .get(name)
                .unwrap_or_else(|| panic!("{kind}: no {name}"));
            let grad = var.grad().flatten(0, -1);
            let n = var.numel() as i64;
            let flat = var.flatten(0, -1);
            for idx in [0, n / 3, n - 1] {
                let eps = 1e-6;
                let orig = flat.double_value(&[idx]);
                let at = |val: f64| {
                    tch::no_grad(|| {
                        let _ = flat.get(idx).fill_(val);
                    });
                    tch::no_grad(loss).double_value(&[])
                };
                let (plus, minus) = (at(orig + eps), at(orig - eps));
                at(orig);
                let numeric = (plus - minus) / (2.0 * eps);
                let analytic = grad.double_value(&[idx]);
                // Relative to the gradient, floored at 1e-2 where it is near zero: the central
                // difference's own rounding is ~1e-8 absolute here.
                let err = (numeric - analytic).abs() / analytic.abs().max(1e-2);
                worst = worst.max(err);
                nontrivial += (analytic.abs() > 1e-2) as usize;
                checked += 1;
                assert!(
                    err < 1e-5,
                    "{kind}: {name}[{idx}]: analytic {analytic}, numeric {numeric}"
                );
            }
        }
        println!("{kind}: {checked} entries ({nontrivial} with |grad| > 1e-2), worst relative error {worst:.2e}");
        assert!(
            nontrivial * 3 >= checked * 2,
            "{kind}: too many trivial gradients"
        );
    }
}

/// Every trainable parameter's gradient, then the context and pooled inputs' and the output,
/// after one backward of `sum(out * weights)`; `None` is the plain forward.
fn gradients(
    model: &Backbone,
    vs: &nn::VarStore,
    inp: &Inputs,
    weights: &Tensor,
    plan: Option<Checkpointing>,
) -> Vec<(String, Tensor)> {
    for mut v in vs.trainable_variables() {
        v.zero_grad();
    }
    let ctx = inp.ctx.detach().requires_grad_(true);
    let pooled = inp.pooled.detach().requires_grad_(true);
    let out = match plan {
        None => {
            let out = model.forward(&inp.x, &inp.t, &ctx, &pooled).unwrap();
            (&out * weights).sum(out.kind()).backward();
            out
        }
        Some(plan) => {
            let (out, tape) = model
                .forward_checkpointed(&inp.x, &inp.t, &ctx, &pooled, plan)
                .unwrap();
            (&out * weights).sum(out.kind()).backward();
            tape.backward().unwrap();
            out
        }
    };
    let mut grads: Vec<(String, Tensor)> = vs
        .variables()
        .into_iter()
        .filter(|(_, v)| v.requires_grad())
        .map(|(n, v)| (n, v.grad().copy()))
        .collect();
    grads.sort_by(|a, b| a.0.cmp(&b.0));
    grads.push(("input context".into(), ctx.grad().copy()));
    grads.push(("input pooled".into(), pooled.grad().copy()));
    grads.push(("output".into(), out.detach().copy()));
    grads
}

/// The largest difference of `got` from `plain`, each tensor's relative to its own largest
/// entry; the key projections' biases, whose exact gradient is zero (softmax is invariant to
/// them) and whose computed one is rounding of cancelling terms, relative to the largest
/// gradient overall.
fn worst_relative(got: &[(String, Tensor)], plain: &[(String, Tensor)]) -> (f64, String) {
    assert_eq!(got.len(), plain.len());
    let amax = |t: &Tensor| t.abs().max().double_value(&[]);
    let overall = plain.iter().map(|(_, g)| amax(g)).fold(0.0, f64::max);
    let key_bias =
        |n: &str| n.ends_with(".bias") && (n.contains(".to_k.") || n.contains(".add_k_proj"));
    let mut worst = (0f64, String::new());
    for ((na, ga), (nb, gb)) in got.iter().zip(plain) {
        assert_eq!(na, nb);
        let scale = if key_bias(na) {
            overall
        } else {
            amax(gb).max(1e-6 * overall)
        };
        let err = amax(&(ga - gb)) / scale;
        if err > worst.0 {
            worst = (err, na.clone());
        }
    }
    worst
}

#[test]
fn activation_checkpointing_gives_the_plain_gradients_for_every_backbone() {
    for kind in BACKBONES {
        for dtype in [Kind::Float, Kind::Double] {
            let cfg = tiny(kind, 4, 8);
            let (model, vs, inp) = randomised(&cfg, dtype, 0.3, 2);
            let weights = Tensor::randn([2, 2, 4, 4], (dtype, Device::Cpu));
            let plain = gradients(&model, &vs, &inp, &weights, None);
            // fp32: 1e-6, except UViT, whose kept outputs get three gradient contributions
            // (the next block's residual and attention paths, the skip) that the plain backward
            // and the tape sum in different orders (~1e-6 of rounding in fp32); fp64 shows the
            // recomputed gradients are the same quantities.
            let bound = match (dtype, kind) {
                (Kind::Double, _) => 1e-12,
                (_, BackboneKind::Uvit) => 1e-5,
                _ => 1e-6,
            };
            for plan in [Checkpointing::Blocks, Checkpointing::EveryN(2)] {
                let got = gradients(&model, &vs, &inp, &weights, Some(plan));
                let (err, name) = worst_relative(&got, &plain);
                println!(
                    "{kind} {dtype:?} {}: worst relative difference {err:.2e} ({name})",
                    plan.name()
                );
                assert!(
                    err < bound,
                    "{kind} {dtype:?} {}: {name} differs by {err:.3e}",
                    plan.name()
                );
            }
            // Every parameter got a gradient (UViT's skips included), except the queries of
            // MMDiT's pre-only last block, whose context output is discarded.
            let unused = |n: &str| n.starts_with("transformer_blocks.3.attn.add_q_proj");
            for (n, g) in &plain {
                assert!(
                    unused(n) || g.abs().max().double_value(&[]) > 0.0,
                    "{kind}: {n} has no gradient"
                );
            }
        }
    }
}

#[test]
fn every_backbone_overfits_one_batch() {
    for kind in BACKBONES {
        let start = Instant::now();
        let cfg = tiny(kind, 2, 16);
        let (vs, model, data, target) = {
            let _one_at_a_time = SEEDED.lock().unwrap_or_else(|e| e.into_inner());
            tch::manual_seed(1);
            let vs = nn::VarStore::new(Device::Cpu);
            let model = Backbone::new(&vs.root(), &cfg).unwrap();
            let data = inputs(&cfg, 2, Kind::Float);
            let target = Tensor::randn([2, 2, 4, 4], (Kind::Float, Device::Cpu));
            (vs, model, data, target)
        };
        let mut opt = nn::AdamW::default().wd(0.0).build(&vs, 1e-3).unwrap();
        let (mut first, mut last, mut steps) = (None, f64::INFINITY, 0);
        while steps < 600 {
            let out = model
                .forward(&data.x, &data.t, &data.ctx, &data.pooled)
                .unwrap();
            let loss = (out - &target).square().mean(Kind::Float);
            last = loss.double_value(&[]);
            let first = *first.get_or_insert(last);
            if last < 0.05 * first {
                break;
            }
            opt.backward_step(&loss);
            steps += 1;
        }
        let first = first.unwrap();
        println!(
            "{kind}: loss {first:.4} -> {last:.5} in {steps} steps ({:.2} s)",
            start.elapsed().as_secs_f64()
        );
        assert!(last < 0.05 * first, "{kind}: loss {first} -> {last}");
    }
}

#[test]
fn the_diagnostic_forward_equals_the_forward_for_every_backbone() {
    for kind in BACKBONES {
        let depth = 3;
        let cfg = tiny(kind, depth, 8);
        let (model, _vs, inp) = randomised(&cfg, Kind::Float, 0.3, 2);
        let plain = tch::no_grad(|| model.forward(&inp.x, &inp.t, &inp.ctx, &inp.pooled)).unwrap();
        let (out, stats) = model
            .forward_with_attention_stats(&inp.x, &inp.t, &inp.ctx, &inp.pooled)
            .unwrap();
        let scale = plain.abs().max().double_value(&[]);
        assert!(scale > 1e-3, "{kind}: trivial output");
        let err = (&out - &plain).abs().max().double_value(&[]);
        assert!(
            err <= 1e-5 * scale.max(1.0),
            "{kind}: differs by {err} (scale {scale})"
        );
        assert_eq!(stats.len(), depth as usize, "{kind}");
        for s in &stats {
            assert!(
                s.max_logit.is_finite() && s.entropy.is_finite(),
                "{kind}: {s:?}"
            );
        }
    }
}

fn assert_same_state(a: &checkpoint::StateDict, b: &checkpoint::StateDict) {
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    for (k, t) in a {
        assert!(t.equal(&b[k]), "{k} differs");
    }
}

#[test]
fn non_mmdit_backbones_save_and_load_as_flowscale_folders() {
    let tmp = tempfile::tempdir().unwrap();
    for kind in [
        BackboneKind::Dit,
        BackboneKind::CrossDit,
        BackboneKind::Uvit,
        BackboneKind::Mmdit3,
    ] {
        let cfg = tiny(kind, 3, 8);
        let (_model, vs, _) = randomised(&cfg, Kind::Float, 0.3, 1);
        let dir = tmp.path().join(kind.name());
        save_mmdit(&vs, &cfg, &dir, Layout::Flowscale).unwrap();
        let json = std::fs::read_to_string(dir.join("config.json")).unwrap();
        assert!(json.contains("\"backbone\""), "{kind}: {json}");
        let loaded = load_mmdit(&dir, Device::Cpu).unwrap();
        assert_eq!(loaded.layout, Layout::Flowscale, "{kind}");
        assert_eq!(loaded.model.config(), &cfg, "{kind}");
        assert_same_state(
            &checkpoint::state_dict(&vs),
            &checkpoint::state_dict(&loaded.vs),
        );

        // Only MMDiT has the diffusers and SD3 layouts.
        for layout in [Layout::Diffusers, Layout::Sd3 { prefixed: false }] {
            let path = tmp
                .path()
                .join(format!("{}_{}", kind.name(), layout.name()));
            let err = save_mmdit(&vs, &cfg, &path, layout).expect_err("must fail");
            assert!(
                err.to_string().contains(kind.name()),
                "{kind} as {}: {err}",
                layout.name()
            );
            assert!(
                !path.exists(),
                "{kind} as {}: wrote {}",
                layout.name(),
                path.display()
            );
        }
    }

    // And MMDiT has no flowscale folder.
    let cfg = tiny(BackboneKind::Mmdit, 2, 8);
    let vs = nn::VarStore::new(Device::Cpu);
    Backbone::new(&vs.root(), &cfg).unwrap();
    let err =
        save_mmdit(&vs, &cfg, &tmp.path().join("mmdit"), Layout::Flowscale).expect_err("must fail");
    assert!(err.to_string().contains("mmdit"), "{err}");
}

#[test]
fn a_dit_folder_read_as_uvit_reports_the_missing_skips() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tiny(BackboneKind::Dit, 4, 8);
    let vs = nn::VarStore::new(Device::Cpu);
    Backbone::new(&vs.root(), &cfg).unwrap();
    let dir = tmp.path().join("dit");
    save_mmdit(&vs, &cfg, &dir, Layout::Flowscale).unwrap();
    let path = dir.join("config.json");
    let json = std::fs::read_to_string(&path).unwrap();
    let edited = json.replace("\"backbone\": \"dit\"", "\"backbone\": \"uvit\"");
    assert_ne!(
        edited, json,
        "config.json names the backbone as expected: {json}"
    );
    std::fs::write(&path, edited).unwrap();
    let report = match load_mmdit(&dir, Device::Cpu) {
        Err(ModelError::Keys { report, .. }) => report,
        Err(other) => panic!("expected a key report, got {other}"),
        Ok(_) => panic!("a dit checkpoint loaded as uvit"),
    };
    let want: Vec<String> = [2, 3]
        .into_iter()
        .flat_map(|i| ["weight", "bias"].map(|l| format!("transformer_blocks.{i}.skip_linear.{l}")))
        .collect();
    assert_eq!(report.missing, want);
    assert!(
        report.unexpected.is_empty() && report.mis_shaped.is_empty(),
        "{report:?}"
    );
}

#[test]
fn matched_width_gives_mmdit_parameter_counts() {
    println!(
        "{:>5}  {:<8}  {:>5}  {:>14}  {:>7}",
        "depth", "backbone", "width", "params", "ratio"
    );
    for depth in [2, 4, 24] {
        let mmdit = param_count(&MmditConfig::from_depth(depth))
            .unwrap()
            .trainable;
        for kind in BACKBONES {
            let cfg = MmditConfig {
                backbone: kind,
                context_split: (kind == BackboneKind::Mmdit3).then_some(77),
                ..MmditConfig::from_depth(depth)
            };
            let matched = match_mmdit_params(&cfg).unwrap();
            assert_eq!(matched.num_layers, depth);
            assert_eq!(matched.num_attention_heads, depth, "head count kept");
            assert_eq!(matched.backbone, kind);
            let params = param_count(&matched).unwrap().trainable;
            let ratio = params as f64 / mmdit as f64;
            println!(
                "{depth:>5}  {:<8}  {:>5}  {params:>14}  {ratio:>7.4}",
                kind.name(),
                matched.hidden()
            );
            assert!(
                (ratio - 1.0).abs() < 0.05,
                "{kind} depth {depth}: ratio {ratio}"
            );
            if kind == BackboneKind::Dit && depth == 24 {
                assert!(
                    matched.hidden() > 1536,
                    "dit d24 width {}",
                    matched.hidden()
                );
            }
        }
    }
}

/// The tokens (per sample) a weight matrix of the layout is applied to, from its key alone:
/// `n` image tokens, `l` context tokens (`split` of them in MMDiT-3's first context stream),
/// `s = n + l` for the joint sequence of DiT and UViT; 1 for the per-sample vectors (timestep
/// and pooled MLPs, adaLN modulations).
fn tokens_of(key: &str, kind: BackboneKind, n: i64, l: i64, split: i64) -> i64 {
    let (ctx1, ctx2) = match kind {
        BackboneKind::Mmdit3 => (split, l - split),
        _ => (l, 0),
    };
    if key.starts_with("pos_embed.proj") || key.starts_with("proj_out") {
        return n;
    }
    if key.starts_with("time_text_embed.") || key.contains("norm1") || key.starts_with("norm_out") {
        return 1;
    }
    if key.starts_with("context_embedder_2") {
        return ctx2;
    }
    if key.starts_with("context_embedder") {
        return ctx1;
    }
    let block = key
        .strip_prefix("transformer_blocks.")
        .and_then(|r| r.split_once('.'))
        .map(|(_, rest)| rest)
        .unwrap_or_else(|| panic!("unaccounted matrix {key}"));
    match kind {
        BackboneKind::Dit | BackboneKind::Uvit => {
            assert!(
                block.starts_with("attn1.")
                    || block.starts_with("ff.")
                    || block.starts_with("skip_linear"),
                "{key}"
            );
            n + l
        }
        BackboneKind::CrossDit => {
            if block.starts_with("attn2.to_k") || block.starts_with("attn2.to_v") {
                l
            } else {
                assert!(
                    block.starts_with("attn1.")
                        || block.starts_with("attn2.")
                        || block.starts_with("ff."),
                    "{key}"
                );
                n
            }
        }
        BackboneKind::Mmdit | BackboneKind::Mmdit3 => {
            let second = block.contains("_2.");
            let context = block.starts_with("attn.add_")
                || block.starts_with("attn.to_add_out")
                || block.starts_with("ff_context");
            match (context, second) {
                (false, _) => {
                    assert!(
                        block.starts_with("attn.to_") || block.starts_with("ff."),
                        "{key}"
                    );
                    n
                }
                (true, false) => ctx1,
                (true, true) => ctx2,
            }
        }
    }
}

#[test]
fn forward_cost_equals_a_count_from_the_layout() {
    // Counted: every weight matrix of the layout (2-D linear weights and the patch conv as an
    // `H x C p p` matrix) as rows x cols multiply-adds per token it is applied to (see
    // `tokens_of`), against the cost's linear terms (embed + modulation + projection + MLP +
    // output). Not counted there: biases, norms, activations. Attention's QK^T and AV are
    // checked separately: 2 x queries x keys x H per attention.
    let (height, width, l) = (4, 6, CONTEXT_LEN);
    let n = (height / 2) * (width / 2);
    for kind in BACKBONES {
        for depth in [3, 4] {
            let cfg = tiny(kind, depth, 8);
            let h = cfg.hidden();
            let split = cfg.context_split.unwrap_or(0);
            let linear: i64 = Backbone::layout(&cfg)
                .unwrap()
                .into_iter()
                .filter(|p| p.trainable && p.key.ends_with(".weight") && p.shape.len() >= 2)
                .map(|p| p.numel() * tokens_of(&p.key, kind, n, l, split))
                .sum();
            let attention = depth
                * match kind {
                    BackboneKind::CrossDit => 2 * n * n * h + 2 * n * l * h,
                    _ => 2 * (n + l) * (n + l) * h,
                };
            let cost = forward_cost(&cfg, height, width, l).unwrap();
            assert_eq!(cost.image_tokens, n);
            assert_eq!(cost.context_tokens, l);
            let analytic = cost.embed_macs
                + cost.modulation_macs
                + cost.projection_macs
                + cost.mlp_macs
                + cost.output_macs;
            assert_eq!(analytic, linear, "{kind} depth {depth}: linear MACs");
            assert_eq!(
                cost.attention_macs, attention,
                "{kind} depth {depth}: attention MACs"
            );
        }
    }
}
