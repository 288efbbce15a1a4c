//! The rows of a generation request as the conditioner's input: prompts for a text model, class
//! names or indices for a class run, each checked against what the model conditions on. Prompts
//! longer than a tokenizer reads are named on the warning channel (the encoders cut them
//! silently).

use super::data::Conditions;
use super::generator::Generator;
use crate::cond_input::{CondInput, TextBatch};
use crate::error::{Result, TrainError};
use crate::run::RunModel;
use std::collections::HashSet;
use tch::Tensor;

/// What the rows of the output show, one row per entry.
#[derive(Debug, Clone)]
pub enum RowRequest {
    /// Text prompts (text runs); an empty one is the unconditional sample.
    Prompts(Vec<String>),
    /// Class names (any case) or indices (class runs).
    Classes(Vec<String>),
}

/// The conditioner's input for each row, and how a reader names it.
#[derive(Debug)]
pub struct RowInputs {
    /// One sample per row.
    pub input: CondInput,
    /// The prompt or class name of each row.
    pub labels: Vec<String>,
    /// Rows whose conditioning is all zeros: empty prompts.
    pub blank: Vec<bool>,
    /// The negative prompt: guidance's unconditional input instead of zeros.
    pub negative: Option<String>,
}

impl RowInputs {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
}

/// A prompt that is empty or only whitespace: the unconditional sample.
pub fn is_blank(prompt: &str) -> bool {
    prompt.trim().is_empty()
}

/// The rows `request` asks for of `generator`; `negative` is the negative prompt (text models
/// only). Prompts cut by a tokenizer are reported through `warn`.
pub fn row_inputs(
    generator: &Generator,
    request: &RowRequest,
    negative: Option<&str>,
    warn: &mut dyn FnMut(&str),
) -> Result<RowInputs> {
    let model = &generator.model;
    let wanted = match request {
        RowRequest::Prompts(p) | RowRequest::Classes(p) => p,
    };
    if wanted.is_empty() {
        return Err(TrainError::Invalid(
            "nothing to generate: give at least one prompt (--prompt, --prompts) or class \
             (--class)"
                .into(),
        ));
    }
    match (generator.data.conditions(), request) {
        (Conditions::Classes(names), RowRequest::Classes(classes)) => {
            if negative.is_some() {
                return Err(TrainError::Invalid(
                    "a negative prompt needs a text run; this run conditions on class labels"
                        .into(),
                ));
            }
            let indices = classes
                .iter()
                .map(|c| class_index(names, c))
                .collect::<Result<Vec<i64>>>()?;
            Ok(RowInputs {
                input: CondInput::Labels(Tensor::f_from_slice(&indices)?),
                labels: indices.iter().map(|&i| names[i as usize].clone()).collect(),
                blank: vec![false; indices.len()],
                negative: None,
            })
        }
        (Conditions::Classes(names), RowRequest::Prompts(_)) => Err(TrainError::Invalid(format!(
            "this run conditions on class labels, not prompts: choose classes with --class \
             NAME|INDEX ({})",
            known(names)
        ))),
        (Conditions::Text, RowRequest::Classes(_)) => Err(TrainError::Invalid(
            "this run conditions on text (each sample's caption), not classes: give prompts \
             with --prompt TEXT or --prompts FILE"
                .into(),
        )),
        (Conditions::Text, RowRequest::Prompts(prompts)) => {
            let mut seen = HashSet::new();
            for p in prompts.iter().map(String::as_str).chain(negative) {
                if seen.insert(p) {
                    warn_if_cut(model, p, warn)?;
                }
            }
            Ok(RowInputs {
                input: CondInput::Text(TextBatch {
                    captions: Some(prompts.clone()),
                    embedding: None,
                }),
                labels: prompts.clone(),
                blank: prompts.iter().map(|p| is_blank(p)).collect(),
                negative: negative.map(str::to_owned),
            })
        }
    }
}

/// The index of class `wanted`: a name (exact, else any case), else an index into `names`.
fn class_index(names: &[String], wanted: &str) -> Result<i64> {
    let by_name = names
        .iter()
        .position(|n| n == wanted)
        .or_else(|| names.iter().position(|n| n.eq_ignore_ascii_case(wanted)));
    if let Some(i) = by_name {
        return Ok(i as i64);
    }
    match wanted.trim().parse::<usize>() {
        Ok(i) if i < names.len() => Ok(i as i64),
        Ok(i) => Err(TrainError::Invalid(format!(
            "class index {i} is out of range: the run has {} classes ({})",
            names.len(),
            known(names)
        ))),
        Err(_) => Err(TrainError::Invalid(format!(
            "no class {wanted:?}; the run's classes are {}",
            known(names)
        ))),
    }
}

/// `0 "T-shirt/top", 1 "Trouser", ...`.
fn known(names: &[String]) -> String {
    names
        .iter()
        .enumerate()
        .map(|(i, n)| format!("{i} {n:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Reports each source that cuts `prompt`, naming the prompt by its first 40 characters.
fn warn_if_cut(model: &RunModel, prompt: &str, warn: &mut dyn FnMut(&str)) -> Result<()> {
    let Some(encoder) = model.text_encoder() else {
        return Ok(());
    };
    if is_blank(prompt) {
        // Not encoded at all: its conditioning is zeros.
        return Ok(());
    }
    for c in encoder.token_counts(prompt)? {
        let head: String = prompt.chars().take(40).collect();
        let more = if head.len() < prompt.len() { "..." } else { "" };
        if c.truncated() {
            warn(&format!(
                "prompt \"{head}{more}\" has {} {} tokens, more than the {} it reads: truncated",
                c.tokens, c.source, c.limit
            ));
        } else if c.context_cut() {
            warn(&format!(
                "prompt \"{head}{more}\" has {} {} tokens; the context keeps the first {} (the \
                 pooled embedding reads them all)",
                c.tokens, c.source, c.context
            ));
        }
    }
    Ok(())
}
