// NAT44 vocabulary shared by the worker and its callers: verdicts, drop reasons, events, counters.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <string_view>

#include "common/spsc_ring.h"
#include "common/counters.h"
#include "common/nat_drops.h"

namespace exitgw::dp::nat {

// What the caller does with a packet after out()/in().
enum class NatVerdict : uint8_t {
  kForward,         // out(): send to the internet; in(): deliver to the subscriber
  kHairpin,         // out(): translated out AND in (RFC 4787 REQ-9); deliver to the subscriber
  kHairpinHandoff,  // out() half done; the destination port belongs to another worker: hand the
                    // packet to owner_worker(destination port), whose in() finishes it
  kDrop,            // counted under the NatDrop written to *why
};

enum class NatDrop : uint8_t {
#define EXITGW_X(name, label) name,
  EXITGW_NAT_DROPS(EXITGW_X)
#undef EXITGW_X
      kCount
};

inline constexpr std::array<std::string_view, static_cast<size_t>(NatDrop::kCount)> kNatDropNames =
    {
#define EXITGW_X(name, label) label,
        EXITGW_NAT_DROPS(EXITGW_X)
#undef EXITGW_X
};

constexpr std::string_view nat_drop_name(NatDrop d) {
  return kNatDropNames[static_cast<size_t>(d)];
}

enum class NatEventType : uint8_t {
  kBlockAllocated,  // RFC 8158 NAT44 address/port block allocation
  kBlockReleased,
  kPoolExhausted,  // the subscriber's paired address has no free block in this worker's slice
  kPortLimit,      // the subscriber holds max blocks and all their ports are in use
  kSessionLimit,   // the subscriber reached max_sessions_per_subscriber
};

// One record for the flow-log exporter; `time` in the caller's ticks. NAT44 (family 4): the
// addresses in host order in subscriber/public_address. NAT66 (family 6): those are 0 and the
// addresses are in subscriber6/public_address6, network order (RFC 8158 has IPv6 elements).
struct NatEvent {
  uint64_t time;
  uint32_t subscriber;
  uint32_t public_address;
  uint16_t port_first, port_last;
  NatEventType type;
  uint8_t worker;
  uint8_t family = 4;
  uint8_t pad;
  std::array<uint8_t, 16> subscriber6{};
  std::array<uint8_t, 16> public_address6{};
};
static_assert(sizeof(NatEvent) == 56);

// Worker -> control NAT events (a class, not an alias, so it can be declared ahead).
class NatEventRing : public SpscRing<NatEvent> {
 public:
  using SpscRing::SpscRing;
};

// A level written by one lcore and read by others (the Counter idiom, but it also goes down).
class Gauge {
 public:
  void add(int64_t n) noexcept {
    v_.store(v_.load(std::memory_order_relaxed) + static_cast<uint64_t>(n),
             std::memory_order_relaxed);
  }
  uint64_t get() const noexcept { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> v_{0};
};

// Owned by one NatWorker (its lcore writes); control reads them for metrics.
struct alignas(64) NatCounters {
  Counter translated_out, translated_in, hairpinned, fragments_followed;
  Counter drops[static_cast<size_t>(NatDrop::kCount)];
  Counter sessions_created, sessions_expired, sessions_removed, blocks_allocated, blocks_released;
  Counter pool_exhausted, events_lost;
  Gauge sessions_tcp_established, sessions_tcp_transitory, sessions_udp, sessions_icmp;
  Gauge mappings, subscribers, blocks_in_use;
  std::unique_ptr<Gauge[]> blocks_by_address;  // indexed like NatConfig::address(i)

  void drop(NatDrop d) noexcept { drops[static_cast<size_t>(d)].add(); }
  uint64_t drops_of(NatDrop d) const noexcept { return drops[static_cast<size_t>(d)].get(); }
  uint64_t sessions() const noexcept {
    return sessions_tcp_established.get() + sessions_tcp_transitory.get() + sessions_udp.get() +
           sessions_icmp.get();
  }
};

}  // namespace exitgw::dp::nat
