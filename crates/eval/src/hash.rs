//! SHA-256 of files and byte strings, as lowercase hex: the provenance of weights and statistics
//! (the encoders' weight fingerprint does the hashing).

use crate::error::Result;
use flowscale_encoders::autoencoders::fingerprint::{bytes_sha256, file_sha256};
use std::path::Path;

/// Hex SHA-256 of a file's bytes, streamed.
pub fn sha256_file(path: &Path) -> Result<String> {
    Ok(file_sha256(path)?)
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
