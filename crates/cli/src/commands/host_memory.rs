//! This process's resident memory from `/proc/self/status` (Linux): the current size and the
//! high-water mark, which writing `5` to `/proc/self/clear_refs` resets to the current size.
//! The CPU counterpart of CUDA's allocated / peak-allocated counters for memory benchmarks.

use anyhow::Context;

/// `VmRSS` and `VmHWM` in bytes.
pub fn resident_and_peak() -> anyhow::Result<(u64, u64)> {
    let status =
        std::fs::read_to_string("/proc/self/status").context("reading /proc/self/status")?;
    let field = |name: &str| -> anyhow::Result<u64> {
        let line = status
            .lines()
            .find(|l| l.starts_with(name))
            .with_context(|| format!("/proc/self/status has no {name} line"))?;
        let kib: u64 = line[name.len()..]
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .with_context(|| format!("/proc/self/status: cannot read `{line}`"))?;
        Ok(kib * 1024)
    };
    Ok((field("VmRSS:")?, field("VmHWM:")?))
}

/// Resets the high-water mark to the current resident size.
pub fn reset_peak() -> anyhow::Result<()> {
    std::fs::write("/proc/self/clear_refs", "5").context("resetting /proc/self/clear_refs")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_peak_follows_a_touched_allocation_and_resets() {
        reset_peak().unwrap();
        let (rss, peak) = resident_and_peak().unwrap();
        assert!(peak >= rss && rss > 0);
        // Touch 64 MiB, so it is resident, then free it.
        let block = vec![1u8; 64 << 20];
        let (_, during) = resident_and_peak().unwrap();
        assert!(
            during >= rss + (60 << 20),
            "peak {during} after touching 64 MiB from {rss}"
        );
        drop(block);
        reset_peak().unwrap();
        let (after_rss, after_peak) = resident_and_peak().unwrap();
        assert!(
            after_peak < during,
            "reset left the peak at {after_peak} (was {during})"
        );
        assert!(after_peak >= after_rss);
    }
}
