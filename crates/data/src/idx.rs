//! Reader for the IDX format of MNIST-style datasets (optionally gzip-compressed).
//!
//! Layout: two zero bytes, a type code (0x08 = u8), the number of dimensions, that many big-endian
//! u32 sizes, then the data in row-major order. Only u8 data occurs in (Fashion-)MNIST, so only
//! u8 is accepted; everything else is an error naming the file.

use crate::error::{DataError, Result};
use flate2::read::GzDecoder;
use std::io::Read;
use std::path::Path;

/// A u8 array read from an IDX file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdxArray {
    pub dims: Vec<usize>,
    pub data: Vec<u8>,
}

const TYPE_U8: u8 = 0x08;

/// Reads an IDX file; a `.gz` suffix means gzip.
pub fn read_idx(path: &Path) -> Result<IdxArray> {
    let file = std::fs::File::open(path).map_err(|e| DataError::io(path, e))?;
    let mut bytes = Vec::new();
    let gz = path.extension().is_some_and(|e| e == "gz");
    let read = if gz {
        GzDecoder::new(file).read_to_end(&mut bytes)
    } else {
        std::io::BufReader::new(file).read_to_end(&mut bytes)
    };
    read.map_err(|e| {
        DataError::corrupt(path, format!("cannot read (truncated or not gzip?): {e}"))
    })?;
    parse_idx(&bytes).map_err(|reason| DataError::corrupt(path, reason))
}

/// Parses IDX bytes; the error is a reason without the file name.
pub fn parse_idx(bytes: &[u8]) -> std::result::Result<IdxArray, String> {
    if bytes.len() < 4 {
        return Err(format!(
            "{} bytes is too short for an IDX header",
            bytes.len()
        ));
    }
    if bytes[0] != 0 || bytes[1] != 0 {
        return Err(format!(
            "bad IDX magic {:02x}{:02x}{:02x}{:02x} (expected 0000 then type and rank)",
            bytes[0], bytes[1], bytes[2], bytes[3]
        ));
    }
    if bytes[2] != TYPE_U8 {
        return Err(format!(
            "IDX element type 0x{:02x} is not u8 (0x08)",
            bytes[2]
        ));
    }
    let rank = bytes[3] as usize;
    let header = 4 + 4 * rank;
    if rank == 0 || bytes.len() < header {
        return Err(format!("IDX header of rank {rank} is truncated"));
    }
    let dims: Vec<usize> = (0..rank)
        .map(|i| {
            let o = 4 + 4 * i;
            u32::from_be_bytes([bytes[o], bytes[o + 1], bytes[o + 2], bytes[o + 3]]) as usize
        })
        .collect();
    let count = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| format!("IDX dims {dims:?} overflow"))?;
    let body = bytes.len() - header;
    if body != count {
        return Err(format!(
            "IDX dims {dims:?} need {count} data bytes, file has {body} ({})",
            if body < count {
                "truncated"
            } else {
                "trailing bytes"
            }
        ));
    }
    Ok(IdxArray {
        dims,
        data: bytes[header..].to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(dims: &[u32], data: &[u8]) -> Vec<u8> {
        let mut v = vec![0, 0, TYPE_U8, dims.len() as u8];
        for d in dims {
            v.extend_from_slice(&d.to_be_bytes());
        }
        v.extend_from_slice(data);
        v
    }

    #[test]
    fn parses_dims_and_data() {
        let a = parse_idx(&encode(&[2, 3], &[1, 2, 3, 4, 5, 6])).unwrap();
        assert_eq!(a.dims, vec![2, 3]);
        assert_eq!(a.data, vec![1, 2, 3, 4, 5, 6]);
    }

    #[test]
    fn rejects_truncated_body_bad_magic_and_type() {
        let e = parse_idx(&encode(&[2, 3], &[1, 2, 3])).unwrap_err();
        assert!(e.contains("truncated"), "{e}");
        let mut bad = encode(&[1], &[7]);
        bad[0] = 1;
        assert!(parse_idx(&bad).unwrap_err().contains("magic"));
        let mut float = encode(&[1], &[7]);
        float[2] = 0x0D;
        assert!(parse_idx(&float).unwrap_err().contains("not u8"));
        assert!(parse_idx(&[0, 0, 8, 3, 0]).unwrap_err().contains("header"));
    }
}
