//! Files that appear whole or not at all.
//!
//! Every file flowscale writes for a reader to find later (checkpoints, safetensors, run-directory
//! files, manifests, shard records, reports) goes through [`AtomicFile`]: the bytes go to a
//! temporary name beside the target that is unique per process and per writer
//! (`.<name>.tmp-<pid>-<n>.<ext>`), the file is synced, renamed over the target, and the directory is
//! synced so the rename survives a power cut. A writer dropped before [`AtomicFile::commit`]
//! (an error, a panic) removes its temporary file. A process killed outright leaves it behind;
//! [`TMP_MARKER`] lets a restart recognise such leftovers.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// What every temporary name carries after the target's name: `.<name>.tmp-<pid>-<n>.<ext>`.
pub const TMP_MARKER: &str = ".tmp-";

/// An I/O failure and the path it concerns.
#[derive(Debug, thiserror::Error)]
#[error("{}: {source}", path.display())]
pub struct IoError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

impl IoError {
    pub fn new(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self {
            path: path.into(),
            source,
        }
    }
}

/// The prefix of every temporary name of `file_name` (the pid and a counter follow), so a
/// restart can find what a killed writer left.
pub fn tmp_prefix(file_name: &str) -> String {
    format!(".{file_name}{TMP_MARKER}")
}

/// A fresh temporary path beside `target`: unique within this process (a counter) and across
/// processes (the pid), so two writers of one target never share a temporary file. It ends in
/// the target's extension, because some writers choose the format by it (tch's
/// `VarStore::save` writes safetensors only to a `.safetensors` path).
pub fn tmp_path(target: &Path) -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let name = target.file_name().unwrap_or_default().to_string_lossy();
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let ext = target
        .extension()
        .map(|e| format!(".{}", e.to_string_lossy()))
        .unwrap_or_default();
    target.with_file_name(format!(
        "{}{}-{n}{ext}",
        tmp_prefix(&name),
        std::process::id()
    ))
}

/// Syncs a directory, so that a rename inside it is durable. Platforms that cannot open a
/// directory for syncing are not an error.
pub fn sync_dir(dir: &Path) -> Result<(), IoError> {
    match File::open(dir) {
        Ok(d) => d.sync_all().map_err(|e| IoError::new(dir, e)),
        Err(_) => Ok(()),
    }
}

/// Renames a complete temporary file or folder onto `target` and syncs the directory.
pub fn rename_into_place(tmp: &Path, target: &Path) -> Result<(), IoError> {
    std::fs::rename(tmp, target).map_err(|e| IoError::new(target, e))?;
    sync_dir(target.parent().unwrap_or(Path::new(".")))
}

/// A file being written under a temporary name; see the module documentation.
#[derive(Debug)]
pub struct AtomicFile {
    target: PathBuf,
    tmp: PathBuf,
    file: Option<File>,
}

impl AtomicFile {
    /// Starts writing `target` (whose folder must exist).
    pub fn create(target: &Path) -> Result<Self, IoError> {
        let tmp = tmp_path(target);
        let file = File::create(&tmp).map_err(|e| IoError::new(&tmp, e))?;
        Ok(Self {
            target: target.to_path_buf(),
            tmp,
            file: Some(file),
        })
    }

    /// The temporary path the bytes go to until [`AtomicFile::commit`].
    pub fn tmp_path(&self) -> &Path {
        &self.tmp
    }

    /// Appends bytes.
    pub fn write_all(&mut self, bytes: &[u8]) -> Result<(), IoError> {
        let tmp = &self.tmp;
        self.file
            .as_mut()
            .expect("open until commit")
            .write_all(bytes)
            .map_err(|e| IoError::new(tmp, e))
    }

    /// Syncs the bytes, renames the file onto the target and syncs the directory.
    pub fn commit(mut self) -> Result<(), IoError> {
        let file = self.file.take().expect("open until commit");
        file.sync_all().map_err(|e| IoError::new(&self.tmp, e))?;
        drop(file);
        rename_into_place(&self.tmp, &self.target)?;
        // Committed: nothing for Drop to remove.
        self.tmp = PathBuf::new();
        Ok(())
    }
}

