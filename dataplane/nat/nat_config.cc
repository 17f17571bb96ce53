// NatConfig validation and the shared pool/port arithmetic.
#include "dataplane/nat/nat_config.h"

#include <arpa/inet.h>
#include <rte_byteorder.h>

#include <algorithm>
#include <string>

#include "dataplane/nat/bucket_index.h"

namespace exitgw::dp::nat {

namespace {

uint64_t prefix_size(const Ipv4Prefix& p) {
  return uint64_t{1} << (32 - p.len);
}
uint32_t prefix_mask(uint8_t len) {
  return len == 0 ? 0 : ~uint32_t{0} << (32 - len);
}

std::string ip_string(uint32_t a) {
  return std::to_string(a >> 24) + "." + std::to_string((a >> 16) & 255) + "." +
         std::to_string((a >> 8) & 255) + "." + std::to_string(a & 255);
}

std::string ip6_string(const Ipv6Address& a) {
  char text[INET6_ADDRSTRLEN];
  const auto b = a.bytes();
  return inet_ntop(AF_INET6, b.data(), text, sizeof(text)) ? text : "?";
}

unsigned __int128 as_number(const Ipv6Address& a) {
  return static_cast<unsigned __int128>(rte_be_to_cpu_64(a.hi)) << 64 | rte_be_to_cpu_64(a.lo);
}
Ipv6Address from_number(unsigned __int128 v) {
  Ipv6Address a;
  a.hi = rte_cpu_to_be_64(static_cast<uint64_t>(v >> 64));
  a.lo = rte_cpu_to_be_64(static_cast<uint64_t>(v));
  return a;
}
unsigned __int128 prefix_mask6(uint8_t len) {
  return len == 0 ? 0 : ~static_cast<unsigned __int128>(0) << (128 - len);
}
uint64_t prefix_size6(const Ipv6Prefix& p) {  // callers keep len >= 96
  return uint64_t{1} << (128 - p.len);
}

// NAT66's pool: each prefix /96../128 (its addresses are numbered by their low 32 bits),
// 65536 addresses in all, as NAT44's. A wider IPv6 pool is NPTv6's job, not this one's.
Status validate_pool6(const std::vector<Ipv6Prefix>& pool6) {
  if (pool6.empty())
    return make_error("nat66: the IPv6 pool is empty; give at least one public IPv6 address");
  uint64_t total = 0;
  for (const auto& p : pool6) {
    if (p.len > 128)
      return make_error("nat66: pool prefix length " + std::to_string(p.len) + " > 128");
    if (p.len < 112)
      return make_error("nat66: pool prefix " + ip6_string(p.address) + "/" +
                        std::to_string(p.len) +
                        " is larger than /112 (65536 addresses); stateful NAT66 needs a few "
                        "addresses, not a prefix (a /48-style prefix is NPTv6's)");
    if ((as_number(p.address) & ~prefix_mask6(p.len)) != 0)
      return make_error("nat66: pool prefix " + ip6_string(p.address) + "/" +
                        std::to_string(p.len) + " has host bits set");
    total += prefix_size6(p);
  }
  for (size_t i = 0; i < pool6.size(); ++i)
    for (size_t j = i + 1; j < pool6.size(); ++j) {
      const uint8_t len = std::min(pool6[i].len, pool6[j].len);
      if (((as_number(pool6[i].address) ^ as_number(pool6[j].address)) & prefix_mask6(len)) == 0)
        return make_error("nat66: pool prefixes " + ip6_string(pool6[i].address) + " and " +
                          ip6_string(pool6[j].address) + " overlap");
    }
  if (total > (1u << 16)) return make_error("nat66: pool larger than 65536 addresses");
  return Ok{};
}

}  // namespace

uint32_t Ipv6Address::low32() const noexcept {
  return static_cast<uint32_t>(as_number(*this));
}

Ipv6Address Ipv6Address::plus(uint32_t n) const noexcept {
  return from_number(as_number(*this) + n);
}

Status NatConfig::validate() const {
  if (family == NatFamily::kIpv6) {
    if (auto s = validate_pool6(pool6); !s) return s;
  } else if (pool.empty()) {
    return make_error("nat: the pool is empty; give at least one public address");
  }
  uint64_t total = family == NatFamily::kIpv6 ? pool_size() : 0;
  if (family == NatFamily::kIpv4) {
    for (const auto& p : pool) {
      if (p.len > 32)
        return make_error("nat: pool prefix length " + std::to_string(p.len) + " > 32");
      if (p.len < 16)
        return make_error("nat: pool prefix /" + std::to_string(p.len) +
                          " is larger than /16; split it or use fewer addresses");
      if ((p.address & ~prefix_mask(p.len)) != 0)
        return make_error("nat: pool prefix " + ip_string(p.address) + "/" + std::to_string(p.len) +
                          " has host bits set");
      total += prefix_size(p);
    }
    for (size_t i = 0; i < pool.size(); ++i)
      for (size_t j = i + 1; j < pool.size(); ++j) {
        const uint8_t len = std::min(pool[i].len, pool[j].len);
        if (((pool[i].address ^ pool[j].address) & prefix_mask(len)) == 0)
          return make_error("nat: pool prefixes " + ip_string(pool[i].address) + " and " +
                            ip_string(pool[j].address) + " overlap");
      }
  }
  if (total > (1u << 16)) return make_error("nat: pool larger than 65536 addresses");
  if (port_min == 0 || port_min > port_max)
    return make_error("nat: port range " + std::to_string(port_min) + "-" +
                      std::to_string(port_max) + " is empty or starts at 0");
  if (n_workers == 0 || n_workers > kMaxWorkers)
    return make_error("nat: n_workers must be 1.." + std::to_string(kMaxWorkers));
  if (slice_size() == 0) return make_error("nat: port range smaller than the number of workers");
  if (max_sessions == 0 || max_sessions > (1u << 26))
    return make_error("nat: max_sessions must be 1..67108864 per worker");
  if (max_sessions_per_subscriber == 0 || max_sessions_per_subscriber > 65535)
    return make_error("nat: max_sessions_per_subscriber must be 1..65535");
  if (timeouts.udp == 0 || timeouts.tcp_established == 0 || timeouts.tcp_transitory == 0 ||
      timeouts.icmp == 0 || fragment_timeout == 0)
    return make_error("nat: timeouts must be at least 1 second");
  if (timeouts.udp < 120) return make_error("nat: UDP timeout below 120 s breaks RFC 4787 REQ-5");
  if (timeouts.tcp_established < 7440 / 62)  // a sanity floor; RFC 5382 wants >= 2h4m
    return make_error("nat: TCP established timeout is implausibly short");
  if (ticks_per_second == 0) return make_error("nat: ticks_per_second is 0");
  if (fragment_entries == 0 || fragment_entries > (1u << 20))
    return make_error("nat: fragment_entries must be 1..1048576");
  if (mode == NatMode::kPortBlock) {
    if (block_size == 0 || block_size > 65536)
      return make_error("nat: block_size must be 1..65536");
    if (slice_size() % block_size != 0)
      return make_error("nat: block_size " + std::to_string(block_size) +
                        " does not divide the per-worker slice of " + std::to_string(slice_size()) +
                        " ports (" + std::to_string(port_min) + "-" + std::to_string(port_max) +
                        " over " + std::to_string(n_workers) + " workers)");
    if (max_blocks_per_subscriber == 0 || max_blocks_per_subscriber > kMaxBlocksPerSubscriber)
      return make_error("nat: max_blocks_per_subscriber must be 1.." +
                        std::to_string(kMaxBlocksPerSubscriber));
  } else {
    const std::string who = family == NatFamily::kIpv6 ? "nat66" : "nat";
    if (family == NatFamily::kIpv6) {
      const Ipv6Prefix& in = deterministic_inside6;
      if (in.len > 128 || in.len < 104)
        return make_error("nat66: deterministic inside prefix must be /104../128");
      if ((as_number(in.address) & ~prefix_mask6(in.len)) != 0)
        return make_error("nat66: deterministic inside prefix has host bits set");
    } else {
      const Ipv4Prefix& in = deterministic_inside;
      if (in.len > 32 || in.len < 8)
        return make_error("nat: deterministic inside prefix must be /8../32");
      if ((in.address & ~prefix_mask(in.len)) != 0)
        return make_error("nat: deterministic inside prefix has host bits set");
    }
    if (det_ports_per_subscriber() == 0)
      return make_error(who + ": deterministic ratio impossible: " +
                        std::to_string(det_subscribers()) + " subscribers over " +
                        std::to_string(total) + " addresses leaves fewer than 1 port each in a " +
                        std::to_string(slice_size()) + "-port worker slice");
  }
  if (max_subscribers > max_sessions)
    return make_error("nat: max_subscribers exceeds max_sessions");
  return Ok{};
}

uint32_t NatConfig::pool_size() const noexcept {
  uint64_t n = 0;
  if (family == NatFamily::kIpv6) {
    for (const auto& p : pool6) n += prefix_size6(p);
    return static_cast<uint32_t>(n);
  }
  for (const auto& p : pool) n += prefix_size(p);
  return static_cast<uint32_t>(n);
}

uint32_t NatConfig::address(uint32_t i) const noexcept {
  for (const auto& p : pool) {
    if (i < prefix_size(p)) return p.address + i;
    i -= static_cast<uint32_t>(prefix_size(p));
  }
  return 0;
}

uint32_t NatConfig::address_index(uint32_t ip) const noexcept {
  uint32_t base = 0;
  for (const auto& p : pool) {
    if (((ip ^ p.address) & prefix_mask(p.len)) == 0) return base + (ip - p.address);
    base += static_cast<uint32_t>(prefix_size(p));
  }
  return kNone;
}

Ipv6Address NatConfig::address6(uint32_t i) const noexcept {
  for (const auto& p : pool6) {
    if (i < prefix_size6(p)) return p.address.plus(i);
    i -= static_cast<uint32_t>(prefix_size6(p));
  }
  return {};
}

uint32_t NatConfig::address_index6(const Ipv6Address& ip) const noexcept {
  uint32_t base = 0;
  for (const auto& p : pool6) {
    // Pool prefixes are /112 or longer: the upper 96 bits match exactly.
    if (ip.hi == p.address.hi &&
        static_cast<uint32_t>(ip.lo) == static_cast<uint32_t>(p.address.lo)) {
      const uint32_t off = ip.low32() - p.address.low32();
      if (off < prefix_size6(p)) return base + off;
    }
    base += static_cast<uint32_t>(prefix_size6(p));
  }
  return kNone;
}

uint32_t NatConfig::paired_address_index(uint32_t subscriber) const noexcept {
  const uint64_t h = hash_words(subscriber, 0x7061697265640000ull, hash_seed);
  return static_cast<uint32_t>(((h >> 32) * pool_size()) >> 32);
}

uint32_t NatConfig::paired_address_index6(const Ipv6Address& subscriber) const noexcept {
  const uint64_t h = hash_words(hash_words(subscriber.hi, subscriber.lo, hash_seed),
                                0x7061697265640000ull, hash_seed);
  return static_cast<uint32_t>(((h >> 32) * pool_size()) >> 32);
}

uint32_t NatConfig::det_subscribers() const noexcept {
  if (family == NatFamily::kIpv6)
    return static_cast<uint32_t>(std::min<uint64_t>(
        deterministic_inside6.len >= 96 ? prefix_size6(deterministic_inside6) : uint64_t{1} << 32,
        1u << 24));
  return static_cast<uint32_t>(std::min<uint64_t>(prefix_size(deterministic_inside), 1u << 24));
}

uint32_t NatConfig::det_ratio() const noexcept {
  const uint32_t n = pool_size();
  return n == 0 ? 0 : (det_subscribers() + n - 1) / n;
}

uint32_t NatConfig::det_ports_per_subscriber() const noexcept {
  const uint32_t r = det_ratio();
  return r == 0 ? 0 : slice_size() / r;
}

bool NatConfig::det_forward(uint32_t subscriber, uint32_t worker, DetRange* out) const noexcept {
  const uint32_t i = subscriber - deterministic_inside.address;
  if (((subscriber ^ deterministic_inside.address) & prefix_mask(deterministic_inside.len)) != 0 ||
      i >= det_subscribers())
    return false;
  uint32_t a;
  det_slot(i, worker, &a, &out->port_first);
  out->public_address = address(a);
  out->port_last = static_cast<uint16_t>(out->port_first + det_ports_per_subscriber() - 1);
  return true;
}

bool NatConfig::det_forward6(const Ipv6Address& subscriber, uint32_t worker,
                             DetRange* out) const noexcept {
  const Ipv6Prefix& in = deterministic_inside6;
  if (((as_number(subscriber) ^ as_number(in.address)) & prefix_mask6(in.len)) != 0) return false;
  const uint32_t i = subscriber.low32() - in.address.low32();
  if (i >= det_subscribers()) return false;
  det_slot(i, worker, &out->public_address, &out->port_first);
  out->port_last = static_cast<uint16_t>(out->port_first + det_ports_per_subscriber() - 1);
  return true;
}

void NatConfig::det_slot(uint32_t i, uint32_t worker, uint32_t* address_index,
                         uint16_t* port_first) const noexcept {
  const uint32_t ratio = det_ratio();
  *address_index = i / ratio;
  *port_first =
      static_cast<uint16_t>(slice_first(worker) + (i % ratio) * det_ports_per_subscriber());
}

bool NatConfig::det_reverse(uint32_t public_address, uint16_t port,
                            uint32_t* subscriber) const noexcept {
  const uint32_t a = address_index(public_address);
  const uint32_t w = owner_worker(port);
  if (a == kNone || w == UINT32_MAX) return false;
  const uint32_t k = (port - slice_first(w)) / det_ports_per_subscriber();
  if (k >= det_ratio()) return false;  // the tail of the slice no subscriber owns
  const uint64_t i = uint64_t{a} * det_ratio() + k;
  if (i >= det_subscribers()) return false;
  *subscriber = deterministic_inside.address + static_cast<uint32_t>(i);
  return true;
}

uint32_t NatConfig::blocks_per_slice() const noexcept {
  return mode == NatMode::kDeterministic ? det_ratio() : slice_size() / block_size;
}

uint32_t NatConfig::effective_block_size() const noexcept {
  return mode == NatMode::kDeterministic ? det_ports_per_subscriber() : block_size;
}

// Every live subscriber holds a block, so blocks bound them; one spare slot lets a subscriber
// that finds its address exhausted be looked at (and turned away) without "table full".
uint32_t NatConfig::effective_max_subscribers() const noexcept {
  const uint64_t blocks = uint64_t{blocks_per_slice()} * pool_size() + 1;
  uint64_t n = max_subscribers ? max_subscribers : std::min<uint64_t>(max_sessions, blocks);
  return static_cast<uint32_t>(std::max<uint64_t>(1, std::min<uint64_t>(n, blocks)));
}

}  // namespace exitgw::dp::nat
