//! `manifest.json` of a shard directory: parsed and validated as `ShardManifest::load` does,
//! then used as the loader and the trainer use it (sample counts, caption fields, text sources,
//! the epoch plan over its shards). What it accepts must save and load back unchanged.
#![no_main]

use flowscale_data::shards::loader::plan::epoch_plan;
use flowscale_data::shards::{LoaderConfig, ShardManifest, ShardSource, ShardSplit};
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let dir = Path::new("/fuzz/shards");
    let parsed = ShardManifest::parse(text, &dir.join("manifest.json"));
    flowscale_fuzz::show("ShardManifest::parse", &parsed);
    let Ok(m) = parsed else {
        return;
    };
    for split in [ShardSplit::Train, ShardSplit::Val] {
        let _ = m.samples(split);
        let shards = ShardSource::from_manifest(dir, &m, split);
        if !shards.is_empty() {
            let _ = epoch_plan(&LoaderConfig::new(shards, 1, 0), 0);
        }
    }
    let _ = m.caption_fields();
    if let Some(t) = &m.text {
        let _ = t.spans();
    }
    let json = serde_json::to_string_pretty(&m).expect("a manifest serialises");
    let back = ShardManifest::parse(&json, Path::new("saved.json")).expect("saved reads back");
    assert_eq!(back, m);
});
