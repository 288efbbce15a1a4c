//! Text-encoder configs and the config-selected encoders.

mod common;

use flowscale_encoders::text::{TextEncoder, TextEncoderConfig};
use std::path::Path;
use tch::{Device, Kind};

fn minilm_config(tokens: usize) -> TextEncoderConfig {
    let text = format!(
        "encoder = \"minilm\"\n[minilm]\npath = \"{}\"\ntokens = {tokens}\n",
        common::assets().join("all-minilm-l6-v2").display()
    );
    TextEncoderConfig::from_toml(&text, Path::new("test.toml")).unwrap()
}

#[test]
fn minilm_context_is_zero_after_the_text_and_pooled_is_the_sentence_embedding() {
    let enc = TextEncoder::load(&minilm_config(12), Device::Cpu).unwrap();
    assert_eq!(enc.shapes(), (12, 384, 384));
    let prompts = common::prompts();
    let texts: Vec<&str> = prompts.iter().take(3).map(String::as_str).collect();
    let c = enc.encode_batched(&texts, 2).unwrap();
    assert_eq!(c.context.size(), vec![3, 12, 384]);
    let expected = &common::read("minilm_expected.safetensors")["embeddings"];
    assert!(common::max_abs_diff(&c.pooled, &expected.narrow(0, 0, 3)) < 1e-4);
    // "a photo of a cat" is [CLS] + 5 + [SEP] = 7 tokens; the empty prompt 2.
    let row_nonzero = |b: i64, t: i64| {
        c.context
            .get(b)
            .get(t)
            .abs()
            .sum(Kind::Float)
            .double_value(&[])
            > 0.0
    };
    assert!(row_nonzero(0, 6) && !row_nonzero(0, 7));
    assert!(row_nonzero(2, 1) && !row_nonzero(2, 2));
    // Same prompt alone (different padding) gives the same context.
    let alone = enc.encode(&texts[..1]).unwrap();
    assert!(common::max_abs_diff(&alone.context.get(0), &c.context.get(0)) < 1e-5);
    // Long prompts are cut to `tokens`.
    let long = prompts.iter().max_by_key(|p| p.len()).unwrap();
    assert_eq!(
        enc.encode(&[long]).unwrap().context.size(),
        vec![1, 12, 384]
    );
}

#[test]
fn config_errors_name_the_file_and_key() {
    let err = TextEncoderConfig::from_toml("encoder = \"minilm\"\n", Path::new("cfg.toml"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("cfg.toml") && err.contains("[minilm]"),
        "{err}"
    );
    let err = TextEncoderConfig::from_toml("encoder = \"bert\"\n", Path::new("cfg.toml"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("cfg.toml") && err.contains("minilm") && err.contains("sd3"),
        "{err}"
    );
    let err = TextEncoderConfig::from_toml(
        "encoder = \"minilm\"\n[minilm]\npath = \"x\"\ntoken = 3\n",
        Path::new("cfg.toml"),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("token"), "{err}");
    let err = TextEncoder::load(
        &TextEncoderConfig::from_toml(
            "encoder = \"minilm\"\n[minilm]\npath = \"/nope\"\n",
            Path::new("c"),
        )
        .unwrap(),
        Device::Cpu,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("/nope"), "{err}");
}

#[test]
fn sd3_config_with_tiny_encoders_and_no_t5() {
    let f = common::fixtures();
    let vocab = common::assets().join("clip/bpe_simple_vocab_16e6.txt.gz");
    let text = format!(
        "encoder = \"sd3\"\n[sd3]\ncontext_width = 64\n\
         [sd3.clip_l]\npath = \"{}\"\nvocab = \"{}\"\npadding = \"end_token\"\nproject_pooled = false\n\
         [sd3.clip_g]\npath = \"{}\"\nvocab = \"{}\"\npadding = \"zero\"\nproject_pooled = true\n",
        f.join("clip_legacy").display(),
        vocab.display(),
        f.join("clip_eos").display(),
        vocab.display()
    );
    let cfg = TextEncoderConfig::from_toml(&text, Path::new("sd3.toml")).unwrap();
    // The fixtures' CLIPs have 16 positions, fewer than CLIP's 77 tokens: named at load.
    let err = TextEncoder::load(&cfg, Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("CLIP-L max_position_embeddings is 16, the stack expects 77"),
        "{err}"
    );
}

/// Writes a random model as a Hugging Face folder (config.json + model.safetensors).
fn save_folder<C: serde::Serialize>(dir: &Path, cfg: &C, vs: &tch::nn::VarStore) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("config.json"), serde_json::to_string(cfg).unwrap()).unwrap();
    let vars: Vec<(String, tch::Tensor)> = vs.variables().into_iter().collect();
    tch::Tensor::write_safetensors(&vars, dir.join("model.safetensors")).unwrap();
}

