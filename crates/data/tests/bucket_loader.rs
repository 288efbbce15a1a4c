//! The bucketed loader over a precomputed bucket set (identity autoencoder): every batch comes
//! from one bucket and has that bucket's latent shape; the bucket sequence and the batches are
//! the same for the same seed and differ for another; a loader restored from a saved position
//! (through JSON, as a checkpoint stores it) continues with exactly the batches of an
//! uninterrupted one; data-parallel ranks draw the same bucket for each step.

#[path = "common/test_images.rs"]
#[allow(dead_code)] // image_bytes: the other precompute tests' images
mod test_images;

use flowscale_data::precompute::{precompute, PrecomputeConfig, ShardShare, Silent};
use flowscale_data::shards::loader::{BucketedLoader, BucketedPosition};
use flowscale_data::{read_latent_shard, LoaderConfig, ShardManifest};
use image::ImageEncoder;
use std::collections::BTreeMap;
use std::path::Path;

/// 36 images into buckets 32x32 (18), 40x24 (9) and 24x40 (9).
fn bucket_set(dir: &Path) -> ShardManifest {
    let images = dir.join("images");
    for i in 0..36u32 {
        let (w, h) = [(40, 40), (40, 40), (60, 36), (36, 60)][(i % 4) as usize];
        let data: Vec<u8> = (0..w * h)
            .flat_map(|p| [(p * 7 + i * 13) as u8, (p / w * 5) as u8, i as u8])
            .collect();
        let mut png = Vec::new();
        image::codecs::png::PngEncoder::new(&mut png)
            .write_image(&data, w, h, image::ExtendedColorType::Rgb8)
            .unwrap();
        test_images::write(&images.join(format!("im{i:02}.png")), &png);
    }
    let text = format!(
        r#"
        [source]
        kind = "folder"
        path = "{}"
        [preprocess]
        resolution = 32
        [preprocess.buckets]
        sizes = [[32, 32], [40, 24], [24, 40]]
        step = 8
        [autoencoder]
        kind = "identity"
        [output]
        dir = "{}"
        samples_per_shard = 3
        latent_dtype = "float32"
        "#,
        images.display(),
        dir.join("out").display()
    );
    let cfg = PrecomputeConfig::from_toml(&text, Path::new("t.toml")).unwrap();
    precompute(&cfg, ShardShare::default(), &Silent)
        .unwrap()
        .manifest
        .unwrap()
}

fn base(seed: u64, rank: usize, world: usize) -> LoaderConfig {
    LoaderConfig {
        shuffle_buffer: 4,
        workers: 1,
        prefetch: 2,
        rank,
        world_size: world,
        ..LoaderConfig::new(Vec::new(), 2, seed)
    }
}

/// (bucket, keys, latents) of `n` batches.
type Drawn = Vec<(usize, Vec<String>, tch::Tensor)>;

fn draw(loader: &mut BucketedLoader, n: usize) -> Drawn {
    (0..n)
        .map(|_| {
            let (b, batch) = loader.next_batch().unwrap();
            (b, batch.keys.clone(), batch.mean.shallow_clone())
        })
        .collect()
}

