//! The SD3 stack with tiny random encoders: shapes, where each encoder's output lands, and
//! zeros for absent and dropped encoders (docs/protocol.md section 6).

mod common;

use flowscale_encoders::text::frozen::{randomize, Frozen};
use flowscale_encoders::text::sd3::{
    combine, ClipSource, Sd3Dims, Sd3Parts, Sd3TextStack, T5Source,
};
use flowscale_encoders::text::{
    ClipPadding, ClipText, ClipTextConfig, ClipTokenizer, HfTokenizer, T5Config, T5Encoder,
};
use std::path::Path;
use tch::{nn, Device, Kind, Tensor};

const DIMS: Sd3Dims = Sd3Dims {
    clip_tokens: 77,
    clip_l_width: 8,
    clip_l_pooled: 8,
    clip_g_width: 12,
    clip_g_pooled: 10,
    t5_tokens: 77,
    t5_width: 32,
    context_width: 32,
};

fn clip(
    width: i64,
    proj: i64,
    eos: i64,
    act: &str,
    seed: i64,
    padding: ClipPadding,
    project: bool,
) -> ClipSource {
    let cfg = ClipTextConfig {
        vocab_size: 49408,
        hidden_size: width,
        intermediate_size: 2 * width,
        projection_dim: proj,
        num_hidden_layers: 2,
        num_attention_heads: 2,
        max_position_embeddings: 77,
        hidden_act: act.into(),
        layer_norm_eps: 1e-5,
        eos_token_id: eos,
    };
    let vs = nn::VarStore::new(Device::Cpu);
    let model = ClipText::new(&vs.root(), &cfg, Path::new("tiny")).unwrap();
    randomize(&vs, seed, 0.2).unwrap();
    let tokenizer = ClipTokenizer::from_file(
        &common::assets().join("clip/bpe_simple_vocab_16e6.txt.gz"),
        77,
        padding,
    )
    .unwrap();
    ClipSource {
        model: Frozen { vs, model },
        tokenizer,
        project_pooled: project,
    }
}

fn t5() -> T5Source {
    let cfg = T5Config {
        vocab_size: 32128,
        d_model: 32,
        d_kv: 4,
        d_ff: 16,
        num_layers: 2,
        num_heads: 2,
        relative_attention_num_buckets: 32,
        relative_attention_max_distance: 128,
        layer_norm_epsilon: 1e-6,
        feed_forward_proj: "gated-gelu".into(),
    };
    let vs = nn::VarStore::new(Device::Cpu);
    let model = T5Encoder::new(&vs.root(), &cfg, Path::new("tiny")).unwrap();
    randomize(&vs, 7, 0.2).unwrap();
    let tokenizer =
        HfTokenizer::from_file(&common::assets().join("t5/tokenizer.json"), 77).unwrap();
    T5Source {
        model: Frozen { vs, model },
        tokenizer,
        tokens: 77,
    }
}

fn stack(with_t5: bool) -> Sd3TextStack {
    Sd3TextStack::new(
        Some(clip(8, 6, 2, "quick_gelu", 1, ClipPadding::EndToken, false)),
        Some(clip(12, 10, 49407, "gelu", 2, ClipPadding::Zero, true)),
        with_t5.then(t5),
        DIMS,
    )
    .unwrap()
}

fn zero(t: &Tensor) -> bool {
    t.abs().max().double_value(&[]) == 0.0
}

const PROMPTS: [&str; 3] = ["a photo of a cat", "", "an astronaut riding a horse"];

