//! `flowscale precompute` into aspect-ratio buckets: a folder of generated images of mixed aspect
//! ratios goes through a precompute with the identity autoencoder (latents = pixels, so crops can
//! be checked value by value). Each image must land in the bucket nearest in log aspect ratio
//! (computed here independently of the library), in that bucket's shards, at that bucket's size,
//! and a banded image must keep exactly its centre.

#[path = "common/test_images.rs"]
#[allow(dead_code)] // image_bytes: the other precompute tests' images
mod test_images;

use flowscale_data::precompute::{precompute, PrecomputeConfig, ShardShare, Silent};
use flowscale_data::{read_latent_shard, ShardManifest};
use image::ImageEncoder;
use std::collections::BTreeMap;
use std::path::Path;
use test_images::write;

/// `[width, height]` of the buckets, in config order.
const BUCKETS: [[usize; 2]; 4] = [[32, 32], [40, 24], [24, 40], [48, 24]];

/// Image sizes of the folder: square, mild and strong landscape and portrait, and between.
const SIZES: [(u32, u32); 9] = [
    (64, 64),
    (90, 60),
    (60, 90),
    (200, 100),
    (100, 200),
    (70, 66),
    (250, 100),
    (33, 97),
    (160, 90),
];

fn png(w: u32, h: u32, pixel: impl Fn(u32, u32) -> [u8; 3]) -> Vec<u8> {
    let data: Vec<u8> = (0..w * h).flat_map(|i| pixel(i % w, i / w)).collect();
    let mut out = Vec::new();
    image::codecs::png::PngEncoder::new(&mut out)
        .write_image(&data, w, h, image::ExtendedColorType::Rgb8)
        .unwrap();
    out
}

/// The nearest bucket by |ln(w/h) - ln(W/H)|, the first listed on a tie.
fn nearest(w: u32, h: u32) -> usize {
    let a = (f64::from(w) / f64::from(h)).ln();
    let d = |b: [usize; 2]| (a - (b[0] as f64 / b[1] as f64).ln()).abs();
    let mut best = 0;
    for (i, &b) in BUCKETS.iter().enumerate() {
        // Strictly nearer: a tie keeps the earlier bucket.
        if d(b) < d(BUCKETS[best]) {
            best = i;
        }
    }
    best
}

fn config(images: &Path, out: &Path, buckets: &str) -> PrecomputeConfig {
    let text = format!(
        r#"
        [source]
        kind = "folder"
        path = "{}"
        [preprocess]
        resolution = 32
        {buckets}
        [autoencoder]
        kind = "identity"
        batch_size = 4
        [output]
        dir = "{}"
        samples_per_shard = 4
        val_samples = 2
        latent_dtype = "float32"
        "#,
        images.display(),
        out.display()
    );
    PrecomputeConfig::from_toml(&text, Path::new("test.toml")).unwrap()
}

const BUCKET_KEYS: &str = r#"
        [preprocess.buckets]
        sizes = [[32, 32], [40, 24], [24, 40], [48, 24]]
        step = 8
"#;

#[test]
fn images_go_to_their_nearest_bucket_and_keep_their_centre() {
    let tmp = tempfile::tempdir().unwrap();
    let (images, out) = (tmp.path().join("images"), tmp.path().join("out"));
    for &(w, h) in &SIZES {
        let bytes = if (w, h) == (250, 100) {
            // White between x = 25 and 225, black outside: the 48x24 bucket covers it at
            // scale 24/100 (60x24) and crops 6 columns each side, i.e. exactly x in [25, 225).
            png(w, h, |x, _| {
                if (25..225).contains(&x) {
                    [255; 3]
                } else {
                    [0; 3]
                }
            })
        } else {
            png(w, h, |x, y| {
                [(x * 7) as u8, (y * 5) as u8, ((x + y) * 3) as u8]
            })
        };
        write(&images.join(format!("img_{w}x{h}.png")), &bytes);
    }
    let report = precompute(
        &config(&images, &out, BUCKET_KEYS),
        ShardShare::default(),
        &Silent,
    )
    .unwrap();
    let manifest = report.manifest.expect("complete");
    assert_eq!(manifest.format_version, 3);
    let sizes: Vec<[usize; 2]> = manifest
        .buckets
        .iter()
        .map(|b| [b.width as usize, b.height as usize])
        .collect();
    assert_eq!(sizes, BUCKETS);

    // Every sample, from whichever split, with the bucket its shard is listed under.
    let mut found: BTreeMap<String, (u32, Vec<i64>, tch::Tensor)> = BTreeMap::new();
    for entry in manifest.splits.train.iter().chain(&manifest.splits.val) {
        let bucket = entry
            .bucket
            .expect("a bucketed manifest names each shard's bucket");
        let samples = read_latent_shard(&out.join(&entry.file)).unwrap();
        assert_eq!(samples.len() as u64, entry.samples);
        for s in samples {
            found.insert(s.key.clone(), (bucket, s.mean.size(), s.mean));
        }
    }
    assert_eq!(found.len(), SIZES.len(), "every image written once");
    let mut used = std::collections::BTreeSet::new();
    for &(w, h) in &SIZES {
        let (bucket, shape, _) = &found[&format!("img_{w}x{h}")];
        let want = nearest(w, h);
        assert_eq!(*bucket as usize, want, "{w}x{h}");
        let [bw, bh] = BUCKETS[want];
        assert_eq!(*shape, [3, bh as i64, bw as i64], "{w}x{h}");
        assert_eq!(
            manifest.latent_shape_of(Some(*bucket)),
            [3, bh as i64, bw as i64]
        );
        used.insert(want);
    }
    assert_eq!(used.len(), BUCKETS.len(), "the sizes exercise every bucket");

    // The banded image: white inside, black cropped away. Columns 0 and 47 sit next to the cut
    // (the filter reaches a little past it) but stay mostly white; a crop shifted by even one
    // output column would bring black in.
    let (_, _, banded) = &found["img_250x100"];
    let cols: Vec<f32> = (0..48)
        .map(|x| {
            banded
                .narrow(2, x, 1)
                .mean(tch::Kind::Float)
                .double_value(&[]) as f32
        })
        .collect();
    for (x, v) in cols.iter().enumerate() {
        if (2..46).contains(&x) {
            assert!((v - 1.0).abs() < 1e-4, "column {x}: {v}");
        } else {
            assert!(*v > 0.5, "edge column {x}: {v}");
        }
    }
    // The shards of a bucket hold only that bucket's size; the unit's shard names carry it.
    for e in &manifest.splits.train {
        assert!(e.file.ends_with(&format!("-b{:02}.tar", e.bucket.unwrap())));
    }
    assert!(report_text(&out, &images).contains("buckets (train/val samples): 32x32 "));

    // A unit one of whose bucket shards went missing is redone, to the same bytes, and only it.
    let tars = |dir: &Path| -> BTreeMap<String, Vec<u8>> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "tar"))
            .map(|p| {
                let name = p.file_name().unwrap().to_string_lossy().into_owned();
                (name, std::fs::read(&p).unwrap())
            })
            .collect()
    };
    let before = tars(&out);
    let victim = &manifest.splits.train[0].file;
    std::fs::remove_file(out.join(victim)).unwrap();
    let again = precompute(
        &config(&images, &out, BUCKET_KEYS),
        ShardShare::default(),
        &Silent,
    )
    .unwrap();
    assert_eq!(again.units_written, 1, "{victim}");
    assert_eq!(tars(&out), before);
    assert_eq!(again.manifest.unwrap(), manifest);
}

