//! `flowscale info`: what this binary runs on.

use clap::Args;
use flowscale_torch_ext::{build_info, cuda};

#[derive(Debug, Args)]
pub struct InfoArgs {
    /// Also print libtorch's full build configuration.
    #[arg(long)]
    build_config: bool,
}

pub fn run(args: &InfoArgs) -> anyhow::Result<()> {
    println!("flowscale {}", env!("CARGO_PKG_VERSION"));
    println!("tch {}", env!("FLOWSCALE_TCH_VERSION"));
    println!("libtorch {}", build_info::torch_version()?);
    println!("libtorch path {}", build_info::libtorch_path()?);
    let config = build_info::build_config()?;
    for line in config.lines() {
        let line = line.trim().trim_start_matches("- ");
        if line.starts_with("CUDA Runtime")
            || line.starts_with("CuDNN")
            || line.starts_with("CPU capability")
        {
            println!("  {line}");
        }
    }
    // Whether libtorch's CUDA backend is in the process (it is linked even on CPU hosts, so that
    // the same binary uses a GPU wherever one is present).
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap_or_default();
    println!(
        "libtorch_cuda loaded {}",
        if maps.contains("libtorch_cuda.so") {
            "yes"
        } else {
            "no"
        }
    );
    let devices = cuda::device_count()?;
    println!(
        "CUDA available {} ({devices} device{})",
        tch::Cuda::is_available(),
        if devices == 1 { "" } else { "s" }
    );
    for d in 0..devices {
        let name = cuda::device_name(d).unwrap_or_else(|e| format!("<{e}>"));
        println!("  cuda:{d} {name}");
    }
    println!("cuDNN available {}", tch::Cuda::cudnn_is_available());
    println!("threads {}", tch::get_num_threads());
    if args.build_config {
        println!("\n{config}");
    }
    Ok(())
}
