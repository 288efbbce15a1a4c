fn main() {
    flowscale_build_support::link_libtorch();
}
