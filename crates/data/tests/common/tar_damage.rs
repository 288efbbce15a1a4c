//! Damage a tar archive the way a broken or hostile writer would, for the tests of every reader
//! that takes tars (shard loader, WebDataset source, precompute).

/// Rewrites the size field (12 octal bytes) of `member`'s tar header and fixes its checksum, so
/// only the declared size lies.
pub fn declare_size(tar: &mut [u8], member: &str, field: &[u8; 12]) {
    let at = (0..tar.len())
        .step_by(512)
        .find(|&o| tar[o..].starts_with(member.as_bytes()) && tar[o + member.len()] == 0)
        .unwrap_or_else(|| panic!("no header for {member}"));
    let h = &mut tar[at..at + 512];
    h[124..136].copy_from_slice(field);
    h[148..156].copy_from_slice(b"        ");
    let sum: u64 = h.iter().map(|&b| u64::from(b)).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
}
