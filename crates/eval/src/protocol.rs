//! Which items of the paper's evaluation protocol an evaluation does differently
//! (docs/protocol.md section 4). flowscale's defaults are what runs offline on the data a run
//! has, not the paper's protocol: FID on Inception-v3 features against the run's held-out split,
//! prompts from the run's classes or captions. Each difference is printed when the evaluation
//! starts and recorded in `results.json` (`protocol_substitutions`), and a sweep report lists
//! them, so a number is never mistaken for one measured the paper's way.

use crate::conditions::PromptSource;
use crate::config::{default_settings, EvalConfig};
use crate::error::{EvalError, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// One protocol item done otherwise than in the paper.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Substitution {
    /// The item, named by the config key that chooses it.
    pub item: String,
    /// What the paper does.
    pub paper: String,
    /// What this evaluation does.
    pub used: String,
}

impl std::fmt::Display for Substitution {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {} (paper: {})", self.item, self.used, self.paper)
    }
}

/// The key under which `results.json` lists them.
pub const RESULTS_KEY: &str = "protocol_substitutions";

/// The substitutions of an evaluation with config `c` whose prompts come from `prompts`.
pub fn substitutions(c: &EvalConfig, prompts: PromptSource) -> Vec<Substitution> {
    let mut out = Vec::new();
    let mut differs = |item: &str, paper: &str, used: String| {
        out.push(Substitution {
            item: item.into(),
            paper: paper.into(),
            used,
        })
    };
    match prompts {
        PromptSource::Coco => {}
        PromptSource::Classes => differs(
            "prompts.source",
            "COCO-2014 val captions",
            format!("class captions (`{}`)", c.clip.caption),
        ),
        PromptSource::Val => differs(
            "prompts.source",
            "COCO-2014 val captions",
            "the captions of the run's held-out split".into(),
        ),
    }
    const CLIP_L14: &str = "CLIP L/14 image features";
    if !c.fid.enabled {
        differs("fid.enabled", "FID on CLIP L/14 features", "no FID".into());
    } else {
        if c.fid.feature_network == "inception" {
            differs(
                "fid.feature_network",
                CLIP_L14,
                "Inception-v3 pool3 (TF FID weights)".into(),
            );
        }
        // A COCO evaluation takes its reference from the COCO images.
        if prompts != PromptSource::Coco {
            let used = if c.fid.reference == "held-out" {
                format!(
                    "the run's held-out split (up to {} images)",
                    c.fid.reference_n
                )
            } else {
                format!("the images of {}", c.fid.reference)
            };
            differs("fid.reference", "COCO-2014 val images", used);
        }
    }
    if c.clip.model.is_empty() {
        differs(
            "clip.model",
            "CLIP score with CLIP L/14",
            "no CLIP score (no clip.model)".into(),
        );
    }
    if c.sampling.n != 1000 {
        differs(
            "sampling.n",
            "1000 samples per setting",
            format!("{} samples per setting", c.sampling.n),
        );
    }
    if c.sampling.settings != default_settings() {
        let list: Vec<String> = c
            .sampling
            .settings
            .iter()
            .map(|s| format!("{} steps at CFG {}", s.steps, s.cfg))
            .collect();
        differs(
            "sampling.settings",
            "Euler, 50 steps at CFG 1, 2.5, 5 and 5, 10, 25 steps at CFG 5",
            list.join(", "),
        );
    }
    let has = |w: &str| {
        c.eval
            .weights
            .iter()
            .any(|x| x == w || x.starts_with("ema:") && w == "ema")
    };
    if !(has("raw") && has("ema")) {
        differs(
            "eval.weights",
            "EMA and raw weights",
            c.eval.weights.join(", "),
        );
    }
    out
}

/// The substitutions a `results.json` records; `None` for results written before they were
/// recorded (so nothing can be said about them).
pub fn read_substitutions(results_json: &Path) -> Result<Option<Vec<Substitution>>> {
    let doc = crate::result_rows::read_json(results_json)?;
    substitutions_of_json(&doc, &results_json.display().to_string())
}

/// [`read_substitutions`] of a parsed `results.json` (`what` names it in errors).
pub fn substitutions_of_json(
    doc: &serde_json::Value,
    what: &str,
) -> Result<Option<Vec<Substitution>>> {
    match doc.get(RESULTS_KEY) {
        None => Ok(None),
        Some(v) => Vec::<Substitution>::deserialize(v)
            .map(Some)
            .map_err(|e| EvalError::Invalid(format!("{what}: {RESULTS_KEY}: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(c: &EvalConfig, p: PromptSource) -> Vec<String> {
        substitutions(c, p).into_iter().map(|s| s.item).collect()
    }

    #[test]
    fn the_defaults_name_every_item_they_substitute() {
        let c = EvalConfig::default();
        assert_eq!(
            items(&c, PromptSource::Classes),
            [
                "prompts.source",
                "fid.feature_network",
                "fid.reference",
                "clip.model"
            ]
        );
        let s = substitutions(&c, PromptSource::Classes);
        assert!(s[1].to_string().contains("Inception-v3") && s[1].paper.contains("CLIP L/14"));
        assert!(s[2].used.contains("held-out split"), "{}", s[2]);
    }

    #[test]
    fn the_papers_choices_substitute_nothing_and_each_change_is_named() {
        let mut c = EvalConfig::default();
        c.fid.feature_network = "clip".into();
        c.clip.model = "clip-vit-large-patch14".into();
        assert!(
            items(&c, PromptSource::Coco).is_empty(),
            "{:?}",
            items(&c, PromptSource::Coco)
        );
        c.sampling.n = 50;
        c.sampling.settings.truncate(2);
        c.eval.weights = vec!["ema:0.99".into()];
        c.fid.enabled = false;
        assert_eq!(
            items(&c, PromptSource::Val),
            [
                "prompts.source",
                "fid.enabled",
                "sampling.n",
                "sampling.settings",
                "eval.weights"
            ]
        );
    }

    #[test]
    fn results_without_the_record_read_as_unknown() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("results.json");
        std::fs::write(&p, r#"{"rows": []}"#).unwrap();
        assert_eq!(read_substitutions(&p).unwrap(), None);
        let s = substitutions(&EvalConfig::default(), PromptSource::Classes);
        std::fs::write(
            &p,
            serde_json::json!({ RESULTS_KEY: s, "rows": [] }).to_string(),
        )
        .unwrap();
        assert_eq!(read_substitutions(&p).unwrap(), Some(s));
    }
}
