use std::fmt;
use std::path::PathBuf;

use thiserror::Error;

/// One invalid value: the dotted key and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub key: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "key `{}`: {}", self.key, self.message)
        }
    }
}

fn list(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| format!("\n  - {p}"))
        .collect::<String>()
}

/// Why a config could not be loaded. Every variant names the file it concerns.
#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot read config {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: not valid TOML: {message}", path.display())]
    Syntax { path: PathBuf, message: String },
    #[error("bad override `{arg}`: {message}")]
    Override { arg: String, message: String },
    #[error("{}: {problem}", path.display())]
    Schema { path: PathBuf, problem: Problem },
    #[error("{}: invalid config:{}", path.display(), list(problems))]
    Invalid {
        path: PathBuf,
        problems: Vec<Problem>,
    },
}

impl ConfigError {
    /// The keys this error is about (empty for read and syntax errors).
    pub fn keys(&self) -> Vec<&str> {
        match self {
            ConfigError::Schema { problem, .. } => vec![problem.key.as_str()],
            ConfigError::Invalid { problems, .. } => {
                problems.iter().map(|p| p.key.as_str()).collect()
            }
            _ => Vec::new(),
        }
    }
}
