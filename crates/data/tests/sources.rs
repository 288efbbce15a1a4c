//! Dataset readers: ImageNet on a tiny synthetic tree (mapping file, LOC validation labels),
//! a CC12M-style shard written by Python `webdataset.TarWriter`
//! (`scripts/fixtures/write_cc12m_shard.py`), including a truncated copy and a sample without a
//! caption, an image folder, and the npm emoji set when `scripts/setup` has fetched it.

#[path = "../../../tests/support/skip.rs"]
mod skip;

#[path = "common/tar_damage.rs"]
mod tar_damage;

use flowscale_data::images::{preprocess_batch, PreprocessConfig};
use flowscale_data::sources::{
    read_emoji, read_image_folder, CaptionPolicy, FolderOptions, ImageNet, ValLabels,
    WebDatasetImages,
};
use flowscale_data::{BadSample, BadSampleReport, ImageSource, Sample, SourceItem};
use image::ImageEncoder;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn tiny_jpeg(shade: u8) -> Vec<u8> {
    let data: Vec<u8> = (0..24 * 16)
        .flat_map(|i| [shade, (i % 256) as u8, 90])
        .collect();
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90)
        .write_image(&data, 24, 16, image::ExtendedColorType::Rgb8)
        .unwrap();
    out
}

fn write(path: &Path, bytes: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

fn split(items: impl IntoIterator<Item = SourceItem>) -> (Vec<Sample>, Vec<BadSample>) {
    let mut good = Vec::new();
    let mut bad = Vec::new();
    for item in items {
        match item {
            Ok(s) => good.push(s),
            Err(b) => bad.push(b),
        }
    }
    (good, bad)
}

const MAPPING: &str = "n02000000 goldfish, Carassius auratus\n\
                       n01000000 tench, Tinca tinca\n\
                       n03000000 great white shark, white shark, man-eater, Carcharodon carcharias\n";

#[test]
fn imagenet_train_and_val_get_sorted_labels_and_captions() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write(&dir.join("LOC_synset_mapping.txt"), MAPPING.as_bytes());
    // A subset of the classes (no goldfish folder), a stray non-image file.
    write(
        &dir.join("train/n03000000/n03000000_5.JPEG"),
        &tiny_jpeg(10),
    );
    write(
        &dir.join("train/n01000000/n01000000_2.JPEG"),
        &tiny_jpeg(20),
    );
    write(
        &dir.join("train/n01000000/n01000000_10.JPEG"),
        &tiny_jpeg(30),
    );
    write(&dir.join("train/n01000000/notes.txt"), b"not an image");
    let net = ImageNet::from_mapping(&dir.join("LOC_synset_mapping.txt")).unwrap();
    assert_eq!(net.num_classes(), 3);
    assert_eq!(
        net.label_of("n01000000"),
        Some(0),
        "sorted wnid order, not file order"
    );
    assert_eq!(net.label_of("n02000000"), Some(1));
    assert_eq!(net.class_names(1), ["goldfish", "Carassius auratus"]);

    let (train, bad) = split(net.train(&dir.join("train")).unwrap());
    assert!(bad.is_empty(), "{bad:?}");
    let got: Vec<(&str, Option<i64>)> = train.iter().map(|s| (s.key.as_str(), s.label)).collect();
    assert_eq!(
        got,
        [
            ("n01000000_10", Some(0)),
            ("n01000000_2", Some(0)),
            ("n03000000_5", Some(2))
        ]
    );
    for s in &train {
        let caption = s.caption.as_deref().unwrap();
        let name = caption.strip_prefix("a photo of a ").unwrap();
        assert!(
            net.class_names(s.label.unwrap()).iter().any(|n| n == name),
            "{caption}"
        );
        assert!(matches!(&s.image, ImageSource::File(p) if p.ends_with(format!("{}.JPEG", s.key))));
    }
    // Pinned: FNV-1a of the seed's 8 little-endian bytes and the key picks the synonym, the same
    // on every platform and Rust version (computed independently in Python).
    let captions: Vec<&str> = train
        .iter()
        .map(|s| s.caption.as_deref().unwrap())
        .collect();
    assert_eq!(
        captions,
        [
            "a photo of a tench",
            "a photo of a Tinca tinca",
            "a photo of a great white shark"
        ]
    );
    // Every synonym gets drawn across keys, and the seed changes the draw.
    let names: std::collections::BTreeSet<String> =
        (0..200).map(|i| net.caption(2, &format!("k{i}"))).collect();
    assert_eq!(names.len(), 4, "{names:?}");
    let reseeded = net.clone().with_caption_seed(7);
    assert!(
        (0..50).any(|i| reseeded.caption(2, &format!("k{i}")) != net.caption(2, &format!("k{i}")))
    );

    // Preprocessing reads the files lazily.
    let mut report = BadSampleReport::new();
    let done = preprocess_batch(train, &PreprocessConfig::new(16), &mut report);
    assert_eq!((done.len(), report.bad().len()), (3, 0));

    // A folder that is not a known class is an error naming it.
    write(&dir.join("train/n09999999/x.JPEG"), &tiny_jpeg(1));
    let err = net.train(&dir.join("train")).err().unwrap().to_string();
    assert!(
        err.contains("class folder n09999999 is not in the synset mapping"),
        "{err}"
    );

    // Validation: Kaggle's CSV, one image without a row.
    for i in 1..=3 {
        write(
            &dir.join(format!("val/ILSVRC2012_val_0000000{i}.JPEG")),
            &tiny_jpeg(i),
        );
    }
    let csv = dir.join("LOC_val_solution.csv");
    write(
        &csv,
        b"ImageId,PredictionString\n\
          ILSVRC2012_val_00000003,n03000000 1 2 3 4 n03000000 5 6 7 8 \n\
          ILSVRC2012_val_00000001,n02000000 10 20 30 40 \n",
    );
    let (val, bad) = split(
        net.val(&dir.join("val"), &ValLabels::LocSolution(csv))
            .unwrap(),
    );
    let got: Vec<(&str, Option<i64>)> = val.iter().map(|s| (s.key.as_str(), s.label)).collect();
    assert_eq!(
        got,
        [
            ("ILSVRC2012_val_00000001", Some(1)),
            ("ILSVRC2012_val_00000003", Some(2))
        ]
    );
    assert_eq!(bad.len(), 1);
    assert!(
        bad[0].name.ends_with("ILSVRC2012_val_00000002.JPEG"),
        "{bad:?}"
    );
    assert!(bad[0].reason.contains("no label in"), "{bad:?}");

    // One wnid per line in sorted file order; a count mismatch names the file.
    let lines = dir.join("val_synsets.txt");
    write(&lines, b"n01000000\nn03000000\nn02000000\n");
    let (val, _) = split(
        net.val(&dir.join("val"), &ValLabels::WnidPerLine(lines.clone()))
            .unwrap(),
    );
    let labels: Vec<Option<i64>> = val.iter().map(|s| s.label).collect();
    assert_eq!(labels, [Some(0), Some(2), Some(1)]);
    write(&lines, b"n01000000\n");
    let err = net
        .val(&dir.join("val"), &ValLabels::WnidPerLine(lines))
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("val_synsets.txt: 1 labels for 3 images"),
        "{err}"
    );

    // The devkit's IDs go through its own synset order.
    let gt = dir.join("ILSVRC2012_validation_ground_truth.txt");
    let ids = dir.join("devkit_synsets.txt");
    write(&gt, b"3\n1\n2\n");
    write(&ids, b"n03000000\nn02000000\nn01000000\n");
    let labels = ValLabels::DevkitIds {
        ground_truth: gt.clone(),
        synsets: ids,
    };
    let (val, _) = split(net.val(&dir.join("val"), &labels).unwrap());
    let labels: Vec<Option<i64>> = val.iter().map(|s| s.label).collect();
    assert_eq!(labels, [Some(0), Some(2), Some(1)]);
}

