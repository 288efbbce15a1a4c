//! The IDX reader: `parse_idx` on the bytes, `read_idx` on them as a plain file, and `read_idx`
//! on them gzip-compressed (the header then comes out of a stream of unknown length) and as a
//! `.gz` file of arbitrary bytes (a damaged or hostile gzip stream).
#![no_main]

use flate2::write::GzEncoder;
use flowscale_data::idx::{parse_idx, read_idx};
use libfuzzer_sys::fuzz_target;
use std::io::Write;

fuzz_target!(|data: &[u8]| {
    let parsed = parse_idx(data);
    flowscale_fuzz::show("parse_idx", &parsed);
    let plain = read_idx(&flowscale_fuzz::scratch_file("fuzz-idx", data));
    // The file reader and the bytes parser accept the same inputs, with the same contents.
    assert_eq!(parsed.as_ref().ok(), plain.as_ref().ok());
    let mut gz = GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(data).expect("compressed in memory");
    let gz = gz.finish().expect("compressed in memory");
    let unzipped = read_idx(&flowscale_fuzz::scratch_file("fuzz-idx.gz", &gz));
    assert_eq!(parsed.as_ref().ok(), unzipped.as_ref().ok());
    let _ = read_idx(&flowscale_fuzz::scratch_file("raw-idx.gz", data));
});