#[test]
fn batches_are_one_bucket_each_seeded_and_resume_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let manifest = bucket_set(tmp.path());
    let out = tmp.path().join("out");
    // Which bucket each key's shard is listed under, from the manifest.
    let mut bucket_of_key: BTreeMap<String, u32> = BTreeMap::new();
    for e in &manifest.splits.train {
        for s in read_latent_shard(&out.join(&e.file)).unwrap() {
            bucket_of_key.insert(s.key, e.bucket.unwrap());
        }
    }
    assert_eq!(bucket_of_key.len(), 36);
    let per_bucket = |b: u32| bucket_of_key.values().filter(|&&x| x == b).count();
    assert_eq!((per_bucket(0), per_bucket(1), per_bucket(2)), (18, 9, 9));

    let mut a = BucketedLoader::new(&out, &manifest, &base(5, 0, 1), 1, None).unwrap();
    assert!(a.left_out().is_empty());
    let run = draw(&mut a, 30);
    let mut seen = [0; 3];
    for (step, (b, keys, latents)) in run.iter().enumerate() {
        assert_eq!(*b, a.schedule().bucket_of(step as u64));
        seen[*b] += 1;
        for k in keys {
            assert_eq!(bucket_of_key[k] as usize, *b, "step {step}: {k}");
        }
        let [c, h, w] = manifest.latent_shape_of(Some(*b as u32));
        assert_eq!(latents.size(), [2, c, h, w], "step {step}");
    }
    assert!(seen.iter().all(|&n| n > 0), "every bucket drawn: {seen:?}");

    let buckets = |d: &Drawn| d.iter().map(|(b, _, _)| *b).collect::<Vec<_>>();
    let keys = |d: &Drawn| d.iter().map(|(_, k, _)| k.clone()).collect::<Vec<_>>();
    let mut same = BucketedLoader::new(&out, &manifest, &base(5, 0, 1), 1, None).unwrap();
    let again = draw(&mut same, 30);
    assert_eq!(buckets(&again), buckets(&run));
    assert_eq!(keys(&again), keys(&run));
    let mut other = BucketedLoader::new(&out, &manifest, &base(6, 0, 1), 1, None).unwrap();
    assert_ne!(buckets(&draw(&mut other, 30)), buckets(&run));

    // Stop after 11 batches, save the position through JSON, resume: batches 11..30 again.
    let mut first = BucketedLoader::new(&out, &manifest, &base(5, 0, 1), 1, None).unwrap();
    draw(&mut first, 11);
    let json = serde_json::to_string(&first.position()).unwrap();
    drop(first);
    let saved: BucketedPosition = serde_json::from_str(&json).unwrap();
    assert_eq!(saved.batches, 11);
    let mut resumed =
        BucketedLoader::new(&out, &manifest, &base(5, 0, 1), 1, Some(&saved)).unwrap();
    let rest = draw(&mut resumed, 19);
    for (i, (r, u)) in rest.iter().zip(&run[11..]).enumerate() {
        assert_eq!((r.0, &r.1), (u.0, &u.1), "batch {}", 11 + i);
        assert!(r.2.equal(&u.2), "batch {} latents", 11 + i);
    }

    // Two ranks draw the same bucket at every step, from disjoint samples.
    let mut r0 = BucketedLoader::new(&out, &manifest, &base(5, 0, 2), 1, None).unwrap();
    let mut r1 = BucketedLoader::new(&out, &manifest, &base(5, 1, 2), 1, None).unwrap();
    let (d0, d1) = (draw(&mut r0, 8), draw(&mut r1, 8));
    assert_eq!(buckets(&d0), buckets(&d1));
    for ((_, k0, _), (_, k1, _)) in d0.iter().zip(&d1) {
        assert!(k0.iter().all(|k| !k1.contains(k)), "{k0:?} {k1:?}");
    }

    // Groups of 3 batches (the micro-batches of a step) share the bucket of their group: the
    // same schedule, each draw repeated 3 times.
    let mut grouped = BucketedLoader::new(&out, &manifest, &base(5, 0, 1), 3, None).unwrap();
    let g = buckets(&draw(&mut grouped, 30));
    let want: Vec<usize> = (0..30).map(|i| a.schedule().bucket_of(i / 3)).collect();
    assert_eq!(g, want);
    assert!(g.windows(2).any(|w| w[0] != w[1]), "{g:?}");

    // A position of another shard set's shape is refused by name.
    let mut wrong = saved.clone();
    wrong.buckets.pop();
    let e = BucketedLoader::new(&out, &manifest, &base(5, 0, 1), 1, Some(&wrong))
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("2 bucket(s), the shard set 3"), "{e}");
}

#[test]
fn a_bucket_too_small_for_a_batch_on_every_rank_is_left_out_and_named() {
    let tmp = tempfile::tempdir().unwrap();
    let manifest = bucket_set(tmp.path());
    let out = tmp.path().join("out");
    // Batches of 10: the 9-sample buckets cannot give one, the 18-sample square can.
    let cfg = LoaderConfig {
        batch_size: 10,
        ..base(5, 0, 1)
    };
    let mut l = BucketedLoader::new(&out, &manifest, &cfg, 1, None).unwrap();
    assert_eq!(l.left_out().len(), 2, "{:?}", l.left_out());
    assert!(l.left_out()[0].starts_with("bucket 1 (40x24): 9 samples"));
    assert!(l.left_out()[1].starts_with("bucket 2 (24x40): 9 samples"));
    for _ in 0..4 {
        assert_eq!(l.next_batch().unwrap().0, 0);
    }
    let cfg = LoaderConfig {
        batch_size: 19,
        ..base(5, 0, 1)
    };
    let e = BucketedLoader::new(&out, &manifest, &cfg, 1, None)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("no bucket can give a batch"), "{e}");
}