/// The CC12M-style shard from Python's webdataset, written into `dir`.
fn python_shard(dir: &Path) -> PathBuf {
    let path = dir.join("00000.tar");
    let python = root().join(".venv/bin/python");
    let out = std::process::Command::new(&python)
        .arg(root().join("scripts/fixtures/write_cc12m_shard.py"))
        .arg(&path)
        .output()
        .unwrap_or_else(|e| panic!("{}: {e} (run scripts/setup)", python.display()));
    assert!(
        out.status.success(),
        "webdataset failed (run scripts/setup):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    path
}

fn keys(samples: &[Sample]) -> Vec<&str> {
    samples.iter().map(|s| s.key.as_str()).collect()
}

#[test]
fn cc12m_shards_give_pairs_and_report_missing_captions() {
    let tmp = tempfile::tempdir().unwrap();
    let shard = python_shard(tmp.path());
    let (good, bad) = split(WebDatasetImages::new(
        vec![shard.clone()],
        CaptionPolicy::Required,
    ));
    assert_eq!(
        keys(&good),
        ["000000000", "000000001", "000000003", "000000004"]
    );
    assert_eq!(
        good[1].caption.as_deref(),
        Some("caption number 1, ünïcode")
    );
    assert_eq!(good[0].label, None);
    assert_eq!(bad.len(), 1);
    assert_eq!(bad[0].name, "000000002");
    assert!(
        bad[0].reason.starts_with("no caption (.txt) in ") && bad[0].reason.ends_with("00000.tar")
    );

    // Captions optional: the sample stays, unconditioned.
    let (good, bad) = split(WebDatasetImages::new(
        vec![shard.clone()],
        CaptionPolicy::Optional,
    ));
    assert_eq!(good.len(), 5);
    assert_eq!(good[2].caption, None);
    assert!(bad.is_empty());

    // The images decode.
    let mut report = BadSampleReport::new();
    let done = preprocess_batch(good, &PreprocessConfig::new(16), &mut report);
    assert_eq!((done.len(), report.bad().len()), (5, 0));
}

#[test]
fn a_truncated_shard_keeps_what_came_before_and_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let shard = python_shard(tmp.path());
    let bytes = std::fs::read(&shard).unwrap();
    // Cut inside the data of 000000003.jpg (its header starts with the member name).
    let header = bytes
        .windows(13)
        .position(|w| w == b"000000003.jpg")
        .unwrap();
    let cut = tmp.path().join("cut.tar");
    std::fs::write(&cut, &bytes[..header + 512 + 300]).unwrap();
    let (good, bad) = split(WebDatasetImages::new(
        vec![cut.clone(), shard],
        CaptionPolicy::Required,
    ));
    // 0 and 1 from the damaged shard, then all four captioned samples of the intact one.
    assert_eq!(
        keys(&good),
        [
            "000000000",
            "000000001",
            "000000000",
            "000000001",
            "000000003",
            "000000004"
        ]
    );
    let names: Vec<&str> = bad.iter().map(|b| b.name.as_str()).collect();
    assert_eq!(names[0], "000000002", "no caption, before the damage");
    assert_eq!(names[1], cut.display().to_string());
    assert!(
        bad[1].reason.contains("truncated tar entry 000000003.jpg"),
        "{}",
        bad[1].reason
    );
    assert_eq!(
        names[2], "000000002",
        "the intact shard's captionless sample"
    );
    assert_eq!(bad.len(), 3);

    // A shard that cannot be opened is reported by path, and the rest still read.
    let missing = tmp.path().join("missing.tar");
    let (good, bad) = split(WebDatasetImages::new(
        vec![missing.clone(), cut],
        CaptionPolicy::Optional,
    ));
    assert_eq!(keys(&good), ["000000000", "000000001", "000000002"]);
    assert_eq!(bad[0].name, missing.display().to_string());
    assert_eq!(bad.len(), 2);
}

