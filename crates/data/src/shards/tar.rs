//! The tar subset WebDataset shards use: regular files in POSIX ustar headers, read back with pax
//! extended headers understood (Python's `tarfile`, which `webdataset.TarWriter` uses, writes pax
//! records for float mtimes and long or non-ASCII names).
//!
//! Written archives are deterministic: mode 0644, uid/gid 0, mtime 0, entries in the order given.

use crate::error::{DataError, Result};
use crate::sources::keys::escaped_name;
use std::fs::File;
use std::io::{BufReader, Read, Write};
use std::path::Path;

const BLOCK: usize = 512;

/// The largest member the reader accepts, checked before anything is allocated for it. A size
/// field is 12 octal digits, so a damaged or hostile header can declare up to 64 GiB and abort
/// the process on allocation. The largest legitimate members are far smaller: a latent shard
/// holds per-sample `.npy` arrays (a T5 context of 77 x 4096 float16 is 0.6 MiB) and an image
/// shard holds encoded images of at most 16384 x 16384 pixels
/// ([`crate::images::decode::MAX_SIDE`]), 0.75 GiB even stored uncompressed as RGB.
pub const MAX_ENTRY_BYTES: u64 = 1 << 30;

/// Without a known archive length, entry data is read in steps of at most this many bytes, so
/// a header that overstates its size costs only the bytes the stream really holds.
const STREAM_CHUNK: usize = 1 << 20;

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
    write_checksum(&mut h);
    Ok(h)
}

/// A header block's checksum: the byte sum with the checksum field itself read as spaces.
fn header_checksum(h: &[u8]) -> u64 {
    let sum: u64 = h.iter().map(|&b| u64::from(b)).sum();
    let field: u64 = h[148..156].iter().map(|&b| u64::from(b)).sum();
    sum - field + 8 * u64::from(b' ')
}

/// Fills a header block's checksum field.
fn write_checksum(h: &mut [u8]) {
    let sum = header_checksum(h);
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
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

/// A NUL-terminated name field as text; bytes that are not UTF-8 are written `\xNN`, so two
/// member names that differ only there stay two names (and two sample keys).
fn cstr(field: &[u8]) -> String {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    escaped_name(&field[..end])
}

/// The `path` record of a pax extended header, if any (`"<len> path=<value>\n"` records).
fn pax_path(data: &[u8]) -> Option<String> {
    let mut rest = data;
    while !rest.is_empty() {
        let space = rest.iter().position(|&b| b == b' ')?;
        let len: usize = std::str::from_utf8(&rest[..space]).ok()?.parse().ok()?;
        // The length counts the whole record, its own digits and the space included: one that
        // ends before the space is damage (it used to panic slicing `rest[space + 1..len]`).
        if len <= space || len > rest.len() {
            return None;
        }
        let record = &rest[space + 1..len];
        let record = record.strip_suffix(b"\n").unwrap_or(record);
        if let Some(v) = record.strip_prefix(b"path=") {
            return Some(escaped_name(v));
        }
        rest = &rest[len..];
    }
    None
}

/// Reads every regular file of a tar archive as `(name, bytes)`, in archive order. `path` only
/// names the archive in errors: a bad checksum, a truncated entry or an entry larger than
/// [`MAX_ENTRY_BYTES`] is an error naming the entry. The stream's length is unknown here; a
/// file is better read with [`TarEntries::open`], which also bounds entries by the file size.
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
    /// Bytes left in the archive after what was read, when its length is known: no entry may
    /// declare more than this.
    remaining: Option<u64>,
}

impl TarEntries<BufReader<File>> {
    /// The entries of the tar file at `path`, each bounded by what remains of the file.
    pub fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).map_err(|e| DataError::io(path, e))?;
        let len = file.metadata().map_err(|e| DataError::io(path, e))?.len();
        Ok(Self::new(BufReader::new(file), path).with_len(len))
    }
}

impl<R: Read> TarEntries<R> {
    /// `path` only names the archive in errors.
    pub fn new(input: R, path: &Path) -> Self {
        Self {
            input,
            path: path.to_path_buf(),
            last: String::from("(start of archive)"),
            done: false,
            remaining: None,
        }
    }

    /// Declares that `input` holds `len` bytes, so an entry declaring more than what remains is
    /// refused before its data is allocated or read.
    pub fn with_len(mut self, len: u64) -> Self {
        self.remaining = Some(len);
        self
    }

    /// Counts `n` bytes read against the known length.
    fn consumed(&mut self, n: usize) {
        if let Some(r) = self.remaining.as_mut() {
            *r = r.saturating_sub(n as u64);
        }
    }

