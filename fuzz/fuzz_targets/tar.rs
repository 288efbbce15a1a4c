//! The tar reader over arbitrary bytes, as a stream of unknown length and with the length known
//! (`TarEntries::open` on a file). An `Err` is the reader doing its job; a panic, an abort, an
//! allocation past the RSS limit or a hang is a finding.
#![no_main]

use flowscale_data::shards::tar::{TarEntries, MAX_ENTRY_BYTES};
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let streamed: Vec<_> = TarEntries::new(data, Path::new("fuzz.tar")).collect();
    let path = flowscale_fuzz::scratch_file("fuzz.tar", data);
    let opened: Vec<_> = TarEntries::open(&path).expect("open").collect();
    // The known length only refuses a bad entry earlier (before allocating); it never changes
    // what an intact entry holds, nor accepts what the stream refuses.
    let ok = |v: &[flowscale_data::Result<(String, Vec<u8>)>]| -> Vec<(String, Vec<u8>)> {
        v.iter().map_while(|e| e.as_ref().ok().cloned()).collect()
    };
    let (s, o) = (ok(&streamed), ok(&opened));
    assert_eq!(s, o);
    assert_eq!(
        streamed.last().is_some_and(Result::is_err),
        opened.last().is_some_and(Result::is_err)
    );
    for (_, bytes) in &s {
        assert!(bytes.len() as u64 <= MAX_ENTRY_BYTES && bytes.len() <= data.len());
    }
});
