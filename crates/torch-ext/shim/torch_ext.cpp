// The flowscale torch-ext shim: the libtorch calls tch 0.24 does not expose.
// Kept to plain ATen/c10 API so it compiles against the torch wheel's headers alone: the wheels
// ship no complete CUDA toolkit headers, so memory statistics go through ATen's device-generic
// accelerator API and device names through the CUDA driver API, loaded with dlopen.
#include "torch_ext.h"
#include "guarded.h"

#include <ATen/ATen.h>
#include <ATen/Context.h>
#include <ATen/autocast_mode.h>
#include <ATen/DeviceAccelerator.h>
#include <torch/version.h>

#include <dlfcn.h>

#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

namespace {

using fx::dup;
using fx::guarded;
using fx::tensors_of;

c10::DeviceType device_type_of(int device_type) {
  switch (device_type) {
  case 0:
    return c10::DeviceType::CPU;
  case 1:
    return c10::DeviceType::CUDA;
  default:
    throw std::invalid_argument("torch-ext: unsupported device type " +
                                std::to_string(device_type));
  }
}

int64_t cuda_device_count() {
  if (!at::hasCUDA()) {
    return 0;
  }
  auto acc = at::accelerator::getAccelerator(false);
  if (!acc.has_value() || *acc != c10::DeviceType::CUDA) {
    return 0;
  }
  return static_cast<int64_t>(at::accelerator::deviceCount());
}

void require_cuda_device(int64_t device) {
  int64_t count = cuda_device_count();
  if (device < 0 || device >= count) {
    throw std::out_of_range("torch-ext: CUDA device " + std::to_string(device) +
                            " does not exist (" + std::to_string(count) +
                            " visible)");
  }
}

} // namespace