/// The samples of a folder where every sample is expected to be good, and its classes.
fn good_folder_samples(dir: &Path, options: FolderOptions) -> (Vec<Sample>, Vec<String>) {
    let (items, classes) = read_image_folder(dir, options).unwrap();
    let samples = items.into_iter().map(|s| s.unwrap()).collect();
    (samples, classes)
}

#[test]
fn image_folders_give_labels_from_subfolders_and_sidecar_captions() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("imgs");
    write(&dir.join("dogs/sub/b.jpg"), &tiny_jpeg(1));
    write(&dir.join("cats/a.JPG"), &tiny_jpeg(2));
    write(&dir.join("cats/a.txt"), b"a cat on a mat\n");
    write(&dir.join("dogs/c d.jpeg"), &tiny_jpeg(3));
    write(&dir.join("dogs/readme.md"), b"ignored");
    let labelled = FolderOptions {
        labels_from_subfolders: true,
    };
    let (samples, classes) = good_folder_samples(&dir, labelled);
    assert_eq!(classes, ["cats", "dogs"]);
    let got: Vec<(&str, Option<i64>, Option<&str>)> = samples
        .iter()
        .map(|s| (s.key.as_str(), s.label, s.caption.as_deref()))
        .collect();
    assert_eq!(got[0], ("cats__a", Some(0), Some("a cat on a mat")));
    assert!(
        got[1].0.starts_with("dogs__c_d-") && got[1].0.len() == 26,
        "{got:?}"
    );
    assert_eq!((got[1].1, got[1].2), (Some(1), None));
    assert_eq!(got[2], ("dogs__sub__b", Some(1), None));
    assert_eq!(got.len(), 3);

    // An image outside every class folder: fine without labels, an error with them.
    write(&dir.join("top.png"), &tiny_jpeg(4));
    let (samples, _) = good_folder_samples(&dir, FolderOptions::default());
    assert_eq!(samples.len(), 4);
    assert!(samples.iter().all(|s| s.label.is_none()));
    let err = read_image_folder(&dir, labelled).unwrap_err().to_string();
    assert!(err.contains("top.png: not inside a class folder"), "{err}");

    // Two files with one key.
    write(&dir.join("cats/a.png"), &tiny_jpeg(5));
    let err = read_image_folder(&dir, FolderOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("a.JPG and") && err.contains("a.png both give the sample key cats__a"),
        "{err}"
    );
}

