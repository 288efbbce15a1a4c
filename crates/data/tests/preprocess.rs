//! Image preprocessing: geometry of the short-side resize and centre crop (a known pattern lands
//! where it should, in both orientations), exact size, value range, flip; parity with PIL
//! (`scripts/fixtures/pil_preprocess.py` run with .venv's Python); bad inputs skipped and named,
//! and the bad-fraction limit.

use flowscale_data::images::{
    decode_rgb, preprocess_batch, preprocess_bytes, preprocess_rgb, Filter, PreprocessConfig,
    RgbImage,
};
use flowscale_data::shards::npy::from_npy;
use flowscale_data::{BadSampleReport, ImageSource, Sample};
use image::codecs::jpeg::JpegEncoder;
use image::ImageEncoder;
use std::path::{Path, PathBuf};
use tch::Kind;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A `width x height` image from a per-pixel function.
fn paint(width: usize, height: usize, f: impl Fn(usize, usize) -> [u8; 3]) -> RgbImage {
    let mut data = Vec::with_capacity(width * height * 3);
    for y in 0..height {
        for x in 0..width {
            data.extend_from_slice(&f(x, y));
        }
    }
    RgbImage::new(width, height, data).unwrap()
}

/// Smooth gradients, a sinusoid and hard-edged shapes: something like a photo for a resampler.
fn natural(width: usize, height: usize, seed: usize) -> RgbImage {
    paint(width, height, |x, y| {
        let (fx, fy) = (x as f32 / width as f32, y as f32 / height as f32);
        let wave = ((fx * 9.0 + seed as f32).sin() * (fy * 7.0).cos() * 60.0) as i32;
        let disc = ((fx - 0.6).powi(2) + (fy - 0.4).powi(2)) < 0.04;
        let stripe = (x / 7 + y / 11 + seed).is_multiple_of(5);
        let r = (fx * 200.0) as i32 + wave + if disc { 50 } else { 0 };
        let g = (fy * 180.0) as i32 + if stripe { 60 } else { 0 };
        let b = 128 - wave + ((x * y + seed) % 13) as i32;
        [r, g, b].map(|v| v.clamp(0, 255) as u8)
    })
}

fn png_bytes(img: &RgbImage) -> Vec<u8> {
    let mut out = Vec::new();
    image::codecs::png::PngEncoder::new(&mut out)
        .write_image(
            &img.data,
            img.width as u32,
            img.height as u32,
            image::ExtendedColorType::Rgb8,
        )
        .unwrap();
    out
}

fn jpeg_bytes(img: &RgbImage, quality: u8) -> Vec<u8> {
    let mut out = Vec::new();
    JpegEncoder::new_with_quality(&mut out, quality)
        .write_image(
            &img.data,
            img.width as u32,
            img.height as u32,
            image::ExtendedColorType::Rgb8,
        )
        .unwrap();
    out
}

fn at(pixels: &[f32], r: usize, c: usize, y: usize, x: usize) -> f32 {
    pixels[c * r * r + y * r + x]
}

fn rgb_at(pixels: &[f32], r: usize, y: usize, x: usize) -> [f32; 3] {
    [0, 1, 2].map(|c| at(pixels, r, c, y, x))
}

fn close(a: [f32; 3], b: [f32; 3], tol: f32) -> bool {
    a.iter().zip(&b).all(|(x, y)| (x - y).abs() <= tol)
}

/// 300x100: red | blue | green thirds, and a white 20x20 square at the top-left of the blue
/// third. At R = 50 the resize halves it (150x50) and the crop keeps exactly the blue third.
fn thirds(x: usize, y: usize) -> [u8; 3] {
    if (100..120).contains(&x) && y < 20 {
        [255, 255, 255]
    } else if x < 100 {
        [255, 0, 0]
    } else if x < 200 {
        [0, 0, 255]
    } else {
        [0, 255, 0]
    }
}

const BLUE: [f32; 3] = [-1.0, -1.0, 1.0];
const WHITE: [f32; 3] = [1.0, 1.0, 1.0];

