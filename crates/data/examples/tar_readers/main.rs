//! Our tar reader (`shards::tar::TarEntries`) against the `tar` crate (`Archive::entries`), on
//! the same shard files in one process: throughput, then what each does with damaged input
//! ([`hostile`]). The figures and the decision are in docs/reliability.md.
//!
//! `cargo run --release -p flowscale-data --example tar_readers -- [--dir DIR] [--rounds N]`
//!
//! Two shards are written into DIR (default `/tmp/flowscale-tar-bench`) once:
//! - `latent.tar`, as `flowscale precompute` writes them (our `TarWriter`: plain ustar, no pax):
//!   1000 samples of `.mean.npy` and `.std.npy` (16 KiB each) and `.cls`;
//! - `images.tar`, as Python's `webdataset.TarWriter` writes them (a pax header with a float
//!   `mtime` before every member): 1000 samples of `.jpg` (50 to 100 KB), `.txt` and `.json`.
//!
//! Each is timed read from the file (in the page cache: it was just written and read) and from
//! memory (the parser alone), every member's bytes into a `Vec` with its name, as the loader
//! uses them. Rounds alternate the two readers; the median is reported.

mod hostile;

use flowscale_data::shards::tar::{TarEntries, TarWriter};
use std::error::Error;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read};
use std::path::{Path, PathBuf};
use std::time::Instant;

type Res<T> = Result<T, Box<dyn Error>>;

const SAMPLES: usize = 1000;

