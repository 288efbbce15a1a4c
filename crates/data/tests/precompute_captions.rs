//! `flowscale precompute` with several caption fields per image (the paper's caption study: the
//! original caption `txt` beside a synthetic one, `syn`): every field's text and embedding is
//! stored, a sample lacking a field is a bad sample naming it, the field list is part of the
//! precompute's fingerprint, and lists the shard format cannot hold are refused.

#[path = "../../../tests/support/skip.rs"]
mod skip;

#[path = "common/test_images.rs"]
mod test_images;

use flowscale_data::precompute::{
    precompute, PrecomputeConfig, PrecomputeReport, ShardShare, Silent, BAD_SAMPLES_FILE,
};
use flowscale_data::shards::tar::TarWriter;
use flowscale_data::{read_latent_shard, LatentSample, ShardManifest};
use std::path::{Path, PathBuf};
use test_images::{image_bytes, write};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// One sample of an input tar: key, `txt` caption, and the `syn.txt` member's bytes if any.
type Member<'a> = (&'a str, &'a str, Option<&'a [u8]>);

fn input_tar(path: &Path, samples: &[Member], seed: u32) {
    let mut w = TarWriter::new(Vec::new());
    for (i, (key, txt, syn)) in samples.iter().enumerate() {
        w.append(&format!("{key}.jpg"), &image_bytes(seed + i as u32, true))
            .unwrap();
        w.append(&format!("{key}.txt"), txt.as_bytes()).unwrap();
        if let Some(syn) = syn {
            w.append(&format!("{key}.syn.txt"), syn).unwrap();
        }
    }
    write(path, &w.finish().unwrap());
}

/// Two img2dataset-style tars with a synthetic caption beside each original one (the second tar
/// is the val split): `001` has no `syn.txt`, `002`'s is not UTF-8. Returns the good samples'
/// `(key, txt, syn)`, syn trimmed as stored.
fn captioned_source(dir: &Path) -> Vec<(&'static str, &'static str, &'static str)> {
    input_tar(
        &dir.join("00000.tar"),
        &[
            (
                "000",
                "a red cube",
                Some(b"a small red cube on a white table"),
            ),
            ("001", "a dog", None),
            ("002", "a cat", Some(b"\xff\xfe not text")),
            (
                "003",
                "a car",
                Some(b"  an old blue car parked by a wall\n"),
            ),
        ],
        0,
    );
    input_tar(
        &dir.join("00001.tar"),
        &[("100", "a boat", Some(b"a sailing boat on a calm sea"))],
        10,
    );
    vec![
        ("000", "a red cube", "a small red cube on a white table"),
        ("003", "a car", "an old blue car parked by a wall"),
        ("100", "a boat", "a sailing boat on a calm sea"),
    ]
}

/// `[source]` keys after the kind and path; `text`: a text-encoder config to store embeddings.
fn webdataset_config(input: &Path, out: &Path, source: &str, text: Option<&Path>) -> String {
    let text = text.map_or_else(String::new, |t| {
        format!("[text]\nconfig = \"{}\"\nbatch_size = 2\n", t.display())
    });
    format!(
        r#"
        [source]
        kind = "webdataset"
        path = "{}"
        val_shards = 1
        {source}
        [preprocess]
        resolution = 8
        max_bad_fraction = 0.5
        [autoencoder]
        kind = "identity"
        {text}
        [output]
        dir = "{}"
        "#,
        input.display(),
        out.display()
    )
}

fn parse(text: &str) -> PrecomputeConfig {
    PrecomputeConfig::from_toml(text, Path::new("captions.toml")).unwrap()
}

fn run(cfg: &PrecomputeConfig) -> PrecomputeReport {
    precompute(cfg, ShardShare::default(), &Silent).unwrap()
}

/// Every sample of the finished shard directory, train then val.
fn all_samples(out: &Path, m: &ShardManifest) -> Vec<LatentSample> {
    m.splits
        .train
        .iter()
        .chain(&m.splits.val)
        .flat_map(|e| read_latent_shard(&out.join(&e.file)).unwrap())
        .collect()
}

fn text_of<'s>(s: &'s LatentSample, field: &str) -> Option<&'s str> {
    s.caption(field).and_then(|c| c.text.as_deref())
}

/// MiniLM's config with its weights' path made absolute (it names them relative to the
/// repository root), written into `dir`; `None` when `scripts/setup` has not fetched them.
fn minilm_config(dir: &Path) -> Option<PathBuf> {
    if !root().join(".assets/all-minilm-l6-v2").exists() {
        return None;
    }
    let text = std::fs::read_to_string(root().join("configs/text/minilm.toml"))
        .unwrap()
        .replace(".assets/", &format!("{}/.assets/", root().display()));
    let path = dir.join("minilm.toml");
    std::fs::write(&path, text).unwrap();
    Some(path)
}