#[test]
fn the_emoji_set_is_captioned_by_name_and_labelled_by_category() {
    let dir = root().join(".assets/emoji-datasource-google");
    if !dir.join("emoji.json").exists() {
        skip::skipped(
            "the_emoji_set_is_captioned_by_name_and_labelled_by_category",
            &format!(
                "{} absent (scripts/setup fetches it with npm)",
                dir.display()
            ),
        );
        return;
    }
    let (samples, categories) = read_emoji(&dir).unwrap();
    assert_eq!(samples.len(), 1911, "emoji-datasource-google 16.0.0");
    assert_eq!(categories.len(), 10, "{categories:?}");
    let grin = samples.iter().find(|s| s.key == "emoji_1f600").unwrap();
    assert_eq!(grin.caption.as_deref(), Some("grinning face"));
    let category = |key: &str| {
        let s = samples.iter().find(|s| s.key == key).unwrap();
        categories[s.label.unwrap() as usize].as_str()
    };
    assert_eq!(category("emoji_1f600"), "Smileys & Emotion");
    assert_eq!(category("emoji_1f436"), "Animals & Nature", "dog face");
    assert_eq!(category("emoji_1f355"), "Food & Drink", "pizza");
    let keys: Vec<&str> = samples.iter().map(|s| s.key.as_str()).collect();
    assert!(keys.windows(2).all(|w| w[0] < w[1]), "sorted, unique");
    let grin = grin.clone();
    let mut report = BadSampleReport::new();
    let mut some: Vec<Sample> = samples.into_iter().step_by(97).collect();
    some.push(grin);
    let n = some.len();
    let done = preprocess_batch(some, &PreprocessConfig::new(32), &mut report);
    assert_eq!(
        (done.len(), report.bad().len()),
        (n, 0),
        "{:?}",
        report.bad()
    );
    // The round face's transparent corner composites to white; its centre is yellow.
    let face = &done[n - 1].image.pixels;
    assert_eq!([face[0], face[32 * 32], face[2 * 32 * 32]], [1.0; 3]);
    let centre = 16 * 32 + 16;
    assert!(
        face[centre] > 0.5 && face[2 * 32 * 32 + centre] < 0.0,
        "yellow"
    );
}

