// The handles behind fx_store / fx_process_group, shared by the Gloo object (c10d.cpp) and the
// NCCL object (c10d_nccl.cpp): a group of either backend is a c10d::Backend, so one set of
// collectives (in c10d.cpp) serves both.
#pragma once

#include <torch/csrc/distributed/c10d/Backend.hpp>
#include <torch/csrc/distributed/c10d/Store.hpp>

#include <chrono>

namespace fx {

// Owned handles: the intrusive pointers keep the objects alive until the Rust side frees them.
struct StoreHandle {
  c10::intrusive_ptr<c10d::Store> store;
};

struct GroupHandle {
  c10::intrusive_ptr<c10d::Backend> pg;
  // Passed to every wait(): with NCCL an explicit timeout also makes the wait block the host
  // until the collective finished or timed out (so a dead peer becomes an exception here).
  std::chrono::milliseconds timeout;
};

} // namespace fx
