//! What each reader does with a damaged archive: small archives with one fault each, read from
//! memory (ours told the length, as `TarEntries::open` tells it the file's). A reader may
//! yield the intact entries before the damage and then an error; what matters is that it never
//! aborts, never returns a short entry as if it were whole, and says where the damage is.

use flowscale_data::shards::tar::{TarEntries, TarWriter};
use std::io::Read;
use std::path::Path;

const BLOCK: usize = 512;

/// `a.txt` (5 bytes), `b.bin` (1000 bytes), `c.txt` (5 bytes): headers at 0, 1024, 3072.
fn three_members() -> Vec<u8> {
    let mut w = TarWriter::new(Vec::new());
    w.append("a.txt", b"hello").unwrap();
    w.append("b.bin", &[7u8; 1000]).unwrap();
    w.append("c.txt", b"world").unwrap();
    w.finish().unwrap()
}

/// Rewrites the header checksum at `at`, so a changed field reads as a valid header.
fn reseal(tar: &mut [u8], at: usize) {
    let h = &mut tar[at..at + BLOCK];
    h[148..156].copy_from_slice(b"        ");
    let sum: u64 = h.iter().map(|&b| u64::from(b)).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
}

fn with_size_field(field: &[u8; 12]) -> Vec<u8> {
    let mut t = three_members();
    t[1024 + 124..1024 + 136].copy_from_slice(field);
    reseal(&mut t, 1024);
    t
}

/// A pax header whose record is shorter than its own length field (`2 path=x`), before `a.txt`.
fn damaged_pax() -> Vec<u8> {
    let mut w = TarWriter::new(Vec::new());
    w.append("PaxHeader", b"2 path=x\n").unwrap();
    w.append("a.txt", b"hello").unwrap();
    let mut t = w.finish().unwrap();
    t[156] = b'x';
    reseal(&mut t, 0);
    t
}

/// A member with a 150-byte name in GNU format, as GNU `tar` writes it by default: an `L` entry
/// holding the name, then the member under a cut 100-byte name. Not damage: coverage.
fn gnu_long_name() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(5);
    h.set_mode(0o644);
    h.set_entry_type(tar::EntryType::Regular);
    let name = format!("{}.txt", "n".repeat(146));
    b.append_data(&mut h, name, &b"hello"[..]).unwrap();
    b.into_inner().unwrap()
}

fn cases() -> Vec<(&'static str, Vec<u8>)> {
    let mut flipped = three_members();
    flipped[1024 + 10] ^= 1; // in b.bin's name, checksum not updated
    let mut cut = three_members();
    cut.truncate(1024 + BLOCK + 300); // inside b.bin's data
    vec![
        (
            "b.bin's size field 777777777777 (64 GiB) in a 5 KiB file",
            with_size_field(b"777777777777"),
        ),
        (
            "b.bin declares 1 MiB (04000000) in a 5 KiB file",
            with_size_field(b"00004000000\0"),
        ),
        (
            "b.bin's size field not octal (0000000z750)",
            with_size_field(b"0000000z750\0"),
        ),
        ("a byte of b.bin's header flipped (bad checksum)", flipped),
        ("file cut 300 bytes into b.bin's data (1000 bytes)", cut),
        (
            "pax record shorter than its length field before a.txt",
            damaged_pax(),
        ),
        (
            "not damage: a 150-byte name in GNU format (`L` entry, GNU tar's default)",
            gnu_long_name(),
        ),
    ]
}

/// A long name as `n...n.txt (150 bytes)`, short ones as they are.
fn short(name: &str) -> String {
    if name.len() <= 20 {
        return name.to_owned();
    }
    format!(
        "{}...{} ({} bytes)",
        &name[..1],
        &name[name.len() - 5..],
        name.len()
    )
}

fn ours(tar: &[u8]) -> String {
    let mut out = Vec::new();
    for e in TarEntries::new(tar, Path::new("case.tar")).with_len(tar.len() as u64) {
        match e {
            Ok((name, data)) => out.push(format!("{} ({} B)", short(&name), data.len())),
            Err(e) => out.push(format!("error: {e}")),
        }
    }
    out.join("; ")
}

fn tar_crate(tar: &[u8]) -> String {
    let mut out = Vec::new();
    let mut archive = tar::Archive::new(tar);
    let entries = match archive.entries() {
        Ok(e) => e,
        Err(e) => return format!("error: {e}"),
    };
    // Bounded: an iterator that kept yielding errors would otherwise never end.
    for e in entries.take(20) {
        let mut e = match e {
            Ok(e) => e,
            Err(err) => {
                out.push(format!("error: {err}"));
                continue;
            }
        };
        let name = e.path().map_or("?".into(), |p| p.display().to_string());
        let declared = e.size();
        let at = e.raw_header_position();
        // Grown as data arrives, never sized from the header: what a careful caller does.
        let mut data = Vec::new();
        match e.read_to_end(&mut data) {
            Ok(n) if (n as u64) < declared => out.push(format!(
                "{name} (header at {at}): {n} of {declared} B, returned without error"
            )),
            Ok(n) => out.push(format!("{} ({n} B)", short(&name))),
            Err(err) => out.push(format!("{name} (header at {at}): read error: {err}")),
        }
    }
    out.join("; ")
}

/// Prints one table row per fault: what each reader yields, in order.
pub fn report() {
    println!("| input | ours (TarEntries) | tar 0.4 (Archive::entries) |");
    println!("|---|---|---|");
    for (what, tar) in cases() {
        println!("| {what} | {} | {} |", ours(&tar), tar_crate(&tar));
    }
}