    /// Refuses an entry whose declared `size` cannot be genuine, before anything is allocated:
    /// more than what remains of the file (a cut file or a damaged header; the message says
    /// "truncated" as a cut in the data would), or more than [`MAX_ENTRY_BYTES`].
    fn check_size(&self, name: &str, size: u64) -> Result<()> {
        if let Some(left) = self.remaining.filter(|&left| size > left) {
            return Err(DataError::corrupt(
                &self.path,
                format!(
                    "truncated tar entry {name}: declares {size} bytes, only {left} remain in \
                     the file"
                ),
            ));
        }
        if size > MAX_ENTRY_BYTES {
            return Err(DataError::corrupt(
                &self.path,
                format!(
                    "tar entry {name} declares {size} bytes, which exceeds the limit of \
                     {MAX_ENTRY_BYTES} bytes per entry"
                ),
            ));
        }
        Ok(())
    }

    /// Reads up to `padded` bytes of entry data (fewer at EOF). `padded` was checked against
    /// the limit, and against the remaining length when it is known; without a known length
    /// the buffer grows only as data arrives.
    fn read_data(&mut self, padded: usize) -> Result<Vec<u8>> {
        let capacity = match self.remaining {
            Some(_) => padded,
            None => padded.min(STREAM_CHUNK),
        };
        let mut data = Vec::with_capacity(capacity);
        (&mut self.input)
            .take(padded as u64)
            .read_to_end(&mut data)
            .map_err(|e| DataError::io(&self.path, e))?;
        self.consumed(data.len());
        Ok(data)
    }

