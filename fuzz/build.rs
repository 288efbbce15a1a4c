// The fuzz binaries link libtorch like the main crates' binaries: an rpath to its directory.
fn main() {
    flowscale_build_support::link_libtorch();
}
