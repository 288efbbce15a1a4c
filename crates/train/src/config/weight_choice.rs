//! Which weight set of a checkpoint a user names: `--weights` of eval, generate and export, and
//! `init.weights` of a run initialised from another run.

#[derive(Debug, Clone, PartialEq)]
pub enum WeightChoice {
    Raw,
    /// An EMA; `None` = the run's only EMA.
    Ema(Option<f64>),
    /// A power-function EMA by relative std (`crate::posthoc`); `None` = the checkpoint's only
    /// one (a reconstructed checkpoint holds exactly one).
    PowerEma(Option<f64>),
}

impl std::str::FromStr for WeightChoice {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "raw" => Ok(Self::Raw),
            "ema" => Ok(Self::Ema(None)),
            "phema" => Ok(Self::PowerEma(None)),
            _ => {
                let value = |prefix: &str| s.strip_prefix(prefix).and_then(|d| d.parse().ok());
                if let Some(d) = value("ema:") {
                    Ok(Self::Ema(Some(d)))
                } else if let Some(std) = value("phema:") {
                    Ok(Self::PowerEma(Some(std)))
                } else {
                    Err(format!(
                        "weights must be raw, ema, ema:DECAY, phema or phema:STD, got {s:?}"
                    ))
                }
            }
        }
    }
}
