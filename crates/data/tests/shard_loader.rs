//! The streaming latent-shard loader: determinism independent of workers, exact resume (also
//! across epoch boundaries and skipped shards), data-parallel splits, bad shards, collation.

#[path = "common/tar_damage.rs"]
mod tar_damage;

use flowscale_data::shards::loader::plan::epoch_plan;
use flowscale_data::shards::SampleCaption;
use flowscale_data::{
    LatentSample, LatentShardLoader, LatentShardWriter, LoaderConfig, LoaderPosition, ShardSource,
};
use std::collections::HashSet;
use std::path::Path;
use tch::{Device, Kind, Tensor};

/// Sample `n` of the set: mean filled with n, std with n / 1000, flipped mean with -n.
fn sample(n: i64) -> LatentSample {
    let full = |v: f64| Tensor::full([2, 4, 4], v, (Kind::Float, Device::Cpu)).to_kind(Kind::Half);
    LatentSample {
        key: format!("s{n:05}"),
        mean: full(n as f64),
        std: full(n as f64 / 1000.0),
        flip: Some((full(-(n as f64)), full(n as f64 / 1000.0))),
        label: Some(n % 10),
        captions: vec![SampleCaption {
            field: "txt".into(),
            text: Some(format!("sample {n}")),
            embedding: None,
        }],
    }
}

/// Shards with the given sample counts, numbered consecutively.
fn write_set(dir: &Path, counts: &[u64]) -> Vec<ShardSource> {
    let mut n = 0;
    counts
        .iter()
        .enumerate()
        .map(|(i, &c)| {
            let path = dir.join(format!("train-{i:06}.tar"));
            let mut w = LatentShardWriter::create(&path).unwrap();
            for _ in 0..c {
                w.append(&sample(n)).unwrap();
                n += 1;
            }
            w.finish().unwrap();
            ShardSource { path, samples: c }
        })
        .collect()
}

fn config(shards: &[ShardSource], batch: usize, workers: usize) -> LoaderConfig {
    LoaderConfig {
        shuffle_buffer: 13,
        workers,
        prefetch: 2,
        latent_shape: Some([2, 4, 4]),
        ..LoaderConfig::new(shards.to_vec(), batch, 42)
    }
}

/// Sample numbers of the next `k` batches, and the full batches' bits via a checksum-free
/// comparison: the mean tensor's values are the sample numbers.
fn take(loader: &mut LatentShardLoader, k: usize) -> Vec<Vec<i64>> {
    (0..k)
        .map(|_| {
            let b = loader.next_batch().unwrap();
            assert_eq!(b.mean.kind(), Kind::Float);
            assert_eq!(b.mean.size(), [b.keys.len() as i64, 2, 4, 4]);
            let ids: Vec<i64> = b.keys.iter().map(|k| k[1..].parse().unwrap()).collect();
            // Every tensor belongs to its key.
            let mean: Vec<f32> =
                Vec::try_from(b.mean.mean_dim(&[1i64, 2, 3][..], false, Kind::Float)).unwrap();
            let flip: Vec<f32> = Vec::try_from(b.flip.as_ref().unwrap().0.mean_dim(
                &[1i64, 2, 3][..],
                false,
                Kind::Float,
            ))
            .unwrap();
            let labels: Vec<i64> = Vec::try_from(b.labels.as_ref().unwrap()).unwrap();
            for (j, &n) in ids.iter().enumerate() {
                assert_eq!(mean[j], n as f32, "{}", b.keys[j]);
                assert_eq!(flip[j], -n as f32);
                assert_eq!(labels[j], n % 10);
                assert_eq!(
                    b.captions[0].texts.as_ref().unwrap()[j],
                    format!("sample {n}")
                );
            }
            let std: Vec<f32> =
                Vec::try_from(b.std.mean_dim(&[1i64, 2, 3][..], false, Kind::Float)).unwrap();
            assert!((std[0] - (ids[0] as f32 / 1000.0)).abs() < 1e-3);
            ids
        })
        .collect()
}

