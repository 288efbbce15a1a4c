//! The `flowscale` command-line tool.

mod commands;

use clap::Parser;

fn main() {
    let cli = commands::Cli::parse();
    if let Err(e) = cli.run() {
        // The cause chain on one line (`{:#}`), never a backtrace: returning the error from
        // `main` would print its Debug form, which with RUST_BACKTRACE set appends a backtrace
        // to every user error (a bad config value, a missing file).
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
