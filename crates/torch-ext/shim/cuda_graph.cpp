// CUDA graphs (at::cuda::CUDAGraph, what torch.cuda.CUDAGraph wraps): capture a fixed-shape
// piece of work once, replay it with one launch. A separate object because it needs USE_CUDA
// and the CUDA runtime headers; build.rs compiles it only where they are present (the same
// condition as the NCCL object) and the Rust side reports the reason otherwise.
//
// Capture runs on a side stream (CUDA forbids capturing the legacy default stream), as
// torch.cuda.graph does: enter_stream syncs the device and makes the side stream current,
// exit_stream restores the previous stream and syncs again, so work before and after sees a
// consistent device.
#include "guarded.h"
#include "torch_ext.h"

#include <ATen/autocast_mode.h>
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAStream.h>

#include <optional>
#include <stdexcept>
#include <string>

namespace {

struct GraphHandle {
  at::cuda::CUDAGraph graph;
  c10::cuda::CUDAStream stream;
  // The stream that was current before enter_stream (restored by exit_stream). Set through
  // c10's exported functions, not CUDAStreamGuard, whose inline code calls the CUDA runtime
  // directly (the binary would then need libcudart at link time).
  std::optional<c10::cuda::CUDAStream> previous;
  // The device that was current before enter_stream: capture_begin captures the current
  // device's current stream, so the graph's device is made current while on the side stream.
  c10::DeviceIndex previous_device = 0;
  bool autocast_cache;
  explicit GraphHandle(c10::DeviceIndex device)
      : stream(c10::cuda::getStreamFromPool(false, device)),
        autocast_cache(at::autocast::is_autocast_cache_enabled()) {}
};

GraphHandle *handle(fx_cuda_graph g) {
  if (g == nullptr) {
    throw std::invalid_argument("null CUDA graph handle");
  }
  return static_cast<GraphHandle *>(g);
}

} // namespace

extern "C" {

char *fx_cuda_graph_new(int64_t device, fx_cuda_graph *out) {
  return fx::guarded([&] {
    const int64_t count = c10::cuda::device_count();
    if (device < 0 || device >= count) {
      throw std::invalid_argument("CUDA graphs need a CUDA device: cuda:" +
                                  std::to_string(device) + " is not available (" +
                                  std::to_string(count) + " CUDA devices visible)");
    }
    *out = new GraphHandle(static_cast<c10::DeviceIndex>(device));
  });
}

char *fx_cuda_graph_enter_stream(fx_cuda_graph g) {
  return fx::guarded([&] {
    auto *h = handle(g);
    if (h->previous) {
      throw std::logic_error("CUDA graph: already on its side stream");
    }
    h->previous_device = c10::cuda::current_device();
    c10::cuda::set_device(h->stream.device_index());
    c10::cuda::device_synchronize();
    h->previous = c10::cuda::getCurrentCUDAStream(h->stream.device_index());
    c10::cuda::setCurrentCUDAStream(h->stream);
    // Autocast's cast cache would hand the graph tensors from outside its memory pool that a
    // later step frees (torch.cuda.graphs documents cache_enabled=False for the same reason).
    at::autocast::set_autocast_cache_enabled(false);
  });
}

char *fx_cuda_graph_exit_stream(fx_cuda_graph g) {
  return fx::guarded([&] {
    auto *h = handle(g);
    if (h->previous) {
      c10::cuda::setCurrentCUDAStream(*h->previous);
      h->previous.reset();
    }
    at::autocast::set_autocast_cache_enabled(h->autocast_cache);
    c10::cuda::device_synchronize();
    c10::cuda::set_device(h->previous_device);
  });
}

char *fx_cuda_graph_capture_begin(fx_cuda_graph g) {
  return fx::guarded([&] {
    auto *h = handle(g);
    if (!h->previous) {
      throw std::logic_error("CUDA graph: capture must begin on its side stream");
    }
    h->graph.capture_begin();
  });
}

char *fx_cuda_graph_capture_end(fx_cuda_graph g) {
  return fx::guarded([&] { handle(g)->graph.capture_end(); });
}

char *fx_cuda_graph_replay(fx_cuda_graph g) {
  return fx::guarded([&] { handle(g)->graph.replay(); });
}

char *fx_cuda_graph_free(fx_cuda_graph g) {
  return fx::guarded([&] { delete static_cast<GraphHandle *>(g); });
}

} // extern "C"
