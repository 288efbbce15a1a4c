//! Whether this CPU has bf16 matrix instructions, which decides whether bf16 autocast on the CPU
//! is worth it: with AMX-BF16 (Intel Sapphire Rapids and later) or AVX512-BF16 (Intel Cooper
//! Lake, AMD Zen 4 and later) oneDNN runs bf16 matrix products natively; without them libtorch
//! emulates bf16 through fp32 and autocast only adds conversions.

/// The best bf16 matrix instruction set this CPU reports (`"AMX-BF16"` or `"AVX512-BF16"`), or
/// `None` (also on systems without `/proc/cpuinfo`).
pub fn bf16_matrix_instructions() -> Option<&'static str> {
    let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    bf16_matrix_instructions_in(&info)
}

/// [`bf16_matrix_instructions`] of a `/proc/cpuinfo` text: the `flags` of its first processor.
pub fn bf16_matrix_instructions_in(cpuinfo: &str) -> Option<&'static str> {
    let flags = cpuinfo
        .lines()
        .find(|l| l.starts_with("flags"))?
        .split_once(':')?
        .1;
    let has = |f: &str| flags.split_whitespace().any(|x| x == f);
    if has("amx_bf16") && has("amx_tile") {
        Some("AMX-BF16")
    } else if has("avx512_bf16") {
        Some("AVX512-BF16")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_flags_line_of_cpuinfo() {
        let spr = "processor\t: 0\nflags\t\t: fpu avx512f avx512_bf16 amx_bf16 amx_tile\n";
        assert_eq!(bf16_matrix_instructions_in(spr), Some("AMX-BF16"));
        let zen4 = "processor\t: 0\nflags\t\t: fpu avx512f avx512_bf16\n";
        assert_eq!(bf16_matrix_instructions_in(zen4), Some("AVX512-BF16"));
        // A flag that merely contains the name does not count; no flags line is None.
        let old = "processor\t: 0\nflags\t\t: fpu avx512f avx512_bf16x\n";
        assert_eq!(bf16_matrix_instructions_in(old), None);
        assert_eq!(bf16_matrix_instructions_in("processor\t: 0\n"), None);
    }
}
