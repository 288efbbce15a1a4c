//! Attention diagnostics (issue #22): per block, the largest attention logit and the mean
//! entropy of the attention distributions. Growing logits are the instability SD3 removes with
//! QK-norm: the softmax saturates (entropy towards 0) and bf16 training diverges.
//!
//! The statistics come from [`crate::Backbone::forward_with_attention_stats`], a separate forward
//! that forms the logits explicitly; the training forward keeps its fused SDPA.

use crate::error::Result;
use tch::{Kind, Tensor};

/// The attention statistics of one joint block.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AttentionStats {
    /// The largest `q·k / sqrt(head_dim)` (after QK-norm, if any) over the batch, heads, queries
    /// and keys.
    pub max_logit: f64,
    /// The entropy in nats of each softmax row, averaged over the batch, heads and queries. The
    /// queries are all tokens of the joint sequence, image and context, since both attend in the
    /// one softmax (the pre-only last block computes context rows too, then discards them).
    pub entropy: f64,
}

/// The statistics of scaled logits `[B, heads, queries, keys]`, computed in at least fp32.
pub fn logit_stats(logits: &Tensor) -> Result<AttentionStats> {
    let kind = stat_kind(logits.kind());
    let logits = logits.f_to_kind(kind)?;
    let max_logit = logits.f_max()?.f_double_value(&[])?;
    // H = -sum p log p with log p from log_softmax: finite for every finite logit, including
    // rows where some probabilities underflow to zero.
    let log_p = logits.f_log_softmax(-1, kind)?;
    let per_row = log_p
        .f_exp()?
        .f_mul(&log_p)?
        .f_sum_dim_intlist(Some([-1i64].as_slice()), false, kind)?
        .f_neg()?;
    let entropy = per_row.f_mean(kind)?.f_double_value(&[])?;
    Ok(AttentionStats { max_logit, entropy })
}

/// fp32 for the half-precision kinds (a bf16 logit has three significant digits), else as is.
pub(crate) fn stat_kind(kind: Kind) -> Kind {
    match kind {
        Kind::Half | Kind::BFloat16 => Kind::Float,
        k => k,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    fn logits(values: &[f64], shape: [i64; 4]) -> Tensor {
        Tensor::from_slice(values)
            .to_kind(Kind::Double)
            .reshape(shape)
    }

    #[test]
    fn equal_logits_give_the_uniform_entropy_ln_l() {
        let l = 7;
        let t = Tensor::full([2, 3, 5, l], 1.25, (Kind::Float, Device::Cpu));
        let s = logit_stats(&t).unwrap();
        assert!((s.max_logit - 1.25).abs() < 1e-7);
        assert!((s.entropy - (l as f64).ln()).abs() < 1e-6, "{s:?}");
    }

    #[test]
    fn one_dominant_logit_gives_entropy_near_zero() {
        let s = logit_stats(&logits(&[0.0, 60.0, 0.0, 0.0], [1, 1, 1, 4])).unwrap();
        assert_eq!(s.max_logit, 60.0);
        assert!(s.entropy >= 0.0 && s.entropy < 1e-20, "{s:?}");
    }

    #[test]
    fn known_rows_give_their_entropies_and_the_global_max() {
        // Row 1: logits (0, ln 2) -> p = (1/3, 2/3). Row 2: equal -> p = (1/2, 1/2). Rows in
        // different heads and batch entries, so the mean runs over both.
        let ln2 = 2f64.ln();
        let t = logits(&[0.0, ln2, -3.0, -3.0], [2, 1, 1, 2]);
        let s = logit_stats(&t).unwrap();
        let h1 = -(1.0 / 3.0 * (1.0f64 / 3.0).ln() + 2.0 / 3.0 * (2.0f64 / 3.0).ln());
        let h2 = ln2;
        assert!((s.entropy - (h1 + h2) / 2.0).abs() < 1e-12, "{s:?}");
        assert_eq!(s.max_logit, ln2);
    }

    #[test]
    fn half_precision_logits_are_summarised_in_fp32() {
        let t = Tensor::full([1, 1, 2, 3], 0.5, (Kind::BFloat16, Device::Cpu));
        let s = logit_stats(&t).unwrap();
        assert!((s.entropy - 3f64.ln()).abs() < 1e-6, "{s:?}");
    }
}
