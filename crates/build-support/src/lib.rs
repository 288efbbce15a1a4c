//! Helpers for the `build.rs` of every flowscale crate whose binaries or tests link libtorch.
//!
//! tch's `torch-sys` passes libtorch's directory to crates that depend on it directly as
//! `DEP_TCH_LIBTORCH_LIB` (its manifest has `links = "tch"`). We turn that into
//! * an rpath (DT_RUNPATH), so binaries find `libtorch*.so` without `LD_LIBRARY_PATH`, while a GPU
//!   host can still point them at its own torch install with `LD_LIBRARY_PATH` (RUNPATH, unlike
//!   RPATH, yields to it);
//! * a `--no-as-needed` link of `libtorch_cuda`/`libc10_cuda`: nothing in a Rust binary references
//!   their symbols, so the default `--as-needed` would drop them and their static initialisers
//!   (which register the CUDA backend) would never run: `Cuda::is_available()` would be false.

use std::path::{Path, PathBuf};

/// Where libtorch's shared libraries are, as seen by a build script.
pub fn libtorch_lib_dir() -> PathBuf {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    if let Ok(dir) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        return PathBuf::from(dir);
    }
    match std::env::var("LIBTORCH") {
        Ok(root) => Path::new(&root).join("lib"),
        Err(_) => panic!(
            "libtorch not found: neither DEP_TCH_LIBTORCH_LIB (add torch-sys as a direct \
             dependency) nor LIBTORCH is set; run scripts/setup"
        ),
    }
}

/// libtorch's root (the wheel's `torch/` folder): `include/` and `lib/` live under it.
pub fn libtorch_root() -> PathBuf {
    let lib = libtorch_lib_dir();
    lib.parent().map(Path::to_path_buf).unwrap_or(lib)
}

/// Emit the link arguments that make this package's binaries, tests and examples load libtorch
/// (including its CUDA libraries when the install has them) from its own directory.
pub fn link_libtorch() {
    let lib = libtorch_lib_dir();
    // Resolve the .venv/libtorch symlink: the rpath should survive the link being replaced.
    let lib = lib.canonicalize().unwrap_or(lib);
    println!("cargo:rustc-link-arg=-Wl,--enable-new-dtags");
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
    let mut cuda_libs = Vec::new();
    for name in ["torch_cuda", "c10_cuda"] {
        if lib.join(format!("lib{name}.so")).exists() {
            cuda_libs.push(format!("-l{name}"));
        }
    }
    if !cuda_libs.is_empty() {
        println!("cargo:rustc-link-search=native={}", lib.display());
        println!(
            "cargo:rustc-link-arg=-Wl,--no-as-needed,{},--as-needed",
            cuda_libs.join(",")
        );
    }
}