/// The report of a run over a finished directory (nothing left to write).
fn report_text(out: &Path, images: &Path) -> String {
    precompute(
        &config(images, out, BUCKET_KEYS),
        ShardShare::default(),
        &Silent,
    )
    .unwrap()
    .to_string()
}

#[test]
fn the_generated_family_is_used_and_bad_bucket_keys_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    let (images, out) = (tmp.path().join("images"), tmp.path().join("out"));
    for (i, &(w, h)) in SIZES.iter().enumerate() {
        write(
            &images.join(format!("i{i}.png")),
            &png(w, h, |x, y| [x as u8, y as u8, 9]),
        );
    }
    let family = "[preprocess.buckets]\nrule = \"equal-area\"\nmax_aspect = 3.0";
    let cfg = config(&images, &out, family);
    let buckets = cfg.preprocess_config().buckets.unwrap();
    // Resolution 32, step 16: long side 48 pairs with 16 (aspect 3, allowed), 64 with 16
    // (aspect 4, outside max_aspect 3).
    let sizes: Vec<(usize, usize)> = buckets
        .sizes()
        .iter()
        .map(|s| (s.width, s.height))
        .collect();
    assert_eq!(sizes, [(16, 48), (32, 32), (48, 16)]);
    let manifest = precompute(&cfg, ShardShare::default(), &Silent)
        .unwrap()
        .manifest
        .unwrap();
    assert_eq!(manifest.buckets.len(), 3);
    // 200x100 (ln 2 = 0.69) is nearer 48x16 (ln 3 = 1.10, 0.41 away) than the square (0.69).
    let wide = format!("i{}", SIZES.iter().position(|&s| s == (200, 100)).unwrap());
    let shard = manifest
        .splits
        .train
        .iter()
        .chain(&manifest.splits.val)
        .find(|e| {
            read_latent_shard(&out.join(&e.file))
                .unwrap()
                .iter()
                .any(|s| s.key == wide)
        })
        .unwrap();
    assert_eq!(shard.bucket, Some(2));

    let bad = [
        ("sizes = [[32, 32], [40, 25]]\nstep = 8", "buckets.sizes"),
        ("sizes = [[32, 32], [64, 64]]\nstep = 8", "times the pixels"),
        ("rule = \"square\"", "buckets.rule"),
        ("sizes = [[32, 32]]\nrule = \"equal-area\"", "not both"),
        ("step = 0", "buckets.step"),
    ];
    for (keys, what) in bad {
        let text = format!(
            "[source]\nkind = \"folder\"\npath = \"x\"\n[preprocess]\nresolution = 32\n\
             [preprocess.buckets]\n{keys}\n[autoencoder]\nkind = \"identity\"\n\
             [output]\ndir = \"y\"\n"
        );
        let e = PrecomputeConfig::from_toml(&text, Path::new("t.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains(what), "{keys}: {e}");
    }
}

#[test]
fn without_buckets_the_manifest_stays_format_2_without_bucket_fields() {
    let tmp = tempfile::tempdir().unwrap();
    let (images, out) = (tmp.path().join("images"), tmp.path().join("out"));
    for (i, &(w, h)) in SIZES.iter().enumerate() {
        write(
            &images.join(format!("i{i}.png")),
            &png(w, h, |x, y| [x as u8, y as u8, 9]),
        );
    }
    precompute(&config(&images, &out, ""), ShardShare::default(), &Silent).unwrap();
    let text = std::fs::read_to_string(ShardManifest::path(&out)).unwrap();
    assert!(text.contains("\"format_version\": 2"));
    assert!(!text.contains("bucket"), "{text}");
    let files: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tar"))
        .collect();
    assert!(files.iter().all(|f| !f.contains("-b")), "{files:?}");
}
