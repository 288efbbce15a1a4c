//! The `flowscale` command-line tool.

mod commands;

use clap::Parser;

fn main() {
    // Before any thread allocates: freed tensors stay in the heap for the next step.
    flowscale_core::host_allocator::keep_freed_memory();
    // A rank of `flowscale launch`, whose output the launcher relays (see the launch command).
    if let Some(launcher) = std::env::var(flowscale_train::interrupt::RELAY_ENV)
        .ok()
        .and_then(|v| v.parse::<i32>().ok())
    {
        flowscale_train::interrupt::relayed_by(launcher);
    }
    let cli = commands::Cli::parse();
    if let Err(e) = cli.run() {
        // One line, never a backtrace: returning the error from `main` would print its Debug
        // form, which with RUST_BACKTRACE set appends a backtrace to every user error.
        eprintln!("error: {}", one_line(&e));
        std::process::exit(1);
    }
}

/// The error and its causes on one line, `: `-separated, each cause once: many errors already
/// quote their cause in their own message (`cannot read config X: <io error>`), and anyhow's
/// `{:#}` would print that cause a second time.
fn one_line(e: &anyhow::Error) -> String {
    let mut line = e.to_string();
    for cause in e.chain().skip(1) {
        let cause = cause.to_string();
        if !line.contains(&cause) {
            line.push_str(": ");
            line.push_str(&cause);
        }
    }
    line
}
