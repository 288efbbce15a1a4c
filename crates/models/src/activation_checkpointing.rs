//! Activation checkpointing for a stack of transformer blocks: keep only the streams entering a
//! checkpointed block and recompute the block's activations during backward.
//!
//! `tch` exposes no custom autograd function, so the recomputation is driven from outside the
//! autograd graph, segment by segment, by the chain rule:
//!
//! 1. Forward. The embeddings run with autograd (their graph is kept). Every block gets its
//!    input streams as fresh leaves (`detach().requires_grad_()`) and the conditioning vector as
//!    one shared leaf `c`. A checkpointed block runs under `no_grad` and keeps only its input
//!    leaves; any other block keeps its graph. The head (final norm and projection) runs on leaves
//!    of the last block's outputs, so the network output the caller receives has a graph that
//!    ends at those leaves.
//! 2. The caller computes its loss and calls `backward()` as usual: that fills the head's
//!    parameter gradients and the gradients at the head's leaves.
//! 3. [`BlockTape::backward`] walks the blocks in reverse. For each it recomputes the block (if it
//!    was checkpointed) from its stored input leaves, then back-propagates the gradient of the
//!    block's outputs as the surrogate `sum_i <out_i, g_i>` (whose gradient w.r.t. everything
//!    upstream is exactly the vector-Jacobian product), which accumulates the block's parameter
//!    gradients and leaves the gradients of its inputs on its input leaves.
//! 4. Last, the same surrogate pushes the gradients of the first block's inputs and of the
//!    shared `c` (accumulated over every block and the head) through the embeddings.
//!
//! Parameter gradients accumulate in `.grad` as in one backward pass; only the summation order
//! differs (the gradient of `c` is summed over blocks in a different order), so the result equals
//! the unchecked pass up to float rounding.

use crate::error::{ModelError, Result};
use serde::{Deserialize, Serialize};
use tch::Tensor;

/// Which blocks recompute their activations in backward (`train.activation_checkpointing`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Checkpointing {
    /// Every activation is kept (plain autograd).
    #[default]
    None,
    /// Every block is checkpointed.
    Blocks,
    /// Every N-th block (blocks 0, N, 2N, ...) is checkpointed, the others keep their
    /// activations: memory between `None` and `Blocks`, a fraction 1/N of the recomputation.
    EveryN(u32),
}

impl Checkpointing {
    /// Parses `"none"`, `"blocks"` or `"every-N"` (N >= 1; `every-1` is `blocks`).
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "none" => Ok(Self::None),
            "blocks" => Ok(Self::Blocks),
            _ => {
                let n = s
                    .strip_prefix("every-")
                    .and_then(|n| n.parse::<u32>().ok())
                    .filter(|n| *n >= 1)
                    .ok_or_else(|| {
                        ModelError::Config(format!(
                            "activation checkpointing `{s}`: expected \"none\", \"blocks\" or \
                             \"every-N\" with N >= 1"
                        ))
                    })?;
                Ok(if n == 1 {
                    Self::Blocks
                } else {
                    Self::EveryN(n)
                })
            }
        }
    }

    /// The canonical spelling, which [`Checkpointing::parse`] reads back.
    pub fn name(&self) -> String {
        match self {
            Self::None => "none".into(),
            Self::Blocks => "blocks".into(),
            Self::EveryN(n) => format!("every-{n}"),
        }
    }

    pub fn is_none(&self) -> bool {
        *self == Self::None
    }

    /// Whether block `i` recomputes its activations.
    pub fn recomputes(&self, i: usize) -> bool {
        match self {
            Self::None => false,
            Self::Blocks => true,
            Self::EveryN(n) => i.is_multiple_of(*n as usize),
        }
    }
}

impl TryFrom<String> for Checkpointing {
    type Error = ModelError;
    fn try_from(s: String) -> Result<Self> {
        Self::parse(&s)
    }
}

impl From<Checkpointing> for String {
    fn from(c: Checkpointing) -> String {
        c.name()
    }
}

/// A block of the stack: maps the streams (e.g. image and context tokens) and the conditioning
/// vector to new streams, the same number of them.
pub(crate) trait StreamBlock {
    fn forward_streams(&self, streams: &[Tensor], c: &Tensor) -> Result<Vec<Tensor>>;
}

/// One block's record for the backward walk.
struct BlockRecord<'a> {
    block: &'a dyn StreamBlock,
    /// The block's input leaves.
    inputs: Vec<Tensor>,
    /// The block's outputs with their graph, or `None` when they are recomputed.
    outputs: Option<Vec<Tensor>>,
}

/// What [`BlockTape::backward`] needs after the caller's `loss.backward()`.
pub struct BlockTape<'a> {
    /// The embeddings' outputs, with their graph.
    roots: Vec<Tensor>,
    c_root: Tensor,
    /// The leaf every block and the head read `c` from; its gradient accumulates over them.
    c_leaf: Tensor,
    records: Vec<BlockRecord<'a>>,
    /// The leaves the head reads the last block's outputs from.
    head_inputs: Vec<Tensor>,
}