#[test]
fn batches_do_not_depend_on_the_worker_count_and_epochs_are_shuffled_permutations() {
    let tmp = tempfile::tempdir().unwrap();
    let shards = write_set(tmp.path(), &[10, 10, 10, 10, 7]);
    let cfg = config(&shards, 4, 1);
    // 47 samples, batch 4: 11 batches per epoch (3 samples dropped).
    let per_epoch = epoch_plan(&cfg, 0).batches as usize;
    assert_eq!(per_epoch, 11);
    let one = take(
        &mut LatentShardLoader::new(cfg.clone()).unwrap(),
        3 * per_epoch,
    );
    let four = take(
        &mut LatentShardLoader::new(LoaderConfig {
            workers: 4,
            prefetch: 5,
            ..cfg.clone()
        })
        .unwrap(),
        3 * per_epoch,
    );
    assert_eq!(one, four);
    let epochs: Vec<Vec<i64>> = one.chunks(per_epoch).map(|c| c.concat()).collect();
    for e in &epochs {
        let distinct: HashSet<i64> = e.iter().copied().collect();
        assert_eq!(distinct.len(), 44, "no sample twice in an epoch");
        // The buffer mixes shards: the first batch is not one shard's run of consecutive ids.
    }
    assert_ne!(epochs[0], epochs[1]);
    assert!(
        epochs[0].windows(2).filter(|w| w[1] == w[0] + 1).count() < 30,
        "barely shuffled: {:?}",
        epochs[0]
    );
    // Another seed, another order.
    let other = take(
        &mut LatentShardLoader::new(LoaderConfig { seed: 43, ..cfg }).unwrap(),
        per_epoch,
    );
    assert_ne!(other.concat(), epochs[0]);
}

#[test]
fn a_restored_position_continues_bit_for_bit_across_epoch_boundaries() {
    let tmp = tempfile::tempdir().unwrap();
    let shards = write_set(tmp.path(), &[9, 9, 9, 9, 9, 5]);
    let cfg = config(&shards, 5, 2);
    let per_epoch = epoch_plan(&cfg, 0).batches as usize; // 50 / 5 = 10
    assert_eq!(per_epoch, 10);
    let total = 3 * per_epoch;
    let mut straight = LatentShardLoader::new(cfg.clone()).unwrap();
    let reference: Vec<Vec<Tensor>> = (0..total)
        .map(|_| {
            let b = straight.next_batch().unwrap();
            vec![b.mean, b.std, b.flip.unwrap().0, b.labels.unwrap()]
        })
        .collect();
    // Stop points: start, mid-epoch (mid-shard with a full buffer), the last batch of an epoch,
    // and just after the boundary.
    for k in [
        0,
        3,
        per_epoch - 1,
        per_epoch,
        per_epoch + 1,
        2 * per_epoch - 2,
    ] {
        let mut first = LatentShardLoader::new(cfg.clone()).unwrap();
        take(&mut first, k);
        let saved = serde_json::to_string(first.position()).unwrap();
        drop(first);
        let position: LoaderPosition = serde_json::from_str(&saved).unwrap();
        // A different worker count resumes too.
        let mut resumed = LatentShardLoader::at(
            LoaderConfig {
                workers: 3,
                ..cfg.clone()
            },
            &position,
        )
        .unwrap();
        assert_eq!(resumed.position(), &position);
        for (j, want) in reference
            .iter()
            .enumerate()
            .take(total)
            .skip(k)
            .take(per_epoch + 2)
        {
            let b = resumed.next_batch().unwrap();
            let got = [b.mean, b.std, b.flip.unwrap().0, b.labels.unwrap()];
            for (g, w) in got.iter().zip(want) {
                assert!(g.equal(w), "stop at {k}: batch {j} differs");
            }
        }
    }
    // The position after an epoch's last batch is the next epoch's start.
    let mut l = LatentShardLoader::new(cfg.clone()).unwrap();
    take(&mut l, per_epoch);
    let p = l.position();
    assert_eq!((p.epoch, p.batches, p.next_shard), (1, 0, 0));
    assert!(p.buffer.is_empty() && p.current.is_none());
    // Mid-epoch, the buffer is saved by id.
    take(&mut l, 2);
    assert_eq!(
        l.position().buffer.len(),
        12,
        "capacity 13 minus the one emitted"
    );
    // A position from another configuration is refused, naming the difference.
    let err = LatentShardLoader::at(
        LoaderConfig {
            batch_size: 4,
            ..cfg
        },
        l.position(),
    )
    .err()
    .unwrap()
    .to_string();
    assert!(err.contains("batch size 5 (now 4)"), "{err}");
}

