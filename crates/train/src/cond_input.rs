//! What a batch is conditioned on before the conditioner sees it: class labels, or per-sample
//! text (caption strings, their precomputed embeddings, or both). The trainer, validation, the
//! sample grids, `flowscale eval` and `flowscale generate` pass this along unchanged, so class
//! and text runs share every code path but the conditioner.

use crate::error::{Result, TrainError};
use tch::{Device, Tensor};

/// Per-sample text of a batch.
#[derive(Debug)]
pub struct TextBatch {
    /// The captions (needed to encode on the fly; kept for caption files when present).
    pub captions: Option<Vec<String>>,
    /// Precomputed `context [B, T, D]` and `pooled [B, P]`, in their stored dtype.
    pub embedding: Option<(Tensor, Tensor)>,
}

#[derive(Debug)]
pub enum CondInput {
    /// i64 `[B]`.
    Labels(Tensor),
    Text(TextBatch),
}

impl CondInput {
    /// Samples in the batch.
    pub fn len(&self) -> i64 {
        match self {
            Self::Labels(l) => l.size().first().copied().unwrap_or(0),
            Self::Text(t) => match (&t.embedding, &t.captions) {
                (Some((c, _)), _) => c.size()[0],
                (None, Some(c)) => c.len() as i64,
                (None, None) => 0,
            },
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Samples `start..start + len`.
    pub fn narrow(&self, start: i64, len: i64) -> Result<Self> {
        if start < 0 || len < 0 || start + len > self.len() {
            return Err(TrainError::Invalid(format!(
                "conditioning rows {start}..{} of a batch of {}",
                start + len,
                self.len()
            )));
        }
        Ok(match self {
            Self::Labels(l) => Self::Labels(l.f_narrow(0, start, len)?),
            Self::Text(t) => Self::Text(TextBatch {
                captions: t
                    .captions
                    .as_ref()
                    .map(|c| c[start as usize..(start + len) as usize].to_vec()),
                embedding: match &t.embedding {
                    Some((c, p)) => Some((c.f_narrow(0, start, len)?, p.f_narrow(0, start, len)?)),
                    None => None,
                },
            }),
        })
    }

    /// Samples at `rows`, in that order.
    pub fn select(&self, rows: &[i64]) -> Result<Self> {
        let n = self.len();
        if let Some(r) = rows.iter().find(|&&r| r < 0 || r >= n) {
            return Err(TrainError::Invalid(format!(
                "conditioning row {r} of a batch of {n}"
            )));
        }
        let index = |d: Device| Tensor::f_from_slice(rows)?.f_to_device(d);
        Ok(match self {
            Self::Labels(l) => Self::Labels(l.f_index_select(0, &index(l.device())?)?),
            Self::Text(t) => Self::Text(TextBatch {
                captions: t
                    .captions
                    .as_ref()
                    .map(|c| rows.iter().map(|&r| c[r as usize].clone()).collect()),
                embedding: match &t.embedding {
                    Some((c, p)) => {
                        let i = index(c.device())?;
                        Some((c.f_index_select(0, &i)?, p.f_index_select(0, &i)?))
                    }
                    None => None,
                },
            }),
        })
    }

    /// The same batch with its tensors on `device` (captions stay on the host).
    pub fn to_device(&self, device: Device) -> Result<Self> {
        Ok(match self {
            Self::Labels(l) => Self::Labels(l.f_to_device(device)?),
            Self::Text(t) => Self::Text(TextBatch {
                captions: t.captions.clone(),
                embedding: match &t.embedding {
                    Some((c, p)) => Some((c.f_to_device(device)?, p.f_to_device(device)?)),
                    None => None,
                },
            }),
        })
    }

    /// A short description of sample `i` for caption files and logs: its label or caption.
    pub fn describe(&self, i: usize) -> String {
        match self {
            Self::Labels(l) => l.int64_value(&[i as i64]).to_string(),
            Self::Text(t) => t
                .captions
                .as_ref()
                .and_then(|c| c.get(i).cloned())
                .unwrap_or_else(|| format!("(embedded caption {i})")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Kind;

    fn text() -> CondInput {
        CondInput::Text(TextBatch {
            captions: Some(vec!["a".into(), "b".into(), "c".into()]),
            embedding: Some((
                Tensor::arange(3, (Kind::Float, Device::Cpu)).view([3, 1, 1]),
                Tensor::arange(3, (Kind::Float, Device::Cpu)).view([3, 1]),
            )),
        })
    }

    #[test]
    fn narrow_and_select_keep_captions_and_embeddings_aligned() {
        let t = text();
        assert_eq!(t.len(), 3);
        let CondInput::Text(n) = t.narrow(1, 2).unwrap() else {
            panic!()
        };
        assert_eq!(n.captions.unwrap(), vec!["b", "c"]);
        assert_eq!(n.embedding.unwrap().1.double_value(&[0, 0]), 1.0);
        let CondInput::Text(s) = t.select(&[2, 0]).unwrap() else {
            panic!()
        };
        assert_eq!(s.captions.unwrap(), vec!["c", "a"]);
        assert_eq!(s.embedding.unwrap().0.double_value(&[0, 0, 0]), 2.0);
        assert!(t.narrow(2, 2).is_err());
        assert!(t.select(&[3]).is_err());
        let l = CondInput::Labels(Tensor::from_slice(&[5i64, 6, 7]));
        assert_eq!(l.select(&[1]).unwrap().describe(0), "6");
    }
}
