// C interface of flowscale's c10d wrappers: TCPStore rendezvous, the Gloo process group (CPU
// tensors) and the NCCL process group (CUDA tensors), the engine PyTorch's DDP runs on. Same conventions as torch_ext.h: a non-NULL
// return is a heap error string (free with fx_free_string).
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "torch_ext.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef void *fx_store;
typedef void *fx_process_group;

// A TCPStore client; rank 0 (is_server = 1) also hosts the server. timeout_ms bounds every
// store operation, including waiting for all world_size ranks to connect.
char *fx_tcp_store_new(const char *host, uint16_t port, int64_t world_size, int is_server,
                       int64_t timeout_ms, fx_store *out);
void fx_store_free(fx_store store);

// A ProcessGroupGloo over the store on the loopback/host interface `hostname`.
char *fx_gloo_new(fx_store store, int64_t rank, int64_t size, const char *hostname,
                  int64_t timeout_ms, fx_process_group *out);
// A ProcessGroupNCCL of `size` ranks, one CUDA device (`device`) per process, its communicator
// connected eagerly. Only in builds that found the NCCL and CUDA headers (build.rs sets the
// Rust cfg `flowscale_nccl` then). Sets TORCH_NCCL_BLOCKING_WAIT=1 and
// TORCH_NCCL_ASYNC_ERROR_HANDLING=2 unless the environment already has them, so a collective
// whose peer died throws after timeout_ms instead of hanging or killing the process.
char *fx_nccl_new(fx_store store, int64_t rank, int64_t size, int64_t device, int64_t timeout_ms,
                  fx_process_group *out);
void fx_process_group_free(fx_process_group pg);

// Collectives; each waits for completion (or the group's timeout).
// op: 0 sum, 1 max, 2 min, 3 average (NCCL only).
char *fx_all_reduce(fx_process_group pg, fx_tensor *tensors, size_t n, int op);
char *fx_broadcast(fx_process_group pg, fx_tensor *tensors, size_t n, int64_t root);
// outputs: size tensors shaped like input.
char *fx_all_gather(fx_process_group pg, fx_tensor input, fx_tensor *outputs, size_t size);
// input: world_size * n elements; output: n elements, this rank's chunk of the reduction.
char *fx_reduce_scatter(fx_process_group pg, fx_tensor output, fx_tensor input, int op);
// output: world_size * n elements, every rank's n-element input in rank order.
char *fx_all_gather_flat(fx_process_group pg, fx_tensor output, fx_tensor input);
char *fx_barrier(fx_process_group pg);

#ifdef __cplusplus
}
#endif
