//! `[init]`: a run that starts from another run's weights (SD3's second stage: the 256² model
//! continues at higher resolution, with QK-norm added). Fresh optimiser, step 0; the model may
//! differ from the source's in the ways the run layer's key report allows
//! (`crate::run::init`). Part of the config hash like every key, and read only when a run
//! starts fresh: a resumed run continues from its own checkpoint.

use super::weight_choice::WeightChoice;
use super::{Validate, Validator};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InitConfig {
    /// A run directory (its newest checkpoint) or one checkpoint folder (`<run>/checkpoints/
    /// step-N`, or a reconstructed post-hoc EMA's folder).
    pub from: String,
    /// Which weight set: `raw`, `ema` (the source's only EMA), `ema:DECAY`, `phema` or
    /// `phema:STD`, as `--weights` of eval and generate.
    pub weights: String,
}

impl InitConfig {
    /// The parsed `weights` (checked when the config loaded).
    pub fn weight_choice(&self) -> Result<WeightChoice, String> {
        self.weights.parse()
    }
}

impl Validate for InitConfig {
    fn validate(&self, v: &mut Validator) {
        if self.from.trim().is_empty() {
            v.fail("from", "must name a run directory or a checkpoint folder");
        }
        if let Err(e) = self.weight_choice() {
            v.fail("weights", e);
        }
    }
}