#[test]
fn a_tar_member_declaring_64_gib_is_a_damaged_shard_not_an_abort() {
    let tmp = tempfile::tempdir().unwrap();
    let mut w = flowscale_data::shards::tar::TarWriter::new(Vec::new());
    for (i, key) in ["k0", "k1", "k2"].iter().enumerate() {
        w.append(&format!("{key}.jpg"), &tiny_jpeg(i as u8))
            .unwrap();
        w.append(&format!("{key}.txt"), b"a caption").unwrap();
    }
    let mut bytes = w.finish().unwrap();
    // 8^12 - 1 bytes (64 GiB) declared for a small JPEG: the old reader allocated that at once
    // and aborted `precompute` (signal 6) instead of listing the shard in bad-samples.tsv.
    tar_damage::declare_size(&mut bytes, "k1.jpg", b"777777777777");
    let bad = tmp.path().join("00000.tar");
    write(&bad, &bytes);
    let good = tmp.path().join("00001.tar");
    let mut w = flowscale_data::shards::tar::TarWriter::new(Vec::new());
    w.append("g.jpg", &tiny_jpeg(9)).unwrap();
    w.append("g.txt", b"fine").unwrap();
    write(&good, &w.finish().unwrap());
    let (samples, skipped) = split(WebDatasetImages::new(
        vec![bad.clone(), good],
        CaptionPolicy::Required,
    ));
    assert_eq!(keys(&samples), ["k0", "g"]);
    assert_eq!(skipped.len(), 1);
    assert_eq!(skipped[0].name, bad.display().to_string());
    assert!(
        skipped[0].reason.starts_with(
            "damaged shard, rest skipped: truncated tar entry k1.jpg: declares 68719476735 bytes, only"
        ),
        "{}",
        skipped[0].reason
    );
}

/// Makes `link` a symlink to `target` (relative targets resolve from `link`'s folder).
fn symlink(target: &str, link: &Path) {
    std::fs::create_dir_all(link.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink(target, link).unwrap();
}

#[test]
fn a_symlink_loop_to_the_root_gives_each_image_once() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("imgs");
    write(&dir.join("a.jpg"), &tiny_jpeg(1));
    write(&dir.join("sub/b.jpg"), &tiny_jpeg(2));
    // The old walk followed `loop` into itself until the kernel's 40-link limit: 41 copies of
    // every image, under keys loop__a, loop__loop__a, ... .
    symlink(".", &dir.join("loop"));
    // A symlink to an image inside the tree adds nothing: the image is read under its real
    // path (the old walk took it twice).
    symlink("sub/b.jpg", &dir.join("alias.jpg"));
    let (samples, _) = good_folder_samples(&dir, FolderOptions::default());
    assert_eq!(keys(&samples), ["a", "sub__b"]);
}

#[test]
fn mutual_symlink_loops_terminate_with_each_image_once() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("imgs");
    write(&dir.join("a/x.jpg"), &tiny_jpeg(1));
    write(&dir.join("b/y.jpg"), &tiny_jpeg(2));
    // Each folder reaches the other and the root: the old walk branched at every level, 3^40
    // paths, and hung with growing memory.
    symlink("..", &dir.join("a/up"));
    symlink("../b", &dir.join("a/b"));
    symlink("..", &dir.join("b/up"));
    symlink("../a", &dir.join("b/a"));
    let labelled = FolderOptions {
        labels_from_subfolders: true,
    };
    let (samples, classes) = good_folder_samples(&dir, labelled);
    assert_eq!(keys(&samples), ["a__x", "b__y"]);
    assert_eq!(classes, ["a", "b"]);
    let labels: Vec<Option<i64>> = samples.iter().map(|s| s.label).collect();
    assert_eq!(labels, [Some(0), Some(1)]);
}

