//! The attention-diagnostics hook (`logging.attention_every`): every N steps, each block's
//! largest attention logit and mean attention entropy (`flowscale_models::attention_stats`) on
//! a fixed probe batch, to TensorBoard (`attention/max_logit/block_<i>`,
//! `attention/entropy/block_<i>`) and metrics.jsonl (kind `attention`).
//!
//! The probe is the first [`PROBE_SAMPLES`] validation samples with their fixed validation
//! noise at [`PROBE_T_EQ`], conditioned on everything (no dropout), through the raw weights. It
//! draws no random number, so a run with the hook on trains bit-identically to one without.
//! Rank 0 alone computes it: the diagnostic forward has no collective.

use super::Trainer;
use crate::error::Result;
use serde_json::{json, Map};

/// Validation samples in the probe batch (fewer when the set is smaller).
pub(super) const PROBE_SAMPLES: usize = 4;

/// The probe's noise level, RF-equivalent time (equal log-SNR across families): mid-way, where
/// both the noise and the image shape the attention.
pub(super) const PROBE_T_EQ: f64 = 0.5;

impl Trainer {
    /// Computes and logs the attention statistics of the current raw weights (rank 0).
    pub(super) fn log_attention(&mut self) -> Result<()> {
        if !self.is_main() {
            return Ok(());
        }
        let step = self.state.step;
        let n = PROBE_SAMPLES.min(self.validation.len()) as i64;
        let x0 = self.validation.x0.f_narrow(0, 0, n)?;
        let noise = self.validation.noise.f_narrow(0, 0, n)?;
        let cond_input = self.validation.cond.narrow(0, n)?;
        let (lo, hi) = self.formulation.validation_t_eq_range();
        let t = self
            .formulation
            .path()
            .t_from_t_eq(PROBE_T_EQ.clamp(lo, hi));
        let stats = {
            let _no_grad = tch::no_grad_guard();
            let batch = self
                .formulation
                .training_batch_with(&x0, &noise, &vec![t; n as usize])?;
            let cond = self.model.encode_all(&cond_input)?;
            self.model
                .attention_stats(&batch.net_input, &batch.time_input, &cond)?
        };
        let (Some(tb), Some(metrics)) = (self.tb.as_mut(), self.metrics.as_mut()) else {
            return Ok(());
        };
        let mut fields = Map::new();
        for (i, s) in stats.iter().enumerate() {
            for (name, value) in [("max_logit", s.max_logit), ("entropy", s.entropy)] {
                let tag = format!("attention/{name}/block_{i}");
                fields.insert(tag.replace('/', "_"), json!(value));
                tb.scalar(&tag, value, step as i64)?;
            }
        }
        metrics.write(step, "attention", fields)?;
        tb.flush()
    }
}
