//! Canonical names: `Display` prints them, [`Formulation::parse`] reads them.
//!
//! Canonical names print parameters with two decimals and ", " between them. Parsing accepts any
//! float and any spacing (and any letter case). A parsed name whose canonical form is one of the
//! 61 registry names resolves to the registry entry, so `rf/mode(1.29)` means the study's
//! `-1 + 5·2.75/6 = 1.2916…`: the name is a label, the registry holds the exact value. Use
//! [`Formulation::parse_literal`] to take the printed numbers at face value.

use crate::error::{FormulationError, Result};
use crate::formulation::Formulation;
use crate::registry::registry;
use std::fmt;
use std::str::FromStr;

/// The families, as templates, for error messages.
pub const FAMILIES: &str = "eps/linear, eps/cos, v/linear, v/cos, rf, rf/mode(s), \
rf/lognorm(m, s), rf/cosmap, edm(P_m, P_s), edm/rf, edm/cos";

/// A parameter with two decimals; never prints "-0.00".
fn param(x: f64) -> String {
    let s = format!("{x:.2}");
    if s == "-0.00" {
        "0.00".to_string()
    } else {
        s
    }
}

impl fmt::Display for Formulation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::EpsLinear => f.write_str("eps/linear"),
            Self::EpsCos => f.write_str("eps/cos"),
            Self::VLinear => f.write_str("v/linear"),
            Self::VCos => f.write_str("v/cos"),
            Self::Rf => f.write_str("rf"),
            Self::RfMode { scale } => write!(f, "rf/mode({})", param(scale)),
            Self::RfLogNorm { mean, std } => {
                write!(f, "rf/lognorm({}, {})", param(mean), param(std))
            }
            Self::RfCosMap => f.write_str("rf/cosmap"),
            Self::Edm { p_mean, p_std } => write!(f, "edm({}, {})", param(p_mean), param(p_std)),
            Self::EdmRf => f.write_str("edm/rf"),
            Self::EdmCos => f.write_str("edm/cos"),
        }
    }
}

/// Edit distance, for suggestions.
fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, &cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

fn normalise(name: &str) -> String {
    name.chars()
        .filter(|c| !c.is_whitespace())
        .flat_map(char::to_lowercase)
        .collect()
}

/// The closest registry names to `name` (up to 3), by edit distance without spaces.
pub fn closest_names(name: &str) -> Vec<String> {
    let key = normalise(name);
    let mut scored: Vec<(usize, String)> = registry()
        .iter()
        .map(|f| {
            let n = f.to_string();
            (levenshtein(&key, &normalise(&n)), n)
        })
        .collect();
    scored.sort_by(|x, y| x.0.cmp(&y.0).then_with(|| x.1.cmp(&y.1)));
    scored.into_iter().take(3).map(|(_, n)| n).collect()
}

fn parse_error(name: &str, reason: impl Into<String>) -> FormulationError {
    FormulationError::Parse {
        name: name.to_string(),
        reason: reason.into(),
        families: FAMILIES.to_string(),
        suggestions: closest_names(name).join(", "),
    }
}

fn parse_args(name: &str, args: Option<&str>, expected: usize) -> Result<Vec<f64>> {
    let args = args.ok_or_else(|| {
        parse_error(
            name,
            format!("expected {expected} parameter(s) in parentheses"),
        )
    })?;
    let values = args
        .split(',')
        .map(|a| {
            a.parse::<f64>()
                .ok()
                .filter(|v| v.is_finite())
                .ok_or_else(|| parse_error(name, format!("{a:?} is not a finite number")))
        })
        .collect::<Result<Vec<f64>>>()?;
    if values.len() != expected {
        return Err(parse_error(
            name,
            format!("expected {expected} parameter(s), got {}", values.len()),
        ));
    }
    Ok(values)
}

impl Formulation {
    /// Parses a name; canonical registry names resolve to the registry's exact parameters.
    pub fn parse(name: &str) -> Result<Self> {
        let literal = Self::parse_literal(name)?;
        let canonical = literal.to_string();
        Ok(registry()
            .into_iter()
            .find(|f| f.to_string() == canonical)
            .unwrap_or(literal))
    }

    /// Parses a name taking its numbers at face value.
    pub fn parse_literal(name: &str) -> Result<Self> {
        let key = normalise(name);
        let (head, args) = match key.find('(') {
            None => (key.as_str(), None),
            Some(open) => {
                let inner = key[open + 1..]
                    .strip_suffix(')')
                    .ok_or_else(|| parse_error(name, "missing closing parenthesis"))?;
                (&key[..open], Some(inner))
            }
        };
        let no_args = |f: Formulation| {
            if args.is_some() {
                Err(parse_error(name, format!("{f} takes no parameters")))
            } else {
                Ok(f)
            }
        };
        let f = match head {
            "eps/linear" => no_args(Self::EpsLinear)?,
            "eps/cos" => no_args(Self::EpsCos)?,
            "v/linear" => no_args(Self::VLinear)?,
            "v/cos" => no_args(Self::VCos)?,
            "rf" => no_args(Self::Rf)?,
            "rf/cosmap" => no_args(Self::RfCosMap)?,
            "edm/rf" => no_args(Self::EdmRf)?,
            "edm/cos" => no_args(Self::EdmCos)?,
            "rf/mode" => Self::RfMode {
                scale: parse_args(name, args, 1)?[0],
            },
            "rf/lognorm" => {
                let v = parse_args(name, args, 2)?;
                Self::RfLogNorm {
                    mean: v[0],
                    std: v[1],
                }
            }
            "edm" => {
                let v = parse_args(name, args, 2)?;
                Self::Edm {
                    p_mean: v[0],
                    p_std: v[1],
                }
            }
            _ => return Err(parse_error(name, "unknown family")),
        };
        f.validate().map_err(|e| parse_error(name, e.to_string()))
    }
}

impl FromStr for Formulation {
    type Err = FormulationError;
    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s)
    }
}
