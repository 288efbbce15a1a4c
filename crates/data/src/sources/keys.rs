//! Sample keys safe for WebDataset, which splits a tar member name at its first dot into key
//! and extension, and for file systems: `[A-Za-z0-9_-]`, at most [`MAX_KEY_LEN`] characters.

/// Longest key produced.
pub const MAX_KEY_LEN: usize = 64;

fn allowed(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

/// Whether `key` is already safe: 1 to [`MAX_KEY_LEN`] characters of `[A-Za-z0-9_-]`.
pub fn is_safe_key(key: &str) -> bool {
    !key.is_empty() && key.len() <= MAX_KEY_LEN && key.chars().all(allowed)
}

/// WebDataset's grouping of a tar member name into key and extension: the key runs to the first
/// dot of the last path component (directories kept). `None` when that component has no dot.
pub fn split_member(name: &str) -> Option<(&str, &str)> {
    let base_start = name.rfind('/').map_or(0, |i| i + 1);
    let dot = name[base_start..].find('.')? + base_start;
    Some((&name[..dot], &name[dot + 1..]))
}

/// `name` itself when it is already safe; otherwise its safe characters (others become `_`),
/// shortened, plus `-` and 16 hex digits of a hash of the whole name, so different names stay
/// different keys (callers still check for duplicates).
pub fn safe_key(name: &str) -> String {
    if is_safe_key(name) {
        return name.to_string();
    }
    hashed_key(name, name.as_bytes())
}

/// `text`'s safe characters (others become `_`), shortened, plus `-` and 16 hex digits of the
/// hash of `raw`, the name's bytes.
fn hashed_key(text: &str, raw: &[u8]) -> String {
    let cleaned: String = text
        .chars()
        .map(|c| if allowed(c) { c } else { '_' })
        .take(MAX_KEY_LEN - 17)
        .collect();
    format!("{cleaned}-{:016x}", stable_hash(raw))
}

/// [`safe_key`] of a name that need not be UTF-8 (a file name on Linux is any bytes but `/` and
/// NUL). A UTF-8 name gives the same key as [`safe_key`]; any other keeps its UTF-8 parts and
/// hashes its raw bytes, so two names that differ only in their invalid bytes stay two keys.
pub fn safe_key_bytes(name: &[u8]) -> String {
    match std::str::from_utf8(name) {
        Ok(text) => safe_key(text),
        Err(_) => hashed_key(&escaped_name(name), name),
    }
}

/// `name` as text for messages and class names: UTF-8 as it is, each byte that is not valid
/// UTF-8 as `\xNN`. Different byte strings give different text, unlike a lossy conversion,
/// which turns every invalid byte into the same replacement character.
pub fn escaped_name(name: &[u8]) -> String {
    let mut out = String::with_capacity(name.len());
    for chunk in name.utf8_chunks() {
        out.push_str(chunk.valid());
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02X}"));
        }
    }
    out
}

/// FNV-1a, 64 bit: fixed across platforms and Rust versions (std's hasher is neither).
pub fn stable_hash(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_end_at_the_first_dot_of_the_base_name() {
        assert_eq!(split_member("000012.jpg"), Some(("000012", "jpg")));
        assert_eq!(
            split_member("a.b/000012.seg.png"),
            Some(("a.b/000012", "seg.png"))
        );
        assert_eq!(split_member("noext"), None);
    }

    #[test]
    fn safe_names_pass_through_and_others_are_cleaned_and_hashed() {
        assert_eq!(safe_key("n01440764_10026"), "n01440764_10026");
        let k = safe_key("photos/a b.c");
        assert!(k.starts_with("photos_a_b_c-"), "{k}");
        assert_ne!(k, safe_key("photos/a_b.c"));
        let long = "x".repeat(200);
        assert_eq!(safe_key(&long).len(), MAX_KEY_LEN);
        assert!(safe_key("").starts_with('-'));
        for k in [safe_key("é/ü.png"), safe_key(&long)] {
            assert!(k.chars().all(allowed) && k.len() <= MAX_KEY_LEN, "{k}");
        }
    }

    #[test]
    fn names_that_are_not_utf8_keep_distinct_keys_and_names() {
        // A lossy conversion maps both to "a\u{FFFD}", one key for two files.
        let (a, b) = (b"a\xff".as_slice(), b"a\xfe".as_slice());
        assert_ne!(safe_key_bytes(a), safe_key_bytes(b));
        for k in [safe_key_bytes(a), safe_key_bytes(b)] {
            let readable = k.starts_with("a_xFF-") || k.starts_with("a_xFE-");
            assert!(is_safe_key(&k) && readable, "{k}");
        }
        assert_eq!(escaped_name(a), "a\\xFF");
        assert_eq!(escaped_name(&["é".as_bytes(), b"\xff"].concat()), "é\\xFF");
        assert_eq!(escaped_name(b"\xc3"), "\\xC3", "a cut multi-byte sequence");
        // UTF-8 names keep the keys they always had.
        assert_eq!(safe_key_bytes(b"cats__a"), "cats__a");
        assert_eq!(safe_key_bytes("é/ü".as_bytes()), safe_key("é/ü"));
        let long = vec![0xffu8; 300];
        assert_eq!(safe_key_bytes(&long).len(), MAX_KEY_LEN);
    }
}
