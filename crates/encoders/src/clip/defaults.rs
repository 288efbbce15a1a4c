//! Defaults of Hugging Face's CLIP configs (`CLIPConfig`, `CLIPTextConfig`,
//! `CLIPVisionConfig`), shared by the text and vision towers so the two cannot drift.

/// `projection_dim`.
pub(crate) fn projection_dim() -> i64 {
    512
}

/// `hidden_act`.
pub(crate) fn hidden_act() -> String {
    "quick_gelu".into()
}

/// `layer_norm_eps`.
pub(crate) fn layer_norm_eps() -> f64 {
    1e-5
}
