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

extern "C" fn on_signal(signal: libc::c_int) {
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
