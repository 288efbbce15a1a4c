//! `train.cuda_graph`: a micro-batch's conditioning, forward, loss and backward captured once as
//! a CUDA graph and replayed for every later micro-batch.
//!
//! What the graph covers, and why: the forward and backward are hundreds of kernel launches;
//! what follows them (the gradient all-reduce, clipping, the fused AdamW, the EMAs) is a handful
//! of multi-tensor launches that also read host values that change every step (the learning
//! rate, the EMA warm-up decay, the non-finite decision). So those stay eager, the data-parallel
//! and ZeRO-1 paths are unchanged, and nothing needs a device-side learning rate.
//!
//! PyTorch's contract for a captured region, and how the trainer keeps it:
//! * Every input lives in a tensor allocated before the capture. [`StaticInputs`] holds one copy
//!   of each input of a micro-batch (network input, time input, target, loss weight,
//!   conditioning, CFG keep masks) on the run's device; each micro-batch is copied into it
//!   before the replay. A micro-batch of another shape is an error naming the tensor.
//! * Gradients accumulate in place. The first micro-batch runs once eagerly on the capture
//!   stream (the warm-up, which also allocates the gradients); the captured call then sees
//!   defined gradients, so its backward adds into them, and a replay adds a micro-batch's
//!   gradients exactly as an eager backward does. The trainer zeroes gradients in place;
//!   ZeRO-2, which frees them between steps, is refused.
//! * Nothing is read back to the host inside the region: the conditioners check label ranges
//!   only for host labels (the data layer has checked them), and captions must come with their
//!   precomputed embeddings (encoding a caption tokenises on the host).
//!
//! [`GraphedStep`] without a graph runs the same region eagerly on the same static inputs
//! (`TrainOptions::static_step_inputs`): on a CPU that checks the copying and the region
//! against the ordinary step, which a GPU then only has to check the capture against.

use crate::cond_input::{CondInput, TextBatch};
use crate::config::RunConfig;
use crate::distributed::zero::ZeroStage;
use crate::error::{Result, TrainError};
use crate::run::{RunData, RunModel};
use flowscale_formulations::{weighted_per_sample_loss, TrainingBatch};
use flowscale_models::Checkpointing;
use flowscale_torch_ext::cuda_graph::CudaGraph;
use tch::{Device, Tensor};

/// One micro-batch's inputs to the captured region.
pub(super) struct MicroInputs<'a> {
    pub net_input: &'a Tensor,
    pub time_input: &'a Tensor,
    pub target: &'a Tensor,
    pub weight: &'a Tensor,
    pub cond: &'a CondInput,
    pub keep: &'a [Tensor],
}

impl<'a> MicroInputs<'a> {
    pub fn of(batch: &'a TrainingBatch, cond: &'a CondInput, keep: &'a [Tensor]) -> Self {
        Self {
            net_input: &batch.net_input,
            time_input: &batch.time_input,
            target: &batch.target,
            weight: &batch.weight,
            cond,
            keep,
        }
    }
}

/// The region itself: conditioning, forward, the weighted loss divided by the accumulation
/// count, backward. Returns the detached per-sample loss `[B]`. The ordinary step and the graph
/// run exactly this.
pub(super) fn forward_backward(
    model: &RunModel,
    checkpointing: Checkpointing,
    accum: u64,
    inputs: &MicroInputs<'_>,
) -> Result<Tensor> {
    let cond = model.encode(inputs.cond, inputs.keep)?;
    let (out, tape) =
        model.forward_for_training(inputs.net_input, inputs.time_input, &cond, checkpointing)?;
    let per = weighted_per_sample_loss(&out, inputs.target, inputs.weight)?;
    let loss = per.f_mean(tch::Kind::Float)?.f_div_scalar(accum as f64)?;
    loss.f_backward()?;
    model.finish_backward(tape)?;
    Ok(per.f_detach()?)
}

/// The tensors the captured region reads, allocated once on the run's device.
struct StaticInputs {
    net_input: Tensor,
    time_input: Tensor,
    target: Tensor,
    weight: Tensor,
    cond: CondInput,
    keep: Vec<Tensor>,
}

