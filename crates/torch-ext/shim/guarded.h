// Helpers shared by the shim's translation units: C++ exceptions become heap error strings
// (freed with fx_free_string) and tensor handle arrays become ATen tensor lists.
#pragma once

#include "torch_ext.h"

#include <ATen/ATen.h>
#include <c10/util/Exception.h>

#include <cstring>
#include <exception>
#include <string>
#include <vector>

namespace fx {

inline char *dup(const std::string &s) { return strdup(s.c_str()); }

// Runs f; returns NULL on success or the exception's message. libtorch's errors lose their C++
// stack trace: the message is what a user can act on.
template <typename F> char *guarded(F &&f) {
  try {
    f();
    return nullptr;
  } catch (const c10::Error &e) {
    return dup(e.what_without_backtrace());
  } catch (const std::exception &e) {
    return dup(e.what());
  } catch (...) {
    return dup("unknown C++ exception in the torch-ext shim");
  }
}

// Shallow copies share storage, so in-place kernels and collectives update the caller's tensors.
inline std::vector<at::Tensor> tensors_of(fx_tensor *ptrs, size_t n) {
  std::vector<at::Tensor> out;
  out.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    out.push_back(*static_cast<at::Tensor *>(ptrs[i]));
  }
  return out;
}

} // namespace fx
