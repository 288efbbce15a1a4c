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

/// The most data bytes an IDX file may declare. The header's dimensions say how much follows,
/// and a gzip stream's decompressed length is unknown until it is read, so a damaged header or
/// a decompression bomb would otherwise be read into memory whole. MNIST-style sets are far
/// smaller: Fashion-MNIST's training images are 47 MB, EMNIST ByClass's 0.55 GB.
pub const MAX_IDX_BYTES: usize = 4 << 30;

/// Without a known length, data is read in steps of at most this many bytes, so a header that
/// overstates its size costs only the bytes the stream really holds.
const CHUNK: usize = 1 << 20;

/// Reads an IDX file; a `.gz` suffix means gzip. The header is read first and its dimensions
/// are checked against [`MAX_IDX_BYTES`] and, for an uncompressed file, against the file's
/// length before the data is read.
pub fn read_idx(path: &Path) -> Result<IdxArray> {
    let file = std::fs::File::open(path).map_err(|e| DataError::io(path, e))?;
    let gz = path.extension().is_some_and(|e| e == "gz");
    let file_len = if gz {
        None
    } else {
        Some(file.metadata().map_err(|e| DataError::io(path, e))?.len())
    };
    let mut input: Box<dyn Read> = if gz {
        Box::new(GzDecoder::new(file))
    } else {
        Box::new(std::io::BufReader::new(file))
    };
    let cannot_read = |e: std::io::Error| {
        DataError::corrupt(path, format!("cannot read (truncated or not gzip?): {e}"))
    };
    let mut head = Vec::new();
    if read_up_to(&mut input, &mut head, 4).map_err(cannot_read)? == 4 {
        let rank = head[3] as usize;
        read_up_to(&mut input, &mut head, 4 * rank).map_err(cannot_read)?;
    }
    let (dims, count) = parse_header(&head).map_err(|reason| DataError::corrupt(path, reason))?;
    let body = file_len.map(|len| len - head.len() as u64);
    check_body(&dims, count, body).map_err(|reason| DataError::corrupt(path, reason))?;
    // One byte more than declared, so trailing bytes in a gzip stream are seen.
    let mut data = Vec::with_capacity(count.min(CHUNK));
    input
        .take(count as u64 + 1)
        .read_to_end(&mut data)
        .map_err(cannot_read)?;
    check_body(&dims, count, Some(data.len() as u64))
        .map_err(|reason| DataError::corrupt(path, reason))?;
    Ok(IdxArray { dims, data })
}

/// Appends up to `n` bytes of `input` to `buf` (fewer at EOF); returns how many came.
fn read_up_to(input: &mut impl Read, buf: &mut Vec<u8>, n: usize) -> std::io::Result<usize> {
    input.take(n as u64).read_to_end(buf)
}

/// The dimensions and data byte count of an IDX header, from bytes that start with it.
fn parse_header(bytes: &[u8]) -> std::result::Result<(Vec<usize>, usize), String> {
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
    if rank == 0 || bytes.len() < header_len(rank) {
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
    if count > MAX_IDX_BYTES {
        return Err(format!(
            "IDX dims {dims:?} declare {count} data bytes, more than the limit of {MAX_IDX_BYTES}"
        ));
    }
    Ok((dims, count))
}

fn header_len(rank: usize) -> usize {
    4 + 4 * rank
}

/// Checks that `body` data bytes (when known) are what the dimensions need.
fn check_body(dims: &[usize], count: usize, body: Option<u64>) -> std::result::Result<(), String> {
    match body {
        Some(body) if body != count as u64 => Err(format!(
            "IDX dims {dims:?} need {count} data bytes, file has {body} ({})",
            if body < count as u64 {
                "truncated"
            } else {
                "trailing bytes"
            }
        )),
        _ => Ok(()),
    }
}

/// Parses IDX bytes; the error is a reason without the file name.
pub fn parse_idx(bytes: &[u8]) -> std::result::Result<IdxArray, String> {
    let (dims, count) = parse_header(bytes)?;
    let header = header_len(dims.len());
    check_body(&dims, count, Some((bytes.len() - header) as u64))?;
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

    #[test]
    fn huge_dims_are_refused_from_the_header_before_the_data_is_read() {
        let tmp = tempfile::tempdir().unwrap();
        // 65536 x 65536 x 2 = 8 GiB declared, 4 bytes present. Uncompressed, the dims were
        // already checked against the bytes read (still true); gzip-compressed, the old reader
        // inflated the whole stream before looking at the header, so a bomb with this header
        // would have been read into memory whole. Now the header is judged first.
        let bytes = encode(&[65536, 65536, 2], &[1, 2, 3, 4]);
        let gz = tmp.path().join("bomb-idx3-ubyte.gz");
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut enc, &bytes).unwrap();
        std::fs::write(&gz, enc.finish().unwrap()).unwrap();
        let err = read_idx(&gz).unwrap_err();
        assert!(matches!(err, DataError::Corrupt { .. }), "{err:?}");
        let err = err.to_string();
        assert!(
            err.contains("bomb-idx3-ubyte.gz: IDX dims [65536, 65536, 2] declare 8589934592")
                && err.contains("limit"),
            "{err}"
        );
        // Uncompressed and under the limit: compared with the file's length before reading.
        let plain = tmp.path().join("big-idx3-ubyte");
        std::fs::write(&plain, encode(&[1000, 1000, 1000], &[1, 2, 3])).unwrap();
        let err = read_idx(&plain).unwrap_err().to_string();
        assert!(
            err.contains(
                "big-idx3-ubyte: IDX dims [1000, 1000, 1000] need 1000000000 data bytes, \
                 file has 3 (truncated)"
            ),
            "{err}"
        );
        // A gzip stream with more data than declared is named too.
        let gz2 = tmp.path().join("long-idx1-ubyte.gz");
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut enc, &encode(&[2], &[1, 2, 3])).unwrap();
        std::fs::write(&gz2, enc.finish().unwrap()).unwrap();
        let err = read_idx(&gz2).unwrap_err().to_string();
        assert!(err.contains("trailing bytes"), "{err}");
        // And a good gzip file reads back.
        let gz3 = tmp.path().join("ok-idx1-ubyte.gz");
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut enc, &encode(&[3], &[1, 2, 3])).unwrap();
        std::fs::write(&gz3, enc.finish().unwrap()).unwrap();
        assert_eq!(read_idx(&gz3).unwrap().data, vec![1, 2, 3]);
    }
}
