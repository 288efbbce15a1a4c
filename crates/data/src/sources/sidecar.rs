//! Caption sidecars of image files: `<stem>.txt` beside `<stem>.png` holds the `txt` caption,
//! `<stem>.<field>.txt` the caption of a further field (`<stem>.syn.txt`, a synthetic caption).

use super::{FieldCaption, ImageSource, Sample, SourceItem};
use crate::bad_samples::BadSample;
use crate::shards::PRIMARY_CAPTION;
use std::path::{Path, PathBuf};

/// The sidecar holding the `field` caption of the image at `image`.
pub fn sidecar_path(image: &Path, field: &str) -> PathBuf {
    if field == PRIMARY_CAPTION {
        image.with_extension("txt")
    } else {
        image.with_extension(format!("{field}.txt"))
    }
}

/// `sample` with the captions of the `further` fields read from its sidecars, in that order.
///
/// A further field is compared with `txt` on the same images (the caption study), so with any
/// further field a sample lacking `txt` or one of them is a bad sample, as is a sidecar that is
/// not UTF-8; the reason names the field and the file. Without further fields the sample is
/// returned as it is (`txt` stays optional for folders).
pub fn with_sidecar_captions(mut sample: Sample, further: &[String]) -> SourceItem {
    if further.is_empty() {
        return Ok(sample);
    }
    let ImageSource::File(image) = &sample.image else {
        return Err(BadSample::new(
            sample.key,
            "the image is not a file, so it has no caption sidecars",
        ));
    };
    let bad = |reason: String| BadSample::new(sample.key.clone(), reason);
    if sample.caption.is_none() {
        let path = sidecar_path(image, PRIMARY_CAPTION);
        return Err(bad(format!(
            "no {PRIMARY_CAPTION} caption: {} is missing",
            path.display()
        )));
    }
    let mut captions = Vec::with_capacity(further.len());
    for field in further {
        let path = sidecar_path(image, field);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(bad(format!(
                    "no {field} caption: {} is missing",
                    path.display()
                )))
            }
            Err(e) => return Err(bad(format!("caption {field}: {}: {e}", path.display()))),
        };
        let text = String::from_utf8(bytes)
            .map_err(|_| bad(format!("caption {field}: {} is not UTF-8", path.display())))?;
        captions.push(FieldCaption {
            field: field.clone(),
            text: text.trim().to_string(),
        });
    }
    sample.further_captions = captions;
    Ok(sample)
}
