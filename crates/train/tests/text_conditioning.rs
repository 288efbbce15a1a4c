//! Caption conditioning behind the trainer's provider interface: MiniLM (real weights from
//! `.assets/`, scripts/setup) as one source, a tiny SD3 stack as three.

use flowscale_encoders::text::frozen::{randomize, Frozen};
use flowscale_encoders::text::sd3::{ClipSource, Sd3Dims, Sd3TextStack, T5Source};
use flowscale_encoders::text::{
    ClipPadding, ClipText, ClipTextConfig, ClipTokenizer, HfTokenizer, T5Config, T5Encoder,
    TextEncoder, TextEncoderConfig,
};
use flowscale_train::cond_input::CondInput;
use flowscale_train::conditioning::ConditioningProvider;
use flowscale_train::text_conditioning::CaptionConditioning;
use std::path::{Path, PathBuf};
use tch::{nn, Device, Kind, Tensor};

fn assets() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.assets");
    assert!(dir.join("all-minilm-l6-v2").is_dir(), "run scripts/setup");
    dir
}

fn zero(t: &Tensor) -> bool {
    t.abs().max().double_value(&[]) == 0.0
}

const CAPTIONS: [&str; 3] = ["a t-shirt", "a pair of trousers", "an ankle boot"];

#[test]
fn minilm_captions_per_label_with_dropout() {
    let text = format!(
        "encoder = \"minilm\"\n[minilm]\npath = \"{}\"\ntokens = 8\n",
        assets().join("all-minilm-l6-v2").display()
    );
    let cfg = TextEncoderConfig::from_toml(&text, Path::new("t.toml")).unwrap();
    let enc = TextEncoder::load(&cfg, Device::Cpu).unwrap();
    let cond = CaptionConditioning::new(&enc, &CAPTIONS, 2, Device::Cpu).unwrap();
    assert_eq!((cond.source_names().len(), cond.classes()), (1, 3));
    let labels = CondInput::Labels(Tensor::from_slice(&[2i64, 0, 2]));
    let keep = Tensor::from_slice(&[1.0f32, 1.0, 0.0]);
    let c = cond.encode(&labels, &[keep]).unwrap();
    assert_eq!(c.context.size(), vec![3, 8, 384]);
    assert_eq!(c.pooled.size(), vec![3, 384]);
    let boot = enc.encode(&["an ankle boot"]).unwrap();
    assert!(
        (c.pooled.get(0) - boot.pooled.get(0))
            .abs()
            .max()
            .double_value(&[])
            < 1e-5
    );
    assert!(
        (c.context.get(0) - boot.context.get(0))
            .abs()
            .max()
            .double_value(&[])
            < 1e-5
    );
    assert!(zero(&c.context.get(2)) && zero(&c.pooled.get(2)));
    assert!(!zero(&c.context.get(1)));
    assert!(cond
        .encode(
            &CondInput::Labels(Tensor::from_slice(&[3i64])),
            &[Tensor::from_slice(&[1.0f32])]
        )
        .is_err());
    assert!(cond.encode(&labels, &[]).is_err());
}

fn tiny_stack() -> Sd3TextStack {
    let clip_cfg = ClipTextConfig {
        vocab_size: 49408,
        hidden_size: 8,
        intermediate_size: 16,
        projection_dim: 8,
        num_hidden_layers: 2,
        num_attention_heads: 2,
        max_position_embeddings: 77,
        hidden_act: "quick_gelu".into(),
        layer_norm_eps: 1e-5,
        eos_token_id: 2,
    };
    let vs = nn::VarStore::new(Device::Cpu);
    let model = ClipText::new(&vs.root(), &clip_cfg, Path::new("tiny")).unwrap();
    randomize(&vs, 1, 0.2).unwrap();
    let clip_l = ClipSource {
        model: Frozen { vs, model },
        tokenizer: ClipTokenizer::from_file(
            &assets().join("clip/bpe_simple_vocab_16e6.txt.gz"),
            77,
            ClipPadding::EndToken,
        )
        .unwrap(),
        project_pooled: false,
    };
    let t5_cfg = T5Config {
        vocab_size: 32128,
        d_model: 16,
        d_kv: 4,
        d_ff: 16,
        num_layers: 1,
        num_heads: 2,
        relative_attention_num_buckets: 32,
        relative_attention_max_distance: 128,
        layer_norm_epsilon: 1e-6,
        feed_forward_proj: "gated-gelu".into(),
    };
    let vs = nn::VarStore::new(Device::Cpu);
    let model = T5Encoder::new(&vs.root(), &t5_cfg, Path::new("tiny")).unwrap();
    randomize(&vs, 2, 0.2).unwrap();
    let t5 = T5Source {
        model: Frozen { vs, model },
        tokenizer: HfTokenizer::from_file(&assets().join("t5/tokenizer.json"), 77).unwrap(),
        tokens: 77,
    };
    let dims = Sd3Dims {
        clip_tokens: 77,
        clip_l_width: 8,
        clip_l_pooled: 8,
        clip_g_width: 4,
        clip_g_pooled: 4,
        t5_tokens: 77,
        t5_width: 16,
        context_width: 16,
    };
    Sd3TextStack::new(Some(clip_l), None, Some(t5), dims).unwrap()
}

#[test]
fn sd3_captions_have_three_independently_dropped_sources() {
    let enc = TextEncoder::Sd3(Box::new(tiny_stack()));
    let cond = CaptionConditioning::new(&enc, &CAPTIONS, 2, Device::Cpu).unwrap();
    assert_eq!(cond.source_names(), ["clip_l", "clip_g", "t5"]);
    let labels = CondInput::Labels(Tensor::from_slice(&[1i64, 1]));
    let ones = Tensor::from_slice(&[1.0f32, 1.0]);
    let drop_second = Tensor::from_slice(&[1.0f32, 0.0]);
    let c = cond
        .encode(
            &labels,
            &[
                drop_second.shallow_clone(),
                ones.shallow_clone(),
                ones.shallow_clone(),
            ],
        )
        .unwrap();
    assert_eq!(c.context.size(), vec![2, 154, 16]);
    assert_eq!(c.pooled.size(), vec![2, 12]);
    let full = enc.encode(&[CAPTIONS[1]]).unwrap();
    assert!(
        (c.context.get(0) - full.context.get(0))
            .abs()
            .max()
            .double_value(&[])
            < 1e-5
    );
    // Sample 1 lost CLIP-L only: its CLIP block is zero, its T5 block is intact.
    assert!(zero(&c.context.get(1).narrow(0, 0, 77)));
    assert!(zero(&c.pooled.get(1)));
    assert!(c
        .context
        .get(1)
        .narrow(0, 77, 77)
        .equal(&c.context.get(0).narrow(0, 77, 77)));
    // CLIP-G is absent: its channels and pooled part are zero for everyone.
    assert!(zero(&c.context.narrow(1, 0, 77).narrow(2, 8, 4)));
    assert!(zero(&c.pooled.narrow(1, 8, 4)));
    let t5_dropped = cond
        .encode(
            &labels,
            &[ones.shallow_clone(), ones.shallow_clone(), drop_second],
        )
        .unwrap();
    assert!(zero(&t5_dropped.context.get(1).narrow(0, 77, 77)));
    assert_eq!(t5_dropped.context.kind(), Kind::Float);
}
