//! `source.caption_fields`: which caption fields a precompute reads from its source (and encodes,
//! with `[text]`), `txt` first. `["txt", "syn"]` stores a synthetic caption beside the original
//! one, the paper's caption study. The key says what the source is read for, so it sits in
//! `[source]`; only sources with per-image caption files (webdataset, folder) have further fields.

use crate::shards::{is_caption_field, PRIMARY_CAPTION};
use flowscale_core::config::Validator;

/// The key's default: the `txt` caption alone.
pub fn primary_only() -> Vec<String> {
    vec![PRIMARY_CAPTION.to_owned()]
}

/// Whether `fields` is the default. The default is left out of the serialised config, so the
/// fingerprint of a shard directory made before the key existed still matches.
pub fn is_primary_only(fields: &[String]) -> bool {
    fields == [PRIMARY_CAPTION]
}

/// The fields after `txt` (none when the list is invalid; validation reports that).
pub fn further(fields: &[String]) -> &[String] {
    match fields.split_first() {
        Some((first, rest)) if first == PRIMARY_CAPTION => rest,
        _ => &[],
    }
}

/// Records every problem of `fields` under `caption_fields`, for a source of kind `kind` that can
/// give further fields when `has_further`.
pub fn validate(fields: &[String], kind: &str, has_further: bool, v: &mut Validator) {
    const KEY: &str = "caption_fields";
    match fields.first() {
        None => v.fail(KEY, format!("must list at least {PRIMARY_CAPTION:?}")),
        Some(first) if first != PRIMARY_CAPTION => v.fail(
            KEY,
            format!(
                "must start with {PRIMARY_CAPTION:?} (the caption stored at the plain \
                 extensions), not {first:?}"
            ),
        ),
        Some(_) => {}
    }
    for (i, field) in fields.iter().enumerate() {
        if !is_caption_field(field) {
            v.fail(
                KEY,
                format!(
                    "{field:?} is not a caption field name: 1-32 of [A-Za-z0-9_] (webdataset \
                     splits member names at dots)"
                ),
            );
        } else if fields[..i].contains(field) {
            v.fail(KEY, format!("{field:?} is listed twice"));
        }
    }
    let wanted: Vec<&String> = fields.iter().filter(|f| *f != PRIMARY_CAPTION).collect();
    if !has_further && !wanted.is_empty() {
        v.fail(
            KEY,
            format!(
                "the {kind} source gives no caption field but {PRIMARY_CAPTION:?}, not {wanted:?}"
            ),
        );
    }
}