/// Deterministic filler bytes (xorshift): member contents do not matter to a tar reader, but
/// zeros would let the page cache or a filesystem compress them.
fn filler(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn write_latent_shard(path: &Path) -> Res<()> {
    let mut w = TarWriter::new(BufWriter::new(File::create(path)?));
    for k in 0..SAMPLES {
        // A 128-byte .npy header and 16 KiB of float16 data, as a 16x16x32 latent.
        for (i, part) in ["mean", "std"].iter().enumerate() {
            let data = filler((2 * k + i) as u64, 128 + 16 * 1024);
            w.append(&format!("{k:08}.{part}.npy"), &data)?;
        }
        w.append(&format!("{k:08}.cls"), (k % 1000).to_string().as_bytes())?;
    }
    w.finish()?;
    Ok(())
}

/// As Python's `tarfile` (PAX format) under `webdataset.TarWriter`: every member preceded by a
/// pax header carrying its float `mtime`.
fn write_image_shard(path: &Path) -> Res<()> {
    let mut b = tar::Builder::new(BufWriter::new(File::create(path)?));
    for k in 0..SAMPLES {
        let jpg_len = 50_000 + (k * 7919) % 50_000;
        let members = [
            ("jpg", filler(k as u64, jpg_len)),
            ("txt", filler(k as u64 + 1, 100)),
            ("json", filler(k as u64 + 2, 200)),
        ];
        for (ext, data) in members {
            let mtime = format!("1795610835.{:07}", k * 3);
            b.append_pax_extensions([("mtime", mtime.as_bytes())])?;
            let mut h = tar::Header::new_ustar();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_mtime(1_795_610_835);
            h.set_entry_type(tar::EntryType::Regular);
            b.append_data(&mut h, format!("{k:08}.{ext}"), &data[..])?;
        }
    }
    b.into_inner()?;
    Ok(())
}

/// (entries, member bytes) of one full read.
type Tally = (usize, u64);

fn ours(input: impl Read, path: &Path, len: u64) -> Res<Tally> {
    let mut t = (0, 0);
    for e in TarEntries::new(input, path).with_len(len) {
        let (name, data) = e?;
        std::hint::black_box((&name, &data));
        t = (t.0 + 1, t.1 + data.len() as u64);
    }
    Ok(t)
}

/// What a switch would write: each regular file's name (pax `path` applied) and bytes. The
/// capacity comes from the header, which is safe here only because these files are ours.
fn tar_crate(input: impl Read) -> Res<Tally> {
    let mut t = (0, 0);
    for e in tar::Archive::new(input).entries()? {
        let mut e = e?;
        if !e.header().entry_type().is_file() {
            continue;
        }
        let name = e.path()?.to_string_lossy().into_owned();
        let mut data = Vec::with_capacity(e.size() as usize);
        e.read_to_end(&mut data)?;
        std::hint::black_box((&name, &data));
        t = (t.0 + 1, t.1 + data.len() as u64);
    }
    Ok(t)
}

/// Every member's (name, bytes) by both readers: they must agree before they are timed.
fn check_agree(path: &Path) -> Res<()> {
    let a: Vec<(String, Vec<u8>)> = TarEntries::open(path)?.collect::<Result<_, _>>()?;
    let mut b = Vec::new();
    for e in tar::Archive::new(File::open(path)?).entries()? {
        let mut e = e?;
        if e.header().entry_type().is_file() {
            let mut data = Vec::new();
            e.read_to_end(&mut data)?;
            b.push((e.path()?.to_string_lossy().into_owned(), data));
        }
    }
    if a != b {
        return Err(format!("{}: the readers disagree", path.display()).into());
    }
    Ok(())
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Times `rounds` alternating reads of `path` by both readers, from the file or from memory.
fn time(path: &Path, from_memory: bool, rounds: usize) -> Res<()> {
    let bytes = std::fs::read(path)?;
    let len = bytes.len() as u64;
    let mut secs = [Vec::new(), Vec::new()];
    let mut tally = (0, 0);
    for round in 0..rounds {
        for k in 0..2 {
            // Alternate which reader goes first, so neither always inherits a warm cache.
            let reader = (k + round) % 2;
            let start = Instant::now();
            let t = match (reader, from_memory) {
                (0, true) => ours(&bytes[..], path, len)?,
                (0, false) => ours(BufReader::new(File::open(path)?), path, len)?,
                (_, true) => tar_crate(&bytes[..])?,
                (_, false) => tar_crate(BufReader::new(File::open(path)?))?,
            };
            secs[reader].push(start.elapsed().as_secs_f64());
            tally = t;
        }
    }
    let source = if from_memory {
        "memory"
    } else {
        "file (page cache)"
    };
    for (name, s) in ["ours (TarEntries)", "tar 0.4 (Archive::entries)"]
        .iter()
        .zip(&mut secs)
    {
        let all: Vec<String> = s.iter().map(|x| format!("{:.1}", x * 1e3)).collect();
        let m = median(s);
        println!(
            "| {} | {source} | {name} | {:.0} MB/s | {:.0} entries/s | {:.1} ms ({}) |",
            path.file_name().unwrap_or_default().to_string_lossy(),
            len as f64 / m / 1e6,
            tally.0 as f64 / m,
            m * 1e3,
            all.join(", ")
        );
    }
    Ok(())
}

fn args() -> Res<(PathBuf, usize)> {
    let mut dir = PathBuf::from("/tmp/flowscale-tar-bench");
    let mut rounds = 9;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = || it.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--dir" => dir = PathBuf::from(value()?),
            "--rounds" => rounds = value()?.parse()?,
            _ => return Err(format!("unknown argument {a}; use --dir DIR --rounds N").into()),
        }
    }
    Ok((dir, rounds.max(1)))
}

fn main() -> Res<()> {
    let (dir, rounds) = args()?;
    std::fs::create_dir_all(&dir)?;
    let latent = dir.join("latent.tar");
    let images = dir.join("images.tar");
    if !latent.is_file() {
        write_latent_shard(&latent)?;
    }
    if !images.is_file() {
        write_image_shard(&images)?;
    }
    println!("median of {rounds} alternating rounds; MB = 1e6 bytes of the archive\n");
    println!("| shard | read from | reader | throughput | entries | median (rounds, ms) |");
    println!("|---|---|---|---|---|---|");
    for path in [&latent, &images] {
        check_agree(path)?;
        for from_memory in [false, true] {
            time(path, from_memory, rounds)?;
        }
    }
    println!();
    hostile::report();
    Ok(())
}