/// A fresh copy of `t` on `device`, outside autograd: a buffer of its own, never a view of the
/// batch it came from.
fn own_copy(t: &Tensor, device: Device) -> Result<Tensor> {
    let src = t.f_detach()?;
    let dst = Tensor::f_empty(src.size(), (src.kind(), device))?;
    refill(&dst, &src, "input")?;
    Ok(dst)
}

/// Copies `src` into the static `dst`, which must have its shape and dtype.
fn refill(dst: &Tensor, src: &Tensor, what: &str) -> Result<()> {
    if dst.size() != src.size() || dst.kind() != src.kind() {
        return Err(TrainError::Invalid(format!(
            "train.cuda_graph: this micro-batch's {what} is {:?} {:?}, the captured step's is \
             {:?} {:?}; a CUDA graph replays fixed shapes (no aspect buckets, every micro-batch \
             of train.micro_batch_size samples)",
            src.kind(),
            src.size(),
            dst.kind(),
            dst.size()
        )));
    }
    let _guard = tch::no_grad_guard();
    dst.shallow_clone().f_copy_(src)?;
    Ok(())
}

/// The tensors of a conditioning input the region reads, each named for errors: class labels,
/// or precomputed text embeddings (captions without them are an error).
fn cond_tensors(cond: &CondInput) -> Result<Vec<(&'static str, &Tensor)>> {
    match cond {
        CondInput::Labels(l) => Ok(vec![("labels", l)]),
        CondInput::Text(TextBatch {
            embedding: Some((c, p)),
            ..
        }) => Ok(vec![("text context", c), ("pooled text", p)]),
        CondInput::Text(TextBatch {
            embedding: None, ..
        }) => Err(TrainError::Invalid(
            "train.cuda_graph: this run encodes its captions during training (tokenising on the \
             host cannot be captured); precompute the text embeddings (flowscale precompute \
             with text encoders) or set train.cuda_graph = false"
                .into(),
        )),
    }
}

impl StaticInputs {
    fn new(inputs: &MicroInputs<'_>, device: Device) -> Result<Self> {
        let cond = match inputs.cond {
            CondInput::Labels(l) => CondInput::Labels(own_copy(l, device)?),
            CondInput::Text(_) => {
                let t = cond_tensors(inputs.cond)?;
                CondInput::Text(TextBatch {
                    // The region reads only the embeddings; captions stay with the batch.
                    captions: None,
                    embedding: Some((own_copy(t[0].1, device)?, own_copy(t[1].1, device)?)),
                })
            }
        };
        Ok(Self {
            net_input: own_copy(inputs.net_input, device)?,
            time_input: own_copy(inputs.time_input, device)?,
            target: own_copy(inputs.target, device)?,
            weight: own_copy(inputs.weight, device)?,
            cond,
            keep: inputs
                .keep
                .iter()
                .map(|k| own_copy(k, device))
                .collect::<Result<_>>()?,
        })
    }

    fn refill(&self, inputs: &MicroInputs<'_>) -> Result<()> {
        refill(&self.net_input, inputs.net_input, "network input")?;
        refill(&self.time_input, inputs.time_input, "time input")?;
        refill(&self.target, inputs.target, "target")?;
        refill(&self.weight, inputs.weight, "loss weight")?;
        let (mine, theirs) = (cond_tensors(&self.cond)?, cond_tensors(inputs.cond)?);
        if mine.len() != theirs.len() {
            return Err(TrainError::Invalid(
                "train.cuda_graph: the conditioning changed kind between micro-batches".into(),
            ));
        }
        for ((what, dst), (_, src)) in mine.iter().zip(&theirs) {
            refill(dst, src, what)?;
        }
        if self.keep.len() != inputs.keep.len() {
            return Err(TrainError::Invalid(format!(
                "train.cuda_graph: {} CFG keep masks, the captured step has {}",
                inputs.keep.len(),
                self.keep.len()
            )));
        }
        for (dst, src) in self.keep.iter().zip(inputs.keep) {
            refill(dst, src, "CFG keep mask")?;
        }
        Ok(())
    }

