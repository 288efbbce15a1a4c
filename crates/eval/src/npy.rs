//! numpy arrays from `.npy` files and `.npz` archives, with every size bounded before anything is
//! allocated (tch's own readers trust the header's length and decompress without limit).
//!
//! Format facts (numpy's `lib.format`): magic `\x93NUMPY`, a version byte pair, the header length
//! (u16 little-endian in version 1, u32 in versions 2 and 3), then a Python dict literal with
//! `descr`, `fortran_order` and `shape`, then the raw data. An `.npz` is a zip archive of
//! `<name>.npy` members, stored or deflated (`np.savez_compressed`, pytorch-fid's
//! `--save-stats`). Only little-endian float32/float64 in C order is accepted: the arrays FID
//! reads are features and statistics.

use crate::error::{EvalError, Result};
use std::io::Read;
use std::path::Path;
use tch::{Kind, Tensor};

/// The largest array (or file) read, 4 GiB: above 500k Inception features in float32.
pub const MAX_ARRAY_BYTES: u64 = 4 << 30;
/// Headers are a short dict literal; numpy pads them to a multiple of 64 bytes.
const MAX_HEADER_BYTES: usize = 1 << 16;
const MAGIC: &[u8] = b"\x93NUMPY";

/// The array of the `.npy` file `path`.
pub fn read_npy(path: &Path) -> Result<Tensor> {
    let len = std::fs::metadata(path)
        .map_err(|e| EvalError::io(path, e))?
        .len();
    if len > MAX_ARRAY_BYTES {
        return Err(EvalError::corrupt(
            path,
            format!("{len} bytes, more than the {MAX_ARRAY_BYTES} read"),
        ));
    }
    let bytes = std::fs::read(path).map_err(|e| EvalError::io(path, e))?;
    parse(&bytes).map_err(|why| EvalError::corrupt(path, why))
}

/// The arrays of the `.npz` archive `path`, by name (without `.npy`), in archive order.
pub fn read_npz(path: &Path) -> Result<Vec<(String, Tensor)>> {
    let file = std::fs::File::open(path).map_err(|e| EvalError::io(path, e))?;
    let mut zip = zip::ZipArchive::new(std::io::BufReader::new(file))
        .map_err(|e| EvalError::corrupt(path, format!("not an .npz (zip) archive: {e}")))?;
    let mut arrays = Vec::new();
    for i in 0..zip.len() {
        let member = zip
            .by_index(i)
            .map_err(|e| EvalError::corrupt(path, format!("member {i}: {e}")))?;
        let name = member.name().to_string();
        let size = member.size();
        if size > MAX_ARRAY_BYTES {
            return Err(EvalError::corrupt(
                path,
                format!("{name}: {size} bytes, more than the {MAX_ARRAY_BYTES} read"),
            ));
        }
        // The declared size bounds both the allocation and the decompression.
        let mut bytes = Vec::with_capacity(size as usize);
        member
            .take(size + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| EvalError::corrupt(path, format!("{name}: {e}")))?;
        if bytes.len() as u64 != size {
            return Err(EvalError::corrupt(
                path,
                format!("{name}: {} bytes, the archive declares {size}", bytes.len()),
            ));
        }
        let array =
            parse(&bytes).map_err(|why| EvalError::corrupt(path, format!("{name}: {why}")))?;
        let key = name.strip_suffix(".npy").unwrap_or(&name).to_string();
        arrays.push((key, array));
    }
    Ok(arrays)
}

/// Parses one `.npy` image.
fn parse(bytes: &[u8]) -> std::result::Result<Tensor, String> {
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        return Err("not a numpy array (no \\x93NUMPY magic)".into());
    }
    let (len_bytes, start) = match bytes[6] {
        1 => (2, 10),
        2 | 3 => (4, 12),
        v => return Err(format!("unsupported .npy version {v}")),
    };
    if bytes.len() < start {
        return Err("truncated header".into());
    }
    let header_len = bytes[8..8 + len_bytes]
        .iter()
        .rev()
        .fold(0usize, |acc, &b| (acc << 8) | b as usize);
    if header_len > MAX_HEADER_BYTES || start + header_len > bytes.len() {
        return Err(format!("header length {header_len} exceeds the file"));
    }
    let header = std::str::from_utf8(&bytes[start..start + header_len])
        .map_err(|_| "header is not text".to_string())?;
    let (kind, shape) = parse_header(header)?;
    let mut numel: u64 = 1;
    for &s in &shape {
        numel = numel
            .checked_mul(s as u64)
            .ok_or_else(|| format!("shape {shape:?} overflows"))?;
    }
    let data = &bytes[start + header_len..];
    let want = numel.checked_mul(kind.elt_size_in_bytes() as u64);
    if want != Some(data.len() as u64) {
        return Err(format!(
            "shape {shape:?} of {kind:?} needs {} data bytes, the file has {}",
            want.map_or("too many".into(), |w| w.to_string()),
            data.len()
        ));
    }
    Tensor::f_from_data_size(data, &shape, kind).map_err(|e| e.to_string())
}

