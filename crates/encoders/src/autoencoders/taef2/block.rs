//! The residual block of the TAESD family (keys `conv.{0,2,4}` and `pool.{0,1,3}`). TAEF2's
//! blocks keep their width, so the family's 1x1 `skip` for a width change never occurs.

use crate::error::Result;
use crate::nn::{Conv2d, GroupNorm};
use tch::{nn, Tensor};

/// GroupNorm groups of the optional `pool` branch.
const POOL_GROUPS: i64 = 4;
/// PyTorch's default GroupNorm eps (the branch is a plain `nn.GroupNorm`).
const POOL_EPS: f64 = 1e-5;

/// `pool` (optional, added to the input): 1x1 to 4n, GroupNorm, ReLU, 1x1 back to n. Then
/// `ReLU(conv(x) + x)` with `conv` = 3x3, ReLU, 3x3, ReLU, 3x3, all of width n.
#[derive(Debug)]
pub(crate) struct Block {
    pool: Option<(Conv2d, GroupNorm, Conv2d)>,
    convs: [Conv2d; 3],
}

impl Block {
    pub(crate) fn new(p: &nn::Path, n: i64, pool: bool) -> Result<Self> {
        let c = p / "conv";
        let pp = p / "pool";
        Ok(Block {
            pool: if pool {
                Some((
                    Conv2d::pointwise(&(&pp / 0), n, 4 * n, false)?,
                    GroupNorm::new(&(&pp / 1), POOL_GROUPS, 4 * n, POOL_EPS)?,
                    Conv2d::pointwise(&(&pp / 3), 4 * n, n, false)?,
                ))
            } else {
                None
            },
            convs: [
                Conv2d::same3(&(&c / 0), n, n)?,
                Conv2d::same3(&(&c / 2), n, n)?,
                Conv2d::same3(&(&c / 4), n, n)?,
            ],
        })
    }

    pub(crate) fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let x = match &self.pool {
            Some((expand, norm, project)) => {
                let h = norm.forward(&expand.forward(x)?)?.f_relu()?;
                x.f_add(&project.forward(&h)?)?
            }
            None => x.shallow_clone(),
        };
        let h = self.convs[0].forward(&x)?.f_relu()?;
        let h = self.convs[1].forward(&h)?.f_relu()?;
        let h = self.convs[2].forward(&h)?;
        Ok(h.f_add(&x)?.f_relu()?)
    }
}