impl std::fmt::Debug for BlockTape<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockTape")
            .field("blocks", &self.records.len())
            .finish()
    }
}

fn leaf(t: &Tensor) -> Result<Tensor> {
    Ok(t.f_detach()?.f_requires_grad_(true)?)
}

/// The gradient accumulated on a leaf, if any reached it.
fn grad_of(t: &Tensor) -> Option<Tensor> {
    let g = t.grad();
    g.defined().then_some(g)
}

/// Back-propagates `grads` (the gradients of `outputs`) through the graph of `outputs`.
fn backward_from(outputs: &[Tensor], grads: &[Option<Tensor>]) -> Result<()> {
    let mut surrogate: Option<Tensor> = None;
    for (out, g) in outputs.iter().zip(grads) {
        let Some(g) = g else { continue };
        if !out.requires_grad() {
            continue;
        }
        let term = out.f_mul(&g.f_to_kind(out.kind())?)?.f_sum(out.kind())?;
        surrogate = Some(match surrogate {
            Some(s) => s.f_add(&term)?,
            None => term,
        });
    }
    if let Some(s) = surrogate {
        s.f_backward()?;
    }
    Ok(())
}

/// Runs `blocks` over `streams` with checkpointing `plan`. Returns the leaves the head must read
/// the final streams and `c` from, and the tape whose [`BlockTape::backward`] must be called
/// after the loss's backward.
pub(crate) fn run_blocks<'a>(
    blocks: impl IntoIterator<Item = &'a dyn StreamBlock>,
    streams: Vec<Tensor>,
    c: &Tensor,
    plan: Checkpointing,
) -> Result<(Vec<Tensor>, Tensor, BlockTape<'a>)> {
    let c_leaf = leaf(c)?;
    let mut current: Vec<Tensor> = streams.iter().map(leaf).collect::<Result<_>>()?;
    let mut records = Vec::new();
    for (i, block) in blocks.into_iter().enumerate() {
        let recompute = plan.recomputes(i);
        let out = if recompute {
            let _guard = tch::no_grad_guard();
            block.forward_streams(&current, &c_leaf)?
        } else {
            block.forward_streams(&current, &c_leaf)?
        };
        let next = out.iter().map(leaf).collect::<Result<Vec<_>>>()?;
        let outputs = (!recompute).then_some(out);
        records.push(BlockRecord {
            block,
            inputs: std::mem::replace(&mut current, next),
            outputs,
        });
    }
    let head_inputs: Vec<Tensor> = current.iter().map(Tensor::shallow_clone).collect();
    let tape = BlockTape {
        roots: streams,
        c_root: c.shallow_clone(),
        c_leaf: c_leaf.shallow_clone(),
        records,
        head_inputs,
    };
    Ok((current, c_leaf, tape))
}

impl BlockTape<'_> {
    /// Continues the caller's backward pass through the blocks (recomputing the checkpointed
    /// ones) and the embeddings. Call exactly once, after `loss.backward()`, under the same
    /// autocast state as the forward.
    pub fn backward(self) -> Result<()> {
        let mut grads: Vec<Option<Tensor>> = self.head_inputs.iter().map(grad_of).collect();
        for record in self.records.into_iter().rev() {
            let outputs = match record.outputs {
                Some(out) => out,
                None => record.block.forward_streams(&record.inputs, &self.c_leaf)?,
            };
            if outputs.len() != grads.len() {
                return Err(ModelError::Input(format!(
                    "activation checkpointing: a block returned {} streams for {} gradients",
                    outputs.len(),
                    grads.len()
                )));
            }
            backward_from(&outputs, &grads)?;
            grads = record.inputs.iter().map(grad_of).collect();
        }
        let mut roots = self.roots;
        roots.push(self.c_root);
        grads.push(grad_of(&self.c_leaf));
        backward_from(&roots, &grads)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_back_and_bad_names_are_refused() {
        for c in [
            Checkpointing::None,
            Checkpointing::Blocks,
            Checkpointing::EveryN(3),
        ] {
            assert_eq!(Checkpointing::parse(&c.name()).unwrap(), c);
        }
        assert_eq!(
            Checkpointing::parse("every-1").unwrap(),
            Checkpointing::Blocks
        );
        for bad in ["every-0", "every-", "every-x", "Blocks", "all", ""] {
            let e = Checkpointing::parse(bad).unwrap_err().to_string();
            assert!(
                e.contains(&format!("`{bad}`")) && e.contains("every-N"),
                "{e}"
            );
        }
    }

    #[test]
    fn every_n_recomputes_one_block_in_n() {
        let plan = Checkpointing::EveryN(3);
        let chosen: Vec<usize> = (0..7).filter(|&i| plan.recomputes(i)).collect();
        assert_eq!(chosen, vec![0, 3, 6]);
        assert!((0..7).all(|i| Checkpointing::Blocks.recomputes(i)));
        assert!((0..7).all(|i| !Checkpointing::None.recomputes(i)));
    }
}