#[test]
fn ranks_read_disjoint_shards_and_yield_the_same_number_of_batches() {
    let tmp = tempfile::tempdir().unwrap();
    let shards = write_set(tmp.path(), &[8, 8, 8, 8, 8, 3, 8]);
    let base = config(&shards, 4, 2);
    let mut seen: Vec<HashSet<i64>> = Vec::new();
    for epoch in 0..2u64 {
        let plans: Vec<_> = (0..3)
            .map(|rank| {
                epoch_plan(
                    &LoaderConfig {
                        rank,
                        world_size: 3,
                        ..base.clone()
                    },
                    epoch,
                )
            })
            .collect();
        assert!(plans.iter().all(|p| p.batches == plans[0].batches));
    }
    let per_epoch = epoch_plan(
        &LoaderConfig {
            world_size: 3,
            ..base.clone()
        },
        0,
    )
    .batches as usize;
    for rank in 0..3 {
        let mut l = LatentShardLoader::new(LoaderConfig {
            rank,
            world_size: 3,
            ..base.clone()
        })
        .unwrap();
        seen.push(take(&mut l, per_epoch).concat().into_iter().collect());
        assert_eq!(
            l.position().epoch,
            1,
            "rank {rank} ended its epoch with the others"
        );
    }
    for a in 0..3 {
        for b in a + 1..3 {
            assert!(
                seen[a].is_disjoint(&seen[b]),
                "ranks {a} and {b} share samples"
            );
        }
    }
    let err = LatentShardLoader::new(LoaderConfig {
        rank: 0,
        world_size: 8,
        ..base
    })
    .err()
    .unwrap()
    .to_string();
    assert!(
        err.contains("7 shard(s) for 8 data-parallel ranks"),
        "{err}"
    );
}

#[test]
fn a_truncated_shard_is_named_or_skipped_and_counted() {
    let tmp = tempfile::tempdir().unwrap();
    let shards = write_set(tmp.path(), &[6, 6, 6, 6]);
    let bad = &shards[2].path;
    let bytes = std::fs::read(bad).unwrap();
    std::fs::write(bad, &bytes[..bytes.len() / 2]).unwrap();
    let cfg = config(&shards, 3, 2);
    let per_epoch = epoch_plan(&cfg, 0).batches as usize;
    let mut strict = LatentShardLoader::new(cfg.clone()).unwrap();
    let err = (0..per_epoch)
        .find_map(|_| strict.next_batch().err())
        .expect("the bad shard is met within the epoch")
        .to_string();
    assert!(
        err.contains("train-000002.tar") && err.contains("truncated"),
        "{err}"
    );
    // Skipping: the epoch still has its full batch count (the rank re-reads its good shards to
    // fill it), the bad shard is reported once per epoch, and resume counts it too.
    let skip = LoaderConfig {
        skip_bad_shards: true,
        ..cfg
    };
    let mut l = LatentShardLoader::new(skip.clone()).unwrap();
    let epoch0 = take(&mut l, per_epoch).concat();
    assert_eq!(epoch0.len(), per_epoch * 3);
    assert!(
        epoch0.iter().all(|n| !(12..18).contains(n)),
        "bad shard's samples"
    );
    assert_eq!(l.skipped_shards().len(), 1);
    assert!(l.skipped_shards()[0].contains("train-000002.tar"));
    assert_eq!(l.position().skipped_shards, 1);
    let p = l.position().clone();
    let mut straight = LatentShardLoader::at(skip.clone(), &p).unwrap();
    let half = take(&mut straight, 2);
    let mut resumed = LatentShardLoader::at(skip, straight.position()).unwrap();
    let mut again = LatentShardLoader::at(straight.config().clone(), &p).unwrap();
    let ref4 = take(&mut again, per_epoch);
    assert_eq!([half, take(&mut resumed, per_epoch - 2)].concat(), ref4);
    assert_eq!(resumed.position().skipped_shards, 2, "met again in epoch 1");
}

#[test]
fn a_latent_of_the_wrong_shape_and_mixed_labels_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("odd.tar");
    let mut w = LatentShardWriter::create(&path).unwrap();
    w.append(&sample(0)).unwrap();
    let mut s = sample(1);
    s.label = None;
    w.append(&s).unwrap();
    w.finish().unwrap();
    let shards = vec![ShardSource {
        path: path.clone(),
        samples: 2,
    }];
    let mut l = LatentShardLoader::new(LoaderConfig {
        shuffle_buffer: 0,
        ..config(&shards, 2, 1)
    })
    .unwrap();
    let err = l.next_batch().unwrap_err().to_string();
    assert!(
        err.contains("odd.tar") && err.contains("sample s00001: has no label"),
        "{err}"
    );
    let mut l = LatentShardLoader::new(LoaderConfig {
        latent_shape: Some([4, 4, 4]),
        ..config(&shards, 2, 1)
    })
    .unwrap();
    let err = l.next_batch().unwrap_err().to_string();
    assert!(
        err.contains("odd.tar") && err.contains("sample s00000: mean has shape [2, 4, 4]"),
        "{err}"
    );
    // A manifest count that disagrees with the shard is named as well.
    let mut l = LatentShardLoader::new(LoaderConfig {
        shards: vec![ShardSource { path, samples: 3 }],
        ..config(&shards, 2, 1)
    })
    .unwrap();
    let err = l.next_batch().unwrap_err().to_string();
    assert!(
        err.contains("holds 2 samples, the manifest says 3"),
        "{err}"
    );
}

