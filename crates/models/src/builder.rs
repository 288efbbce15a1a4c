//! Where module constructors put their parameters: a `tch` VarStore path (the real model), or a
//! recorder of `(key, shape)` (the layout of a model too large to allocate). Both go through the
//! same constructors, so the parameter listing and the model cannot disagree.

use crate::error::Result;
use std::cell::RefCell;
use std::rc::Rc;
use tch::nn::Init;
use tch::{nn, Kind, Tensor};

/// One entry of a model's state: its checkpoint key, shape and whether it is trained.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamInfo {
    pub key: String,
    pub shape: Vec<i64>,
    /// False for fixed buffers (the position table).
    pub trainable: bool,
}

impl ParamInfo {
    pub fn numel(&self) -> i64 {
        self.shape.iter().product()
    }
}

/// How a parameter starts when training from scratch.
#[derive(Debug, Clone, Copy)]
pub(crate) enum ParamInit {
    /// Uniform `±sqrt(6 / (fan_in + fan_out))` with fan_out = dim 0, fan_in = the rest.
    XavierUniform,
    Normal(f64),
    Zeros,
    Ones,
}

#[derive(Clone)]
enum Target<'a> {
    Store(nn::Path<'a>),
    Record {
        prefix: String,
        out: Rc<RefCell<Vec<ParamInfo>>>,
    },
}

/// A named scope that creates parameters.
#[derive(Clone)]
pub(crate) struct Scope<'a> {
    target: Target<'a>,
}

impl<'a> Scope<'a> {
    pub(crate) fn store(path: nn::Path<'a>) -> Self {
        Scope {
            target: Target::Store(path),
        }
    }

    pub(crate) fn recorder(out: Rc<RefCell<Vec<ParamInfo>>>) -> Self {
        Scope {
            target: Target::Record {
                prefix: String::new(),
                out,
            },
        }
    }

    pub(crate) fn sub(&self, name: impl std::fmt::Display) -> Scope<'a> {
        let target = match &self.target {
            Target::Store(p) => Target::Store(p.sub(name.to_string())),
            Target::Record { prefix, out } => Target::Record {
                prefix: format!("{prefix}{name}."),
                out: out.clone(),
            },
        };
        Scope { target }
    }

    /// A trainable parameter.
    pub(crate) fn param(&self, name: &str, shape: &[i64], init: ParamInit) -> Result<Tensor> {
        match &self.target {
            Target::Store(p) => {
                let init = match init {
                    ParamInit::XavierUniform => {
                        let fan_out = shape.first().copied().unwrap_or(1);
                        let fan_in: i64 = shape.iter().skip(1).product();
                        let bound = (6.0 / (fan_in + fan_out) as f64).sqrt();
                        Init::Uniform {
                            lo: -bound,
                            up: bound,
                        }
                    }
                    ParamInit::Normal(std) => Init::Randn {
                        mean: 0.0,
                        stdev: std,
                    },
                    ParamInit::Zeros => Init::Const(0.0),
                    ParamInit::Ones => Init::Const(1.0),
                };
                Ok(p.f_var(name, shape, init)?)
            }
            Target::Record { .. } => self.record(name, shape, true),
        }
    }

    /// A fixed (non-trainable) tensor saved with the model, computed by `make` on the store's
    /// device in fp32.
    pub(crate) fn buffer(
        &self,
        name: &str,
        shape: &[i64],
        make: impl FnOnce(tch::Device) -> Result<Tensor>,
    ) -> Result<Tensor> {
        match &self.target {
            Target::Store(p) => {
                let t = make(p.device())?.f_to_kind(Kind::Float)?;
                Ok(p.add(name, t, false))
            }
            Target::Record { .. } => self.record(name, shape, false),
        }
    }

    fn record(&self, name: &str, shape: &[i64], trainable: bool) -> Result<Tensor> {
        if let Target::Record { prefix, out } = &self.target {
            out.borrow_mut().push(ParamInfo {
                key: format!("{prefix}{name}"),
                shape: shape.to_vec(),
                trainable,
            });
        }
        Ok(Tensor::f_empty([0], (Kind::Float, tch::Device::Cpu))?)
    }
}