#[test]
fn sd3_config_loads_folders_and_matches_the_stack_parts() {
    use flowscale_encoders::text::frozen::randomize;
    use flowscale_encoders::text::{ClipText, ClipTextConfig, T5Config, T5Encoder};
    let tmp = tempfile::tempdir().unwrap();
    let clip_cfg = |width: i64, eos: i64| ClipTextConfig {
        vocab_size: 49408,
        hidden_size: width,
        intermediate_size: 2 * width,
        projection_dim: width + 2,
        num_hidden_layers: 2,
        num_attention_heads: 2,
        max_position_embeddings: 77,
        hidden_act: "gelu".into(),
        layer_norm_eps: 1e-5,
        eos_token_id: eos,
    };
    for (name, cfg, seed) in [("l", clip_cfg(8, 2), 1), ("g", clip_cfg(12, 49407), 2)] {
        let vs = tch::nn::VarStore::new(Device::Cpu);
        ClipText::new(&vs.root(), &cfg, Path::new("x")).unwrap();
        randomize(&vs, seed, 0.2).unwrap();
        save_folder(&tmp.path().join(name), &cfg, &vs);
    }
    let t5_cfg = T5Config {
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
    let vs = tch::nn::VarStore::new(Device::Cpu);
    T5Encoder::new(&vs.root(), &t5_cfg, Path::new("x")).unwrap();
    randomize(&vs, 3, 0.2).unwrap();
    save_folder(&tmp.path().join("t5"), &t5_cfg, &vs);
    let vocab = common::assets().join("clip/bpe_simple_vocab_16e6.txt.gz");
    let text = format!(
        "encoder = \"sd3\"\n[sd3]\ncontext_width = 32\n\
         [sd3.clip_l]\npath = \"{l}\"\nvocab = \"{v}\"\npadding = \"end_token\"\nproject_pooled = false\n\
         [sd3.clip_g]\npath = \"{g}\"\nvocab = \"{v}\"\npadding = \"zero\"\nproject_pooled = true\n\
         [sd3.t5]\npath = \"{t}\"\ntokenizer = \"{tok}\"\n",
        l = tmp.path().join("l").display(),
        g = tmp.path().join("g").display(),
        t = tmp.path().join("t5").display(),
        v = vocab.display(),
        tok = common::assets().join("t5/tokenizer.json").display(),
    );
    let cfg = TextEncoderConfig::from_toml(&text, Path::new("sd3.toml")).unwrap();
    let enc = TextEncoder::load(&cfg, Device::Cpu).unwrap();
    assert_eq!(enc.shapes(), (154, 32, 8 + 14));
    let prompts = ["a red cube on a blue sphere", ""];
    let c = enc.encode_batched(&prompts, 1).unwrap();
    assert_eq!(c.context.size(), vec![2, 154, 32]);
    assert_eq!(c.pooled.size(), vec![2, 22]);
    let TextEncoder::Sd3(stack) = &enc else {
        panic!("not sd3")
    };
    let parts = stack.parts(&prompts).unwrap();
    let l = parts.clip_l.unwrap();
    let g = parts.clip_g.unwrap();
    assert!(common::max_abs_diff(&c.context.narrow(1, 0, 77).narrow(2, 0, 8), &l.hidden) < 1e-6);
    assert!(common::max_abs_diff(&c.context.narrow(1, 0, 77).narrow(2, 8, 12), &g.hidden) < 1e-6);
    assert!(common::max_abs_diff(&c.context.narrow(1, 77, 77), &parts.t5.unwrap()) < 1e-6);
    assert!(common::max_abs_diff(&c.pooled.narrow(1, 8, 14), &g.pooled) < 1e-6);
    // bf16 weights load and run.
    let text16 = format!("dtype = \"bf16\"\n{text}");
    let enc16 = TextEncoder::load(
        &TextEncoderConfig::from_toml(&text16, Path::new("s")).unwrap(),
        Device::Cpu,
    )
    .unwrap();
    let c16 = enc16.encode(&prompts).unwrap();
    assert_eq!(c16.context.kind(), Kind::Float);
    assert!(common::max_abs_diff(&c16.pooled, &c.pooled) < 0.2);
}
