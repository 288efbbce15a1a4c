//! all-MiniLM-L6-v2 with the real weights (`.assets/`, from `scripts/setup`) against
//! sentence-transformers (fixtures from `scripts/fixtures/text_encoders_reference.py`).

mod common;

use flowscale_encoders::text::{MiniLm, Padding};
use tch::{Device, Kind, Tensor};

#[test]
fn token_ids_match_sentence_transformers() {
    let model = MiniLm::load(&common::assets().join("all-minilm-l6-v2"), Device::Cpu).unwrap();
    let doc = common::tokens_json();
    assert_eq!(
        model.max_seq_length as i64,
        doc["minilm_max_seq_length"].as_i64().unwrap()
    );
    let expected = common::ids_list(&doc["minilm"]);
    let prompts = common::prompts();
    assert_eq!(prompts.len(), expected.len());
    for (p, want) in prompts.iter().zip(&expected) {
        assert_eq!(&model.tokenizer.encode(p).unwrap(), want, "prompt {p:?}");
    }
}

#[test]
fn sentence_embeddings_match_sentence_transformers() {
    tch::set_num_threads(1);
    let model = MiniLm::load(&common::assets().join("all-minilm-l6-v2"), Device::Cpu).unwrap();
    let prompts = common::prompts();
    let texts: Vec<&str> = prompts.iter().map(String::as_str).collect();
    let expected = &common::read("minilm_expected.safetensors")["embeddings"];
    // Padded to the longest of the whole list: padding must not change any embedding.
    let got = model.encode(&texts).unwrap().embedding;
    let err = common::max_abs_diff(&got, expected);
    println!("MiniLM max |flowscale - sentence-transformers| = {err:.3e}");
    assert!(err < 1e-4, "max error {err}");
    // One at a time (no padding) agrees too.
    for (i, t) in texts.iter().enumerate().step_by(5) {
        let one = model.encode(&[t]).unwrap().embedding;
        assert!(common::max_abs_diff(&one.get(0), &expected.get(i as i64)) < 1e-4);
    }
    // Grouped by length and returned in input order.
    let sorted = model.embed_sorted(&texts, 3).unwrap();
    assert!(common::max_abs_diff(&sorted, expected) < 1e-4);
    // Unit norm.
    let norms = got.norm_scalaropt_dim(2, [-1i64].as_slice(), false);
    assert!(common::max_abs_diff(&norms, &Tensor::ones([16], (Kind::Float, Device::Cpu))) < 1e-5);
}

#[test]
fn fixed_padding_and_masks() {
    let model = MiniLm::load(&common::assets().join("all-minilm-l6-v2"), Device::Cpu).unwrap();
    let batch = model.tokenize(&["a cat", ""], Padding::Fixed(8)).unwrap();
    assert_eq!(batch.ids.size(), vec![2, 8]);
    assert_eq!(
        Vec::<i64>::try_from(
            batch
                .mask
                .sum_dim_intlist([1i64].as_slice(), false, Kind::Int64)
        )
        .unwrap(),
        vec![4, 2]
    );
    let out = model.encode_tokens(&batch).unwrap();
    assert_eq!(out.tokens.size(), vec![2, 8, 384]);
    assert_eq!(out.embedding.size(), vec![2, 384]);
}

#[test]
fn missing_and_mis_shaped_keys_are_named() {
    let src = common::assets().join("all-minilm-l6-v2");
    let dir = tempfile::tempdir().unwrap();
    for f in [
        "config.json",
        "tokenizer.json",
        "sentence_bert_config.json",
        "1_Pooling/config.json",
    ] {
        let to = dir.path().join(f);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(src.join(f), to).unwrap();
    }
    let mut state = flowscale_encoders::weights::read_file(
        &src.join("model.safetensors"),
        Kind::Float,
        Device::Cpu,
    )
    .unwrap();
    state.remove("encoder.layer.3.output.dense.bias");
    state.insert(
        "encoder.layer.6.output.dense.bias".into(),
        Tensor::zeros([2], (Kind::Float, Device::Cpu)),
    );
    state.insert(
        "encoder.layer.0.attention.self.query.weight".into(),
        Tensor::zeros([384, 3], (Kind::Float, Device::Cpu)),
    );
    let tensors: Vec<(String, Tensor)> = state.into_iter().collect();
    tch::Tensor::write_safetensors(&tensors, dir.path().join("model.safetensors")).unwrap();
    let err = MiniLm::load(dir.path(), Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("missing keys: encoder.layer.3.output.dense.bias"),
        "{err}"
    );
    assert!(
        err.contains("unexpected keys: encoder.layer.6.output.dense.bias"),
        "{err}"
    );
    assert!(
        err.contains(
            "encoder.layer.0.attention.self.query.weight (expected [384, 384], found [384, 3])"
        ),
        "{err}"
    );
}
