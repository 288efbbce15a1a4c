//! The fixed conditioning of an evaluation's samples: sample `i` of `N` has
//! - for class-conditional runs, label `i mod classes` (captioned for CLIP score by
//!   `clip.caption`);
//! - for text runs, the caption of val sample `i mod V` (the first `V = min(N, val size)` val
//!   samples, their stored embeddings when the run trained on them), or of the `i`-th image of
//!   a COCO-2014-style set (encoded by the run's text encoder).
//!
//! Labels go with the prompts when the data has them (a captioned set with categories), so the
//! classifier can score whether each sample shows its prompt's class.

use crate::coco::{read_coco, reference_images};
use crate::config::{EvalConfig, PromptsSection};
use crate::error::{EvalError, Result};
use crate::loaded_run::LoadedRun;
use flowscale_train::cond_input::{CondInput, TextBatch};
use flowscale_train::run::CondSource;
use std::path::Path;
use tch::{Device, Kind, Tensor};

/// Where the prompts come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PromptSource {
    Classes,
    Val,
    Coco,
}

impl PromptSource {
    /// `prompts.source` for a run that conditions on `cond`.
    pub fn resolve(p: &PromptsSection, cond: &CondSource) -> Result<Self> {
        let text = matches!(cond, CondSource::Text(_));
        let chosen = match p.source.as_str() {
            "classes" => Self::Classes,
            "val" => Self::Val,
            "coco" => Self::Coco,
            _ if !text => Self::Classes,
            _ if !p.coco_captions.is_empty() => Self::Coco,
            _ => Self::Val,
        };
        match (chosen, text) {
            (Self::Classes, true) => Err(EvalError::Invalid(
                "prompts.source = \"classes\", but the run conditions on captions (use \"val\" \
                 or \"coco\")"
                    .into(),
            )),
            (Self::Val | Self::Coco, false) => Err(EvalError::Invalid(format!(
                "prompts.source = {:?}, but the run is class-conditional (use \"classes\")",
                p.source
            ))),
            _ => Ok(chosen),
        }
    }

    /// Whether prompts are encoded at evaluation time (the run's text encoder is needed).
    pub fn encodes_text(self) -> bool {
        self == Self::Coco
    }
}

/// The conditioning of `N` samples.
#[derive(Debug)]
pub struct EvalConditions {
    pub source: PromptSource,
    pub cond: CondInput,
    /// Caption of each sample, for CLIP score; `None` when the val split stores embeddings only.
    pub captions: Option<Vec<String>>,
    /// Class of each sample's prompt, i64 `[N]` on the CPU, when known.
    pub labels: Option<Tensor>,
    /// The images the prompts describe (COCO), u8 `[N', 3, R, R]`, and a description: the FID
    /// reference replacing the held-out one.
    pub reference: Option<(Tensor, String)>,
    pub description: String,
}

/// `rows[i mod rows.len()]` for `i < n`.
fn cycled(rows: usize, n: i64) -> Vec<i64> {
    (0..n).map(|i| i % rows as i64).collect()
}

/// The conditions of `n` samples of `run` under `c`.
pub fn eval_conditions(run: &LoadedRun, c: &EvalConfig, n: i64) -> Result<EvalConditions> {
    let source = PromptSource::resolve(&c.prompts, run.data.cond_source())?;
    match source {
        PromptSource::Classes => {
            let classes = run.data.classes();
            let labels = Tensor::f_arange(n, (Kind::Int64, Device::Cpu))?.f_remainder(classes)?;
            let names = run.data.class_names();
            let captions = Vec::<i64>::try_from(&labels)?
                .iter()
                .map(|&l| c.clip.caption_for(&names[l as usize]))
                .collect();
            Ok(EvalConditions {
                source,
                cond: CondInput::Labels(labels.shallow_clone()),
                captions: Some(captions),
                labels: Some(labels),
                reference: None,
                description: format!("labels i mod {classes}"),
            })
        }
        PromptSource::Val => {
            let v = run.data.held_out_len().min(n as usize);
            if v == 0 {
                return Err(EvalError::Invalid(
                    "the run's data has no val split to take prompts from".into(),
                ));
            }
            let (_, cond) = run.data.held_out(v, Device::Cpu)?;
            let rows = cycled(v, n);
            let cond = cond.select(&rows)?;
            let captions = match &cond {
                CondInput::Text(t) => t.captions.clone(),
                CondInput::Labels(_) => None,
            };
            let labels = match run.data.held_out_labels(v)? {
                Some(l) => Some(Tensor::f_from_slice(
                    &rows.iter().map(|&r| l[r as usize]).collect::<Vec<_>>(),
                )?),
                None => None,
            };
            Ok(EvalConditions {
                source,
                cond,
                captions,
                labels,
                reference: None,
                description: format!("captions of the first {v} val samples, cycled"),
            })
        }
        PromptSource::Coco => {
            let p = &c.prompts;
            let set = read_coco(
                Path::new(&p.coco_captions),
                Path::new(&p.coco_images),
                n as usize,
            )?;
            let rows = cycled(set.len(), n);
            let captions: Vec<String> = rows
                .iter()
                .map(|&r| set[r as usize].caption.clone())
                .collect();
            let images = reference_images(&set, run.data.resolution() as usize)?;
            let what = format!(
                "{} COCO images of {} with their first captions",
                set.len(),
                p.coco_captions
            );
            Ok(EvalConditions {
                source,
                cond: CondInput::Text(TextBatch {
                    captions: Some(captions.clone()),
                    embedding: None,
                }),
                captions: Some(captions),
                labels: None,
                reference: Some((images, what.clone())),
                description: what,
            })
        }
    }
}
