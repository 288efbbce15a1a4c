//! Writes a flowscale-initialised tiny MMDiT (adaLN-Zero layers perturbed so the output is not
//! trivial) in diffusers layout plus inputs and flowscale's output, for
//! `scripts/fixtures/mmdit_reference.py check-export DIR DIR/io.safetensors`.
//!
//!     cargo run -p flowscale-models --example export_check -- OUT_DIR

use flowscale_models::checkpoint::safetensors_io;
use flowscale_models::{save_mmdit, Backbone, Layout, MmditConfig};
use tch::{nn, Device, Kind, Tensor};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::path::PathBuf::from(
        std::env::args()
            .nth(1)
            .ok_or("usage: export_check OUT_DIR")?,
    );
    tch::manual_seed(0);
    let cfg = MmditConfig::tiny(2);
    let vs = nn::VarStore::new(Device::Cpu);
    let model = Backbone::new(&vs.root(), &cfg)?;
    tch::no_grad(|| {
        for mut v in vs.trainable_variables() {
            let r = Tensor::randn_like(&v) * 0.02;
            let _ = v.f_add_(&r);
        }
    });
    save_mmdit(&vs, &cfg, &dir, Layout::Diffusers)?;
    let o = (Kind::Float, Device::Cpu);
    let x = Tensor::randn([2, 4, 8, 12], o);
    let t = Tensor::from_slice(&[999.0f32, 10.0]);
    let ctx = Tensor::randn([2, 9, 384], o);
    let pooled = Tensor::randn([2, 384], o);
    let out = tch::no_grad(|| model.forward(&x, &t, &ctx, &pooled))?;
    let io: Vec<(String, Tensor)> = [
        ("latents", x),
        ("timestep", t),
        ("context", ctx),
        ("pooled", pooled),
        ("output", out),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    safetensors_io::write(&dir.join("io.safetensors"), &io, None)?;
    println!("wrote {}", dir.display());
    Ok(())
}
