//! Range and consistency checks that serde's types cannot express, collected so a user sees every
//! problem of a config at once.

use super::Problem;

/// A config section that can check its own values.
pub trait Validate {
    /// Record every problem under `v`, with keys relative to `v`'s current prefix.
    fn validate(&self, v: &mut Validator);
}

/// Collects problems with their full dotted keys.
#[derive(Debug, Default)]
pub struct Validator {
    prefix: Vec<String>,
    problems: Vec<Problem>,
}

impl Validator {
    pub fn new() -> Self {
        Self::default()
    }

    /// Validate a nested section under `name`.
    pub fn section(&mut self, name: &str, section: &impl Validate) {
        self.prefix.push(name.to_owned());
        section.validate(self);
        self.prefix.pop();
    }

    fn key(&self, field: &str) -> String {
        let mut parts = self.prefix.clone();
        parts.push(field.to_owned());
        parts.join(".")
    }

    /// Record a problem with `field` (relative to the current section).
    pub fn fail(&mut self, field: &str, message: impl Into<String>) {
        let key = self.key(field);
        self.problems.push(Problem {
            key,
            message: message.into(),
        });
    }

    /// `value` must be finite and `> min` (`inclusive: >= min`).
    pub fn at_least(&mut self, field: &str, value: f64, min: f64, inclusive: bool) {
        let ok = value.is_finite() && if inclusive { value >= min } else { value > min };
        if !ok {
            let op = if inclusive { ">=" } else { ">" };
            self.fail(field, format!("must be finite and {op} {min}, got {value}"));
        }
    }

    /// `value` must lie in `[lo, hi]` (or `[lo, hi)` when `hi_open`).
    pub fn in_range(&mut self, field: &str, value: f64, lo: f64, hi: f64, hi_open: bool) {
        let ok = value.is_finite() && value >= lo && if hi_open { value < hi } else { value <= hi };
        if !ok {
            let close = if hi_open { ")" } else { "]" };
            self.fail(field, format!("must be in [{lo}, {hi}{close}, got {value}"));
        }
    }

    /// An integer count that must lie in `[min, max]`.
    pub fn count_in(&mut self, field: &str, value: u64, min: u64, max: u64) {
        if !(min..=max).contains(&value) {
            self.fail(field, format!("must be in [{min}, {max}], got {value}"));
        }
    }

    /// An integer count that must be at least `min`.
    pub fn count_at_least(&mut self, field: &str, value: u64, min: u64) {
        if value < min {
            self.fail(field, format!("must be at least {min}, got {value}"));
        }
    }

    pub fn into_problems(self) -> Vec<Problem> {
        self.problems
    }
}