    /// The archive these entries come from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The next regular file, `None` at the end blocks or a clean EOF.
    fn next_file(&mut self) -> Result<Option<(String, Vec<u8>)>> {
        let mut pending_name: Option<String> = None;
        let mut block = [0u8; BLOCK];
        loop {
            let got = read_full(&mut self.input, &mut block);
            let path = self.path.as_path();
            let last = &self.last;
            match got {
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
            if parse_octal(&block[148..156]) != Some(header_checksum(&block)) {
                return Err(DataError::corrupt(
                    path,
                    format!("bad tar header checksum after entry {last}"),
                ));
            }
            let size = parse_octal(&block[124..136]).ok_or_else(|| {
                DataError::corrupt(path, format!("bad size field after entry {last}"))
            })?;
            let mut name = cstr(&block[..100]);
            let prefix = cstr(&block[345..500]);
            // POSIX ustar only: GNU's magic (`ustar  `) keeps other fields (atime, ctime) there.
            if &block[257..263] == b"ustar\0" && !prefix.is_empty() {
                name = format!("{prefix}/{name}");
            }
            self.consumed(BLOCK);
            // Checked before the cast and the allocation: the size is whatever the file says.
            self.check_size(&name, size)?;
            let size = size as usize;
            let padded = size.div_ceil(BLOCK) * BLOCK;
            let mut data = self.read_data(padded)?;
            if data.len() < padded {
                return Err(DataError::corrupt(
                    &self.path,
                    format!(
                        "truncated tar entry {name}: {} of {padded} bytes",
                        data.len()
                    ),
                ));
            }
            data.truncate(size);
            match block[156] {
                b'x' => pending_name = pax_path(&data),
                // GNU tar's long name (its default format for names over 100 bytes): the data
                // is the next entry's whole name, which its own header holds cut.
                b'L' => pending_name = Some(cstr(&data)),
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

    /// Member names are bytes; two that differ only in bytes that are not UTF-8 used to read as
    /// one lossy name, so a webdataset reader grouped two images into one sample.
    #[test]
    fn names_that_are_not_utf8_stay_distinct() {
        let mut w = TarWriter::new(Vec::new());
        w.append("aX.jpg", b"1").unwrap();
        w.append("aY.jpg", b"2").unwrap();
        let mut bytes = w.finish().unwrap();
        for (at, byte) in [(0, 0xff), (2 * BLOCK, 0xfe)] {
            edit_header(&mut bytes, at, |h| h[1] = byte);
        }
        let e = read_entries(&bytes[..], Path::new("n.tar")).unwrap();
        let names: Vec<&str> = e.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["a\\xFF.jpg", "a\\xFE.jpg"]);
        let pax = b"13 path=p\xff.x\n";
        assert_eq!(pax_path(pax).as_deref(), Some("p\\xFF.x"));
    }

    /// GNU tar writes a name over 100 bytes as an `L` entry holding the whole name before the
    /// entry, whose header keeps the first 100 bytes: read under the cut name, a webdataset
    /// member lost its extension.
    #[test]
    fn gnu_long_names_name_the_next_entry() {
        let long = format!("{}/sample.seg.png", "d".repeat(120));
        let mut w = TarWriter::new(Vec::new());
        w.append("././@LongLink", format!("{long}\0").as_bytes())
            .unwrap();
        w.append(&long[..100], b"png").unwrap();
        w.append("short.txt", b"t").unwrap();
        let mut bytes = w.finish().unwrap();
        edit_header(&mut bytes, 0, |h| h[156] = b'L');
        let e = read_entries(&bytes[..], Path::new("gnu.tar")).unwrap();
        let names: Vec<&str> = e.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, [long.as_str(), "short.txt"]);
        assert_eq!(e[0].1, b"png");
    }

    #[test]
    fn pax_path_records_name_the_next_entry() {
        let rec = b"30 mtime=1700000000.123456789\n20 path=long/name.x\n";
        assert_eq!(pax_path(rec).as_deref(), Some("long/name.x"));
    }

    /// Found by `scripts/fuzz tar`: a pax record whose length field is shorter than the length
    /// digits and the space themselves panicked (a slice from `space + 1` to `len`), so one
    /// damaged pax header in a shard took down the loader's decode thread.
    #[test]
    fn a_pax_record_shorter_than_its_own_length_field_is_ignored_not_a_panic() {
        for rec in [&b"2 path=x\n"[..], b"1 x", b"0 ", b"3 "] {
            assert_eq!(pax_path(rec), None, "{:?}", String::from_utf8_lossy(rec));
        }
        // In an archive: the damaged pax header names nothing, the entry keeps its own name.
        let mut w = TarWriter::new(Vec::new());
        w.append("PaxHeader", b"2 path=x\n").unwrap();
        w.append("a.txt", b"hello").unwrap();
        let mut bytes = w.finish().unwrap();
        edit_header(&mut bytes, 0, |h| h[156] = b'x');
        let e = read_entries(&bytes[..], Path::new("pax.tar")).unwrap();
        assert_eq!(e, [("a.txt".to_string(), b"hello".to_vec())]);
    }

    /// Applies `edit` to the header block at `at` and rewrites its checksum, so the header
    /// reads as a valid one with the edited fields.
    fn edit_header(tar: &mut [u8], at: usize, edit: impl FnOnce(&mut [u8])) {
        let h = &mut tar[at..at + BLOCK];
        edit(h);
        write_checksum(h);
    }

    /// Rewrites the size field of the header at `at` (12 bytes, octal) and its checksum, as a
    /// damaged or hostile archive would have them.
    pub(crate) fn set_size_field(tar: &mut [u8], at: usize, field: &[u8; 12]) {
        edit_header(tar, at, |h| h[124..136].copy_from_slice(field));
    }

    #[test]
    fn a_declared_size_beyond_the_file_or_the_limit_is_refused_before_allocating() {
        let mut w = TarWriter::new(Vec::new());
        w.append("a.txt", b"hello").unwrap();
        w.append("b.bin", &[7u8; 10]).unwrap();
        let mut bytes = w.finish().unwrap();
        // 12 octal digits, no NUL: 8^12 - 1 bytes = 64 GiB declared for a 10-byte member. The
        // old reader called `vec![0u8; 64 GiB]` right after parsing this field, which aborts
        // the process (or, where the allocation is lazily granted, reads on and reports a
        // truncation without the declared size); now the size is judged first.
        set_size_field(&mut bytes, 1024, b"777777777777");
        let p = Path::new("huge.tar");
        let len = bytes.len() as u64;
        let items: Vec<_> = TarEntries::new(&bytes[..], p).with_len(len).collect();
        assert_eq!(
            items.len(),
            2,
            "the entry before the damage, then the error"
        );
        assert_eq!(items[0].as_ref().unwrap().0, "a.txt");
        let err = items[1].as_ref().unwrap_err();
        assert!(matches!(err, DataError::Corrupt { .. }), "{err:?}");
        let err = err.to_string();
        assert!(
            err.starts_with(
                "huge.tar: truncated tar entry b.bin: declares 68719476735 bytes, only 1536 \
                 remain in the file"
            ),
            "{err}"
        );
        // Without a known length the per-entry limit still applies.
        let err = read_entries(&bytes[..], p).unwrap_err().to_string();
        assert!(
            err.contains("b.bin declares 68719476735 bytes, which exceeds the limit"),
            "{err}"
        );
        // Under the limit but more than the file holds: named with what remains (the header
        // blocks of a.txt and b.bin and a.txt's data are behind; b.bin's block and the two end
        // blocks remain).
        set_size_field(&mut bytes, 1024, b"00001000000\0");
        let err = TarEntries::new(&bytes[..], p)
            .with_len(len)
            .nth(1)
            .unwrap()
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("b.bin: declares 262144 bytes, only 1536 remain in the file"),
            "{err}"
        );
        // A stream of unknown length is read as far as it goes: a truncation, not an abort.
        let err = read_entries(&bytes[..], p).unwrap_err().to_string();
        assert!(
            err.contains("truncated tar entry b.bin: 1536 of 262144"),
            "{err}"
        );
    }
}
