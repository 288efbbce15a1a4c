//! Reads the real Fashion-MNIST files from the Debian package (installed by scripts/setup).

use flowscale_data::fashion_mnist::{load, split_files, Split, CLASS_NAMES, DEBIAN_DIR};
use std::io::Write;
use std::path::Path;

#[test]
fn loads_both_splits_with_balanced_classes() {
    let dir = Path::new(DEBIAN_DIR);
    let test = load(dir, Split::Test).expect("scripts/setup installs dataset-fashion-mnist");
    assert_eq!(test.len(), 10_000);
    assert_eq!(test.image_shape(), [1, 28, 28]);
    // The test split has exactly 1000 images per class.
    let counts = test.labels.bincount::<tch::Tensor>(None, 10);
    assert_eq!(Vec::<i64>::try_from(counts).unwrap(), vec![1000; 10]);
    assert_eq!(test.class_names[9], CLASS_NAMES[9]);
    // Images are not blank: mean intensity of Fashion-MNIST is about 73/255.
    let mean = test
        .images
        .to_kind(tch::Kind::Float)
        .mean(tch::Kind::Float)
        .double_value(&[]);
    assert!((60.0..90.0).contains(&mean), "mean pixel {mean}");
    let train = load(dir, Split::Train).unwrap();
    assert_eq!(train.len(), 60_000);
}

#[test]
fn truncated_file_is_an_error_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let (images, labels) = split_files(Path::new(DEBIAN_DIR), Split::Test);
    // Copy labels intact; cut the image file in half after decompression.
    std::fs::copy(&labels, tmp.path().join("t10k-labels-idx1-ubyte.gz")).unwrap();
    let raw = flowscale_data::idx::read_idx(&images).unwrap();
    let mut bytes = vec![0u8, 0, 8, 3];
    for d in &raw.dims {
        bytes.extend_from_slice(&(*d as u32).to_be_bytes());
    }
    bytes.extend_from_slice(&raw.data[..raw.data.len() / 2]);
    let path = tmp.path().join("t10k-images-idx3-ubyte");
    std::fs::File::create(&path)
        .unwrap()
        .write_all(&bytes)
        .unwrap();
    let err = load(tmp.path(), Split::Test).unwrap_err().to_string();
    assert!(
        err.contains("t10k-images-idx3-ubyte") && err.contains("truncated"),
        "{err}"
    );
    // A gzip stream cut short is also named.
    let gz = std::fs::read(&images).unwrap();
    std::fs::remove_file(&path).unwrap();
    std::fs::write(
        tmp.path().join("t10k-images-idx3-ubyte.gz"),
        &gz[..gz.len() / 3],
    )
    .unwrap();
    let err = load(tmp.path(), Split::Test).unwrap_err().to_string();
    assert!(err.contains("t10k-images-idx3-ubyte.gz"), "{err}");
    // A missing folder says how to get the data.
    let err = load(&tmp.path().join("nope"), Split::Train)
        .unwrap_err()
        .to_string();
    assert!(err.contains("dataset-fashion-mnist"), "{err}");
}
