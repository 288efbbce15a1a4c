//! End-to-end CLIP score against Hugging Face transformers (issue #17): PNGs, captions, a tiny
//! random `CLIPModel` with CLIP's full vocabulary, through flowscale's tokenizer, PIL-bicubic
//! preprocessing, model and score, compared with `CLIPTokenizer`, `CLIPImageProcessorPil` and
//! `CLIPModel.get_*_features` (fixture and versions in tests/fixtures/clip_score, made by
//! scripts/fixtures/clip_score_reference.py). Needs `.assets/clip/bpe_simple_vocab_16e6.txt.gz`
//! (scripts/setup).

use flowscale_encoders::clip::{score, ClipPreprocess, ClipScore};
use flowscale_eval::clip_metric::ClipMetric;
use flowscale_eval::image_io::read_png_rgb;
use serde::Deserialize;
use std::path::PathBuf;
use tch::{Device, Kind, Tensor};

const TOL: f64 = 1e-4;

#[derive(Deserialize)]
struct Expected {
    captions: Vec<String>,
    images: Vec<String>,
    ids: Vec<Vec<i64>>,
    lengths: Vec<usize>,
    image_embeds: Vec<Vec<f32>>,
    text_embeds: Vec<Vec<f32>>,
    cosines: Vec<f64>,
    clip_score: f64,
    clip_score_x100: f64,
}

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/clip_score")
}

fn bpe() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../.assets/clip/bpe_simple_vocab_16e6.txt.gz")
}

fn max_abs(a: &Tensor, b: &[Vec<f32>]) -> f64 {
    let b = Tensor::from_slice2(b);
    assert_eq!(a.size(), b.size());
    (a - b).abs().max().double_value(&[])
}

fn max_err(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

#[test]
fn clip_score_matches_transformers() {
    tch::set_num_threads(1);
    let dir = fixture();
    let e: Expected =
        serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap()).unwrap();
    let m = ClipMetric::load(&dir.join("tiny_clip"), &bpe(), Device::Cpu).unwrap();
    let caps: Vec<&str> = e.captions.iter().map(String::as_str).collect();

    // Tokens: transformers pads with the end token, flowscale with 0 (the embedding does not
    // depend on it, which the script checks); the real tokens, truncation included, agree.
    let ids = m.tokenize(&caps).unwrap();
    for (row, (want, &len)) in e.ids.iter().zip(&e.lengths).enumerate() {
        let got = Vec::<i64>::try_from(ids.get(row as i64)).unwrap();
        assert_eq!(got[..len], want[..len], "caption {row}: {:?}", caps[row]);
        assert!(got[len..].iter().all(|&t| t == 0), "caption {row} padding");
    }

    // The images differ in size, so each is one batch of the metric's own score path. The
    // preprocessing and the model are also checked apart, so a failure names its stage.
    let preprocess = ClipPreprocess::for_size(32);
    let (mut cosines, mut image_embeds, mut model_only) = (Vec::new(), Vec::new(), Vec::new());
    for (name, cap) in e.images.iter().zip(&caps) {
        let x = read_png_rgb(&dir.join("images").join(name))
            .unwrap()
            .unsqueeze(0);
        let stem = name.trim_end_matches(".png");
        let pil = read_png_rgb(&dir.join("images").join(format!("{stem}_expected.png")))
            .unwrap()
            .unsqueeze(0);
        let d = (preprocess.resize_crop_u8(&x).unwrap() - pil.to_kind(Kind::Float)).abs();
        let (levels, differ) = (
            d.max().double_value(&[]),
            d.gt(0.5).sum(Kind::Int64).int64_value(&[]),
        );
        eprintln!(
            "{name}: {differ} of {} values differ from PIL, max {levels} levels",
            d.numel()
        );
        // PIL's fixed point may still round a value within float error of a half differently.
        assert!(levels <= 1.0 && differ * 1000 < d.numel() as i64, "{name}");
        // 32x32 is the model's size: no resize, so these are PIL's pixels through our model.
        model_only.push(m.image_embeds(&pil, 1).unwrap());
        cosines.push(m.score(&x, &[cap], 1).unwrap().raw);
        image_embeds.push(m.image_embeds(&x, 1).unwrap());
    }
    let model_err = max_abs(&Tensor::cat(&model_only, 0), &e.image_embeds);
    let image_embeds = Tensor::cat(&image_embeds, 0);
    let text_embeds = m.text_embeds(&caps).unwrap();
    let img_err = max_abs(&image_embeds, &e.image_embeds);
    let txt_err = max_abs(&text_embeds, &e.text_embeds);
    let cos_err = max_err(&cosines, &e.cosines);
    let mean = ClipScore::from_cosines(&Tensor::from_slice(&cosines)).unwrap();
    let raw_err = (mean.raw - e.clip_score).abs();
    let x100_err = (mean.x100 - e.clip_score_x100).abs();
    eprintln!(
        "max abs error: image_embeds of PIL's pixels {model_err:.2e}, image_embeds \
         {img_err:.2e}, text_embeds {txt_err:.2e}, cosines {cos_err:.2e}, clip_score \
         {raw_err:.2e}, clip_score_x100 {x100_err:.2e}"
    );
    assert!(model_err < 1e-5 && txt_err < 1e-5, "{model_err} {txt_err}");
    assert!(img_err < TOL, "{img_err}");
    assert!(cos_err < TOL, "{cosines:?} vs {:?}", e.cosines);
    assert!(raw_err < TOL && x100_err < TOL, "{mean:?}");

    // The batched cosines of the same embeddings agree with the per-pair scores.
    let batched = score::cosines(&image_embeds, &text_embeds).unwrap();
    let batched = Vec::<f64>::try_from(batched.to_kind(Kind::Double)).unwrap();
    assert!(max_err(&batched, &cosines) < 1e-6);

    // The comparison tells pairs apart: swapping two captions moves the cosines far past TOL.
    let swapped = m
        .text_embeds(&[caps[1], caps[0], caps[2], caps[3], caps[4]])
        .unwrap();
    let swapped = score::cosines(&image_embeds, &swapped).unwrap();
    let swapped = Vec::<f64>::try_from(swapped.to_kind(Kind::Double)).unwrap();
    assert!(max_err(&swapped, &e.cosines) > 100.0 * TOL, "{swapped:?}");
}