#[test]
fn the_centre_crop_keeps_the_middle_in_both_orientations() {
    let r = 50;
    let config = PreprocessConfig::new(r);
    let land = preprocess_rgb(&paint(300, 100, thirds), &config).unwrap();
    assert_eq!(land.pixels.len(), 3 * r * r);
    // The white square (10x10 after halving) sits at the crop's top-left.
    assert!(close(rgb_at(&land.pixels, r, 4, 4), WHITE, 1e-4));
    // Far from every edge: pure blue.
    for y in 13..r {
        for x in 3..r - 3 {
            assert!(
                close(rgb_at(&land.pixels, r, y, x), BLUE, 1e-4),
                "({y}, {x})"
            );
        }
    }
    // The antialiasing kernel (4 input pixels each side) reaches across the crop border: the
    // red third bleeds into column 0, the green third into column 49, nothing further in.
    let left = rgb_at(&land.pixels, r, 30, 0);
    let right = rgb_at(&land.pixels, r, 30, r - 1);
    assert!(
        left[0] > -1.0 + 1e-3 && right[1] > -1.0 + 1e-3,
        "{left:?} {right:?}"
    );

    // The same picture standing up: 100x300 with the thirds stacked; the output is the
    // transpose. Exactly so except where two hard edges meet (the square's corner at the crop
    // border): the intermediate image is clamped after the horizontal pass, which is the other
    // axis once transposed; there it may differ by a couple of levels.
    let port = preprocess_rgb(&paint(100, 300, |x, y| thirds(y, x)), &config).unwrap();
    for c in 0..3 {
        for y in 0..r {
            for x in 0..r {
                let (a, b) = (at(&port.pixels, r, c, y, x), at(&land.pixels, r, c, x, y));
                let corner = y < 14 && x < 14;
                let tol = if corner { 0.03 } else { 1e-5 };
                assert!((a - b).abs() <= tol, "c{c} ({y}, {x}): {a} vs {b}");
            }
        }
    }
}

#[test]
fn output_is_exactly_r_by_r_for_any_input_shape() {
    for (w, h) in [(1, 1), (3, 1000), (1000, 3), (64, 64), (257, 256), (37, 91)] {
        for r in [8, 33, 64] {
            let out = preprocess_rgb(&natural(w, h, 1), &PreprocessConfig::new(r)).unwrap();
            assert_eq!(out.pixels.len(), 3 * r * r, "{w}x{h} -> {r}");
            assert_eq!(out.tensor().size(), [3, r as i64, r as i64]);
        }
    }
}

#[test]
fn values_stay_in_minus_one_to_one_and_reach_both_ends() {
    // A hard black/white checkerboard makes bicubic and Lanczos overshoot; it is clamped.
    let checker = paint(240, 160, |x, y| {
        if (x / 40 + y / 40).is_multiple_of(2) {
            [0; 3]
        } else {
            [255; 3]
        }
    });
    for filter in [Filter::Bicubic, Filter::Lanczos3] {
        let config = PreprocessConfig {
            filter,
            ..PreprocessConfig::new(64)
        };
        let out = preprocess_rgb(&checker, &config).unwrap();
        let min = out.pixels.iter().copied().fold(f32::INFINITY, f32::min);
        let max = out.pixels.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        assert_eq!((min, max), (-1.0, 1.0), "{filter:?}");
    }
}

#[test]
fn the_flipped_copy_mirrors_left_and_right() {
    let config = PreprocessConfig {
        flip: true,
        ..PreprocessConfig::new(50)
    };
    let out = preprocess_rgb(&paint(300, 100, thirds), &config).unwrap();
    let flipped = out.flipped.as_ref().unwrap();
    assert_ne!(&out.pixels, flipped);
    assert!(
        close(rgb_at(flipped, 50, 4, 45), WHITE, 1e-4),
        "square moved right"
    );
    for c in 0..3 {
        for y in 0..50 {
            for x in 0..50 {
                assert_eq!(at(flipped, 50, c, y, x), at(&out.pixels, 50, c, y, 49 - x));
            }
        }
    }
    let t = out.flipped_tensor().unwrap();
    assert!(t.equal(&out.tensor().flip([2])));
    assert!(
        preprocess_rgb(&paint(300, 100, thirds), &PreprocessConfig::new(50))
            .unwrap()
            .flipped
            .is_none()
    );
}

#[test]
fn png_alpha_is_composited_over_white() {
    let mut rgba = Vec::new();
    for i in 0..16u8 {
        rgba.extend_from_slice(&[200, 0, 0, if i < 8 { 0 } else { 255 }]);
    }
    let mut bytes = Vec::new();
    image::codecs::png::PngEncoder::new(&mut bytes)
        .write_image(&rgba, 4, 4, image::ExtendedColorType::Rgba8)
        .unwrap();
    let img = decode_rgb(&bytes).unwrap();
    assert_eq!(&img.data[..3], &[255, 255, 255], "transparent -> white");
    assert_eq!(&img.data[8 * 3..8 * 3 + 3], &[200, 0, 0], "opaque kept");
}