/// `descr`, `fortran_order` and `shape` of a header dict literal.
fn parse_header(header: &str) -> std::result::Result<(Kind, Vec<i64>), String> {
    let value_after = |key: &str| -> std::result::Result<&str, String> {
        let at = header
            .find(&format!("'{key}'"))
            .ok_or_else(|| format!("header has no '{key}': {header}"))?;
        let rest = &header[at + key.len() + 2..];
        let colon = rest
            .find(':')
            .ok_or_else(|| format!("header '{key}' has no value: {header}"))?;
        Ok(rest[colon + 1..].trim_start())
    };
    let descr = value_after("descr")?;
    let descr = descr
        .strip_prefix('\'')
        .and_then(|d| d.split('\'').next())
        .ok_or_else(|| format!("header descr is not a string: {header}"))?;
    let kind = match descr {
        "<f4" => Kind::Float,
        "<f8" => Kind::Double,
        other => {
            return Err(format!(
                "dtype {other}, expected little-endian float32 (<f4) or float64 (<f8)"
            ))
        }
    };
    let fortran = value_after("fortran_order")?;
    if fortran.starts_with("True") {
        return Err("Fortran-order array; save it in C order (np.ascontiguousarray)".into());
    } else if !fortran.starts_with("False") {
        return Err(format!("header fortran_order is not a bool: {header}"));
    }
    let shape = value_after("shape")?;
    let inner = shape
        .strip_prefix('(')
        .and_then(|s| s.split(')').next())
        .ok_or_else(|| format!("header shape is not a tuple: {header}"))?;
    let dims = inner
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<i64>()
                .ok()
                .filter(|&v| v >= 0)
                .ok_or_else(|| format!("header shape entry {s:?} is not a size"))
        })
        .collect::<std::result::Result<Vec<i64>, String>>()?;
    Ok((kind, dims))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn npy(header: &str, data: &[u8]) -> Vec<u8> {
        let mut b = MAGIC.to_vec();
        b.extend_from_slice(&[1, 0]);
        b.extend_from_slice(&(header.len() as u16).to_le_bytes());
        b.extend_from_slice(header.as_bytes());
        b.extend_from_slice(data);
        b
    }

    #[test]
    fn reads_c_order_float64() {
        let data: Vec<u8> = [1.0f64, 2.0, 3.0, 4.0, 5.0, 6.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let h = "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }\n";
        let t = parse(&npy(h, &data)).unwrap();
        assert_eq!(t.size(), [2, 3]);
        assert_eq!(t.kind(), Kind::Double);
        assert_eq!(t.double_value(&[1, 0]), 4.0);
    }

    #[test]
    fn refuses_what_it_cannot_read_exactly() {
        let data = vec![0u8; 24];
        let cases = [
            (
                "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }",
                "needs 48",
            ),
            (
                "{'descr': '>f8', 'fortran_order': False, 'shape': (3,), }",
                "dtype >f8",
            ),
            (
                "{'descr': '<i8', 'fortran_order': False, 'shape': (3,), }",
                "dtype <i8",
            ),
            (
                "{'descr': '<f8', 'fortran_order': True, 'shape': (3,), }",
                "Fortran",
            ),
            (
                "{'descr': '<f8', 'fortran_order': False, 'shape': (-3,), }",
                "not a size",
            ),
            (
                "{'descr': '<f8', 'fortran_order': False, 'shape': (4294967296, 4294967296), }",
                "overflows",
            ),
            ("{'descr': '<f8', 'fortran_order': False}", "no 'shape'"),
        ];
        for (h, want) in cases {
            let e = parse(&npy(h, &data)).unwrap_err();
            assert!(e.contains(want), "{h}: {e}");
        }
        let mut long = npy("{}", &[]);
        long[8] = 0xff;
        long[9] = 0xff;
        assert!(parse(&long).unwrap_err().contains("header length"));
        assert!(parse(b"PK\x03\x04 not npy").unwrap_err().contains("magic"));
    }
}
