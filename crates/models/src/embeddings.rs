//! Input embeddings: patch embedding with SD3's cropped 2D sin-cos position table (or the
//! interpolated grid, `position_grid`), the timestep sinusoid, and the timestep + pooled-text
//! conditioning vector.

use crate::builder::{ParamInit, Scope};
use crate::error::{ModelError, Result};
use crate::layers::Linear;
use crate::position_grid::{interpolated_positions, PositionGrid};
use tch::{Device, Kind, Tensor};

/// Channels of the timestep sinusoid.
pub const TIMESTEP_CHANNELS: i64 = 256;

/// 1D sin-cos embedding `[sin(p w_k), cos(p w_k)]`, `w_k = 10000^(-k/(dim/2))`, in fp64.
fn sincos_1d(pos: &Tensor, dim: i64) -> Result<Tensor> {
    let half = dim / 2;
    let k = Tensor::f_arange(half, (Kind::Double, pos.device()))?;
    let omega = k
        .f_div_scalar(half as f64)?
        .f_mul_scalar(-(10000f64.ln()))?
        .f_exp()?;
    let out = pos.f_outer(&omega)?;
    Ok(Tensor::f_cat(&[out.f_sin()?, out.f_cos()?], 1)?)
}

/// The 2D sin-cos embedding `[1, N, hidden]` (fp32) of tokens at fp64 coordinates `rows`, `cols`
/// (`[N]` each): the first half of the channels encodes the column, the second the row (DiT/MAE,
/// SD3). The table and the interpolated grid both go through here, so their layouts agree.
pub(crate) fn grid_embedding(hidden: i64, rows: &Tensor, cols: &Tensor) -> Result<Tensor> {
    if hidden % 4 != 0 {
        return Err(ModelError::Config(format!(
            "position table width {hidden} is not a multiple of 4"
        )));
    }
    let emb = Tensor::f_cat(
        &[sincos_1d(cols, hidden / 2)?, sincos_1d(rows, hidden / 2)?],
        1,
    )?;
    Ok(emb.f_to_kind(Kind::Float)?.f_unsqueeze(0)?)
}

/// SD3's fixed position table `[1, M*M, hidden]` for an `M x M` grid whose coordinates are
/// scaled to a base grid of `base` patches: token `(i, j)` (row-major) sits at
/// `(i, j) * base / M`; the first half of the channels encodes the column, the second the row.
pub fn position_table(hidden: i64, max_size: i64, base: i64, device: Device) -> Result<Tensor> {
    let coords = Tensor::f_arange(max_size, (Kind::Float, device))?
        .f_div_scalar(max_size as f64 / base as f64)?
        .f_to_kind(Kind::Double)?;
    let rows = coords.f_repeat_interleave_self_int(max_size, 0, None)?;
    let cols = coords.f_repeat([max_size])?;
    grid_embedding(hidden, &rows, &cols)
}

/// The centre crop of an `[1, M*M, H]` table for an `h x w` patch grid, as `[1, h*w, H]`.
pub fn crop_position_table(table: &Tensor, max_size: i64, h: i64, w: i64) -> Result<Tensor> {
    if h > max_size || w > max_size {
        return Err(ModelError::Input(format!(
            "a {h} x {w} patch grid exceeds the {max_size} x {max_size} position table \
             (pos_embed_max_size)"
        )));
    }
    let top = (max_size - h) / 2;
    let left = (max_size - w) / 2;
    let dim = table.size().last().copied().unwrap_or(0);
    Ok(table
        .f_reshape([1, max_size, max_size, dim])?
        .f_narrow(1, top, h)?
        .f_narrow(2, left, w)?
        .f_reshape([1, h * w, dim])?)
}

/// Timestep sinusoid `[B, 256]`, cos half first, `freq_k = exp(-ln(10000) k / 128)`, in fp32.
pub fn timestep_sinusoid(t: &Tensor) -> Result<Tensor> {
    let half = TIMESTEP_CHANNELS / 2;
    let freqs = Tensor::f_arange(half, (Kind::Float, t.device()))?
        .f_mul_scalar(-(10000f64.ln()))?
        .f_div_scalar(half as f64)?
        .f_exp()?;
    let args = t
        .f_to_kind(Kind::Float)?
        .f_unsqueeze(1)?
        .f_mul(&freqs.f_unsqueeze(0)?)?;
    Ok(Tensor::f_cat(&[args.f_cos()?, args.f_sin()?], 1)?)
}

