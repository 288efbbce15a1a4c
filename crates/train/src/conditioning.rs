//! Conditioning providers: what turns a batch's [`CondInput`] (labels or per-sample text) into
//! the backbone's context tokens `[B, L, D]` and pooled vector `[B, P]`.
//!
//! The interface is the one text encoders plug into: a provider has independently droppable
//! *sources* (SD3: CLIP-L, CLIP-G, T5), and classifier-free-guidance dropout replaces each
//! source's contribution by zeros with its own probability. Dropped-to-zero is also what the
//! sampler uses as the unconditional input, as in SD3.

use crate::cond_input::CondInput;
use crate::error::{Result, TrainError};
use tch::nn::{Init, Path};
use tch::{Kind, Tensor};

/// Context tokens and pooled vector of a batch.
#[derive(Debug)]
pub struct Conditioning {
    /// `[B, L, D]`.
    pub context: Tensor,
    /// `[B, P]`.
    pub pooled: Tensor,
}

impl Conditioning {
    /// All-zero conditioning of the same shapes: the unconditional input.
    pub fn zeros_like(&self) -> Result<Self> {
        Ok(Self {
            context: self.context.f_zeros_like()?,
            pooled: self.pooled.f_zeros_like()?,
        })
    }
}

/// A conditioning provider.
pub trait ConditioningProvider {
    /// Names of the independently droppable sources, in keep-mask order.
    fn source_names(&self) -> Vec<String>;
    /// Encodes a batch; `keep` holds one float `[B]` mask per source (1 keep, 0 drop).
    fn encode(&self, input: &CondInput, keep: &[Tensor]) -> Result<Conditioning>;
    /// The frozen text encoder that turns per-sample text into conditioning, when one is loaded:
    /// inference reads its tokenizers to say which prompts it cuts.
    fn text_encoder(&self) -> Option<&flowscale_encoders::text::TextEncoder> {
        None
    }
}

/// The i64 `[B]` labels of a class-conditioned batch.
pub fn labels_of(input: &CondInput) -> Result<&Tensor> {
    match input {
        CondInput::Labels(l) if l.kind() == Kind::Int64 && l.dim() == 1 => Ok(l),
        CondInput::Labels(l) => Err(TrainError::Invalid(format!(
            "labels must be i64 [B], got {:?} {:?}",
            l.kind(),
            l.size()
        ))),
        CondInput::Text(_) => Err(TrainError::Invalid(
            "this run conditions on classes, the batch carries captions; set \
             conditioning.provider = \"text\" to train on captions"
                .into(),
        )),
    }
}

/// Learned class embeddings: class -> `tokens` context tokens of width `context_dim` and a pooled
/// vector of width `pooled_dim`. One source (context and pooled drop together, as CLIP's do).
/// Parameters live at `<path>.context` `[classes, tokens·context_dim]` and `<path>.pooled`
/// `[classes, pooled_dim]`.
#[derive(Debug)]
pub struct ClassEmbedding {
    context: Tensor,
    pooled: Tensor,
    tokens: i64,
    context_dim: i64,
}

impl ClassEmbedding {
    /// Embeddings initialised N(0, 1), the scale of normalised encoder outputs.
    pub fn new(
        path: &Path,
        classes: i64,
        tokens: i64,
        context_dim: i64,
        pooled_dim: i64,
    ) -> Result<Self> {
        let normal = Init::Randn {
            mean: 0.0,
            stdev: 1.0,
        };
        Ok(Self {
            context: path.f_var("context", &[classes, tokens * context_dim], normal)?,
            pooled: path.f_var("pooled", &[classes, pooled_dim], normal)?,
            tokens,
            context_dim,
        })
    }

    pub fn classes(&self) -> i64 {
        self.pooled.size()[0]
    }
}

impl ConditioningProvider for ClassEmbedding {
    fn source_names(&self) -> Vec<String> {
        vec!["class".into()]
    }

    fn encode(&self, input: &CondInput, keep: &[Tensor]) -> Result<Conditioning> {
        if keep.len() != 1 {
            return Err(TrainError::Invalid(format!(
                "class conditioning has 1 source, got {} keep masks",
                keep.len()
            )));
        }
        let labels = labels_of(input)?;
        let b = labels.size()[0];
        let classes = self.classes();
        // Checked here only for host labels: reading device labels back would stall every
        // step, and the data layer has checked them on the host already.
        if b > 0 && labels.device() == tch::Device::Cpu {
            let (lo, hi) = (
                labels.f_min()?.int64_value(&[]),
                labels.f_max()?.int64_value(&[]),
            );
            if lo < 0 || hi >= classes {
                return Err(TrainError::Invalid(format!(
                    "labels must be in 0..{classes}, got {lo}..={hi}"
                )));
            }
        }
        let keep = keep[0].f_to_kind(self.pooled.kind())?.f_view([b, 1])?;
        let context = self
            .context
            .f_index_select(0, labels)?
            .f_mul(&keep)?
            .f_view([b, self.tokens, self.context_dim].as_slice())?;
        let pooled = self.pooled.f_index_select(0, labels)?.f_mul(&keep)?;
        Ok(Conditioning { context, pooled })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::nn::VarStore;
    use tch::Device;

    #[test]
    fn encodes_per_class_and_zeroes_dropped_samples() {
        let vs = VarStore::new(Device::Cpu);
        let emb = ClassEmbedding::new(&(vs.root() / "conditioner"), 3, 2, 4, 5).unwrap();
        let names: Vec<String> = vs.variables().into_keys().collect();
        assert!(names.contains(&"conditioner.context".to_string()));
        let labels = CondInput::Labels(Tensor::from_slice(&[2i64, 0, 2]));
        let keep = Tensor::from_slice(&[1.0f32, 1.0, 0.0]);
        let c = emb.encode(&labels, &[keep.shallow_clone()]).unwrap();
        assert_eq!(c.context.size(), vec![3, 2, 4]);
        assert_eq!(c.pooled.size(), vec![3, 5]);
        // Same class, same embedding; the dropped sample is exactly zero.
        assert!(c.context.get(0).equal(&emb.context.get(2).view([2, 4])));
        assert!(c.context.get(1).equal(&emb.context.get(0).view([2, 4])));
        assert_eq!(
            c.context.get(2).abs().sum(Kind::Float).double_value(&[]),
            0.0
        );
        assert_eq!(
            c.pooled.get(2).abs().sum(Kind::Float).double_value(&[]),
            0.0
        );
        assert!(c.pooled.get(1).equal(&emb.pooled.get(0)));
        assert!(emb.encode(&labels, &[]).is_err());
        // A label outside the table is named, not an index error deep in torch.
        let bad = CondInput::Labels(Tensor::from_slice(&[3i64, 0, 0]));
        let e = emb.encode(&bad, &[keep]).unwrap_err().to_string();
        assert!(e.contains("0..3"), "{e}");
    }
}
