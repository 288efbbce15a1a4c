//! The Google emoji set of the npm package `emoji-datasource-google`: `emoji.json` plus
//! `img/google/64/<image>` PNGs (64x64, transparent background). A small captioned set (1,911
//! base emoji in version 16.0.0; skin-tone variants are left out): the caption is the emoji's
//! name in lower case ("grinning face"), or its short name when it has no name, and the label
//! is the emoji's category ("Smileys & Emotion", "Animals & Nature", "Food & Drink", ...), so a
//! text-to-image model's prompt adherence can be scored by a category classifier.

use super::{ImageSource, Sample};
use crate::error::{DataError, Result};
use serde_json::Value;
use std::path::Path;

/// The emoji with a Google image, sorted by key (`emoji_<unified code points>`), and the
/// category names (sorted) their labels index. Entries whose image file is missing are skipped
/// at preprocessing like any unreadable file.
pub fn read_emoji(package_dir: &Path) -> Result<(Vec<Sample>, Vec<String>)> {
    let json_path = package_dir.join("emoji.json");
    let text = std::fs::read_to_string(&json_path).map_err(|e| DataError::io(&json_path, e))?;
    let entries: Vec<Value> = serde_json::from_str(&text)
        .map_err(|e| DataError::corrupt(&json_path, format!("not an emoji list: {e}")))?;
    let images = package_dir.join("img/google/64");
    let mut samples = Vec::new();
    let mut categories: Vec<(usize, String)> = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        if e["has_img_google"] != Value::Bool(true) {
            continue;
        }
        let field = |name: &str| e[name].as_str().filter(|s| !s.is_empty());
        let bad = |what: &str| DataError::corrupt(&json_path, format!("entry {i}: no {what}"));
        let unified = field("unified").ok_or_else(|| bad("unified"))?;
        let image = field("image").ok_or_else(|| bad("image"))?;
        let caption = match field("name") {
            Some(name) => name.to_lowercase(),
            None => field("short_name")
                .ok_or_else(|| bad("name or short_name"))?
                .replace('_', " "),
        };
        let category = field("category").ok_or_else(|| bad("category"))?;
        categories.push((samples.len(), category.to_owned()));
        samples.push(Sample {
            key: format!("emoji_{}", unified.to_ascii_lowercase()),
            image: ImageSource::File(images.join(image)),
            label: None,
            caption: Some(caption),
            further_captions: Vec::new(),
        });
    }
    let mut names: Vec<String> = categories.iter().map(|(_, c)| c.clone()).collect();
    names.sort();
    names.dedup();
    for (i, c) in categories {
        samples[i].label = Some(names.binary_search(&c).expect("listed") as i64);
    }
    samples.sort_by(|a, b| a.key.cmp(&b.key));
    if let Some(w) = samples.windows(2).find(|w| w[0].key == w[1].key) {
        return Err(DataError::corrupt(
            &json_path,
            format!("{} listed twice", w[0].key),
        ));
    }
    Ok((samples, names))
}