#[test]
fn a_shard_member_declaring_64_gib_is_named_or_skipped() {
    let tmp = tempfile::tempdir().unwrap();
    let shards = write_set(tmp.path(), &[6, 6, 6, 6]);
    let bad = &shards[1].path;
    let mut bytes = std::fs::read(bad).unwrap();
    // 8^12 - 1 bytes (64 GiB) declared for a member of a few hundred bytes: the old reader
    // allocated the declared size at once and aborted the process (signal 6), in training and
    // in precompute alike, before any error could be reported or the shard skipped.
    tar_damage::declare_size(&mut bytes, "s00007.std.npy", b"777777777777");
    std::fs::write(bad, &bytes).unwrap();
    let err = flowscale_data::read_latent_shard(bad).unwrap_err();
    assert!(
        matches!(err, flowscale_data::DataError::Corrupt { .. }),
        "{err:?}"
    );
    let err = err.to_string();
    assert!(
        err.contains("train-000001.tar: truncated tar entry s00007.std.npy: declares 68719476735 bytes, only"),
        "{err}"
    );
    let cfg = config(&shards, 3, 2);
    let per_epoch = epoch_plan(&cfg, 0).batches as usize;
    let mut strict = LatentShardLoader::new(cfg.clone()).unwrap();
    let err = (0..per_epoch)
        .find_map(|_| strict.next_batch().err())
        .expect("the bad shard is met within the epoch")
        .to_string();
    assert!(
        err.contains("train-000001.tar")
            && err.contains("s00007.std.npy: declares 68719476735 bytes"),
        "{err}"
    );
    let mut skip = LatentShardLoader::new(LoaderConfig {
        skip_bad_shards: true,
        ..cfg
    })
    .unwrap();
    let epoch0 = take(&mut skip, per_epoch).concat();
    assert!(
        epoch0.iter().all(|n| !(6..12).contains(n)),
        "bad shard's samples"
    );
    assert_eq!(skip.skipped_shards().len(), 1);
    assert!(skip.skipped_shards()[0].contains("train-000001.tar"));
}

/// A NaN text embedding or latent, or a negative std, in a shard is named with its sample and
/// array when read, by `read_latent_shard` and by the loader: before, it trained to NaN losses
/// (or sampled NaN images) with exit status 0.
#[test]
fn non_finite_or_negative_arrays_in_a_shard_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    let nan_context = {
        let mut s = sample(3);
        let context = Tensor::ones([4, 8], (Kind::Half, Device::Cpu));
        let _ = context.get(2).get(5).fill_(f64::NAN);
        s.captions[0].embedding = Some((context, Tensor::ones([8], (Kind::Half, Device::Cpu))));
        s
    };
    let inf_mean = {
        let s = sample(4);
        let _ = s.mean.get(1).get(2).get(3).fill_(f64::INFINITY);
        s
    };
    let negative_std = {
        let s = sample(5);
        let _ = s.std.get(0).get(0).get(0).fill_(-0.5);
        s
    };
    let cases = [
        (
            nan_context,
            "sample s00003: context.npy holds NaN or infinite values",
        ),
        (
            inf_mean,
            "sample s00004: mean.npy holds NaN or infinite values",
        ),
        (
            negative_std,
            "sample s00005: std.npy holds negative standard deviations",
        ),
    ];
    for (i, (bad, want)) in cases.into_iter().enumerate() {
        let path = tmp.path().join(format!("bad-{i}.tar"));
        let mut w = LatentShardWriter::create(&path).unwrap();
        w.append(&sample(1)).unwrap();
        w.append(&bad).unwrap();
        w.finish().unwrap();
        let err = flowscale_data::read_latent_shard(&path)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&format!("bad-{i}.tar")) && err.contains(want),
            "{err}"
        );

        let shards = [ShardSource { path, samples: 2 }];
        let mut loader = LatentShardLoader::new(config(&shards, 2, 1)).unwrap();
        let err = loader.next_batch().unwrap_err().to_string();
        assert!(err.contains(want), "{err}");
    }
    // The intact samples around them read as before.
    let path = tmp.path().join("good.tar");
    let mut w = LatentShardWriter::create(&path).unwrap();
    w.append(&sample(1)).unwrap();
    w.finish().unwrap();
    assert_eq!(flowscale_data::read_latent_shard(&path).unwrap().len(), 1);
}
