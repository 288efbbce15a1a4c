//! CLIP preprocessing against transformers' `CLIPImageProcessorPil` on committed small images
//! (fixtures from `scripts/fixtures/clip_model_reference.py`): up- and downscaling, square,
//! wide and tall images.

use flowscale_encoders::clip::{ClipPreprocess, CLIP_STD};
use std::path::{Path, PathBuf};
use tch::{Kind, Tensor};

fn images() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/clip/images")
}

/// An 8-bit RGB PNG as `[1, 3, H, W]` uint8.
fn read_png(path: &Path) -> Tensor {
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!(info.color_type, png::ColorType::Rgb, "{}", path.display());
    assert_eq!(info.bit_depth, png::BitDepth::Eight, "{}", path.display());
    buf.truncate(info.buffer_size());
    let (h, w) = (info.height as i64, info.width as i64);
    Tensor::from_slice(&buf)
        .view([h, w, 3])
        .permute([2, 0, 1])
        .unsqueeze(0)
        .contiguous()
}

#[test]
fn resized_sizes_follow_the_shorter_side() {
    let p = ClipPreprocess::default();
    assert_eq!(p.resized_size(32, 32), (224, 224));
    assert_eq!(p.resized_size(20, 48), (224, 537));
    assert_eq!(p.resized_size(60, 24), (560, 224));
    assert_eq!(p.resized_size(230, 250), (224, 243));
}

#[test]
fn too_small_crop_and_bad_shapes_are_errors() {
    let p = ClipPreprocess {
        crop: 300,
        ..ClipPreprocess::default()
    };
    let x = Tensor::zeros([1, 3, 8, 8], (Kind::Uint8, tch::Device::Cpu));
    assert!(p.apply(&x).unwrap_err().to_string().contains("300 crop"));
    let gray = Tensor::zeros([1, 1, 8, 8], (Kind::Uint8, tch::Device::Cpu));
    assert!(ClipPreprocess::default().apply(&gray).is_err());
}

/// Flowscale's 8-bit resized crops against PIL's: at most one level apart, at under 0.1% of values; the
/// normalised tensors then differ by at most 1 / (255 min std) = 0.0150 (and match exactly
/// where the 8-bit values agree).
#[test]
fn matches_clip_image_processor_pil() {
    let p = ClipPreprocess::default();
    for name in ["square32", "wide48x20", "tall24x60", "down250x230"] {
        let input = read_png(&images().join(format!("{name}.png")));
        let expected =
            read_png(&images().join(format!("{name}_expected.png"))).to_kind(Kind::Float);
        let got = p.resize_crop_u8(&input).unwrap();
        assert_eq!(got.size(), [1, 3, 224, 224]);
        let diff = (&got - &expected).abs();
        let max_levels = diff.max().double_value(&[]);
        let frac = diff
            .gt(0.0)
            .to_kind(Kind::Double)
            .mean(Kind::Double)
            .double_value(&[]);
        let norm_err = (p.normalise(&got).unwrap() - p.normalise(&expected).unwrap())
            .abs()
            .max()
            .double_value(&[]);
        println!(
            "{name}: max {max_levels} levels, {:.3}% of values differ, normalised max error {norm_err:.4e}",
            100.0 * frac
        );
        assert!(max_levels <= 1.0, "{name}: {max_levels} levels apart");
        assert!(frac < 1e-3, "{name}: {frac} of values differ");
        let bound = 1.0 / 255.0 / CLIP_STD.iter().cloned().fold(f64::MAX, f64::min) + 1e-6;
        assert!(norm_err <= bound, "{name}: normalised error {norm_err}");
    }
}
