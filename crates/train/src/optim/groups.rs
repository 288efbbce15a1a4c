//! Which parameters get weight decay.
//!
//! The usual transformer rule (GPT-2, DiT, torchtitan): matrices and convolution kernels decay;
//! biases, normalisation weights, embedding tables and the learned conditioning embeddings do not,
//! because shrinking them towards zero changes what the network represents rather than
//! regularising it. Decided by rank and name: rank < 2 never decays; names of embedding tables
//! (`pos_embed`, `embedding`, the `conditioner.` parameters) never decay.

use tch::Tensor;

/// `true` when the parameter named `name` with shape `shape` gets weight decay.
pub fn decays(name: &str, shape: &[i64]) -> bool {
    if shape.len() < 2 {
        return false;
    }
    let embedding = name.starts_with("conditioner.")
        || name.contains("pos_embed.pos_embed")
        || name.contains("embedding")
        || name.ends_with(".emb");
    !embedding
}

/// `params` split into the AdamW groups: `(true, those that decay)`, then `(false, the rest)`,
/// each in the given order. The replicated and the sharded optimiser share this order, which
/// their checkpoints depend on.
pub fn by_decay(params: &[(String, Tensor)]) -> [(bool, Vec<&(String, Tensor)>); 2] {
    [true, false].map(|decay| {
        (
            decay,
            params
                .iter()
                .filter(|(n, p)| decays(n, &p.size()) == decay)
                .collect(),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::decays;

    #[test]
    fn matrices_decay_vectors_and_embeddings_do_not() {
        assert!(decays("transformer_blocks.0.attn.to_q.weight", &[64, 64]));
        assert!(decays("pos_embed.proj.weight", &[64, 4, 2, 2]));
        assert!(!decays("transformer_blocks.0.attn.to_q.bias", &[64]));
        assert!(!decays("transformer_blocks.0.attn.norm_q.weight", &[64]));
        assert!(!decays("conditioner.context", &[10, 64]));
        assert!(!decays("pos_embed.pos_embed", &[1, 256, 64]));
    }
}
