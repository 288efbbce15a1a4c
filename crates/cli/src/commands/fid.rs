//! `flowscale fid A B`: the FID between two image folders, pytorch-fid `.npz` statistics or `.npy`
//! features, printed as `python -m pytorch_fid` prints it; `flowscale fid --save-stats A OUT.npz`
//! writes A's statistics in pytorch-fid's format instead (crates/eval/src/fid_inputs.rs).

use clap::Args;
use flowscale_eval::evaluate::device;
use flowscale_eval::feature_net::FeatureNet;
use flowscale_eval::fid_inputs::{fid, write_stats_npz, FidInput, FidSide};
use flowscale_eval::inception::{FidInception, DEFAULT_WEIGHTS};
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct FidArgs {
    /// A and B: image folders (PNG), .npz statistics (mu, sigma) or .npy features [n, d]. With
    /// --save-stats: the input and the .npz to write.
    #[arg(num_args = 2, required = true, value_names = ["A", "B"])]
    paths: Vec<PathBuf>,
    /// Write the statistics of the first path to the second (a .npz) instead of comparing.
    #[arg(long)]
    save_stats: bool,
    /// Images per Inception batch (folders only).
    #[arg(long, default_value_t = 50)]
    batch_size: usize,
    /// Device for the Inception features: auto (CUDA when available), cpu or cuda.
    #[arg(long, default_value = "auto")]
    device: String,
    /// The FID Inception TorchScript file (folders only).
    #[arg(long, default_value = DEFAULT_WEIGHTS)]
    weights: PathBuf,
}

pub fn run(args: &FidArgs) -> anyhow::Result<()> {
    let (a, b) = (&args.paths[0], &args.paths[1]);
    let input_a = FidInput::classify("A", a)?;
    if args.save_stats {
        let side = load(&[("A", &input_a)], args)?.remove(0);
        write_stats_npz(&side.stats()?, b)?;
        println!("wrote the statistics of {} to {}", a.display(), b.display());
        return Ok(());
    }
    let input_b = FidInput::classify("B", b)?;
    let mut sides = load(&[("A", &input_a), ("B", &input_b)], args)?;
    let side_b = sides.remove(1);
    let value = fid(&sides[0], &side_b)?;
    println!("FID:  {value}");
    Ok(())
}

/// Reads each input, loading the Inception network only when a folder needs it.
fn load(inputs: &[(&str, &FidInput)], args: &FidArgs) -> anyhow::Result<Vec<FidSide>> {
    let net = if inputs.iter().any(|(_, i)| i.needs_network()) {
        Some(FidInception::load(&args.weights, device(&args.device)?)?)
    } else {
        None
    };
    let net = net.as_ref().map(|n| n as &dyn FeatureNet);
    let mut sides = Vec::new();
    for (name, input) in inputs {
        sides.push(FidSide::load(name, input, net, args.batch_size.max(1))?);
    }
    Ok(sides)
}