#[test]
fn every_caption_field_of_a_webdataset_sample_is_stored_and_a_missing_one_is_a_bad_sample() {
    let tmp = tempfile::tempdir().unwrap();
    let (input, out) = (tmp.path().join("cc"), tmp.path().join("shards"));
    let want = captioned_source(&input);
    let source = r#"caption_fields = ["txt", "syn"]"#;
    let report = run(&parse(&webdataset_config(&input, &out, source, None)));
    assert_eq!((report.samples_written, report.samples_skipped), (3, 2));
    let m = report.manifest.expect("finished");
    assert_eq!(m, ShardManifest::load(&out).unwrap());
    assert_eq!(m.caption_fields, ["txt", "syn"]);
    assert!(m.has_captions && m.text.is_none());

    let samples = all_samples(&out, &m);
    let got: Vec<(&str, Option<&str>, Option<&str>)> = samples
        .iter()
        .map(|s| (s.key.as_str(), text_of(s, "txt"), text_of(s, "syn")))
        .collect();
    let want: Vec<_> = want
        .iter()
        .map(|(k, t, s)| (*k, Some(*t), Some(*s)))
        .collect();
    assert_eq!(got, want);
    for s in &samples {
        let fields: Vec<&str> = s.captions.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(fields, ["txt", "syn"], "{}", s.key);
        assert!(s.captions.iter().all(|c| c.embedding.is_none()));
    }

    let bad = std::fs::read_to_string(out.join(BAD_SAMPLES_FILE)).unwrap();
    assert!(
        bad.contains("001\tno syn caption (.syn.txt) in ") && bad.contains("00000.tar"),
        "{bad}"
    );
    assert!(
        bad.contains("002\tcaption syn (.syn.txt) is not UTF-8 in "),
        "{bad}"
    );
}

#[test]
fn each_fields_embedding_is_the_text_encoders_encoding_of_its_caption() {
    use flowscale_encoders::text::{TextEncoder, TextEncoderConfig};
    let tmp = tempfile::tempdir().unwrap();
    let Some(minilm) = minilm_config(tmp.path()) else {
        skip::skipped(
            "each_fields_embedding_is_the_text_encoders_encoding_of_its_caption",
            "MiniLM (.assets/all-minilm-l6-v2) not found",
        );
        return;
    };
    let (input, out) = (tmp.path().join("cc"), tmp.path().join("shards"));
    let want = captioned_source(&input);
    let source = r#"caption_fields = ["txt", "syn"]"#;
    let cfg = parse(&webdataset_config(&input, &out, source, Some(&minilm)));
    let m = run(&cfg).manifest.expect("finished");
    assert_eq!(m.caption_fields, ["txt", "syn"]);
    assert_eq!(m.text.as_ref().unwrap().context_shape, [77, 384]);

    let text_cfg = std::fs::read_to_string(&minilm).unwrap();
    let encoder = TextEncoder::load(
        &TextEncoderConfig::from_toml(&text_cfg, &minilm).unwrap(),
        tch::Device::Cpu,
    )
    .unwrap();
    let samples = all_samples(&out, &m);
    assert_eq!(samples.len(), want.len());
    for (s, (key, txt, syn)) in samples.iter().zip(&want) {
        assert_eq!(s.key, *key);
        for (field, caption) in [("txt", txt), ("syn", syn)] {
            let stored = s.caption(field).unwrap();
            assert_eq!(stored.text.as_deref(), Some(*caption), "{key} {field}");
            let (context, pooled) = stored.embedding.as_ref().unwrap();
            assert_eq!(context.kind(), tch::Kind::Half);
            let emb = encoder.encode(&[*caption]).unwrap();
            let diff = |stored: &tch::Tensor, want: &tch::Tensor| {
                (stored.to_kind(tch::Kind::Float) - want.squeeze_dim(0))
                    .abs()
                    .max()
                    .double_value(&[])
            };
            let d = diff(context, &emb.context);
            assert!(d < 2e-3, "{key} {field}: context differs by {d} (fp16)");
            let d = diff(pooled, &emb.pooled);
            assert!(d < 2e-3, "{key} {field}: pooled differs by {d} (fp16)");
        }
        // The two fields' captions differ, so must their embeddings (syn is not txt's copy).
        let pooled = |f: &str| s.caption(f).unwrap().embedding.as_ref().unwrap().1.copy();
        let apart = (pooled("txt") - pooled("syn"))
            .abs()
            .max()
            .double_value(&[]);
        assert!(apart > 1e-2, "{key}: txt and syn embeddings are equal");
    }
}

#[test]
fn resuming_with_another_caption_field_list_is_refused_naming_the_key() {
    let tmp = tempfile::tempdir().unwrap();
    let (input, out) = (tmp.path().join("cc"), tmp.path().join("shards"));
    captioned_source(&input);
    // The default list is the one written before the key existed: the same fingerprint.
    run(&parse(&webdataset_config(&input, &out, "", None)));
    let explicit = r#"caption_fields = ["txt"]"#;
    let again = run(&parse(&webdataset_config(&input, &out, explicit, None)));
    assert_eq!((again.units_reused, again.units_written), (2, 0));

    let source = r#"caption_fields = ["txt", "syn"]"#;
    let cfg = parse(&webdataset_config(&input, &out, source, None));
    let err = precompute(&cfg, ShardShare::default(), &Silent)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("config.source.caption_fields was null, now [\"txt\",\"syn\"]")
            && err.contains("precompute.json"),
        "{err}"
    );
}

