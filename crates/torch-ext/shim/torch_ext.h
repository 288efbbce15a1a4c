// C interface of the flowscale torch-ext shim. Every function that can fail returns a heap
// string with the C++ exception's message (free it with fx_free_string) or NULL on success.
// Tensors are passed as `at::Tensor*`, the same pointer tch's `Tensor::as_ptr` hands out.
#pragma once
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef void *fx_tensor;

void fx_free_string(char *s);

// Versions and build.
char *fx_torch_version(char **out);
char *fx_libtorch_path(char **out);
char *fx_torch_build_config(char **out);

// Autocast (device_type: c10::DeviceType, 0 = CPU, 1 = CUDA; dtype: c10::ScalarType).
char *fx_autocast_set_dtype(int device_type, int dtype);
char *fx_autocast_get_dtype(int device_type, int *out);
char *fx_autocast_set_enabled(int device_type, int enabled);
char *fx_autocast_is_enabled(int device_type, int *out);
char *fx_autocast_increment_nesting(int64_t *out);
char *fx_autocast_decrement_nesting(int64_t *out);
char *fx_autocast_clear_cache(void);

// at::_foreach_lerp_: selves[i] += weight * (ends[i] - selves[i]) for n pairs, one multi-tensor
// kernel per device and dtype on CUDA (a loop on the CPU).
char *fx_foreach_lerp_scalar(fx_tensor *selves, fx_tensor *ends, size_t n, double weight);

// Drops the tensor's .grad (undefined afterwards), freeing its memory: what PyTorch's
// zero_grad(set_to_none=True) does.
char *fx_clear_grad(fx_tensor tensor);

// at::_fused_adamw_ over n parameters. max_exp_avg_sqs may be NULL when amsgrad == 0.
char *fx_fused_adamw(fx_tensor *params, fx_tensor *grads, fx_tensor *exp_avgs,
                     fx_tensor *exp_avg_sqs, fx_tensor *max_exp_avg_sqs,
                     fx_tensor *state_steps, size_t n, double lr, double beta1,
                     double beta2, double weight_decay, double eps, int amsgrad,
                     int maximize);

// CUDA devices and memory statistics of the caching allocator.
char *fx_cuda_device_count(int64_t *out);
char *fx_cuda_device_name(int64_t device, char **out);
// out: allocated, peak allocated, reserved, peak reserved, active, allocation retries, OOMs.
// Total memory of a CUDA device in bytes (the driver's cuDeviceTotalMem).
char *fx_cuda_device_total_memory(int64_t device, int64_t *out);
char *fx_cuda_memory_stats(int64_t device, int64_t out[7]);
char *fx_cuda_reset_peak_memory_stats(int64_t device);
char *fx_cuda_empty_cache(void);

// CUDA graphs (shim/cuda_graph.cpp, compiled only with the CUDA runtime headers): a handle per
// graph; capture and warm-up run between enter_stream and exit_stream (a side stream).
typedef void *fx_cuda_graph;
char *fx_cuda_graph_new(int64_t device, fx_cuda_graph *out);
char *fx_cuda_graph_enter_stream(fx_cuda_graph g);
char *fx_cuda_graph_exit_stream(fx_cuda_graph g);
char *fx_cuda_graph_capture_begin(fx_cuda_graph g);
char *fx_cuda_graph_capture_end(fx_cuda_graph g);
char *fx_cuda_graph_replay(fx_cuda_graph g);
char *fx_cuda_graph_free(fx_cuda_graph g);

// Global numerics switches.
char *fx_set_deterministic_algorithms(int enabled, int warn_only);
char *fx_deterministic_algorithms(int *out);
char *fx_set_allow_tf32(int cublas, int cudnn);
char *fx_allow_tf32(int *cublas, int *cudnn);

#ifdef __cplusplus
}
#endif
