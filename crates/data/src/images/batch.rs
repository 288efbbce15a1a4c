//! Decoding and preprocessing a batch of samples in parallel (rayon). Samples that fail are
//! dropped from the batch and recorded in the [`BadSampleReport`]; order is kept.

use super::preprocess::{preprocess_rgb, PreprocessConfig, Preprocessed};
use crate::bad_samples::{BadSample, BadSampleReport};
use crate::sources::{caption_of, FieldCaption, Sample};
use rayon::prelude::*;
use tch::Tensor;

/// A sample ready for the autoencoder.
#[derive(Debug, Clone, PartialEq)]
pub struct PreparedSample {
    pub key: String,
    pub label: Option<i64>,
    pub caption: Option<String>,
    pub further_captions: Vec<FieldCaption>,
    pub image: Preprocessed,
}

impl PreparedSample {
    /// The caption of `field` (`txt` or a further one), when the sample has it.
    pub fn caption_of(&self, field: &str) -> Option<&str> {
        caption_of(&self.caption, &self.further_captions, field)
    }
}

/// Reads (for file sources), decodes and preprocesses `samples` on rayon's current pool.
pub fn preprocess_batch(
    samples: Vec<Sample>,
    config: &PreprocessConfig,
    report: &mut BadSampleReport,
) -> Vec<PreparedSample> {
    let results: Vec<Result<PreparedSample, BadSample>> = samples
        .into_par_iter()
        .map(|s| {
            let image = s
                .image
                .decode()
                .and_then(|rgb| preprocess_rgb(&rgb, config))
                .map_err(|reason| BadSample::new(s.key.clone(), reason))?;
            Ok(PreparedSample {
                key: s.key,
                label: s.label,
                caption: s.caption,
                further_captions: s.further_captions,
                image,
            })
        })
        .collect();
    let mut good = Vec::with_capacity(results.len());
    for r in results {
        match r {
            Ok(s) => good.push(s),
            Err(b) => report.record_bad(b),
        }
    }
    report.record_good(good.len());
    good
}

/// The batch's images as one `[N, 3, R, R]` tensor (and the flipped copies, when present for
/// all). `None` for an empty batch.
pub fn stack_images(batch: &[PreparedSample]) -> Option<(Tensor, Option<Tensor>)> {
    if batch.is_empty() {
        return None;
    }
    let images: Vec<Tensor> = batch.iter().map(|s| s.image.tensor()).collect();
    let flipped: Option<Vec<Tensor>> = batch.iter().map(|s| s.image.flipped_tensor()).collect();
    Some((
        Tensor::stack(&images, 0),
        flipped.map(|f| Tensor::stack(&f, 0)),
    ))
}
