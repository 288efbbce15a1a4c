//! Token ids of the committed prompts (punctuation, unicode, very long, empty) against the
//! reference tokenizers: open_clip's `SimpleTokenizer` for CLIP BPE and the `tokenizers` package
//! for the T5 `tokenizer.json` (fixture `tokens.json`).

mod common;

use flowscale_encoders::text::{ClipPadding, ClipTokenizer, HfTokenizer, Padding};

fn clip(padding: ClipPadding) -> ClipTokenizer {
    ClipTokenizer::from_file(
        &common::assets().join("clip/bpe_simple_vocab_16e6.txt.gz"),
        77,
        padding,
    )
    .unwrap()
}

#[test]
fn clip_ids_equal_open_clip() {
    let tok = clip(ClipPadding::Zero);
    assert_eq!(tok.bpe.vocab_size(), 49408);
    assert_eq!((tok.bpe.start_id(), tok.bpe.end_id()), (49406, 49407));
    let expected = common::ids_list(&common::tokens_json()["clip_open_clip_77"]);
    let prompts = common::prompts();
    assert_eq!(prompts.len(), expected.len());
    for (p, want) in prompts.iter().zip(&expected) {
        assert_eq!(&tok.encode(p).0, want, "prompt {p:?}");
    }
}

#[test]
fn clip_l_padding_uses_the_end_token_and_the_mask_marks_real_tokens() {
    let zero = clip(ClipPadding::Zero);
    let end = clip(ClipPadding::EndToken);
    let prompts = common::prompts();
    for p in &prompts {
        let (a, n) = zero.encode(p);
        let (b, m) = end.encode(p);
        assert_eq!(n, m);
        assert_eq!(a[..n], b[..n]);
        assert!(b[n..].iter().all(|&i| i == 49407), "prompt {p:?}");
        assert!(a[n..].iter().all(|&i| i == 0), "prompt {p:?}");
        assert_eq!(a[n - 1], 49407);
    }
    // The very long prompt is cut to 77 with the end token last.
    let long = prompts.iter().max_by_key(|p| p.len()).unwrap();
    assert_eq!(zero.encode(long).1, 77);
    // The empty prompt is start + end.
    assert_eq!(zero.encode("").0[..3], [49406, 49407, 0]);
    let batch = end.encode_batch(&["a cat", ""]);
    assert_eq!(batch.ids.size(), vec![2, 77]);
    assert_eq!(
        Vec::<i64>::try_from(batch.mask.sum_dim_intlist(
            [1i64].as_slice(),
            false,
            tch::Kind::Int64
        ))
        .unwrap(),
        vec![4, 2]
    );
}

#[test]
fn t5_ids_equal_the_tokenizer_json_reference() {
    let tok = HfTokenizer::from_file(&common::assets().join("t5/tokenizer.json"), 10_000).unwrap();
    assert_eq!(tok.pad_id(), 0);
    let expected = common::ids_list(&common::tokens_json()["t5"]);
    let prompts = common::prompts();
    for (p, want) in prompts.iter().zip(&expected) {
        assert_eq!(&tok.encode(p).unwrap(), want, "prompt {p:?}");
    }
    // Truncated to 77 the end token `</s>` (1) stays last; padding is 0.
    let tok77 = HfTokenizer::from_file(&common::assets().join("t5/tokenizer.json"), 77).unwrap();
    let refs: Vec<&str> = prompts.iter().map(String::as_str).collect();
    let batch = tok77.encode_batch(&refs, Padding::Fixed(77)).unwrap();
    assert_eq!(batch.ids.size(), vec![prompts.len() as i64, 77]);
    let long = prompts.iter().position(|p| p.len() > 400).unwrap() as i64;
    assert_eq!(batch.ids.int64_value(&[long, 76]), 1);
    let empty = prompts.iter().position(String::is_empty).unwrap() as i64;
    assert_eq!(batch.ids.int64_value(&[empty, 0]), 1);
    assert_eq!(batch.ids.int64_value(&[empty, 1]), 0);
}

#[test]
fn missing_tokenizer_files_are_named() {
    let err = HfTokenizer::from_file(std::path::Path::new("/nonexistent/tokenizer.json"), 8)
        .unwrap_err()
        .to_string();
    assert!(err.contains("/nonexistent/tokenizer.json"), "{err}");
    let err = ClipTokenizer::from_file(
        std::path::Path::new("/nonexistent/bpe.txt.gz"),
        77,
        ClipPadding::Zero,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("/nonexistent/bpe.txt.gz"), "{err}");
}
