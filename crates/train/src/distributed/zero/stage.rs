//! The ZeRO stage of a run (`train.zero_stage`): which part of the training state the
//! data-parallel ranks split between them instead of each holding all of it.

use crate::{Result, TrainError};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ZeroStage {
    /// 0: every rank holds the whole state (plain data parallelism).
    #[default]
    Replicated,
    /// 1: AdamW's moments are split over the ranks.
    Optimizer,
    /// 2: the gradients too (reduce-scattered into the shards); the full fp32 weights stay on
    /// every rank.
    Gradients,
}

impl ZeroStage {
    /// `0`, `1` or `2`; `option` names the setting in the error.
    pub fn parse(option: &str, s: &str) -> Result<Self> {
        match s {
            "0" => Ok(Self::Replicated),
            "1" => Ok(Self::Optimizer),
            "2" => Ok(Self::Gradients),
            _ => Err(TrainError::Invalid(format!(
                "{option} `{s}`: expected 0, 1 or 2"
            ))),
        }
    }

    pub fn number(self) -> u32 {
        match self {
            Self::Replicated => 0,
            Self::Optimizer => 1,
            Self::Gradients => 2,
        }
    }

    pub fn is_replicated(&self) -> bool {
        *self == Self::Replicated
    }
}

/// Written as the stage number, as DeepSpeed's `zero_optimization.stage`.
impl Serialize for ZeroStage {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_u32(self.number())
    }
}

impl<'de> Deserialize<'de> for ZeroStage {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let n = i64::deserialize(d)?;
        Self::parse("train.zero_stage", &n.to_string()).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_three_stages_and_names_a_bad_one() {
        assert_eq!(
            ZeroStage::parse("--zero", "2").unwrap(),
            ZeroStage::Gradients
        );
        let e = ZeroStage::parse("--zero", "3").unwrap_err().to_string();
        assert!(e.contains("--zero `3`"), "{e}");
        for s in [
            ZeroStage::Replicated,
            ZeroStage::Optimizer,
            ZeroStage::Gradients,
        ] {
            let text = serde_json::to_string(&s).unwrap();
            assert_eq!(text, s.number().to_string());
            assert_eq!(serde_json::from_str::<ZeroStage>(&text).unwrap(), s);
        }
        let e = serde_json::from_str::<ZeroStage>("4")
            .unwrap_err()
            .to_string();
        assert!(e.contains("train.zero_stage `4`"), "{e}");
    }
}