#[test]
fn outputs_land_where_sd3_puts_them() {
    let s = stack(true);
    let c = s.encode(&PROMPTS, None).unwrap();
    assert_eq!(c.context.size(), vec![3, 154, 32]);
    assert_eq!(c.pooled.size(), vec![3, 18]);
    let parts = s.parts(&PROMPTS).unwrap();
    let l = parts.clip_l.unwrap();
    let g = parts.clip_g.unwrap();
    let t = parts.t5.unwrap();
    let clip_ctx = c.context.narrow(1, 0, 77);
    assert!(clip_ctx.narrow(2, 0, 8).equal(&l.hidden));
    assert!(clip_ctx.narrow(2, 8, 12).equal(&g.hidden));
    assert!(zero(&clip_ctx.narrow(2, 20, 12)));
    assert!(c.context.narrow(1, 77, 77).equal(&t));
    assert!(c.pooled.narrow(1, 0, 8).equal(&l.pooled));
    assert!(c.pooled.narrow(1, 8, 10).equal(&g.pooled));
    // CLIP-L pools the final-norm state (unprojected), CLIP-G the projection.
    let ids = s
        .clip_l
        .as_ref()
        .unwrap()
        .tokenizer
        .encode_batch(&PROMPTS)
        .ids;
    let out = s
        .clip_l
        .as_ref()
        .unwrap()
        .model
        .model
        .forward(&ids)
        .unwrap();
    assert!(l.pooled.equal(&out.pooled));
    // Penultimate states are not the final-norm ones.
    assert!(!l.hidden.equal(&out.last));
    assert!(!zero(&t) && !zero(&l.hidden) && !zero(&g.pooled));
}

#[test]
fn absent_and_dropped_encoders_are_zeros() {
    let s = stack(false);
    let c = s.encode(&PROMPTS, None).unwrap();
    assert!(zero(&c.context.narrow(1, 77, 77)));
    assert!(!zero(&c.context.narrow(1, 0, 77)));
    let full = stack(true);
    let all = full.encode(&PROMPTS, None).unwrap();
    // Drop CLIP-L for prompt 0, CLIP-G for prompt 1, T5 for prompt 2.
    let keep: Vec<Tensor> = [[0.0f32, 1.0, 1.0], [1.0, 0.0, 1.0], [1.0, 1.0, 0.0]]
        .iter()
        .map(|k| Tensor::from_slice(k))
        .collect();
    let d = full.encode(&PROMPTS, Some(&keep)).unwrap();
    let ctx0 = d.context.get(0);
    assert!(zero(&ctx0.narrow(0, 0, 77).narrow(1, 0, 8)));
    assert!(zero(&d.pooled.get(0).narrow(0, 0, 8)));
    assert!(ctx0
        .narrow(0, 0, 77)
        .narrow(1, 8, 12)
        .equal(&all.context.get(0).narrow(0, 0, 77).narrow(1, 8, 12)));
    assert!(zero(&d.context.get(1).narrow(0, 0, 77).narrow(1, 8, 12)));
    assert!(zero(&d.pooled.get(1).narrow(0, 8, 10)));
    assert!(zero(&d.context.get(2).narrow(0, 77, 77)));
    assert!(d.pooled.get(2).equal(&all.pooled.get(2)));
    // Everything dropped is the all-zero unconditional input.
    let none: Vec<Tensor> = (0..3)
        .map(|_| Tensor::zeros([3], (Kind::Float, Device::Cpu)))
        .collect();
    let u = full.encode(&PROMPTS, Some(&none)).unwrap();
    assert!(zero(&u.context) && zero(&u.pooled));
    assert!(full.encode(&PROMPTS, Some(&keep[..2])).is_err());
}

#[test]
fn sd3_dims_give_154_tokens_of_4096_and_2048_pooled() {
    let c = combine(
        &Sd3Parts::default(),
        &Sd3Dims::SD3,
        None,
        2,
        Kind::Half,
        Device::Cpu,
    )
    .unwrap();
    assert_eq!(c.context.size(), vec![2, 154, 4096]);
    assert_eq!(c.pooled.size(), vec![2, 2048]);
    assert_eq!(c.context.kind(), Kind::Half);
    assert!(zero(&c.context) && zero(&c.pooled));
    assert_eq!(Sd3Dims::SD3.pooled_width(), 2048);
}

#[test]
fn mismatched_encoders_are_named() {
    let err = Sd3TextStack::new(
        Some(clip(8, 6, 2, "quick_gelu", 1, ClipPadding::EndToken, true)),
        None,
        None,
        DIMS,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("CLIP-L pooled width is 6"), "{err}");
    let wrong = Sd3Parts {
        t5: Some(Tensor::zeros([3, 76, 32], (Kind::Float, Device::Cpu))),
        ..Default::default()
    };
    let err = combine(&wrong, &DIMS, None, 3, Kind::Float, Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(err.contains("T5 states has shape [3, 76, 32]"), "{err}");
}