#[test]
fn an_oversized_png_is_refused_from_its_header_before_decoding() {
    let bytes = png_bytes(&paint(16385, 1, |x, _| [x as u8, 0, 0]));
    // Cut a few bytes into the pixel data: refusing this needs nothing past the header (a
    // decoder that decoded first would fail on the missing pixels instead).
    let idat = bytes.windows(4).position(|w| w == b"IDAT").unwrap();
    let e = decode_rgb(&bytes[..idat + 8]).unwrap_err();
    assert_eq!(e, "PNG: 16385x1 exceeds the 16384-pixel limit");
    assert!(decode_rgb(&png_bytes(&paint(16384, 1, |_, _| [0, 0, 0]))).is_ok());
}

/// Writes `images` to a temporary folder, runs PIL on them and returns
/// (file name, ours, PIL's) per image, as [3, R, R] float tensors.
fn versus_pil(
    images: &[(&str, Vec<u8>)],
    r: usize,
    filter: (&str, Filter),
) -> Vec<(String, tch::Tensor, tch::Tensor)> {
    let tmp = tempfile::tempdir().unwrap();
    let mut paths = Vec::new();
    for (name, bytes) in images {
        let p = tmp.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        paths.push(p);
    }
    let python = root().join(".venv/bin/python");
    let out = std::process::Command::new(&python)
        .arg(root().join("scripts/fixtures/pil_preprocess.py"))
        .arg(r.to_string())
        .arg(filter.0)
        .arg(tmp.path())
        .args(&paths)
        .output()
        .unwrap_or_else(|e| panic!("{}: {e} (run scripts/setup)", python.display()));
    assert!(
        out.status.success(),
        "PIL reference failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let config = PreprocessConfig {
        filter: filter.1,
        ..PreprocessConfig::new(r)
    };
    images
        .iter()
        .map(|(name, bytes)| {
            let theirs = std::fs::read(tmp.path().join(format!("{name}.npy"))).unwrap();
            let theirs = from_npy(&theirs, name).unwrap();
            let ours = preprocess_bytes(bytes, &config).unwrap().tensor();
            (name.to_string(), ours, theirs)
        })
        .collect()
}

/// Max and mean absolute difference, in 8-bit levels (1 level = 2/255 in [-1, 1]).
fn levels(a: &tch::Tensor, b: &tch::Tensor) -> (f64, f64) {
    let d = (a - b).abs().to_kind(Kind::Double) * 127.5;
    (
        d.max().double_value(&[]),
        d.mean(Kind::Double).double_value(&[]),
    )
}

#[test]
fn lossless_inputs_match_pil_within_one_level() {
    // PNG decodes identically everywhere, so this isolates the resampler. PIL rounds to 8 bits
    // after each pass and we do not: half a level after the horizontal pass, amplified by the
    // vertical kernel's absolute weight sum (about 1.1 for bicubic, 1.2 for Lanczos), plus half a
    // level at the end: at most ~1.1 levels apart, about a quarter level on average.
    let images: Vec<(&str, Vec<u8>)> = vec![
        ("land.png", png_bytes(&natural(500, 375, 0))),
        ("port.png", png_bytes(&natural(375, 500, 1))),
        ("small.png", png_bytes(&natural(97, 130, 2))),
        ("thirds.png", png_bytes(&paint(300, 100, thirds))),
    ];
    for filter in [("bicubic", Filter::Bicubic), ("lanczos", Filter::Lanczos3)] {
        for (name, ours, theirs) in versus_pil(&images, 128, filter) {
            assert_eq!(ours.size(), theirs.size(), "{name}");
            let (max, mean) = levels(&ours, &theirs);
            eprintln!("{} {name}: max {max:.3} levels, mean {mean:.4}", filter.0);
            assert!(
                max <= 1.25 && mean < 0.35,
                "{} {name}: max {max}, mean {mean}",
                filter.0
            );
        }
    }
}

