//! NumPy `.npy` (format 1.0) for latent tensors in shards: what `webdataset`'s default decoder
//! turns into arrays. Little-endian float16, float32 and int64, C order.

use crate::error::{DataError, Result};
use tch::{Device, Kind, Tensor};

const MAGIC: &[u8] = b"\x93NUMPY";

fn descr(kind: Kind) -> Result<&'static str> {
    match kind {
        Kind::Half => Ok("<f2"),
        Kind::Float => Ok("<f4"),
        Kind::Int64 => Ok("<i8"),
        other => Err(DataError::Invalid(format!(
            "npy: {other:?} tensors are not stored in shards (float16, float32, int64)"
        ))),
    }
}

/// The `.npy` bytes of a tensor (moved to the CPU, made contiguous).
pub fn to_npy(t: &Tensor) -> Result<Vec<u8>> {
    let d = descr(t.kind())?;
    let t = t.f_to_device(Device::Cpu)?.f_contiguous()?;
    let shape: Vec<String> = t.size().iter().map(|s| s.to_string()).collect();
    let shape = match shape.len() {
        1 => format!("({},)", shape[0]),
        _ => format!("({})", shape.join(", ")),
    };
    let mut header = format!("{{'descr': '{d}', 'fortran_order': False, 'shape': {shape}, }}");
    // Pad so that magic + version + length + header is a multiple of 64, ending in '\n'.
    let unpadded = MAGIC.len() + 2 + 2 + header.len() + 1;
    header.push_str(&" ".repeat((64 - unpadded % 64) % 64));
    header.push('\n');
    let mut out = Vec::with_capacity(header.len() + 10 + t.numel() * t.kind().elt_size_in_bytes());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    let n = t.numel() * t.kind().elt_size_in_bytes();
    let mut data = vec![0u8; n];
    t.f_copy_data_u8(&mut data, t.numel())?;
    out.extend_from_slice(&data);
    Ok(out)
}

fn field<'a>(header: &'a str, key: &str) -> Option<&'a str> {
    let start = header.find(&format!("'{key}':"))? + key.len() + 3;
    Some(header[start..].trim_start())
}

/// The dimensions of a header's shape tuple (`"2, 3"`, `"5,"`, `""`); each must be a
/// non-negative integer.
fn parse_shape(text: &str) -> std::result::Result<Vec<i64>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| match s.parse::<i64>() {
            Ok(d) if d >= 0 => Ok(d),
            _ => Err(format!("bad shape ({text})")),
        })
        .collect()
}

/// Parses `.npy` bytes; `what` names the entry (shard, sample, file) in errors, which are
/// [`DataError::Corrupt`].
pub fn from_npy(bytes: &[u8], what: &str) -> Result<Tensor> {
    let bad = |reason: String| DataError::corrupt(std::path::Path::new(what), reason);
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        return Err(bad("not a .npy file (magic missing)".into()));
    }
    let (len, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        v => return Err(bad(format!("unsupported .npy version {v}"))),
    };
    let header = bytes
        .get(start..start + len)
        .and_then(|h| std::str::from_utf8(h).ok())
        .ok_or_else(|| bad("truncated header".into()))?;
    let descr = field(header, "descr")
        .and_then(|s| s.split('\'').nth(1))
        .ok_or_else(|| bad(format!("no descr in header {header:?}")))?;
    let kind = match descr {
        "<f2" => Kind::Half,
        "<f4" => Kind::Float,
        "<i8" => Kind::Int64,
        other => return Err(bad(format!("dtype {other} (expected <f2, <f4 or <i8)"))),
    };
    if field(header, "fortran_order").is_some_and(|s| s.starts_with("True")) {
        return Err(bad("Fortran-ordered arrays are not supported".into()));
    }
    let shape_text = field(header, "shape")
        .and_then(|s| s.strip_prefix('('))
        .and_then(|s| s.split(')').next())
        .ok_or_else(|| bad(format!("no shape in header {header:?}")))?;
    let shape = parse_shape(shape_text).map_err(bad)?;
    let data = &bytes[start + len..];
    // The header's shape is checked against the bytes present before anything is built from
    // it: a product that overflows or a negative dimension is an error, not a wrapped size.
    let need = shape
        .iter()
        .try_fold(kind.elt_size_in_bytes() as u64, |acc, &d| {
            acc.checked_mul(d as u64)
        });
    if need != Some(data.len() as u64) {
        let need = need.map_or("more than 2^64".to_string(), |n| n.to_string());
        return Err(bad(format!(
            "{} data bytes for shape {shape:?} {descr} (expected {need})",
            data.len()
        )));
    }
    Ok(Tensor::f_from_data_size(data, &shape, kind)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_each_dtype_and_rejects_damage() {
        for kind in [Kind::Half, Kind::Float, Kind::Int64] {
            let t = Tensor::arange(24, (Kind::Float, Device::Cpu))
                .view([2, 3, 4])
                .to_kind(kind);
            let bytes = to_npy(&t).unwrap();
            assert_eq!((bytes.len() - 24 * kind.elt_size_in_bytes()) % 64, 0);
            let back = from_npy(&bytes, "x").unwrap();
            assert_eq!(back.kind(), kind);
            assert!(back.equal(&t));
            let err = from_npy(&bytes[..bytes.len() - 1], "k.mean.npy")
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("k.mean.npy") && err.contains("data bytes"),
                "{err}"
            );
        }
        let v = Tensor::from_slice(&[1.5f32, -2.0]);
        assert!(from_npy(&to_npy(&v).unwrap(), "v").unwrap().equal(&v));
    }

    /// A float32 `.npy` with the given shape text and data bytes.
    fn npy_with(shape: &str, data: &[u8]) -> Vec<u8> {
        let header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({shape}), }}\n");
        let mut out = MAGIC.to_vec();
        out.extend_from_slice(&[1, 0]);
        out.extend_from_slice(&(header.len() as u16).to_le_bytes());
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(data);
        out
    }

    #[test]
    fn a_shape_that_does_not_match_the_bytes_present_is_refused() {
        // 2^62 x 4 float32 elements: the old `shape.iter().product()` of i64 overflowed, a panic
        // in debug builds; in release it wrapped to 0 elements, matched the empty data and
        // handed libtorch a [2^62, 4] tensor to build. Now the byte count is computed checked.
        let err = from_npy(
            &npy_with("4611686018427387904, 4", &[]),
            "s.tar: k.mean.npy",
        )
        .unwrap_err();
        assert!(matches!(err, DataError::Corrupt { .. }), "{err:?}");
        let err = err.to_string();
        assert!(
            err.starts_with("s.tar: k.mean.npy: 0 data bytes for shape")
                && err.contains("expected more than 2^64"),
            "{err}"
        );
        // A huge shape that does not overflow is refused by the byte count alone.
        let err = from_npy(&npy_with("1000000000, 1000000000", &[0; 8]), "k")
            .unwrap_err()
            .to_string();
        assert!(err.contains("(expected 4000000000000000000)"), "{err}");
        // Negative dimensions whose product is right (-2 x -2 = 4 elements, 16 bytes) passed
        // the old check and reached libtorch.
        let err = from_npy(&npy_with("-2, -2", &[0; 16]), "k")
            .unwrap_err()
            .to_string();
        assert!(err.contains("bad shape (-2, -2)"), "{err}");
    }
}
