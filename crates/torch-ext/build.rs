//! Compiles the C++ shim against the libtorch headers of the torch wheel in `.venv`.

use std::path::Path;

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
        .flag_if_supported("-Wno-deprecated-declarations");
    b
}

fn main() {
    let root = flowscale_build_support::libtorch_root();
    for f in [
        "torch_ext.cpp",
        "torch_ext.h",
        "guarded.h",
        "c10d.cpp",
        "c10d.h",
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
    // The shim's symbols come from libtorch_cpu and libc10 (already linked by torch-sys) and libdl.
    println!("cargo:rustc-link-lib=dylib=dl");
    flowscale_build_support::link_libtorch();
}
