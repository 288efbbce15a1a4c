//! Where image tokens sit for the 2D sin-cos position embedding: SD3's fixed table centre-cropped
//! to the patch grid (the released checkpoints' layout, the default), or the paper's grid for
//! other resolutions and aspect ratios (SD3 Sec. 5.3.2), which maps the training resolution's
//! square onto the base (pre-training) grid and extends it beyond for non-square inputs.
//!
//! Interpolated grid [D, from SD3-REFERENCE.md "Position grid for buckets"]: the paper lays out
//! rows `(p - (h_max - s)/2) * s0/s` for `p = 0 .. h_max` (columns alike) and crops the central
//! `h x w` part. Row `i` of the crop is `p = (h_max - h)/2 + i`, so its coordinate is
//! `(i - (h - s)/2) * s0/s`: `h_max` drops out, and the embedding is a function of the batch's
//! `(h, w)`, the run's square-equivalent side `s` and the base side `s0` alone. We use this exact
//! centred form [I]; with the paper's integer crop offset it differs by half a patch only when
//! `h_max - h` is odd. For a square input at `s`, the coordinates `i * s0/s` cover `[0, s0)`, the
//! base grid; at `s = s0` they are the integers `0 .. s0`, which is the table of a run-built model
//! (`pos_embed_max_size` = base = grid side, so `p * base / M = p`, uncropped).

use crate::embeddings::grid_embedding;
use crate::error::{ModelError, Result};
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

/// flowscale's extension of the diffusers config (`position_grid`; absent = the table).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum PositionGrid {
    /// SD3's `pos_embed` table of `pos_embed_max_size`², centre-cropped (diffusers, SD3 files).
    #[default]
    Table,
    /// The paper's interpolated grid: the model's own side `s = sample_size / patch_size`
    /// patches maps onto `base_size` patches (the pre-training grid, 16 at 256² with SD3's VAE).
    /// No table is stored.
    Interpolated { base_size: i64 },
}

impl PositionGrid {
    pub fn is_table(&self) -> bool {
        *self == Self::Table
    }
}

/// Coordinates `(i - (n - s)/2) * s0/s`, `i = 0 .. n`, in fp64.
fn centred_coords(n: i64, side: f64, base: f64, device: Device) -> Result<Tensor> {
    Ok(Tensor::f_arange(n, (Kind::Double, device))?
        .f_sub_scalar((n as f64 - side) / 2.0)?
        .f_mul_scalar(base / side)?)
}

/// The interpolated grid's embedding `[1, h*w, hidden]` (fp32, tokens row-major, the table's
/// channel layout) for an `h x w` patch grid of a model whose square-equivalent side is `side`
/// patches, interpolated to a base grid of `base` patches.
pub fn interpolated_positions(
    hidden: i64,
    h: i64,
    w: i64,
    side: i64,
    base: i64,
    device: Device,
) -> Result<Tensor> {
    if h <= 0 || w <= 0 || side <= 0 || base <= 0 {
        return Err(ModelError::Input(format!(
            "interpolated position grid: {h} x {w} patches at side {side} and base {base} must \
             all be positive"
        )));
    }
    let (s, s0) = (side as f64, base as f64);
    let rows = centred_coords(h, s, s0, device)?.f_repeat_interleave_self_int(w, 0, None)?;
    let cols = centred_coords(w, s, s0, device)?.f_repeat([h])?;
    grid_embedding(hidden, &rows, &cols)
}