/// Streams into the temporary file (encoders that write through `std::io::Write`).
impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.file.as_mut().expect("open until commit").write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.as_mut().expect("open until commit").flush()
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if !self.tmp.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// Writes `bytes` to `path` atomically (see [`AtomicFile`]).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), IoError> {
    let mut f = AtomicFile::create(path)?;
    f.write_all(bytes)?;
    f.commit()
}

/// Writes the file that `write` produces at a temporary path given to it, then renames it onto
/// `target` (for writers that insist on opening the file themselves, such as safetensors').
/// The temporary file is removed when `write` fails.
pub fn write_atomic_with<E>(
    target: &Path,
    write: impl FnOnce(&Path) -> Result<(), E>,
) -> Result<(), AtomicWithError<E>> {
    let tmp = tmp_path(target);
    let cleanup = |e| {
        let _ = std::fs::remove_file(&tmp);
        e
    };
    write(&tmp).map_err(|e| cleanup(AtomicWithError::Write(e)))?;
    let synced = File::open(&tmp)
        .and_then(|f| f.sync_all())
        .map_err(|e| IoError::new(&tmp, e));
    synced.map_err(|e| cleanup(AtomicWithError::Io(e)))?;
    rename_into_place(&tmp, target).map_err(|e| cleanup(AtomicWithError::Io(e)))
}

/// Why [`write_atomic_with`] failed: the caller's writer, or the sync and rename after it.
#[derive(Debug)]
pub enum AtomicWithError<E> {
    Write(E),
    Io(IoError),
}

impl<E> AtomicWithError<E> {
    /// Either cause as the caller's error type.
    pub fn into_error<T: From<E> + From<IoError>>(self) -> T {
        match self {
            Self::Write(e) => e.into(),
            Self::Io(e) => e.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn replaces_the_target_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.json");
        std::fs::write(&p, b"old").unwrap();
        write_atomic(&p, b"new").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"new");
        assert_eq!(names(dir.path()), vec!["a.json"]);
    }

    #[test]
    fn an_uncommitted_writer_leaves_the_old_file_and_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.json");
        std::fs::write(&p, b"old").unwrap();
        {
            let mut f = AtomicFile::create(&p).unwrap();
            f.write_all(b"half").unwrap();
            assert!(f.tmp_path().exists());
            assert!(f
                .tmp_path()
                .file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(&tmp_prefix("a.json")));
        }
        assert_eq!(std::fs::read(&p).unwrap(), b"old");
        assert_eq!(names(dir.path()), vec!["a.json"]);
    }

    #[test]
    fn two_writers_of_one_target_do_not_share_a_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.json");
        let mut a = AtomicFile::create(&p).unwrap();
        let mut b = AtomicFile::create(&p).unwrap();
        assert_ne!(a.tmp_path(), b.tmp_path());
        a.write_all(b"from a").unwrap();
        b.write_all(b"from b").unwrap();
        a.commit().unwrap();
        b.commit().unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"from b");
        assert_eq!(names(dir.path()), vec!["m.json"]);
    }

    #[test]
    fn a_failing_writer_function_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.safetensors");
        let r = write_atomic_with(&p, |tmp| {
            std::fs::write(tmp, b"partial").unwrap();
            Err::<(), _>("disk full")
        });
        assert!(matches!(r, Err(AtomicWithError::Write("disk full"))));
        assert!(names(dir.path()).is_empty());
        write_atomic_with(&p, |tmp| std::fs::write(tmp, b"whole")).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"whole");
    }

    #[test]
    fn the_temporary_name_keeps_the_extension_writers_dispatch_on() {
        let t = tmp_path(Path::new("/x/c.safetensors"));
        let name = t.file_name().unwrap().to_string_lossy().into_owned();
        assert!(name.starts_with(".c.safetensors.tmp-"), "{name}");
        assert!(name.ends_with(".safetensors"), "{name}");
        assert_eq!(t.parent(), Some(Path::new("/x")));
    }

    #[test]
    fn a_missing_folder_names_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("no/such/dir/x.json");
        let e = write_atomic(&p, b"x").unwrap_err();
        assert!(e.to_string().contains("no/such/dir"), "{e}");
    }
}
