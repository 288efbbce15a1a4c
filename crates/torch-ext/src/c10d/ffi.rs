//! Raw declarations of `shim/c10d.h`.

use std::ffi::{c_char, c_int, c_void};

use crate::ffi::FxTensor;

pub type FxStore = *mut c_void;
pub type FxProcessGroup = *mut c_void;

extern "C" {
    pub fn fx_tcp_store_new(
        host: *const c_char,
        port: u16,
        world_size: i64,
        is_server: c_int,
        timeout_ms: i64,
        out: *mut FxStore,
    ) -> *mut c_char;
    pub fn fx_store_free(store: FxStore);
    pub fn fx_gloo_new(
        store: FxStore,
        rank: i64,
        size: i64,
        hostname: *const c_char,
        timeout_ms: i64,
        out: *mut FxProcessGroup,
    ) -> *mut c_char;
    #[cfg(flowscale_nccl)]
    pub fn fx_nccl_new(
        store: FxStore,
        rank: i64,
        size: i64,
        device: i64,
        timeout_ms: i64,
        out: *mut FxProcessGroup,
    ) -> *mut c_char;
    pub fn fx_process_group_free(pg: FxProcessGroup);
    pub fn fx_all_reduce(
        pg: FxProcessGroup,
        tensors: *mut FxTensor,
        n: usize,
        op: c_int,
    ) -> *mut c_char;
    pub fn fx_broadcast(
        pg: FxProcessGroup,
        tensors: *mut FxTensor,
        n: usize,
        root: i64,
    ) -> *mut c_char;
    pub fn fx_all_gather(
        pg: FxProcessGroup,
        input: FxTensor,
        outputs: *mut FxTensor,
        size: usize,
    ) -> *mut c_char;
    pub fn fx_reduce_scatter(
        pg: FxProcessGroup,
        output: FxTensor,
        input: FxTensor,
        op: c_int,
    ) -> *mut c_char;
    pub fn fx_all_gather_flat(pg: FxProcessGroup, output: FxTensor, input: FxTensor)
        -> *mut c_char;
    pub fn fx_barrier(pg: FxProcessGroup) -> *mut c_char;
}
