//! Learning rate per step: linear warm-up from 0, then constant (the paper) or cosine decay to
//! `min_lr` at the last step.

use crate::config::LrSchedule;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LrScheduler {
    pub peak: f64,
    pub warmup_steps: u64,
    pub total_steps: u64,
    pub kind: LrSchedule,
    pub min_lr: f64,
}

impl LrScheduler {
    /// The rate of optimiser step `step` (0-based): step 0 of a 100-step warm-up uses peak/100.
    pub fn lr(&self, step: u64) -> f64 {
        if step < self.warmup_steps {
            return self.peak * (step + 1) as f64 / self.warmup_steps as f64;
        }
        match self.kind {
            LrSchedule::Constant => self.peak,
            LrSchedule::Cosine => {
                let span = self.total_steps.saturating_sub(self.warmup_steps).max(1) as f64;
                let progress = ((step - self.warmup_steps) as f64 / span).min(1.0);
                let cos = 0.5 * (1.0 + (std::f64::consts::PI * progress).cos());
                self.min_lr + (self.peak - self.min_lr) * cos
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_then_cosine_reaches_the_floor() {
        let s = LrScheduler {
            peak: 1.0,
            warmup_steps: 10,
            total_steps: 110,
            kind: LrSchedule::Cosine,
            min_lr: 0.1,
        };
        assert!((s.lr(0) - 0.1).abs() < 1e-12);
        assert!((s.lr(9) - 1.0).abs() < 1e-12);
        assert!((s.lr(10) - 1.0).abs() < 1e-12);
        assert!((s.lr(60) - 0.55).abs() < 1e-12);
        assert!((s.lr(110) - 0.1).abs() < 1e-12);
        let c = LrScheduler {
            kind: LrSchedule::Constant,
            ..s
        };
        assert_eq!(c.lr(5000), 1.0);
    }
}
