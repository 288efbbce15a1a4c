//! Timing shared by the `flowscale bench` commands (kept apart from `bench.rs`, which dispatches
//! to them, so that no bench command imports its dispatcher).

/// Median wall seconds of `rounds` timed passes of `pass` (at least one), after `warmup`
/// untimed ones.
pub(crate) fn median_seconds(
    warmup: usize,
    rounds: usize,
    pass: impl Fn() -> anyhow::Result<()>,
) -> anyhow::Result<f64> {
    for _ in 0..warmup {
        pass()?;
    }
    let mut times = Vec::with_capacity(rounds.max(1));
    for _ in 0..rounds.max(1) {
        let t = std::time::Instant::now();
        pass()?;
        times.push(t.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}
