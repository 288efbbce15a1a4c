//! What the backbone needs of a block: a map from streams to streams (for the plain and the
//! checkpointed forward, [`StreamBlock`]) and the same map through the math-form attention with
//! its logits' statistics (diagnostics).

use crate::activation_checkpointing::StreamBlock;
use crate::attention_stats::AttentionStats;
use crate::error::Result;
use tch::Tensor;

pub(crate) trait BackboneBlock: StreamBlock + std::fmt::Debug {
    fn forward_streams_with_stats(
        &self,
        streams: &[Tensor],
        c: &Tensor,
    ) -> Result<(Vec<Tensor>, AttentionStats)>;
}
