//! The tar subset WebDataset shards use: regular files in POSIX ustar headers, read back with pax
//! extended headers understood (Python's `tarfile`, which `webdataset.TarWriter` uses, writes pax
//! records for float mtimes and long or non-ASCII names).
//!
//! Written archives are deterministic: mode 0644, uid/gid 0, mtime 0, entries in the order given.

use crate::error::{DataError, Result};
use std::io::{Read, Write};
use std::path::Path;

const BLOCK: usize = 512;

fn octal(field: &mut [u8], value: u64) {
    // Width - 1 octal digits, then NUL.
    let digits = field.len() - 1;
    let s = format!("{value:0digits$o}");
    field[..digits].copy_from_slice(s.as_bytes());
    field[digits] = 0;
}

/// One ustar header for a regular file `name` of `size` bytes.
fn header(name: &str, size: u64) -> Result<[u8; BLOCK]> {
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes.len() > 100 || !name.is_ascii() {
        return Err(DataError::Invalid(format!(
            "tar entry name {name:?}: must be 1-100 ASCII bytes"
        )));
    }
    if size >= 8u64.pow(11) {
        return Err(DataError::Invalid(format!(
            "tar entry {name}: {size} bytes exceeds the ustar limit of 8 GiB"
        )));
    }
    let mut h = [0u8; BLOCK];
    h[..bytes.len()].copy_from_slice(bytes);
    octal(&mut h[100..108], 0o644);
    octal(&mut h[108..116], 0);
    octal(&mut h[116..124], 0);
    octal(&mut h[124..136], size);
    octal(&mut h[136..148], 0);
    h[156] = b'0';
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[148..156].copy_from_slice(b"        ");
    let sum: u64 = h.iter().map(|&b| u64::from(b)).sum();
    let s = format!("{sum:06o}\0 ");
    h[148..156].copy_from_slice(s.as_bytes());
    Ok(h)
}

/// Appends entries to a tar stream.
pub struct TarWriter<W: Write> {
    out: W,
    written: u64,
}

impl<W: Write> TarWriter<W> {
    pub fn new(out: W) -> Self {
        Self { out, written: 0 }
    }

    pub fn append(&mut self, name: &str, data: &[u8]) -> std::io::Result<()> {
        let h = header(name, data.len() as u64).map_err(std::io::Error::other)?;
        self.out.write_all(&h)?;
        self.out.write_all(data)?;
        let pad = (BLOCK - data.len() % BLOCK) % BLOCK;
        self.out.write_all(&[0u8; BLOCK][..pad])?;
        self.written += (BLOCK + data.len() + pad) as u64;
        Ok(())
    }

    /// Writes the two zero blocks that end an archive and returns the stream.
    pub fn finish(mut self) -> std::io::Result<W> {
        self.out.write_all(&[0u8; 2 * BLOCK])?;
        self.out.flush()?;
        Ok(self.out)
    }

    pub fn bytes_written(&self) -> u64 {
        self.written
    }
}

fn parse_octal(field: &[u8]) -> Option<u64> {
    let s: String = field
        .iter()
        .take_while(|&&b| b != 0)
        .map(|&b| b as char)
        .collect();
    let s = s.trim();
    if s.is_empty() {
        return Some(0);
    }
    u64::from_str_radix(s, 8).ok()
}

fn cstr(field: &[u8]) -> String {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    String::from_utf8_lossy(&field[..end]).into_owned()
}

/// The `path` record of a pax extended header, if any (`"<len> path=<value>\n"` records).
fn pax_path(data: &[u8]) -> Option<String> {
    let mut rest = data;
    while !rest.is_empty() {
        let space = rest.iter().position(|&b| b == b' ')?;
        let len: usize = std::str::from_utf8(&rest[..space]).ok()?.parse().ok()?;
        if len == 0 || len > rest.len() {
            return None;
        }
        let record = &rest[space + 1..len];
        let record = record.strip_suffix(b"\n").unwrap_or(record);
        if let Some(v) = record.strip_prefix(b"path=") {
            return Some(String::from_utf8_lossy(v).into_owned());
        }
        rest = &rest[len..];
    }
    None
}

/// Reads every regular file of a tar archive as `(name, bytes)`, in archive order. `path` only
/// names the archive in errors: a bad checksum or a truncated entry is an error naming the entry.
pub fn read_entries(input: impl Read, path: &Path) -> Result<Vec<(String, Vec<u8>)>> {
    TarEntries::new(input, path).collect()
}

/// The regular files of a tar stream, one at a time, so a multi-gigabyte shard never sits in
/// memory. After the first error (truncation, bad checksum, I/O) the iterator ends: everything
/// yielded before it is intact, which is how a damaged shard keeps its complete samples.
pub struct TarEntries<R: Read> {
    input: R,
    path: std::path::PathBuf,
    /// The last regular file read, for errors ("after entry ...").
    last: String,
    done: bool,
}

impl<R: Read> TarEntries<R> {
    /// `path` only names the archive in errors.
    pub fn new(input: R, path: &Path) -> Self {
        Self {
            input,
            path: path.to_path_buf(),
            last: String::from("(start of archive)"),
            done: false,
        }
    }