#[test]
fn a_symlink_to_a_folder_outside_is_followed_once() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("imgs");
    let outside = tmp.path().join("elsewhere");
    write(&dir.join("cats/a.jpg"), &tiny_jpeg(1));
    write(&outside.join("c.jpg"), &tiny_jpeg(3));
    write(&outside.join("c.txt"), b"from elsewhere");
    symlink(outside.to_str().unwrap(), &dir.join("more"));
    // A second link to the same folder, a link from there back into the tree and a loop out
    // there: each would have repeated images in the old walk (the last two without end).
    symlink(outside.to_str().unwrap(), &dir.join("zmore"));
    symlink(dir.to_str().unwrap(), &outside.join("back"));
    symlink(".", &outside.join("self"));
    let labelled = FolderOptions {
        labels_from_subfolders: true,
    };
    let (samples, classes) = good_folder_samples(&dir, labelled);
    assert_eq!(classes, ["cats", "more"]);
    let got: Vec<(&str, Option<i64>, Option<&str>)> = samples
        .iter()
        .map(|s| (s.key.as_str(), s.label, s.caption.as_deref()))
        .collect();
    assert_eq!(
        got,
        [
            ("cats__a", Some(0), None),
            ("more__c", Some(1), Some("from elsewhere"))
        ]
    );
}

/// Linux file names are bytes: names that are not UTF-8 are distinct samples and classes (a lossy
/// conversion turned two of them into one key and refused the whole folder), and a caption
/// sidecar that is not UTF-8 is one bad sample, not an error for the folder.
#[test]
fn file_names_that_are_not_utf8_are_distinct_samples_and_classes() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("imgs");
    let name = |bytes: &[u8]| OsStr::from_bytes(bytes).to_owned();
    let class_ff = dir.join(name(b"c\xff"));
    let class_fe = dir.join(name(b"c\xfe"));
    write(&class_ff.join(name(b"\xff.png")), &tiny_jpeg(1));
    write(&class_ff.join(name(b"\xfe.png")), &tiny_jpeg(2));
    write(&class_fe.join("ok.png"), &tiny_jpeg(3));
    write(&class_fe.join("bad.png"), &tiny_jpeg(4));
    write(&class_fe.join("bad.txt"), b"caption \xff\xfe");
    let labelled = FolderOptions {
        labels_from_subfolders: true,
    };
    let (items, classes) = read_image_folder(&dir, labelled).unwrap();
    assert_eq!(classes, ["c\\xFE", "c\\xFF"]);
    let good: Vec<&Sample> = items.iter().filter_map(|s| s.as_ref().ok()).collect();
    let bad: Vec<&BadSample> = items.iter().filter_map(|s| s.as_ref().err()).collect();
    assert_eq!(good.len(), 3, "{items:?}");
    assert_eq!(bad.len(), 1, "{items:?}");
    assert!(bad[0].reason.contains("bad.txt: not UTF-8"), "{:?}", bad[0]);
    let mut keys: Vec<&str> = good.iter().map(|s| s.key.as_str()).collect();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), 3, "{keys:?}");
    let safe = flowscale_data::sources::keys::is_safe_key;
    assert!(keys.iter().all(|k| safe(k)), "{keys:?}");
    // Labels follow the real folder, not a lossy name shared by both.
    for s in &good {
        let ImageSource::File(path) = &s.image else {
            panic!("{s:?}")
        };
        let folder = path.parent().unwrap().file_name().unwrap().as_bytes();
        let want = if folder == b"c\xfe" { 0 } else { 1 };
        assert_eq!(s.label, Some(want), "{}", path.display());
    }
}
