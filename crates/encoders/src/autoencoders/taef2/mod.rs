//! TAEF2, the tiny autoencoder of the TAESD family distilled for the FLUX.2 latent space
//! (32 channels, factor 8): two `nn.Sequential` networks whose keys are the layer indices
//! (`0.weight`, `1.conv.0.weight`, `11.pool.1.weight`, ...), in `taef2_encoder.safetensors` and
//! `taef2_decoder.safetensors`. Latents are raw (scale 1, shift 0) and deterministic (std 0);
//! the networks see pixels in [0, 1], the interface [-1, 1].

mod block;

use crate::autoencoders::fingerprint::files_sha256;
use crate::autoencoders::interface::{check_latents, check_pixels, to_model, Autoencoder};
use crate::autoencoders::posterior::Posterior;
use crate::error::Result;
use crate::nn::{upsample_nearest2x, Conv2d};
use crate::weights;
use block::Block;
use std::path::{Path, PathBuf};
use tch::{nn, Device, Kind, Tensor};

pub const ENCODER_FILE: &str = "taef2_encoder.safetensors";
pub const DECODER_FILE: &str = "taef2_decoder.safetensors";
pub const LATENT_CHANNELS: i64 = 32;
const WIDTH: i64 = 64;

/// One entry of the `nn.Sequential`; its position is its key prefix.
#[derive(Debug)]
enum Layer {
    Conv(Conv2d),
    Block(Box<Block>),
    Relu,
    /// `3 tanh(z / 3)`: the decoder's soft clamp of its input.
    SoftClamp,
    Upsample,
}

impl Layer {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(match self {
            Layer::Conv(c) => c.forward(x)?,
            Layer::Block(b) => b.forward(x)?,
            Layer::Relu => x.f_relu()?,
            Layer::SoftClamp => x.f_div_scalar(3.0)?.f_tanh()?.f_mul_scalar(3.0)?,
            Layer::Upsample => upsample_nearest2x(x)?,
        })
    }
}

/// What each position of a network holds (built into [`Layer`]s under index keys).
enum Spec {
    Conv {
        c_in: i64,
        c_out: i64,
        stride: i64,
        bias: bool,
    },
    Block {
        pool: bool,
    },
    Relu,
    SoftClamp,
    Upsample,
}

fn conv(c_in: i64, c_out: i64) -> Spec {
    Spec::Conv {
        c_in,
        c_out,
        stride: 1,
        bias: true,
    }
}
/// The bias-free 3x3 after each up- or downsampling.
fn plain_conv(stride: i64) -> Spec {
    Spec::Conv {
        c_in: WIDTH,
        c_out: WIDTH,
        stride,
        bias: false,
    }
}
fn blocks(n: usize, pool: bool) -> impl Iterator<Item = Spec> {
    (0..n).map(move |_| Spec::Block { pool })
}

fn encoder_spec() -> Vec<Spec> {
    let mut s = vec![conv(3, WIDTH)];
    s.extend(blocks(1, false));
    for stage in 0..3 {
        s.push(plain_conv(2));
        // The deepest stage has the GroupNorm pool branch.
        s.extend(blocks(3, stage == 2));
    }
    s.push(conv(WIDTH, LATENT_CHANNELS));
    s
}

fn decoder_spec() -> Vec<Spec> {
    let mut s = vec![Spec::SoftClamp, conv(LATENT_CHANNELS, WIDTH), Spec::Relu];
    s.extend(blocks(3, true));
    for n in [3, 3, 1] {
        s.push(Spec::Upsample);
        s.push(plain_conv(1));
        s.extend(blocks(n, false));
    }
    s.push(conv(WIDTH, 3));
    s
}

fn build(p: &nn::Path, spec: Vec<Spec>) -> Result<Vec<Layer>> {
    spec.into_iter()
        .enumerate()
        .map(|(i, s)| {
            let lp = p / i;
            Ok(match s {
                Spec::Conv {
                    c_in,
                    c_out,
                    stride,
                    bias,
                } => Layer::Conv(Conv2d::new(&lp, c_in, c_out, 3, stride, 1, bias)?),
                Spec::Block { pool } => Layer::Block(Box::new(Block::new(&lp, WIDTH, pool)?)),
                Spec::Relu => Layer::Relu,
                Spec::SoftClamp => Layer::SoftClamp,
                Spec::Upsample => Layer::Upsample,
            })
        })
        .collect()
}