    /// The archive these entries come from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The next regular file, `None` at the end blocks or a clean EOF.
    fn next_file(&mut self) -> Result<Option<(String, Vec<u8>)>> {
        let path = self.path.as_path();
        let last = &self.last;
        let mut pending_name: Option<String> = None;
        let mut block = [0u8; BLOCK];
        loop {
            match read_full(&mut self.input, &mut block) {
                Ok(0) => return Ok(None), // archives without the end blocks still end cleanly at EOF
                Ok(n) if n < BLOCK => {
                    return Err(DataError::corrupt(
                        path,
                        format!("truncated tar header after entry {last}"),
                    ))
                }
                Ok(_) => {}
                Err(e) => return Err(DataError::io(path, e)),
            }
            if block.iter().all(|&b| b == 0) {
                return Ok(None);
            }
            let stored = parse_octal(&block[148..156]);
            let mut check = block;
            check[148..156].copy_from_slice(b"        ");
            let sum: u64 = check.iter().map(|&b| u64::from(b)).sum();
            if stored != Some(sum) {
                return Err(DataError::corrupt(
                    path,
                    format!("bad tar header checksum after entry {last}"),
                ));
            }
            let size = parse_octal(&block[124..136]).ok_or_else(|| {
                DataError::corrupt(path, format!("bad size field after entry {last}"))
            })? as usize;
            let mut name = cstr(&block[..100]);
            let prefix = cstr(&block[345..500]);
            if &block[257..262] == b"ustar" && !prefix.is_empty() {
                name = format!("{prefix}/{name}");
            }
            let padded = size.div_ceil(BLOCK) * BLOCK;
            let mut data = vec![0u8; padded];
            let got = read_full(&mut self.input, &mut data).map_err(|e| DataError::io(path, e))?;
            if got < padded {
                return Err(DataError::corrupt(
                    path,
                    format!("truncated tar entry {name}: {got} of {padded} bytes"),
                ));
            }
            data.truncate(size);
            match block[156] {
                b'x' => pending_name = pax_path(&data),
                b'g' => {}
                b'0' | 0 => return Ok(Some((pending_name.take().unwrap_or(name), data))),
                _ => pending_name = None, // directories, links: not part of a shard's samples
            }
        }
    }
}

impl<R: Read> Iterator for TarEntries<R> {
    type Item = Result<(String, Vec<u8>)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.next_file() {
            Ok(Some((name, data))) => {
                self.last.clone_from(&name);
                Some(Ok((name, data)))
            }
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

fn read_full(input: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match input.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_truncation_is_named() {
        let mut w = TarWriter::new(Vec::new());
        w.append("a.txt", b"hello").unwrap();
        w.append("a.bin", &[7u8; 1000]).unwrap();
        let bytes = w.finish().unwrap();
        assert_eq!(bytes.len(), 512 + 512 + 512 + 1024 + 1024);
        let p = Path::new("x.tar");
        let e = read_entries(&bytes[..], p).unwrap();
        assert_eq!(e[0], ("a.txt".to_string(), b"hello".to_vec()));
        assert_eq!(e[1].1, vec![7u8; 1000]);
        let err = read_entries(&bytes[..2000], p).unwrap_err().to_string();
        assert!(err.contains("truncated tar entry a.bin"), "{err}");
        let err = read_entries(&bytes[..1500], p).unwrap_err().to_string();
        assert!(
            err.contains("truncated tar header after entry a.txt"),
            "{err}"
        );
        let mut bad = bytes.clone();
        bad[1024 + 10] ^= 1; // inside the header of a.bin
        let err = read_entries(&bad[..], p).unwrap_err().to_string();
        assert!(err.contains("checksum after entry a.txt"), "{err}");
    }

    #[test]
    fn streaming_keeps_the_entries_before_the_damage_then_stops() {
        let mut w = TarWriter::new(Vec::new());
        w.append("a.txt", b"hello").unwrap();
        w.append("b.txt", b"world").unwrap();
        w.append("c.bin", &[1u8; 700]).unwrap();
        let bytes = w.finish().unwrap();
        let items: Vec<_> = TarEntries::new(&bytes[..3 * 1024 + 100], Path::new("s.tar")).collect();
        assert_eq!(items.len(), 3, "two entries, one error, then the end");
        assert_eq!(items[0].as_ref().unwrap().0, "a.txt");
        assert_eq!(items[1].as_ref().unwrap().1, b"world");
        let err = items[2].as_ref().unwrap_err().to_string();
        assert!(err.starts_with("s.tar: truncated tar entry c.bin"), "{err}");
        // Damage in the middle, with intact entries after it: the stream still stops at the
        // error instead of reading on through b's data blocks as if they were headers.
        let mut bad = bytes.clone();
        bad[1024 + 10] ^= 1; // inside the header of b.txt
        let items: Vec<_> = TarEntries::new(&bad[..], Path::new("s.tar")).collect();
        assert_eq!(items.len(), 2, "the stream went on after the damage");
        assert_eq!(items[0].as_ref().unwrap().0, "a.txt");
        let err = items[1].as_ref().unwrap_err().to_string();
        assert!(err.contains("checksum after entry a.txt"), "{err}");
    }

    #[test]
    fn pax_path_records_name_the_next_entry() {
        let rec = b"30 mtime=1700000000.123456789\n20 path=long/name.x\n";
        assert_eq!(pax_path(rec).as_deref(), Some("long/name.x"));
    }
}
