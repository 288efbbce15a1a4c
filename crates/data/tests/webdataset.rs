//! Latent shards and Python `webdataset` (installed into .venv by scripts/setup): shards written
//! here are read there, and a shard written by `webdataset.TarWriter` (committed fixture, made by
//! `scripts/webdataset_interop.py write`) is read here. Python prints what it decoded; the tests
//! compare it with the tensors on this side.

use flowscale_data::shards::SampleCaption;
use flowscale_data::{read_latent_shard, LatentSample, LatentShardWriter};
use serde_json::Value;
use std::path::{Path, PathBuf};
use tch::{Device, Kind, Tensor};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// What Python's webdataset decodes from `shard`, one JSON object per sample.
fn python_read(shard: &Path) -> Vec<Value> {
    let python = root().join(".venv/bin/python");
    let out = std::process::Command::new(&python)
        .arg(root().join("scripts/webdataset_interop.py"))
        .arg("read")
        .arg(shard)
        .output()
        .unwrap_or_else(|e| panic!("{}: {e} (run scripts/setup)", python.display()));
    assert!(
        out.status.success(),
        "webdataset failed (run scripts/setup to install it):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn primary_text(s: &LatentSample) -> Option<&str> {
    s.caption("txt").and_then(|c| c.text.as_deref())
}

fn npy_matches(t: &Tensor, v: &Value, what: &str) {
    let dtype = match t.kind() {
        Kind::Half => "float16",
        Kind::Float => "float32",
        Kind::Int64 => "int64",
        k => panic!("{k:?}"),
    };
    assert_eq!(v["dtype"], dtype, "{what}");
    let shape: Vec<i64> = v["shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_i64().unwrap())
        .collect();
    assert_eq!(shape, t.size(), "{what}");
    let ours = t.to_kind(Kind::Double).sum(Kind::Double).double_value(&[]);
    let theirs = v["sum"].as_f64().unwrap();
    assert!(
        (ours - theirs).abs() <= 1e-9 * (1.0 + theirs.abs()),
        "{what}: {ours} vs {theirs}"
    );
}

#[test]
fn a_shard_written_by_webdataset_is_read() {
    let fixture = root().join("crates/data/tests/fixtures/webdataset_writer.tar");
    let ours = read_latent_shard(&fixture).unwrap();
    let theirs = python_read(&fixture);
    assert_eq!(ours.len(), 3);
    assert_eq!(theirs.len(), 3);
    for (s, v) in ours.iter().zip(&theirs) {
        assert_eq!(v["key"], s.key.as_str());
        assert_eq!(v["cls"].as_i64(), s.label);
        assert_eq!(v["txt"].as_str(), primary_text(s), "{}", s.key);
        npy_matches(&s.mean, &v["mean.npy"], &s.key);
        npy_matches(&s.std, &v["std.npy"], &s.key);
    }
    assert_eq!(primary_text(&ours[1]), Some("une robe d'été"));
    assert_eq!(primary_text(&ours[2]), None);
    assert!(ours[2].captions.is_empty());
}

#[test]
fn a_shard_written_here_is_read_by_webdataset() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("shard-000000.tar");
    let mut w = LatentShardWriter::create(&path).unwrap();
    tch::manual_seed(5);
    let f = |kind| Tensor::randn([16, 4, 4], (Kind::Float, Device::Cpu)).to_kind(kind);
    let samples: Vec<LatentSample> = (0..4)
        .map(|i| LatentSample {
            key: format!("img_{i:06}"),
            mean: f(Kind::Half),
            std: f(Kind::Half).abs(),
            flip: (i % 2 == 0).then(|| (f(Kind::Half), f(Kind::Half).abs())),
            label: Some(i * 10 + 1),
            captions: {
                let embedding = || {
                    (i == 1).then(|| {
                        (
                            Tensor::randn([77, 384], (Kind::Float, Device::Cpu))
                                .to_kind(Kind::Half),
                            Tensor::randn([384], (Kind::Float, Device::Cpu)).to_kind(Kind::Half),
                        )
                    })
                };
                let mut c = Vec::new();
                if i != 3 {
                    c.push(SampleCaption {
                        field: "txt".into(),
                        text: Some(format!("a photo of a sneaker nº{i}")),
                        embedding: embedding(),
                    });
                }
                // A second caption field (the paper's synthetic captions) on some samples.
                if i % 2 == 1 {
                    c.push(SampleCaption {
                        field: "syn".into(),
                        text: Some(format!("a white sneaker on a grey floor, view {i}")),
                        embedding: embedding(),
                    });
                }
                c
            },
        })
        .collect();
    for s in &samples {
        w.append(s).unwrap();
    }
    assert!(!path.exists(), "visible before finish");
    w.finish().unwrap();
    let theirs = python_read(&path);
    assert_eq!(theirs.len(), 4);
    for (s, v) in samples.iter().zip(&theirs) {
        assert_eq!(v["key"], s.key.as_str());
        assert_eq!(v["cls"].as_i64(), s.label);
        assert_eq!(v["txt"].as_str(), primary_text(s));
        let syn = s.caption("syn");
        assert_eq!(v["syn.txt"].as_str(), syn.and_then(|c| c.text.as_deref()));
        npy_matches(&s.mean, &v["mean.npy"], &s.key);
        npy_matches(&s.std, &v["std.npy"], &s.key);
        match &s.flip {
            Some((m, d)) => {
                npy_matches(m, &v["flip_mean.npy"], &s.key);
                npy_matches(d, &v["flip_std.npy"], &s.key);
            }
            None => assert!(v.get("flip_mean.npy").is_none()),
        }
        for c in &s.captions {
            let prefix = if c.field == "txt" {
                String::new()
            } else {
                format!("{}.", c.field)
            };
            match &c.embedding {
                Some((ctx, p)) => {
                    npy_matches(ctx, &v[format!("{prefix}context.npy")], &s.key);
                    npy_matches(p, &v[format!("{prefix}pooled.npy")], &s.key);
                }
                None => assert!(v.get(format!("{prefix}context.npy")).is_none()),
            }
        }
    }
    // And back through our reader, bit for bit.
    let back = read_latent_shard(&path).unwrap();
    for (a, b) in samples.iter().zip(&back) {
        assert!(a.mean.equal(&b.mean) && a.std.equal(&b.std));
        assert_eq!((a.label, primary_text(a)), (b.label, primary_text(b)));
        assert_eq!(a.captions.len(), b.captions.len(), "{}", a.key);
        for (x, y) in a.captions.iter().zip(&b.captions) {
            assert_eq!((&x.field, &x.text), (&y.field, &y.text));
            match (&x.embedding, &y.embedding) {
                (Some((c1, p1)), Some((c2, p2))) => assert!(c1.equal(c2) && p1.equal(p2)),
                (None, None) => {}
                _ => panic!("{}: embedding lost", a.key),
            }
        }
    }
}

#[test]
fn an_unfinished_writer_leaves_nothing_and_bad_shards_are_named() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("shard-000001.tar");
    {
        let mut w = LatentShardWriter::create(&path).unwrap();
        let t = Tensor::zeros([2, 2], (Kind::Float, Device::Cpu));
        w.append(&LatentSample {
            key: "a".into(),
            mean: t.shallow_clone(),
            std: t.shallow_clone(),
            flip: None,
            label: None,
            captions: Vec::new(),
        })
        .unwrap();
        // Dropped without finish, as on an error or a panic.
    }
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
    // A truncated copy of the fixture: the error names the shard and the entry.
    let fixture = root().join("crates/data/tests/fixtures/webdataset_writer.tar");
    let bytes = std::fs::read(&fixture).unwrap();
    let cut = tmp.path().join("cut.tar");
    std::fs::write(&cut, &bytes[..bytes.len() / 2 + 100]).unwrap();
    let err = read_latent_shard(&cut).unwrap_err().to_string();
    assert!(
        err.contains("cut.tar") && err.contains("truncated"),
        "{err}"
    );
    // A key webdataset would split differently is refused at write time.
    let mut w = LatentShardWriter::create(&tmp.path().join("x.tar")).unwrap();
    let t = Tensor::zeros([1], (Kind::Float, Device::Cpu));
    let err = w
        .append(&LatentSample {
            key: "has.dot".into(),
            mean: t.shallow_clone(),
            std: t,
            flip: None,
            label: None,
            captions: Vec::new(),
        })
        .unwrap_err()
        .to_string();
    assert!(err.contains("has.dot"), "{err}");
}
