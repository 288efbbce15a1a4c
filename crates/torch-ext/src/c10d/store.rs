//! c10d's `TCPStore`: the key-value rendezvous every rank connects to (rank 0 hosts it), as
//! torchrun's `MASTER_ADDR`/`MASTER_PORT` describe.

use std::time::Duration;

use super::ffi;
use crate::{Result, TorchExtError};

pub struct TcpStore {
    pub(super) ptr: ffi::FxStore,
}

// SAFETY: c10d's TCPStore is thread-safe; the handle only owns an intrusive pointer.
unsafe impl Send for TcpStore {}
unsafe impl Sync for TcpStore {}

impl TcpStore {
    /// Connects to (and, with `is_server`, hosts) the store at `host:port`. Returns once all
    /// `world_size` ranks have connected, or fails after `timeout`.
    pub fn connect(
        host: &str,
        port: u16,
        world_size: i64,
        is_server: bool,
        timeout: Duration,
    ) -> Result<Self> {
        if world_size < 1 {
            return Err(TorchExtError::Argument {
                call: "TcpStore::connect",
                message: format!("world size must be >= 1, got {world_size}"),
            });
        }
        let c_host = super::c_string("TcpStore::connect", "host", host)?;
        let mut ptr: ffi::FxStore = std::ptr::null_mut();
        // SAFETY: the shim writes a new handle into `ptr` on success only.
        unsafe {
            crate::ffi::check(
                "TCPStore",
                ffi::fx_tcp_store_new(
                    c_host.as_ptr(),
                    port,
                    world_size,
                    i32::from(is_server),
                    timeout.as_millis() as i64,
                    &mut ptr,
                ),
            )
            .map_err(|e| rendezvous_error(e, host, port))?;
        }
        Ok(Self { ptr })
    }
}

fn rendezvous_error(e: TorchExtError, host: &str, port: u16) -> TorchExtError {
    match e {
        TorchExtError::Torch { call, message } => TorchExtError::Torch {
            call,
            message: format!("rendezvous at {host}:{port} (MASTER_ADDR:MASTER_PORT): {message}"),
        },
        other => other,
    }
}

impl Drop for TcpStore {
    fn drop(&mut self) {
        // SAFETY: `ptr` came from fx_tcp_store_new and is freed once.
        unsafe { ffi::fx_store_free(self.ptr) }
    }
}