#[test]
fn caption_field_lists_the_shards_cannot_hold_are_refused_naming_the_key() {
    let tmp = tempfile::tempdir().unwrap();
    let (input, out) = (tmp.path().join("cc"), tmp.path().join("shards"));
    let key = "key `source.caption_fields`";
    let cases = [
        (
            r#"caption_fields = ["syn"]"#,
            key,
            "must start with \"txt\"",
        ),
        (
            r#"caption_fields = ["txt", "a.b"]"#,
            key,
            "\"a.b\" is not a caption field",
        ),
        (r#"caption_fields = []"#, key, "at least \"txt\""),
        (
            r#"caption_fields = ["txt", "syn", "syn"]"#,
            key,
            "\"syn\" is listed twice",
        ),
        (
            "captions_optional = true\ncaption_fields = [\"txt\", \"syn\"]",
            "key `source.captions_optional`",
            "every sample captioned",
        ),
    ];
    for (source, key, reason) in cases {
        let text = webdataset_config(&input, &out, source, None);
        let err = PrecomputeConfig::from_toml(&text, Path::new("captions.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(key) && err.contains(reason) && err.contains("captions.toml"),
            "{source}: {err}"
        );
    }
    // Sources with one caption per image cannot give another field.
    for source in [
        "kind = \"emoji\"\npath = \"emoji\"",
        "kind = \"imagenet\"\nmapping = \"m.txt\"\ntrain_dir = \"train\"",
        "kind = \"fashion-mnist\"",
    ] {
        let text = format!(
            "[source]\n{source}\ncaption_fields = [\"txt\", \"syn\"]\n[preprocess]\n\
             resolution = 8\n[autoencoder]\nkind = \"identity\"\n[output]\ndir = \"out\"\n"
        );
        let kind = source.lines().next().unwrap().trim_start_matches("kind = ");
        let err = PrecomputeConfig::from_toml(&text, Path::new("one.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(key)
                && err.contains(&format!("the {} source", kind.trim_matches('"')))
                && err.contains("\"syn\""),
            "{source}: {err}"
        );
    }
}

#[test]
fn the_folder_source_reads_further_fields_from_caption_sidecars() {
    let tmp = tempfile::tempdir().unwrap();
    let (images, out) = (tmp.path().join("images"), tmp.path().join("shards"));
    for (i, name) in ["a", "b", "c", "d", "e"].iter().enumerate() {
        write(
            &images.join(format!("{name}.png")),
            &image_bytes(i as u32, false),
        );
    }
    write(&images.join("a.txt"), b"a red square\n");
    write(
        &images.join("a.syn.txt"),
        b"a red square in the middle of black\n",
    );
    write(&images.join("b.txt"), b"two lines"); // no b.syn.txt
    write(&images.join("c.syn.txt"), b"a field"); // no c.txt
    write(&images.join("d.txt"), b"a circle");
    write(&images.join("d.syn.txt"), b"\xc3\x28");
    write(&images.join("e.txt"), b"green");
    write(&images.join("e.syn.txt"), b"a plain green image");
    let text = format!(
        r#"
        [source]
        kind = "folder"
        path = "{}"
        caption_fields = ["txt", "syn"]
        [preprocess]
        resolution = 8
        max_bad_fraction = 0.75
        [autoencoder]
        kind = "identity"
        [output]
        dir = "{}"
        shuffle_seed = 1
        "#,
        images.display(),
        out.display()
    );
    let report = run(&parse(&text));
    assert_eq!((report.samples_written, report.samples_skipped), (2, 3));
    let m = report.manifest.expect("finished");
    assert_eq!(m.caption_fields, ["txt", "syn"]);
    assert!(m.has_captions);
    let mut got: Vec<(String, Option<String>, Option<String>)> = all_samples(&out, &m)
        .iter()
        .map(|s| {
            let text = |f| text_of(s, f).map(str::to_owned);
            (s.key.clone(), text("txt"), text("syn"))
        })
        .collect();
    got.sort();
    let some = |s: &str| Some(s.to_owned());
    assert_eq!(
        got,
        [
            (
                "a".to_owned(),
                some("a red square"),
                some("a red square in the middle of black")
            ),
            ("e".to_owned(), some("green"), some("a plain green image")),
        ]
    );
    let bad = std::fs::read_to_string(out.join(BAD_SAMPLES_FILE)).unwrap();
    let line = |key: &str| {
        bad.lines()
            .find(|l| l.starts_with(&format!("{key}\t")))
            .unwrap_or_else(|| panic!("{key} missing from:\n{bad}"))
            .to_owned()
    };
    let b = line("b");
    assert!(
        b.contains("no syn caption") && b.contains("b.syn.txt is missing"),
        "{b}"
    );
    let c = line("c");
    assert!(
        c.contains("no txt caption") && c.contains("c.txt is missing"),
        "{c}"
    );
    let d = line("d");
    assert!(
        d.contains("caption syn") && d.contains("d.syn.txt is not UTF-8"),
        "{d}"
    );
}
