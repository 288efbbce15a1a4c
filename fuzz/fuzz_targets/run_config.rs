//! The run config loader (`flowscale_core::config::load_str` into `RunConfig`): TOML syntax,
//! `--set` overrides (input lines after a NUL byte, one per line), the schema and validation.
//! A config it accepts must write out resolved (`config.resolved.toml`, which `--resume`
//! reads back) and load back to the same config.
#![no_main]

use flowscale_train::config::{load_str, to_toml_string, RunConfig};
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (toml, sets) = text.split_once('\0').unwrap_or((text, ""));
    let overrides: Vec<String> = sets.lines().map(str::to_owned).collect();
    let loaded = load_str::<RunConfig>(toml, Path::new("fuzz.toml"), &overrides);
    flowscale_fuzz::show("load_str", &loaded);
    let Ok(cfg) = loaded else {
        return;
    };
    let resolved = to_toml_string(&cfg).expect("an accepted config serialises");
    let back: RunConfig = load_str(&resolved, Path::new("config.resolved.toml"), &[])
        .expect("the resolved config loads back");
    assert_eq!(back, cfg);
});