/// Patch embedding (`pos_embed.proj`, a strided conv) plus the position embedding: the cropped
/// table (`pos_embed.pos_embed`) or the interpolated grid (no stored tensor).
#[derive(Debug)]
pub(crate) struct PatchEmbed {
    weight: Tensor,
    bias: Tensor,
    /// `Some` for [`PositionGrid::Table`].
    table: Option<Tensor>,
    grid: PositionGrid,
    patch: i64,
    max_size: i64,
    /// The model's own grid side in patches (`sample_size / patch_size`): the interpolated
    /// grid's `s`.
    side: i64,
}

impl PatchEmbed {
    /// `base` is the table's base size (`sample_size / patch_size`).
    pub(crate) fn new(
        scope: &Scope,
        in_channels: i64,
        hidden: i64,
        patch: i64,
        max_size: i64,
        base: i64,
        grid: PositionGrid,
    ) -> Result<Self> {
        let proj = scope.sub("proj");
        let table = match grid {
            PositionGrid::Table => Some(scope.buffer(
                "pos_embed",
                &[1, max_size * max_size, hidden],
                |d| position_table(hidden, max_size, base, d),
            )?),
            PositionGrid::Interpolated { .. } => None,
        };
        Ok(PatchEmbed {
            weight: proj.param(
                "weight",
                &[hidden, in_channels, patch, patch],
                ParamInit::XavierUniform,
            )?,
            bias: proj.param("bias", &[hidden], ParamInit::Zeros)?,
            table,
            grid,
            patch,
            max_size,
            side: base,
        })
    }

    /// The position embedding `[1, h*w, hidden]` of an `h x w` patch grid.
    pub(crate) fn positions(&self, h: i64, w: i64) -> Result<Tensor> {
        match (&self.table, self.grid) {
            (Some(table), _) => crop_position_table(table, self.max_size, h, w),
            (None, PositionGrid::Interpolated { base_size }) => {
                let hidden = self.bias.size()[0];
                interpolated_positions(hidden, h, w, self.side, base_size, self.bias.device())
            }
            (None, PositionGrid::Table) => Err(ModelError::Config(
                "a table position grid without its table".into(),
            )),
        }
    }

    /// `[B, C, H, W]` -> `[B, (H/p)(W/p), hidden]`, tokens row-major.
    pub(crate) fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let size = x.size();
        let (h, w) = (size[2] / self.patch, size[3] / self.patch);
        let y = x.f_conv2d(
            &self.weight,
            Some(&self.bias),
            [self.patch, self.patch],
            [0i64, 0],
            [1i64, 1],
            1,
        )?;
        let y = y.f_flatten(2, 3)?.f_transpose(1, 2)?;
        let pos = self.positions(h, w)?;
        Ok(y.f_add(&pos.f_to_kind(y.kind())?)?)
    }
}

/// Two linears with a SiLU between them (keys `linear_1`, `linear_2`).
#[derive(Debug)]
pub(crate) struct Mlp2 {
    l1: Linear,
    l2: Linear,
}

impl Mlp2 {
    fn new(scope: &Scope, in_dim: i64, hidden: i64) -> Result<Self> {
        let init = ParamInit::Normal(0.02);
        Ok(Mlp2 {
            l1: Linear::with_init(
                &scope.sub("linear_1"),
                in_dim,
                hidden,
                init,
                ParamInit::Zeros,
            )?,
            l2: Linear::with_init(
                &scope.sub("linear_2"),
                hidden,
                hidden,
                init,
                ParamInit::Zeros,
            )?,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(self.l2.forward(&self.l1.forward(x)?.f_silu()?)?)
    }
}

/// `c = MLP_t(sinusoid(t)) + MLP_y(pooled)` (`time_text_embed.{timestep,text}_embedder`).
#[derive(Debug)]
pub(crate) struct TimeTextEmbed {
    timestep: Mlp2,
    text: Mlp2,
}

impl TimeTextEmbed {
    pub(crate) fn new(scope: &Scope, pooled_dim: i64, hidden: i64) -> Result<Self> {
        Ok(TimeTextEmbed {
            timestep: Mlp2::new(&scope.sub("timestep_embedder"), TIMESTEP_CHANNELS, hidden)?,
            text: Mlp2::new(&scope.sub("text_embedder"), pooled_dim, hidden)?,
        })
    }

    pub(crate) fn forward(&self, t: &Tensor, pooled: &Tensor) -> Result<Tensor> {
        let t_emb = self
            .timestep
            .forward(&timestep_sinusoid(t)?.f_to_kind(pooled.kind())?)?;
        Ok(t_emb.f_add(&self.text.forward(pooled)?)?)
    }
}
