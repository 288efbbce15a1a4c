//! The identity of an autoencoder's weights for latent caches: one SHA-256 over its files.

use crate::error::{EncoderError, Result};
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::{Path, PathBuf};

/// SHA-256 of the `sha256sum`-style listing of `files`: one line `<hex digest>  <file name>` per
/// file, sorted by file name, so `sha256sum FILES | sha256sum` in the folder reproduces it. Only
/// file names enter (not directories): the same weights copied elsewhere keep their identity.
/// No files gives the digest of the empty listing.
pub fn files_sha256(files: &[PathBuf]) -> Result<String> {
    let mut named: Vec<(String, &PathBuf)> = files
        .iter()
        .map(|p| {
            let name = p
                .file_name()
                .and_then(|n| n.to_str())
                .ok_or_else(|| EncoderError::format(p, "weight file has no UTF-8 file name"))?;
            Ok((name.to_owned(), p))
        })
        .collect::<Result<_>>()?;
    named.sort();
    let mut listing = String::new();
    for (name, path) in named {
        listing.push_str(&file_sha256(path)?);
        listing.push_str("  ");
        listing.push_str(&name);
        listing.push('\n');
    }
    Ok(bytes_sha256(listing.as_bytes()))
}

/// Hex SHA-256 of bytes.
pub fn bytes_sha256(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Hex SHA-256 of one file, streamed.
pub fn file_sha256(path: &Path) -> Result<String> {
    let mut file = std::fs::File::open(path).map_err(|e| EncoderError::io(path, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(|e| EncoderError::io(path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex(&hasher.finalize()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
