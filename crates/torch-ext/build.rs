//! Compiles the C++ shim against the libtorch headers of the torch wheel in `.venv`.

use std::path::{Path, PathBuf};

/// The compiler settings every shim object shares: the wheel's headers and its C++ ABI.
fn shim_build(root: &Path) -> cc::Build {
    let mut b = cc::Build::new();
    b.cpp(true)
        .pic(true)
        .std("c++17")
        .include(root.join("include"))
        .include(root.join("include/torch/csrc/api/include"))
        .include("shim")
        .define("_GLIBCXX_USE_CXX11_ABI", "1")
        .define("GLOG_USE_GLOG_EXPORT", None)
        .flag_if_supported("-Wno-unused-parameter")
        .flag_if_supported("-Wno-deprecated-declarations")
        // c10's CUDA headers align to hardware_destructive_interference_size; the wheel's
        // x86-64 value (64) is GCC's default here, so the warning is noise.
        .flag_if_supported("-Wno-interference-size");
    b
}

/// The include directories the NCCL object needs (the CUDA runtime's and NCCL's headers), or why
/// it cannot be built. The CUDA wheels of torch depend on `nvidia-*` packages installed next to
/// `torch/` in site-packages, each with an `include/` folder; `CUDA_HOME` and `NCCL_INCLUDE_DIR`
/// point at a system CUDA toolkit / NCCL instead.
fn nccl_includes(root: &Path) -> Result<Vec<PathBuf>, String> {
    for var in ["FLOWSCALE_NO_NCCL", "CUDA_HOME", "NCCL_INCLUDE_DIR"] {
        println!("cargo:rerun-if-env-changed={var}");
    }
    if std::env::var_os("FLOWSCALE_NO_NCCL").is_some() {
        return Err("the build set FLOWSCALE_NO_NCCL".into());
    }
    let header = "include/torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp";
    if !root.join(header).exists() {
        return Err(format!("libtorch at {} has no {header}", root.display()));
    }
    if !flowscale_build_support::libtorch_lib_dir()
        .join("libtorch_cuda.so")
        .exists()
    {
        return Err(format!(
            "libtorch at {} has no libtorch_cuda.so (a CPU-only build)",
            root.display()
        ));
    }
    let mut dirs: Vec<PathBuf> = ["NCCL_INCLUDE_DIR", "CUDA_HOME"]
        .iter()
        .filter_map(|v| std::env::var_os(v).map(PathBuf::from))
        .flat_map(|p| [p.join("include"), p])
        .collect();
    // `root` may be a symlink (.venv/libtorch): its real parent is site-packages.
    let real = root.canonicalize().unwrap_or_else(|_| root.to_path_buf());
    if let Some(Ok(entries)) = real.parent().map(|s| std::fs::read_dir(s.join("nvidia"))) {
        let mut found: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path().join("include")))
            .collect();
        found.sort();
        dirs.extend(found);
    }
    dirs.retain(|d| d.is_dir());
    // nccl.h (nvidia-nccl-cu13), the CUDA runtime API (nvidia-cuda-runtime), and what the
    // runtime headers include: crt/ (nvidia-cuda-crt) and nv/target (nvidia-cuda-cccl), which
    // torch does not depend on; scripts/setup installs them.
    for needed in [
        "nccl.h",
        "cuda_runtime_api.h",
        "crt/host_defines.h",
        "nv/target",
    ] {
        if !dirs.iter().any(|d| d.join(needed).exists()) {
            return Err(format!(
                "no {needed} in site-packages/nvidia/*/include, CUDA_HOME or NCCL_INCLUDE_DIR"
            ));
        }
    }
    Ok(dirs)
}

fn main() {
    let root = flowscale_build_support::libtorch_root();
    for f in [
        "torch_ext.cpp",
        "torch_ext.h",
        "guarded.h",
        "c10d.cpp",
        "c10d.h",
        "c10d_handles.h",
        "c10d_nccl.cpp",
        "cuda_graph.cpp",
    ] {
        println!("cargo:rerun-if-changed=shim/{f}");
    }
    shim_build(&root)
        .file("shim/torch_ext.cpp")
        .compile("flowscale_torch_ext");
    // c10d with Gloo: the wheel's c10d headers plus Debian's libgloo-dev headers (scripts/setup
    // installs them; the wheel ships none). A separate object so only it needs USE_C10D_GLOO.
    shim_build(&root)
        .define("USE_C10D_GLOO", None)
        .file("shim/c10d.cpp")
        .compile("flowscale_c10d");
    // NCCL: a third object, only where the headers exist; otherwise ProcessGroup::nccl reports
    // the reason at runtime. USE_CUDA matches the wheel's build, so header-defined layouts agree.
    println!("cargo::rustc-check-cfg=cfg(flowscale_nccl)");
    println!("cargo::rustc-check-cfg=cfg(flowscale_cuda_graph)");
    match nccl_includes(&root) {
        Ok(dirs) => {
            let mut b = shim_build(&root);
            b.define("USE_C10D_NCCL", None).define("USE_CUDA", None);
            for d in &dirs {
                b.include(d);
            }
            b.file("shim/c10d_nccl.cpp").compile("flowscale_c10d_nccl");
            println!("cargo:rustc-cfg=flowscale_nccl");
            // CUDA graphs need the same CUDA runtime headers (not NCCL's, but they come as one
            // set from the wheel's nvidia-* packages).
            let mut g = shim_build(&root);
            g.define("USE_CUDA", None);
            for d in &dirs {
                g.include(d);
            }
            g.file("shim/cuda_graph.cpp")
                .compile("flowscale_cuda_graph");
            println!("cargo:rustc-cfg=flowscale_cuda_graph");
        }
        Err(reason) => {
            println!("cargo:warning=ProcessGroupNCCL and CUDA graphs not compiled: {reason}");
            println!("cargo:rustc-env=FLOWSCALE_NCCL_MISSING={reason}");
            println!("cargo:rustc-env=FLOWSCALE_CUDA_GRAPH_MISSING={reason}");
        }
    }
    // The shim's symbols come from libtorch_cpu and libc10 (already linked by torch-sys), libdl
    // and, for the NCCL object, libtorch_cuda/libc10_cuda (linked --no-as-needed by link_libtorch).
    println!("cargo:rustc-link-lib=dylib=dl");
    flowscale_build_support::link_libtorch();
}
