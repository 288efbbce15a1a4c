// The NCCL process group: c10d's ProcessGroupNCCL from libtorch_cuda, over the same store handle
// as the Gloo group, returned as the same GroupHandle so c10d.cpp's collectives drive it.
// A separate object because it needs USE_C10D_NCCL, the CUDA runtime headers and nccl.h (from
// the wheel's nvidia-* packages); build.rs compiles it only when they are present.
#include "c10d.h"
#include "c10d_handles.h"
#include "guarded.h"

#include <c10/cuda/CUDAFunctions.h>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>

#include <chrono>
#include <cstdlib>
#include <stdexcept>
#include <string>

extern "C" {

char *fx_nccl_new(fx_store store, int64_t rank, int64_t size, int64_t device, int64_t timeout_ms,
                  fx_process_group *out) {
  return fx::guarded([&] {
    // ProcessGroupNCCL's own check says only "no GPUs found"; name the device asked for.
    const int64_t count = c10::cuda::device_count();
    if (device < 0 || device >= count) {
      throw std::invalid_argument("CUDA device cuda:" + std::to_string(device) +
                                  " is not available (" + std::to_string(count) +
                                  " CUDA devices visible)");
    }
    // Read once by the constructor. Blocking wait: wait() blocks the host until the collective
    // finished or timed out, then throws on this thread. Async error handling 2 (clean up
    // only): the watchdog thread aborts the communicators of a failed collective but does not
    // take the process down (its default, 3, would terminate it from the watchdog thread).
    // A user's own setting wins.
    setenv("TORCH_NCCL_BLOCKING_WAIT", "1", 0);
    setenv("TORCH_NCCL_ASYNC_ERROR_HANDLING", "2", 0);
    auto *s = static_cast<fx::StoreHandle *>(store);
    auto timeout = std::chrono::milliseconds(timeout_ms);
    auto opts = c10d::ProcessGroupNCCL::Options::create();
    opts->timeout = timeout;
    // Own key space in the store, as torch.distributed prefixes each group's keys.
    auto prefixed = c10::make_intrusive<c10d::PrefixStore>("nccl", s->store);
    auto pg = c10::make_intrusive<c10d::ProcessGroupNCCL>(prefixed, static_cast<int>(rank),
                                                          static_cast<int>(size), opts);
    // One GPU per process: bind the group to it and create the communicator now, so a broken
    // NCCL setup fails here rather than in the first gradient all-reduce.
    const at::Device dev(at::kCUDA, static_cast<c10::DeviceIndex>(device));
    pg->setBoundDeviceId(dev);
    pg->eagerConnectSingleDevice(dev);
    *out = new fx::GroupHandle{pg, timeout};
  });
}

} // extern "C"