#[test]
fn jpeg_inputs_match_pil_within_decoder_differences() {
    // zune-jpeg and libjpeg-turbo differ slightly in IDCT and chroma upsampling.
    let images: Vec<(&str, Vec<u8>)> = vec![
        ("land.jpg", jpeg_bytes(&natural(500, 375, 3), 90)),
        ("port.jpg", jpeg_bytes(&natural(375, 500, 4), 90)),
    ];
    for (name, ours, theirs) in versus_pil(&images, 128, ("bicubic", Filter::Bicubic)) {
        let (max, mean) = levels(&ours, &theirs);
        eprintln!("jpeg {name}: max {max:.3} levels, mean {mean:.4}");
        assert!(max <= 4.0 && mean < 0.6, "{name}: max {max}, mean {mean}");
    }
}

fn sample(key: &str, image: ImageSource) -> Sample {
    Sample {
        key: key.into(),
        image,
        label: None,
        caption: None,
        further_captions: Vec::new(),
    }
}

#[test]
fn bad_inputs_are_skipped_and_named_and_the_rest_processed() {
    let tmp = tempfile::tempdir().unwrap();
    let empty = tmp.path().join("empty.jpg");
    std::fs::write(&empty, b"").unwrap();
    let jpeg = jpeg_bytes(&natural(200, 150, 5), 90);
    let samples = vec![
        sample(
            "good_png",
            ImageSource::Bytes(png_bytes(&natural(64, 48, 6))),
        ),
        sample(
            "truncated_jpeg",
            ImageSource::Bytes(jpeg[..jpeg.len() / 2].to_vec()),
        ),
        sample("zero_bytes", ImageSource::File(empty)),
        sample(
            "not_an_image",
            ImageSource::Bytes(b"<html>404 Not Found</html>".to_vec()),
        ),
        sample(
            "missing_file",
            ImageSource::File(tmp.path().join("gone.jpg")),
        ),
        sample("good_jpeg", ImageSource::Bytes(jpeg)),
    ];
    let mut report = BadSampleReport::new();
    let config = PreprocessConfig {
        flip: true,
        ..PreprocessConfig::new(32)
    };
    let done = preprocess_batch(samples, &config, &mut report);
    let keys: Vec<&str> = done.iter().map(|s| s.key.as_str()).collect();
    assert_eq!(keys, ["good_png", "good_jpeg"]);
    assert!(done.iter().all(|s| s.image.flipped.is_some()));
    assert_eq!(report.seen(), 6);
    let bad: Vec<(&str, &str)> = report
        .bad()
        .iter()
        .map(|b| (b.name.as_str(), b.reason.as_str()))
        .collect();
    assert_eq!(bad.len(), 4, "{bad:?}");
    assert_eq!(bad[0].0, "truncated_jpeg");
    assert!(bad[0].1.starts_with("JPEG"), "{bad:?}");
    assert_eq!(bad[1], ("zero_bytes", "empty file"));
    assert_eq!(bad[2].0, "not_an_image");
    assert!(bad[2].1.contains("not a JPEG, PNG or WebP"), "{bad:?}");
    assert_eq!(bad[3].0, "missing_file");
    assert!(bad[3].1.contains("gone.jpg"), "{bad:?}");

    let (stacked, flipped) = flowscale_data::images::stack_images(&done).unwrap();
    assert_eq!(stacked.size(), [2, 3, 32, 32]);
    assert_eq!(flipped.unwrap().size(), [2, 3, 32, 32]);

    // 4 of 6 bad: over a 50% limit, within 70%.
    let err = report.check(0.5).unwrap_err().to_string();
    assert!(err.contains("4 of 6 samples are bad"), "{err}");
    assert!(
        err.contains("truncated_jpeg: JPEG") && err.contains("missing_file"),
        "{err}"
    );
    report.check(0.7).unwrap();

    let tsv = tmp.path().join("bad.tsv");
    report.write_tsv(&tsv).unwrap();
    let text = std::fs::read_to_string(&tsv).unwrap();
    assert!(text.starts_with("# 4 bad of 6 samples\n"), "{text}");
    assert!(text.contains("zero_bytes\tempty file\n"), "{text}");
}

#[test]
fn the_error_lists_a_few_names_and_counts_the_rest() {
    let mut report = BadSampleReport::new();
    report.record_good(10);
    for i in 0..8 {
        report.record_bad(flowscale_data::BadSample::new(format!("s{i}"), "bad"));
    }
    let err = report.check(0.1).unwrap_err().to_string();
    assert!(
        err.starts_with("8 of 18 samples are bad (44.44%, more than the allowed 10.00%)"),
        "{err}"
    );
    assert!(
        err.contains("s4: bad") && !err.contains("s5") && err.ends_with("and 3 more"),
        "{err}"
    );
}
