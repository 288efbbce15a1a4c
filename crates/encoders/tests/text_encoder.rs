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