    fn as_inputs(&self) -> MicroInputs<'_> {
        MicroInputs {
            net_input: &self.net_input,
            time_input: &self.time_input,
            target: &self.target,
            weight: &self.weight,
            cond: &self.cond,
            keep: &self.keep,
        }
    }
}

/// How the region is launched on the static inputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Launch {
    /// Captured on this CUDA device at the first micro-batch, replayed after.
    Graph(usize),
    /// Run eagerly on the static inputs (the CPU check of everything but the capture).
    Eager,
}

/// The static inputs and, once captured, the graph and its output.
pub(super) struct GraphedStep {
    launch: Launch,
    device: Device,
    inputs: Option<StaticInputs>,
    graph: Option<(CudaGraph, Tensor)>,
}

impl GraphedStep {
    pub fn new(launch: Launch, device: Device) -> Self {
        Self {
            launch,
            device,
            inputs: None,
            graph: None,
        }
    }

    /// Runs the region on `inputs` (copied into the static tensors) and returns the per-sample
    /// loss, valid until the next call.
    pub fn run(
        &mut self,
        model: &RunModel,
        checkpointing: Checkpointing,
        accum: u64,
        inputs: &MicroInputs<'_>,
    ) -> Result<Tensor> {
        match &self.inputs {
            Some(s) => s.refill(inputs)?,
            None => self.inputs = Some(StaticInputs::new(inputs, self.device)?),
        }
        let s = self.inputs.as_ref().expect("filled above");
        match (self.launch, &self.graph) {
            (Launch::Eager, _) => forward_backward(model, checkpointing, accum, &s.as_inputs()),
            (Launch::Graph(_), Some((graph, per))) => {
                graph.replay()?;
                Ok(per.shallow_clone())
            }
            (Launch::Graph(device), None) => {
                // The warm-up call is this micro-batch's real step; the captured call's output
                // is the graph's, overwritten by each replay.
                let mut outputs: Vec<Tensor> = Vec::with_capacity(2);
                let graph = CudaGraph::capture(device, 1, || -> Result<()> {
                    outputs.push(forward_backward(
                        model,
                        checkpointing,
                        accum,
                        &s.as_inputs(),
                    )?);
                    Ok(())
                })
                .map_err(|e| TrainError::Invalid(format!("train.cuda_graph: {e}")))?;
                let mut outputs = outputs.into_iter();
                let (warm, captured) = (outputs.next(), outputs.next());
                let (Some(warm), Some(captured)) = (warm, captured) else {
                    unreachable!("capture ran the warm-up and the captured call");
                };
                self.graph = Some((graph, captured));
                Ok(warm)
            }
        }
    }
}

/// The run's graphed step: `Some` with `train.cuda_graph` (checked: a CUDA device, fixed
/// shapes, gradients that stay allocated) or with [`crate::TrainOptions::static_step_inputs`];
/// `None` for the ordinary step.
pub(super) fn for_run(
    cfg: &RunConfig,
    static_inputs: bool,
    device: Device,
    data: &RunData,
) -> Result<Option<GraphedStep>> {
    if !cfg.train.cuda_graph {
        return Ok(static_inputs.then(|| GraphedStep::new(Launch::Eager, device)));
    }
    if cfg.train.zero_stage == ZeroStage::Gradients {
        return Err(TrainError::Invalid(
            "train.cuda_graph with train.zero_stage = 2: ZeRO-2 frees the gradients after each \
             step and a captured backward writes into the ones it was captured with; use \
             zero_stage 0 or 1 with the graph"
                .into(),
        ));
    }
    let buckets = data.bucket_shapes();
    if !buckets.is_empty() {
        return Err(TrainError::Invalid(format!(
            "train.cuda_graph: the data has {} aspect buckets (latent shapes {buckets:?}) and a \
             CUDA graph replays one shape; train without buckets or set train.cuda_graph = false",
            buckets.len()
        )));
    }
    match device {
        Device::Cuda(i) => Ok(Some(GraphedStep::new(Launch::Graph(i), device))),
        other => Err(TrainError::Invalid(format!(
            "train.cuda_graph = true needs a CUDA device; this run trains on {other:?} \
             (run.device)"
        ))),
    }
}