extern "C" {

void fx_free_string(char *s) { free(s); }

char *fx_torch_version(char **out) {
  return guarded([&] { *out = dup(TORCH_VERSION); });
}

char *fx_libtorch_path(char **out) {
  return guarded([&] {
    Dl_info info;
    // at::show_config lives in libtorch_cpu.so: report the library actually loaded.
    if (dladdr(reinterpret_cast<void *>(&at::show_config), &info) == 0 ||
        info.dli_fname == nullptr) {
      throw std::runtime_error("dladdr could not locate libtorch_cpu");
    }
    *out = dup(info.dli_fname);
  });
}

char *fx_torch_build_config(char **out) {
  return guarded([&] { *out = dup(at::show_config()); });
}

char *fx_autocast_set_dtype(int device_type, int dtype) {
  return guarded([&] {
    at::autocast::set_autocast_dtype(device_type_of(device_type),
                                     static_cast<at::ScalarType>(dtype));
  });
}

char *fx_autocast_get_dtype(int device_type, int *out) {
  return guarded([&] {
    *out = static_cast<int>(
        at::autocast::get_autocast_dtype(device_type_of(device_type)));
  });
}

char *fx_autocast_set_enabled(int device_type, int enabled) {
  return guarded([&] {
    at::autocast::set_autocast_enabled(device_type_of(device_type), enabled != 0);
  });
}

char *fx_autocast_is_enabled(int device_type, int *out) {
  return guarded([&] {
    *out = at::autocast::is_autocast_enabled(device_type_of(device_type)) ? 1 : 0;
  });
}

char *fx_autocast_increment_nesting(int64_t *out) {
  return guarded([&] { *out = at::autocast::increment_nesting(); });
}

char *fx_autocast_decrement_nesting(int64_t *out) {
  return guarded([&] { *out = at::autocast::decrement_nesting(); });
}

char *fx_autocast_clear_cache(void) {
  return guarded([&] { at::autocast::clear_cache(); });
}

char *fx_fused_adamw(fx_tensor *params, fx_tensor *grads, fx_tensor *exp_avgs,
                     fx_tensor *exp_avg_sqs, fx_tensor *max_exp_avg_sqs,
                     fx_tensor *state_steps, size_t n, double lr, double beta1,
                     double beta2, double weight_decay, double eps, int amsgrad,
                     int maximize) {
  return guarded([&] {
    auto p = tensors_of(params, n);
    auto g = tensors_of(grads, n);
    auto m = tensors_of(exp_avgs, n);
    auto v = tensors_of(exp_avg_sqs, n);
    auto s = tensors_of(state_steps, n);
    std::vector<at::Tensor> vmax;
    if (amsgrad != 0) {
      if (max_exp_avg_sqs == nullptr) {
        throw std::invalid_argument("torch-ext: amsgrad needs max_exp_avg_sqs");
      }
      vmax = tensors_of(max_exp_avg_sqs, n);
    }
    at::_fused_adamw_(p, g, m, v, vmax, s, lr, beta1, beta2, weight_decay, eps,
                      amsgrad != 0, maximize != 0);
  });
}

char *fx_foreach_lerp_scalar(fx_tensor *selves, fx_tensor *ends, size_t n, double weight) {
  return guarded([&] {
    auto a = tensors_of(selves, n);
    auto b = tensors_of(ends, n);
    at::_foreach_lerp_(a, b, weight);
  });
}

char *fx_clear_grad(fx_tensor tensor) {
  return guarded([&] { static_cast<at::Tensor *>(tensor)->mutable_grad().reset(); });
}

char *fx_cuda_device_count(int64_t *out) {
  return guarded([&] {
    *out = cuda_device_count();
  });
}

char *fx_cuda_device_name(int64_t device, char **out) {
  return guarded([&] {
    require_cuda_device(device);
    // Driver API (libcuda, present wherever a GPU is usable); ordinals follow
    // CUDA_VISIBLE_DEVICES exactly as torch's do.
    using cu_init_t = int (*)(unsigned int);
    using cu_device_get_t = int (*)(int *, int);
    using cu_device_get_name_t = int (*)(char *, int, int);
    void *lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    if (lib == nullptr) {
      throw std::runtime_error("libcuda.so.1 could not be loaded");
    }
    auto cu_init = reinterpret_cast<cu_init_t>(dlsym(lib, "cuInit"));
    auto cu_device_get = reinterpret_cast<cu_device_get_t>(dlsym(lib, "cuDeviceGet"));
    auto cu_device_get_name =
        reinterpret_cast<cu_device_get_name_t>(dlsym(lib, "cuDeviceGetName"));
    if (cu_init == nullptr || cu_device_get == nullptr || cu_device_get_name == nullptr) {
      throw std::runtime_error("libcuda.so.1 lacks cuInit/cuDeviceGet/cuDeviceGetName");
    }
    int dev = 0;
    char name[256] = {0};
    int rc = cu_init(0);
    if (rc == 0) {
      rc = cu_device_get(&dev, static_cast<int>(device));
    }
    if (rc == 0) {
      rc = cu_device_get_name(name, sizeof(name) - 1, dev);
    }
    if (rc != 0) {
      throw std::runtime_error("CUDA driver error " + std::to_string(rc) +
                               " reading the name of device " + std::to_string(device));
    }
    *out = dup(name);
  });
}

char *fx_cuda_device_total_memory(int64_t device, int64_t *out) {
  return guarded([&] {
    require_cuda_device(device);
    // The driver API, as for the name: the runtime's cudaMemGetInfo would need the toolkit
    // headers the wheels do not ship.
    using cu_init_t = int (*)(unsigned int);
    using cu_device_get_t = int (*)(int *, int);
    using cu_device_total_mem_t = int (*)(size_t *, int);
    void *lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    if (lib == nullptr) {
      throw std::runtime_error("libcuda.so.1 could not be loaded");
    }
    auto cu_init = reinterpret_cast<cu_init_t>(dlsym(lib, "cuInit"));
    auto cu_device_get = reinterpret_cast<cu_device_get_t>(dlsym(lib, "cuDeviceGet"));
    auto cu_device_total_mem =
        reinterpret_cast<cu_device_total_mem_t>(dlsym(lib, "cuDeviceTotalMem_v2"));
    if (cu_init == nullptr || cu_device_get == nullptr || cu_device_total_mem == nullptr) {
      throw std::runtime_error("libcuda.so.1 lacks cuInit/cuDeviceGet/cuDeviceTotalMem_v2");
    }
    int dev = 0;
    size_t bytes = 0;
    int rc = cu_init(0);
    if (rc == 0) {
      rc = cu_device_get(&dev, static_cast<int>(device));
    }
    if (rc == 0) {
      rc = cu_device_total_mem(&bytes, dev);
    }
    if (rc != 0) {
      throw std::runtime_error("CUDA driver error " + std::to_string(rc) +
                               " reading the total memory of device " + std::to_string(device));
    }
    *out = static_cast<int64_t>(bytes);
  });
}

char *fx_cuda_memory_stats(int64_t device, int64_t out[7]) {
  return guarded([&] {
    require_cuda_device(device);
    using c10::CachingAllocator::StatType;
    const auto agg = static_cast<size_t>(StatType::AGGREGATE);
    auto stats = at::accelerator::getDeviceStats(static_cast<c10::DeviceIndex>(device));
    out[0] = stats.allocated_bytes[agg].current;
    out[1] = stats.allocated_bytes[agg].peak;
    out[2] = stats.reserved_bytes[agg].current;
    out[3] = stats.reserved_bytes[agg].peak;
    out[4] = stats.active_bytes[agg].current;
    out[5] = stats.num_alloc_retries;
    out[6] = stats.num_ooms;
  });
}

char *fx_cuda_reset_peak_memory_stats(int64_t device) {
  return guarded([&] {
    require_cuda_device(device);
    at::accelerator::resetPeakStats(static_cast<c10::DeviceIndex>(device));
  });
}

char *fx_cuda_empty_cache(void) {
  return guarded([&] {
    if (cuda_device_count() > 0) {
      at::accelerator::emptyCache();
    }
  });
}

char *fx_set_deterministic_algorithms(int enabled, int warn_only) {
  return guarded([&] {
    at::globalContext().setDeterministicAlgorithms(enabled != 0, warn_only != 0);
  });
}

char *fx_deterministic_algorithms(int *out) {
  return guarded([&] { *out = at::globalContext().deterministicAlgorithms() ? 1 : 0; });
}

char *fx_set_allow_tf32(int cublas, int cudnn) {
  return guarded([&] {
    at::globalContext().setAllowTF32CuBLAS(cublas != 0);
    at::globalContext().setAllowTF32CuDNN(cudnn != 0);
  });
}

char *fx_allow_tf32(int *cublas, int *cudnn) {
  return guarded([&] {
    *cublas = at::globalContext().allowTF32CuBLAS() ? 1 : 0;
    *cudnn = at::globalContext().allowTF32CuDNN() ? 1 : 0;
  });
}

} // extern "C"
