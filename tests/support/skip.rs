//! A test that cannot run because an asset is missing (TAEF2 from `../shared`, or what
//! `scripts/setup` fetches into `.assets`) says so and leaves a record, so `scripts/test` counts
//! and names it as skipped instead of passed. Included with
//! `#[path = "<to the repository root>/tests/support/skip.rs"] mod skip;`.

use std::path::Path;

/// Prints `skipped: <reason>` and records `<test binary>-<test>` under
/// `target/tmp/skipped-tests/`, which `scripts/test` reads after the run.
pub fn skipped(test: &str, reason: &str) {
    println!("skipped: {reason}");
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("skipped-tests");
    // A test must not fail because its skip could not be recorded; the printed line remains.
    if std::fs::create_dir_all(&dir).is_ok() {
        let name = format!("{}-{test}.txt", env!("CARGO_CRATE_NAME"));
        let _ = std::fs::write(dir.join(name), format!("{reason}\n"));
    }
}
