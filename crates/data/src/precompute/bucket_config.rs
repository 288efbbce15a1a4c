//! `[preprocess.buckets]`: the aspect-ratio buckets of a precompute (SD3 Sec. 5.3.2), either
//! listed (`sizes = [[w, h], ...]`) or generated (`rule = "equal-area"`: the equal-area family
//! around `preprocess.resolution`, see [`AspectBuckets::equal_area`]). Sides are multiples of
//! `step` (the autoencoder factor times the model's patch size: 16 for SD3's x8 autoencoder and
//! 2x2 patches) and every bucket holds about `resolution^2` pixels (a listed one within a factor
//! [`MAX_AREA_RATIO`]).

use crate::images::{AspectBuckets, BucketSize};
use flowscale_core::config::Validator;
use serde::{Deserialize, Serialize};

/// A listed bucket's pixel count may differ from `resolution^2` by this factor either way.
pub const MAX_AREA_RATIO: f64 = 1.25;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BucketsSection {
    /// `[width, height]` in pixels, in the order that breaks assignment ties.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sizes: Vec<[u32; 2]>,
    /// `"equal-area"` generates the family instead of a list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// Every side is a multiple of this.
    #[serde(default = "default_step")]
    pub step: u32,
    /// The generated family's widest and tallest aspect ratio (`rule` only).
    #[serde(default = "default_max_aspect")]
    pub max_aspect: f64,
}

fn default_step() -> u32 {
    16
}

fn default_max_aspect() -> f64 {
    4.0
}

impl BucketsSection {
    /// The buckets around a `resolution` square base.
    pub fn buckets(&self, resolution: u32) -> Result<AspectBuckets, String> {
        match (&self.rule, self.sizes.is_empty()) {
            (Some(rule), true) if rule == "equal-area" => {
                AspectBuckets::equal_area(resolution as usize, self.step as usize, self.max_aspect)
            }
            (Some(rule), true) => Err(format!("rule {rule:?} is not one of [\"equal-area\"]")),
            (None, false) => AspectBuckets::new(
                self.sizes
                    .iter()
                    .map(|&[w, h]| BucketSize {
                        width: w as usize,
                        height: h as usize,
                    })
                    .collect(),
            ),
            (Some(_), false) => Err("give either sizes or rule, not both".into()),
            (None, true) => {
                Err("give sizes = [[width, height], ...] or rule = \"equal-area\"".into())
            }
        }
    }

    /// Checks the section against `preprocess.resolution`; problems go to `v` under the key of
    /// the section (`v` is the `[preprocess]` validator).
    pub fn validate(&self, resolution: u32, v: &mut Validator) {
        if self.step == 0 {
            v.fail("buckets.step", "must be >= 1");
            return;
        }
        let buckets = match self.buckets(resolution) {
            Ok(b) => b,
            Err(e) => {
                let key = if self.rule.is_some() && self.sizes.is_empty() {
                    "buckets.rule"
                } else {
                    "buckets.sizes"
                };
                v.fail(key, e);
                return;
            }
        };
        let area = f64::from(resolution) * f64::from(resolution);
        // The rule's sizes are multiples of the step with the nearest area by construction.
        let listed = if self.sizes.is_empty() {
            &[][..]
        } else {
            buckets.sizes()
        };
        for s in listed {
            let step = self.step as usize;
            if s.width % step != 0 || s.height % step != 0 {
                v.fail(
                    "buckets.sizes",
                    format!(
                        "{}x{}: both sides must be multiples of buckets.step = {step}",
                        s.width, s.height
                    ),
                );
            }
            let ratio = (s.width * s.height) as f64 / area;
            if !(1.0 / MAX_AREA_RATIO..=MAX_AREA_RATIO).contains(&ratio) {
                v.fail(
                    "buckets.sizes",
                    format!(
                        "{}x{} holds {:.2} times the pixels of the {resolution}x{resolution} \
                         base; buckets have about equal pixel counts (within a factor \
                         {MAX_AREA_RATIO})",
                        s.width, s.height, ratio
                    ),
                );
            }
        }
    }
}
