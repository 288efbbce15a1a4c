//! Graceful preemption: SIGINT and SIGTERM (what Slurm and `kill` send) ask the trainer to finish
//! the step it is in, write a checkpoint and stop, instead of losing every step since the last
//! checkpoint. The handler only records the signal (an atomic store is all a signal handler may
//! safely do); the loop polls it between steps. A second SIGINT (Ctrl-C pressed again) restores
//! the default action and re-raises, so an impatient user still stops the process at once; a
//! repeated SIGTERM is ignored, because schedulers and launchers may deliver it more than once
//! (and follow it with SIGKILL when their grace period ends).

use std::sync::atomic::{AtomicI32, Ordering};

/// The first signal received, 0 while none.
static RECEIVED: AtomicI32 = AtomicI32::new(0);

/// The pid of the `flowscale launch` that relays this rank's stdout and stderr through pipes;
/// 0 when none does.
static RELAY_PARENT: AtomicI32 = AtomicI32::new(0);

/// The variable through which `flowscale launch` tells a rank its pid (see [`relayed_by`]).
pub const RELAY_ENV: &str = "FLOWSCALE_OUTPUT_RELAY";

/// Records that the launcher with pid `launcher` reads this process's stdout and stderr. When
/// the launcher dies (SIGKILL), the kernel sends this rank SIGTERM; its output pipes then have
/// no reader, and Rust's print macros panic on the broken pipe, which would end the rank before
/// the checkpoint the signal asks for. So the handler points both at /dev/null once the launcher
/// is gone: nobody is left to read them.
pub fn relayed_by(launcher: i32) {
    RELAY_PARENT.store(launcher, Ordering::SeqCst);
}

/// Points stdout and stderr at /dev/null when the relaying launcher is no longer the parent.
/// Only async-signal-safe calls (getppid, open, dup2, close).
fn detach_output_if_launcher_died() {
    let launcher = RELAY_PARENT.load(Ordering::SeqCst);
    // SAFETY: getppid/open/dup2/close are async-signal-safe and touch only our own fds.
    unsafe {
        if launcher == 0 || libc::getppid() == launcher {
            return;
        }
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_WRONLY);
        if null >= 0 {
            libc::dup2(null, libc::STDOUT_FILENO);
            libc::dup2(null, libc::STDERR_FILENO);
            libc::close(null);
        }
    }
}

extern "C" fn on_signal(signal: libc::c_int) {
    detach_output_if_launcher_died();
    if RECEIVED
        .compare_exchange(0, signal, Ordering::SeqCst, Ordering::SeqCst)
        .is_err()
        && signal == libc::SIGINT
    {
        // SAFETY: signal() and raise() are async-signal-safe.
        unsafe {
            libc::signal(signal, libc::SIG_DFL);
            libc::raise(signal);
        }
    }
}

/// Installs the handler for SIGINT and SIGTERM (idempotent).
pub fn install() {
    let handler = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
    // SAFETY: the handler only touches an atomic and async-signal-safe calls.
    unsafe {
        libc::signal(libc::SIGINT, handler);
        libc::signal(libc::SIGTERM, handler);
    }
}

/// The signal that asked the trainer to stop, if one did.
pub fn requested() -> Option<i32> {
    match RECEIVED.load(Ordering::SeqCst) {
        0 => None,
        s => Some(s),
    }
}

/// `SIGTERM`, `SIGINT` or the number.
pub fn name(signal: i32) -> String {
    match signal {
        libc::SIGTERM => "SIGTERM".into(),
        libc::SIGINT => "SIGINT".into(),
        s => format!("signal {s}"),
    }
}
