// A stage's named exits: each stage with more than one way on declares an `enum class ...Exit`
// ending in kCount (as grout and VPP nodes declare their next nodes) and sorts its burst into
// an Exits<...Exit>; dataplane/graph.cc passes each exit's sub-burst to the stage it leads to.
// A stage with a single way on keeps the compacted-burst shape (returns how many continue,
// at the front of the array it was given). Drops are not an exit: Worker::drop counts them
// under one DropReason and frees them in bulk; TX, punt and hand-off are the worker's sinks.
#pragma once

#include <cstddef>
#include <cstdint>

#include <rte_mbuf.h>

#include "common/dataplane_context.h"

namespace exitgw::dp {

// Per-exit arrays on the caller's stack, refilled each burst: a stage sees at most kBurst
// packets and sends each to at most one exit.
template <typename Exit>
struct Exits {
  static constexpr size_t kExits = static_cast<size_t>(Exit::kCount);

  void to(Exit e, rte_mbuf* m) noexcept {
    const auto i = static_cast<size_t>(e);
    pkts[i][n[i]++] = m;
  }
  rte_mbuf** of(Exit e) noexcept { return pkts[static_cast<size_t>(e)]; }
  uint16_t count(Exit e) const noexcept { return n[static_cast<size_t>(e)]; }

  rte_mbuf* pkts[kExits][kBurst];
  uint16_t n[kExits] = {};
};

}  // namespace exitgw::dp
