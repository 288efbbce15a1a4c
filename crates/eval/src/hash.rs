//! SHA-256 of files and byte strings, as lowercase hex: the provenance of weights and statistics
//! (the encoders' weight fingerprint does the hashing).

use crate::error::{EvalError, Result};
use flowscale_encoders::autoencoders::fingerprint::{bytes_sha256, file_sha256};
use std::path::Path;

/// Hex SHA-256 of a file's bytes, streamed.
pub fn sha256_file(path: &Path) -> Result<String> {
    Ok(file_sha256(path)?)
}

/// Reads the JSON sidecar `<path>.json` that records the SHA-256 of the file `path`, and refuses
/// a file whose hash differs: a cached classifier or statistics file is only trusted with the
/// provenance it was written with. `recorded` picks the hash out of the sidecar and `field`
/// names it in the error.
pub fn read_verified_sidecar<T: serde::de::DeserializeOwned>(
    path: &Path,
    field: &str,
    recorded: impl Fn(&T) -> &str,
) -> Result<T> {
    let js = path.with_extension("json");
    let text = std::fs::read_to_string(&js).map_err(|e| EvalError::io(&js, e))?;
    let sidecar: T = serde_json::from_str(&text).map_err(|e| EvalError::corrupt(&js, e))?;
    let actual = sha256_file(path)?;
    if actual != recorded(&sidecar) {
        return Err(EvalError::Invalid(format!(
            "{}: hash {actual} differs from {field} {} in {}",
            path.display(),
            recorded(&sidecar),
            js.display()
        )));
    }
    Ok(sidecar)
}

/// Hex SHA-256 of bytes.
pub fn sha256_bytes(bytes: &[u8]) -> String {
    bytes_sha256(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_digest() {
        assert_eq!(
            sha256_bytes(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
