//! A COCO-2014-style prompt set: `captions_val2014.json` (`images`: `id`, `file_name`;
//! `annotations`: `image_id`, `caption`) and the folder of its images. The paper evaluates
//! text-to-image models on COCO-2014 val; sample `i` uses the first caption (lowest annotation
//! id) of the `i`-th image by id, and the FID reference is those images, resized and
//! centre-cropped to the run's resolution as training images are.

use crate::error::{EvalError, Result};
use flowscale_data::images::preprocess_bytes;
use flowscale_data::{to_u8_pixels, PreprocessConfig};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use tch::Tensor;

/// Caption files above this size are refused before they are read (COCO's is ~20 MB).
const MAX_CAPTION_FILE: u64 = 1 << 30;

#[derive(Deserialize)]
struct CaptionFile {
    images: Vec<Image>,
    annotations: Vec<Annotation>,
}

#[derive(Deserialize)]
struct Image {
    id: i64,
    file_name: String,
}

#[derive(Deserialize)]
struct Annotation {
    #[serde(default)]
    id: i64,
    image_id: i64,
    caption: String,
}

/// One image of the set and its caption.
#[derive(Debug, Clone, PartialEq)]
pub struct CocoPrompt {
    pub image: PathBuf,
    pub caption: String,
}

/// The first `n` captioned images of the set by image id.
pub fn read_coco(captions: &Path, images: &Path, n: usize) -> Result<Vec<CocoPrompt>> {
    let len = std::fs::metadata(captions)
        .map_err(|e| EvalError::io(captions, e))?
        .len();
    if len > MAX_CAPTION_FILE {
        return Err(EvalError::Invalid(format!(
            "{}: {len} bytes, more than a caption file can be ({MAX_CAPTION_FILE})",
            captions.display()
        )));
    }
    let text = std::fs::read_to_string(captions).map_err(|e| EvalError::io(captions, e))?;
    let file: CaptionFile = serde_json::from_str(&text).map_err(|e| {
        EvalError::Invalid(format!(
            "{}: not a COCO caption file: {e}",
            captions.display()
        ))
    })?;
    let mut first: BTreeMap<i64, (i64, String)> = BTreeMap::new();
    for a in file.annotations {
        let better = first.get(&a.image_id).is_none_or(|(id, _)| a.id < *id);
        if better && !a.caption.trim().is_empty() {
            first.insert(a.image_id, (a.id, a.caption.trim().to_owned()));
        }
    }
    let mut by_id: Vec<Image> = file.images;
    by_id.sort_by_key(|i| i.id);
    // Plain names only: the set must not reach outside its image folder.
    if let Some(bad) = by_id.iter().find(|i| {
        i.file_name.is_empty()
            || i.file_name.contains(['/', '\\'])
            || i.file_name == "."
            || i.file_name == ".."
    }) {
        return Err(EvalError::Invalid(format!(
            "{}: image {}: file_name {:?} is not a plain file name in {}",
            captions.display(),
            bad.id,
            bad.file_name,
            images.display()
        )));
    }
    let prompts: Vec<CocoPrompt> = by_id
        .into_iter()
        .filter_map(|i| {
            first.remove(&i.id).map(|(_, caption)| CocoPrompt {
                image: images.join(&i.file_name),
                caption,
            })
        })
        .take(n)
        .collect();
    if prompts.is_empty() {
        return Err(EvalError::Invalid(format!(
            "{}: no image has a caption",
            captions.display()
        )));
    }
    Ok(prompts)
}

/// The images of `prompts` as u8 `[N, 3, R, R]`, resized (shorter side) and centre-cropped.
pub fn reference_images(prompts: &[CocoPrompt], resolution: usize) -> Result<Tensor> {
    let cfg = PreprocessConfig::new(resolution);
    let mut out = Vec::with_capacity(prompts.len());
    for p in prompts {
        let bytes = std::fs::read(&p.image).map_err(|e| EvalError::io(&p.image, e))?;
        let pre = preprocess_bytes(&bytes, &cfg)
            .map_err(|e| EvalError::Invalid(format!("{}: {e}", p.image.display())))?;
        out.push(pre.tensor());
    }
    Ok(to_u8_pixels(&Tensor::f_stack(&out, 0)?)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_caption_of_each_image_by_id_and_bad_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let json = dir.path().join("captions_val2014.json");
        std::fs::write(
            &json,
            r#"{"images": [{"id": 9, "file_name": "b.jpg"}, {"id": 3, "file_name": "a.jpg"},
                           {"id": 5, "file_name": "c.jpg"}],
                "annotations": [{"id": 20, "image_id": 3, "caption": "second "},
                                {"id": 11, "image_id": 3, "caption": " a cat"},
                                {"id": 12, "image_id": 9, "caption": "a dog"}]}"#,
        )
        .unwrap();
        let images = dir.path().join("val2014");
        let p = read_coco(&json, &images, 10).unwrap();
        // Image 5 has no caption; image 3 comes first and keeps its lowest-id caption.
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].caption, "a cat");
        assert_eq!(p[0].image, images.join("a.jpg"));
        assert_eq!(read_coco(&json, &images, 1).unwrap().len(), 1);
        std::fs::write(&json, r#"{"images": []}"#).unwrap();
        let e = read_coco(&json, &images, 1).unwrap_err().to_string();
        assert!(
            e.contains("captions_val2014.json") && e.contains("annotations"),
            "{e}"
        );
        std::fs::write(
            &json,
            r#"{"images": [{"id": 1, "file_name": "../x.jpg"}],
                "annotations": [{"id": 1, "image_id": 1, "caption": "c"}]}"#,
        )
        .unwrap();
        assert!(read_coco(&json, &images, 1).is_err());
    }
}