/// Builds one network in a fresh VarStore and copies `file` into it, naming every missing,
/// unexpected and mis-shaped key.
fn load_network(
    file: &Path,
    spec: Vec<Spec>,
    kind: Kind,
    device: Device,
) -> Result<(nn::VarStore, Vec<Layer>)> {
    let mut vs = nn::VarStore::new(device);
    vs.set_kind(kind);
    let layers = build(&vs.root(), spec)?;
    vs.freeze();
    let state = weights::read_file(file, kind, device)?;
    weights::copy_into(&vs, &state, &[], file)?;
    Ok((vs, layers))
}

fn run(layers: &[Layer], x: &Tensor) -> Result<Tensor> {
    layers
        .iter()
        .try_fold(x.shallow_clone(), |h, layer| layer.forward(&h))
}

/// The pretrained TAEF2 encoder and decoder.
#[derive(Debug)]
pub struct Taef2 {
    encoder_vs: nn::VarStore,
    encoder: Vec<Layer>,
    /// Owns the decoder's variables (the layers hold views of them).
    _decoder_vs: nn::VarStore,
    decoder: Vec<Layer>,
    kind: Kind,
    /// The two weight files, for [`Autoencoder::weights_sha256`].
    files: [PathBuf; 2],
}

impl Taef2 {
    /// Loads `dir/taef2_encoder.safetensors` and `dir/taef2_decoder.safetensors` in `kind` on
    /// `device`.
    pub fn load(dir: &Path, kind: Kind, device: Device) -> Result<Self> {
        let encoder_file = weights::require_file(dir, ENCODER_FILE)?;
        let decoder_file = weights::require_file(dir, DECODER_FILE)?;
        let (encoder_vs, encoder) = load_network(&encoder_file, encoder_spec(), kind, device)?;
        let (decoder_vs, decoder) = load_network(&decoder_file, decoder_spec(), kind, device)?;
        Ok(Taef2 {
            encoder_vs,
            encoder,
            _decoder_vs: decoder_vs,
            decoder,
            kind,
            files: [encoder_file, decoder_file],
        })
    }
}

impl Autoencoder for Taef2 {
    fn name(&self) -> &str {
        "taef2"
    }
    fn latent_channels(&self) -> i64 {
        LATENT_CHANNELS
    }
    fn downsample_factor(&self) -> i64 {
        8
    }
    fn weights_sha256(&self) -> Result<String> {
        files_sha256(&self.files)
    }
    fn device(&self) -> Device {
        self.encoder_vs.device()
    }
    fn encode(&self, pixels: &Tensor) -> Result<Posterior> {
        check_pixels("TAEF2", pixels, 3, 8)?;
        tch::no_grad(|| {
            // [-1, 1] -> [0, 1], the range TAESD models are trained on.
            let x = to_model(pixels, self.device(), self.kind)?
                .f_mul_scalar(0.5)?
                .f_add_scalar(0.5)?;
            let mean = run(&self.encoder, &x)?.f_to_kind(Kind::Float)?;
            let std = mean.f_zeros_like()?;
            Ok(Posterior { mean, std })
        })
    }
    fn decode(&self, latents: &Tensor) -> Result<Tensor> {
        check_latents("TAEF2", latents, LATENT_CHANNELS)?;
        tch::no_grad(|| {
            let z = to_model(latents, self.device(), self.kind)?;
            let y = run(&self.decoder, &z)?.f_to_kind(Kind::Float)?;
            Ok(y.f_mul_scalar(2.0)?.f_sub_scalar(1.0)?)
        })
    }
    /// TAEF2's latents are used as they come out of the encoder.
    fn latent_normalization(&self) -> (Vec<f64>, Vec<f64>) {
        let c = LATENT_CHANNELS as usize;
        (vec![0.0; c], vec![1.0; c])
    }
    fn encode_raw(&self, pixels: &Tensor) -> Result<Posterior> {
        self.encode(pixels)
    }
    fn decode_raw(&self, z: &Tensor) -> Result<Tensor> {
        self.decode(z)
    }
}
