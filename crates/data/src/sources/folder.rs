//! Any folder of images, recursively, in sorted path order, each folder and file once (symlinks:
//! see [`read_image_folder`]). Optionally the label is the index of
//! the first-level subfolder (sorted); a caption comes from a sidecar `<name>.txt` next to the
//! image when there is one (further caption fields: [`super::sidecar`]).

use super::keys::{escaped_name, safe_key_bytes};
use super::sidecar::sidecar_path;
use super::{ImageSource, Sample, SourceItem};
use crate::bad_samples::BadSample;
use crate::error::{DataError, Result};
use crate::shards::PRIMARY_CAPTION;
use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Extensions read as images (case-insensitive).
pub(crate) const IMAGE_EXTENSIONS: [&str; 4] = ["jpg", "jpeg", "png", "webp"];

pub(crate) fn is_image(path: &Path) -> bool {
    path.is_file() && has_image_extension(path)
}

fn has_image_extension(path: &Path) -> bool {
    path.extension().is_some_and(|e| {
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

/// A file or folder's identity, (device, inode): the same for every path that reaches it.
type FileId = (u64, u64);

fn file_id(meta: &std::fs::Metadata) -> FileId {
    (meta.dev(), meta.ino())
}

/// What one entry of a walked folder is, by the rule of [`read_image_folder`].
enum Entry {
    Dir(FileId),
    Image(FileId),
    Skip,
}

/// A recursive walk that visits every folder and every file at most once.
struct Walk {
    /// The walked folder, canonical: a symlink that resolves inside it is skipped.
    root: PathBuf,
    /// Folders entered so far (the root included), so no loop is entered twice.
    dirs: HashSet<FileId>,
    /// Images taken so far, so a file reached by two paths (hard links) counts once.
    files: HashSet<FileId>,
    images: Vec<PathBuf>,
    /// The first-level folders entered, in order: the class folders.
    top: Vec<PathBuf>,
}

impl Walk {
    fn new(root: &Path) -> Result<Self> {
        let canonical = std::fs::canonicalize(root).map_err(|e| DataError::io(root, e))?;
        let meta = std::fs::metadata(&canonical).map_err(|e| DataError::io(root, e))?;
        Ok(Self {
            root: canonical,
            dirs: HashSet::from([file_id(&meta)]),
            files: HashSet::new(),
            images: Vec::new(),
            top: Vec::new(),
        })
    }

    /// Unreadable entries and broken symlinks are skipped, as a plain `is_dir`/`is_file` test
    /// would; so is a symlink back into the walked tree, whose target the walk reaches under
    /// its real path.
    fn classify(&self, path: &Path) -> Entry {
        let Ok(own) = std::fs::symlink_metadata(path) else {
            return Entry::Skip;
        };
        let Ok(meta) = std::fs::metadata(path) else {
            return Entry::Skip;
        };
        if own.file_type().is_symlink() {
            match std::fs::canonicalize(path) {
                Ok(target) if !target.starts_with(&self.root) => {}
                _ => return Entry::Skip,
            }
        }
        if meta.is_dir() {
            Entry::Dir(file_id(&meta))
        } else if meta.is_file() && has_image_extension(path) {
            Entry::Image(file_id(&meta))
        } else {
            Entry::Skip
        }
    }

    fn walk(&mut self, dir: &Path, depth: usize) -> Result<()> {
        for path in sorted_dir(dir)? {
            match self.classify(&path) {
                Entry::Dir(id) if self.dirs.insert(id) => {
                    if depth == 0 {
                        self.top.push(path.clone());
                    }
                    self.walk(&path, depth + 1)?;
                }
                Entry::Image(id) if self.files.insert(id) => self.images.push(path),
                _ => {}
            }
        }
        Ok(())
    }
}

/// All images under `root`. Keys are the relative paths without extension made safe
/// ([`safe_key_bytes`]: file names need not be UTF-8); two files giving the same key is an error
/// naming both. Returns the samples and, with labels, the class folder names in label order (a
/// name that is not UTF-8 has its invalid bytes written `\xNN`, [`escaped_name`]).
///
/// An image whose caption sidecar cannot be read as UTF-8 text is a bad sample, not an error
/// for the whole folder.
///
/// The walk goes in sorted path order and enters every folder and takes every file at most
/// once, by device and inode, so symlink loops neither multiply the dataset nor hang it:
/// - a symlink (to a folder or a file) whose target lies inside `root` is skipped: the walk
///   reaches the target under its real path;
/// - a symlink to a folder or file outside `root` is followed, once: a second path to the same
///   folder or file (another symlink, a hard link) is skipped, the first in walk order wins;
/// - broken symlinks and unreadable entries are skipped.
pub fn read_image_folder(
    root: &Path,
    options: FolderOptions,
) -> Result<(Vec<SourceItem>, Vec<String>)> {
    let mut walk = Walk::new(root)?;
    walk.walk(root, 0)?;
    let files = walk.images;
    let class_dirs: Vec<&OsStr> = if options.labels_from_subfolders {
        walk.top
            .iter()
            .map(|p| p.file_name().unwrap_or_default())
            .collect()
    } else {
        Vec::new()
    };
    let classes: Vec<String> = class_dirs
        .iter()
        .map(|d| escaped_name(d.as_bytes()))
        .collect();
    let class_index: HashMap<&OsStr, i64> = class_dirs
        .iter()
        .enumerate()
        .map(|(i, c)| (*c, i as i64))
        .collect();
    let mut seen: HashMap<String, PathBuf> = HashMap::new();
    let mut samples = Vec::with_capacity(files.len());
    for path in files {
        let rel = path.strip_prefix(root).unwrap_or(&path);
        let stem_path = rel.with_extension("");
        let name: Vec<&[u8]> = stem_path
            .components()
            .map(|c| c.as_os_str().as_bytes())
            .collect();
        let key = safe_key_bytes(&name.join(&b"__"[..]));
        if let Some(other) = seen.insert(key.clone(), path.clone()) {
            return Err(DataError::Invalid(format!(
                "{} and {} both give the sample key {key}",
                other.display(),
                path.display()
            )));
        }
        let label = if options.labels_from_subfolders {
            match (rel.components().count() > 1, rel.components().next()) {
                (true, Some(dir)) => Some(class_index[dir.as_os_str()]),
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
        let sidecar = sidecar_path(&path, PRIMARY_CAPTION);
        let caption = if sidecar.is_file() {
            match std::fs::read(&sidecar).map(String::from_utf8) {
                Ok(Ok(text)) => Some(text.trim().to_string()),
                Ok(Err(_)) => {
                    let reason = format!("caption {}: not UTF-8 text", sidecar.display());
                    samples.push(Err(BadSample::new(key, reason)));
                    continue;
                }
                Err(e) => return Err(DataError::io(&sidecar, e)),
            }
        } else {
            None
        };
        samples.push(Ok(Sample {
            key,
            image: ImageSource::File(path),
            label,
            caption,
            further_captions: Vec::new(),
        }));
    }
    Ok((samples, classes))
}
