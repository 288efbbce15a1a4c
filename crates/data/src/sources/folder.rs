//! Any folder of images, recursively, in sorted path order. Optionally the label is the index of
//! the first-level subfolder (sorted); a caption comes from a sidecar `<name>.txt` next to the
//! image when there is one.

use super::{safe_key, ImageSource, Sample};
use crate::error::{DataError, Result};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Extensions read as images (case-insensitive).
pub(crate) const IMAGE_EXTENSIONS: [&str; 4] = ["jpg", "jpeg", "png", "webp"];

pub(crate) fn is_image(path: &Path) -> bool {
    path.is_file()
        && path.extension().is_some_and(|e| {
            let e = e.to_string_lossy().to_ascii_lowercase();
            IMAGE_EXTENSIONS.contains(&e.as_str())
        })
}

/// The entries of `dir`, sorted by path.
pub(crate) fn sorted_dir(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).map_err(|e| DataError::io(dir, e))? {
        out.push(e.map_err(|e| DataError::io(dir, e))?.path());
    }
    out.sort();
    Ok(out)
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FolderOptions {
    /// Label = index of the image's first-level subfolder among all of them, sorted; images
    /// directly in the root are then an error.
    pub labels_from_subfolders: bool,
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for p in sorted_dir(dir)? {
        if p.is_dir() {
            walk(&p, out)?;
        } else if is_image(&p) {
            out.push(p);
        }
    }
    Ok(())
}

/// All images under `root`. Keys are the relative paths without extension made safe
/// ([`safe_key`]); two files giving the same key is an error naming both. Returns the samples
/// and, with labels, the class folder names in label order.
pub fn read_image_folder(
    root: &Path,
    options: FolderOptions,
) -> Result<(Vec<Sample>, Vec<String>)> {
    let mut files = Vec::new();
    walk(root, &mut files)?;
    let classes: Vec<String> = if options.labels_from_subfolders {
        sorted_dir(root)?
            .into_iter()
            .filter(|p| p.is_dir())
            .map(|p| {
                p.file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect()
    } else {
        Vec::new()
    };
    let class_index: HashMap<&str, i64> = classes
        .iter()
        .enumerate()
        .map(|(i, c)| (c.as_str(), i as i64))
        .collect();
    let mut seen: HashMap<String, PathBuf> = HashMap::new();
    let mut samples = Vec::with_capacity(files.len());
    for path in files {
        let rel = path.strip_prefix(root).unwrap_or(&path);
        let stem_path = rel.with_extension("");
        let name = stem_path
            .to_string_lossy()
            .replace(std::path::MAIN_SEPARATOR, "/");
        let key = safe_key(&name.replace('/', "__"));
        if let Some(other) = seen.insert(key.clone(), path.clone()) {
            return Err(DataError::Invalid(format!(
                "{} and {} both give the sample key {key}",
                other.display(),
                path.display()
            )));
        }
        let label = if options.labels_from_subfolders {
            let first = rel
                .components()
                .next()
                .map(|c| c.as_os_str().to_string_lossy());
            match (rel.components().count() > 1, first) {
                (true, Some(dir)) => Some(class_index[dir.as_ref()]),
                _ => {
                    return Err(DataError::Invalid(format!(
                        "{}: not inside a class folder of {} (labels from subfolders)",
                        path.display(),
                        root.display()
                    )))
                }
            }
        } else {
            None
        };
        let sidecar = path.with_extension("txt");
        let caption = if sidecar.is_file() {
            let text = std::fs::read_to_string(&sidecar).map_err(|e| DataError::io(&sidecar, e))?;
            Some(text.trim().to_string())
        } else {
            None
        };
        samples.push(Sample {
            key,
            image: ImageSource::File(path),
            label,
            caption,
        });
    }
    Ok((samples, classes))
}
