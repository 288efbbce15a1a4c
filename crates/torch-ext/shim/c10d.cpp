// flowscale's c10d wrappers: the TCPStore, the Gloo group and the collectives of every group
// (Gloo or NCCL, see c10d_nccl.cpp). Compiled with USE_C10D_GLOO against the torch wheel's c10d
// headers and Debian's gloo headers (the wheel has Gloo compiled in but ships no gloo headers);
// the symbols come from libtorch_cpu.
#include "c10d.h"
#include "c10d_handles.h"
#include "guarded.h"

#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <chrono>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

namespace {

using fx::GroupHandle;
using fx::guarded;
using fx::StoreHandle;
using fx::tensors_of;

c10d::ReduceOp reduce_op(int op) {
  switch (op) {
  case 0:
    return c10d::ReduceOp::SUM;
  case 1:
    return c10d::ReduceOp::MAX;
  case 2:
    return c10d::ReduceOp::MIN;
  case 3:
    // NCCL only; Gloo rejects it (the Rust side divides a sum instead).
    return c10d::ReduceOp::AVG;
  default:
    throw std::invalid_argument("c10d: unknown reduce op " + std::to_string(op));
  }
}

void wait(GroupHandle *g, const c10::intrusive_ptr<c10d::Work> &work) {
  // wait() throws when the peer is gone or the timeout passes: a dead rank becomes an error.
  // (For NCCL the explicit timeout makes this a blocking wait; see c10d_nccl.cpp.)
  work->wait(g->timeout);
}

} // namespace

extern "C" {

char *fx_tcp_store_new(const char *host, uint16_t port, int64_t world_size, int is_server,
                       int64_t timeout_ms, fx_store *out) {
  return guarded([&] {
    c10d::TCPStoreOptions opts;
    opts.port = port;
    opts.isServer = is_server != 0;
    opts.numWorkers = static_cast<size_t>(world_size);
    opts.waitWorkers = true;
    opts.timeout = std::chrono::milliseconds(timeout_ms);
    auto store = c10::make_intrusive<c10d::TCPStore>(std::string(host), opts);
    *out = new StoreHandle{store};
  });
}

void fx_store_free(fx_store store) { delete static_cast<StoreHandle *>(store); }

char *fx_gloo_new(fx_store store, int64_t rank, int64_t size, const char *hostname,
                  int64_t timeout_ms, fx_process_group *out) {
  return guarded([&] {
    auto *s = static_cast<StoreHandle *>(store);
    auto timeout = std::chrono::milliseconds(timeout_ms);
    auto opts = c10d::ProcessGroupGloo::Options::create(timeout);
    opts->devices.push_back(
        c10d::ProcessGroupGloo::createDeviceForHostname(std::string(hostname)));
    auto pg = c10::make_intrusive<c10d::ProcessGroupGloo>(s->store, static_cast<int>(rank),
                                                          static_cast<int>(size), opts);
    *out = new GroupHandle{pg, timeout};
  });
}

void fx_process_group_free(fx_process_group pg) { delete static_cast<GroupHandle *>(pg); }

char *fx_all_reduce(fx_process_group pg, fx_tensor *tensors, size_t n, int op) {
  return guarded([&] {
    auto *g = static_cast<GroupHandle *>(pg);
    c10d::AllreduceOptions opts;
    opts.reduceOp = reduce_op(op);
    opts.timeout = g->timeout;
    // A tensor list in c10d means one replica per local device; independent tensors are
    // separate collectives, all queued before the first wait so Gloo pipelines them.
    std::vector<c10::intrusive_ptr<c10d::Work>> works;
    for (auto &t : tensors_of(tensors, n)) {
      std::vector<at::Tensor> one{t};
      works.push_back(g->pg->allreduce(one, opts));
    }
    for (auto &w : works) {
      wait(g, w);
    }
  });
}

char *fx_broadcast(fx_process_group pg, fx_tensor *tensors, size_t n, int64_t root) {
  return guarded([&] {
    auto *g = static_cast<GroupHandle *>(pg);
    c10d::BroadcastOptions opts;
    opts.rootRank = root;
    opts.timeout = g->timeout;
    std::vector<c10::intrusive_ptr<c10d::Work>> works;
    for (auto &t : tensors_of(tensors, n)) {
      std::vector<at::Tensor> one{t};
      works.push_back(g->pg->broadcast(one, opts));
    }
    for (auto &w : works) {
      wait(g, w);
    }
  });
}

char *fx_all_gather(fx_process_group pg, fx_tensor input, fx_tensor *outputs, size_t size) {
  return guarded([&] {
    auto *g = static_cast<GroupHandle *>(pg);
    std::vector<at::Tensor> in{*static_cast<at::Tensor *>(input)};
    std::vector<std::vector<at::Tensor>> out{tensors_of(outputs, size)};
    c10d::AllgatherOptions opts;
    opts.timeout = g->timeout;
    wait(g, g->pg->allgather(out, in, opts));
  });
}

char *fx_reduce_scatter(fx_process_group pg, fx_tensor output, fx_tensor input, int op) {
  return guarded([&] {
    auto *g = static_cast<GroupHandle *>(pg);
    auto out = *static_cast<at::Tensor *>(output);
    auto in = *static_cast<at::Tensor *>(input);
    c10d::ReduceScatterOptions opts;
    opts.reduceOp = reduce_op(op);
    opts.timeout = g->timeout;
    wait(g, g->pg->_reduce_scatter_base(out, in, opts));
  });
}

char *fx_all_gather_flat(fx_process_group pg, fx_tensor output, fx_tensor input) {
  return guarded([&] {
    auto *g = static_cast<GroupHandle *>(pg);
    auto out = *static_cast<at::Tensor *>(output);
    auto in = *static_cast<at::Tensor *>(input);
    c10d::AllgatherOptions opts;
    opts.timeout = g->timeout;
    wait(g, g->pg->_allgather_base(out, in, opts));
  });
}

char *fx_barrier(fx_process_group pg) {
  return guarded([&] {
    auto *g = static_cast<GroupHandle *>(pg);
    c10d::BarrierOptions opts;
    opts.timeout = g->timeout;
    wait(g, g->pg->barrier(opts));
  });
}

} // extern "C"
