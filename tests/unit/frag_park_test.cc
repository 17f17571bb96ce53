// The fragment park: bounded holding of fragments that beat their first one, order kept,
// owners learned at the home worker, and every fragment that cannot wait counted as a drop.
#include "dataplane/frag_park.h"

#include <gtest/gtest.h>
#include <rte_eal.h>
#include <rte_mbuf.h>
#include <unistd.h>

#include <arpa/inet.h>

#include <array>
#include <cstring>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "common/dataplane_context.h"
#include "dataplane/nat/nat_config.h"
#include "dataplane/stages.h"
#include "dataplane/worker.h"
#include "tests/support/eal_environment.h"

namespace exitgw::dp {
namespace {

EXITGW_EAL_ENVIRONMENT("frag_park_test", 128);

struct Bed {
  Bed() {
    static int n = 0;
    pool = rte_pktmbuf_pool_create(("fp" + std::to_string(n++)).c_str(), 1023, 0,
                                   sizeof(PacketMeta), RTE_MBUF_DEFAULT_BUF_SIZE, SOCKET_ID_ANY);
    ctx = std::make_unique<DataplaneContext>();
    ctx->n_workers = 1;
    worker = std::make_unique<Worker>(*ctx, 0);
    park.set_timeout(1000);
  }
  ~Bed() {
    worker->flush();
    rte_mempool_free(pool);
  }
  rte_mbuf* mbuf() {
    rte_mbuf* m = rte_pktmbuf_alloc(pool);
    meta(m)->in_port = 0;
    return m;
  }
  uint64_t drops(DropReason r) const {
    return ctx->workers[0].counters.drops[0][static_cast<size_t>(r)].get();
  }
  rte_mempool* pool;
  std::unique_ptr<DataplaneContext> ctx;
  std::unique_ptr<Worker> worker;
  FragmentPark park;
};

FragmentPark::Key key(uint16_t id, bool inbound = true) {
  return FragmentPark::Key{0x0a000001, 0xcb007101, id, 17, static_cast<uint8_t>(inbound)};
}

TEST(FragmentPark, HeldFragmentsComeBackInArrivalOrderOnceAndOnlyForTheirDatagram) {
  Bed b;
  rte_mbuf* a[3] = {b.mbuf(), b.mbuf(), b.mbuf()};
  rte_mbuf* other = b.mbuf();
  for (rte_mbuf* m : a) ASSERT_TRUE(b.park.hold(*b.worker, key(1), m, 10));
  ASSERT_TRUE(b.park.hold(*b.worker, key(2), other, 10));
  ASSERT_TRUE(b.park.hold(*b.worker, key(1, false), b.mbuf(), 10));  // the other direction
  rte_mbuf* out[FragmentPark::kHeld];
  ASSERT_EQ(b.park.release(key(1), out), 3u);
  EXPECT_EQ(out[0], a[0]);
  EXPECT_EQ(out[1], a[1]);
  EXPECT_EQ(out[2], a[2]);
  EXPECT_EQ(b.park.release(key(1), out), 0u);
  ASSERT_EQ(b.park.release(key(2), out), 1u);
  EXPECT_EQ(out[0], other);
  for (rte_mbuf* m : a) rte_pktmbuf_free(m);
  rte_pktmbuf_free(other);
  b.park.expire(*b.worker, UINT64_MAX);  // the other direction's fragment: dropped, counted
  EXPECT_EQ(b.drops(DropReason::kFragmentTimeout), 1u);
  EXPECT_FALSE(b.park.holding());
}

TEST(FragmentPark, ADatagramHoldsAtMostKHeldFragments) {
  Bed b;
  for (unsigned i = 0; i < FragmentPark::kHeld; ++i)
    ASSERT_TRUE(b.park.hold(*b.worker, key(7), b.mbuf(), 0));
  rte_mbuf* extra = b.mbuf();
  EXPECT_FALSE(b.park.hold(*b.worker, key(7), extra, 0));  // the caller drops it
  rte_pktmbuf_free(extra);
  b.park.expire(*b.worker, UINT64_MAX);
  EXPECT_EQ(b.drops(DropReason::kFragmentTimeout), FragmentPark::kHeld);
}

TEST(FragmentPark, TheTableIsBoundedAndRefusesRatherThanEvictsWaitingDatagrams) {
  Bed b;
  unsigned held = 0, refused = 0;
  for (uint16_t id = 0; id < 1000; ++id) {
    rte_mbuf* m = b.mbuf();
    if (b.park.hold(*b.worker, key(id), m, 0)) {
      ++held;
    } else {
      ++refused;
      rte_pktmbuf_free(m);
    }
  }
  EXPECT_LE(held, FragmentPark::kSets * FragmentPark::kWays);
  EXPECT_GT(refused, 0u);
  EXPECT_EQ(b.drops(DropReason::kFragmentParkFull), 0u);  // nothing waiting was thrown out
  b.park.expire(*b.worker, 999);                          // not yet due
  EXPECT_EQ(b.drops(DropReason::kFragmentTimeout), 0u);
  b.park.expire(*b.worker, 1000);
  EXPECT_EQ(b.drops(DropReason::kFragmentTimeout), held);
  EXPECT_FALSE(b.park.holding());
  // Room again once the old ones timed out.
  EXPECT_TRUE(b.park.hold(*b.worker, key(5), b.mbuf(), 2000));
  b.park.expire(*b.worker, UINT64_MAX);
}

TEST(FragmentPark, HomeWorkerLearnsTheOwnerFromTheFirstFragmentAndKeepsIt) {
  Bed b;
  rte_mbuf* early = b.mbuf();
  ASSERT_EQ(b.park.owner(key(9), 0), FragmentPark::kNoOwner);
  ASSERT_TRUE(b.park.hold(*b.worker, key(9), early, 0));
  rte_mbuf* out[FragmentPark::kHeld];
  ASSERT_EQ(b.park.learn(*b.worker, key(9), 1, 5, out), 1u);
  EXPECT_EQ(out[0], early);
  EXPECT_EQ(b.park.owner(key(9), 6), 1u);  // later fragments go straight to worker 1
  EXPECT_EQ(b.park.release(key(9), out), 0u);
  EXPECT_EQ(b.park.owner(key(9), 7), 1u);                         // release keeps a learned owner
  EXPECT_EQ(b.park.owner(key(9), 2000), FragmentPark::kNoOwner);  // until the timeout
  rte_pktmbuf_free(early);
}

TEST(FragmentPark, LearningEvictsTheOldestDatagramAndCountsWhatItHeld) {
  Bed b;
  // Fill the table until a hold is refused: that key's set is full of waiting datagrams.
  uint16_t refused = 0;
  for (uint16_t id = 1; id < 1000 && refused == 0; ++id) {
    rte_mbuf* m = b.mbuf();
    if (!b.park.hold(*b.worker, key(id), m, id)) {
      rte_pktmbuf_free(m);
      refused = id;
    }
  }
  ASSERT_NE(refused, 0);
  // Its first fragment arrives at the home worker: the owner must be learned, so the oldest
  // waiting datagram of the set gives way and its fragment is a counted drop.
  rte_mbuf* out[FragmentPark::kHeld];
  EXPECT_EQ(b.park.learn(*b.worker, key(refused), 1, 1000, out), 0u);
  EXPECT_EQ(b.drops(DropReason::kFragmentParkFull), 1u);
  EXPECT_EQ(b.park.owner(key(refused), 1001), 1u);
  b.park.expire(*b.worker, UINT64_MAX);
}

// ---- IPv6: atomic fragments (RFC 6946) ----

constexpr uint8_t kUdp = 17, kFragmentHeader = 44;

std::array<uint8_t, 16> ip6(const char* text) {
  std::array<uint8_t, 16> a{};
  EXPECT_EQ(inet_pton(AF_INET6, text, a.data()), 1) << text;
  return a;
}

uint32_t sum16(const uint8_t* p, size_t n, uint32_t sum = 0) {
  for (size_t i = 0; i < n; i += 2) sum += uint32_t{p[i]} << 8 | (i + 1 < n ? p[i + 1] : 0);
  return sum;
}

// The UDP checksum over `udp_len` bytes at `udp` with the pseudo-header of the IPv6 packet at
// `ip` (RFC 8200 8.1): 0 when the packet's own checksum is right.
uint16_t udp6_checksum(const uint8_t* ip, const uint8_t* udp, size_t udp_len) {
  uint32_t s = sum16(ip + 8, 32) + kUdp + static_cast<uint32_t>(udp_len);
  s = sum16(udp, udp_len, s);
  while (s >> 16) s = (s & 0xffff) + (s >> 16);
  return static_cast<uint16_t>(~s);
}

// A UDP datagram with 8 bytes of payload, behind a Fragment header when `frag_field` (offset
// << 3 | M, as on the wire with the two reserved bits) is given, its checksum right.
std::vector<uint8_t> udp6(const std::array<uint8_t, 16>& src, uint16_t sport,
                          const std::array<uint8_t, 16>& dst, uint16_t dport,
                          std::optional<uint16_t> frag_field = std::nullopt, uint32_t id = 0) {
  const size_t frag = frag_field ? 8 : 0, udp_len = 16;
  std::vector<uint8_t> b(40 + frag + udp_len, 0);
  b[0] = 0x60;
  b[4] = 0;
  b[5] = static_cast<uint8_t>(frag + udp_len);
  b[6] = frag_field ? kFragmentHeader : kUdp;
  b[7] = 64;
  std::memcpy(&b[8], src.data(), 16);
  std::memcpy(&b[24], dst.data(), 16);
  if (frag_field) {
    b[40] = kUdp;
    b[42] = static_cast<uint8_t>(*frag_field >> 8);
    b[43] = static_cast<uint8_t>(*frag_field);
    for (int i = 0; i < 4; ++i) b[44 + i] = static_cast<uint8_t>(id >> (24 - 8 * i));
  }
  uint8_t* u = &b[40 + frag];
  u[0] = static_cast<uint8_t>(sport >> 8), u[1] = static_cast<uint8_t>(sport);
  u[2] = static_cast<uint8_t>(dport >> 8), u[3] = static_cast<uint8_t>(dport);
  u[5] = static_cast<uint8_t>(udp_len);
  for (size_t i = 8; i < udp_len; ++i) u[i] = static_cast<uint8_t>(0x30 + i);
  const uint16_t c = udp6_checksum(b.data(), u, udp_len);
  u[6] = static_cast<uint8_t>(c >> 8), u[7] = static_cast<uint8_t>(c);
  return b;
}

bool fragment6(std::vector<uint8_t>& b, FragmentPark::Fragment6* f) {
  return FragmentPark::fragment6(reinterpret_cast<const rte_ipv6_hdr*>(b.data()),
                                 static_cast<uint32_t>(b.size()), true, f);
}

// An atomic fragment (offset 0, M clear) is a whole datagram that happens to carry a Fragment
// header: nothing for the park, whatever the reserved bits say; real fragments still are.
TEST(FragmentPark, AnIpv6AtomicFragmentIsNotAFragment) {
  const auto a = ip6("2001:db8:5::10"), b = ip6("2001:db8:100::1");
  FragmentPark::Fragment6 f{};
  auto atomic = udp6(a, 53, b, 1024, 0x0000, 7);
  EXPECT_FALSE(fragment6(atomic, &f));
  auto atomic_reserved_bits = udp6(a, 53, b, 1024, 0x0006, 7);  // RFC 8200: ignored on receipt
  EXPECT_FALSE(fragment6(atomic_reserved_bits, &f));
  auto first = udp6(a, 53, b, 1024, 0x0001, 7);
  ASSERT_TRUE(fragment6(first, &f));
  EXPECT_TRUE(f.first);
  EXPECT_EQ(f.key.id6, rte_cpu_to_be_32(7u));    // as on the wire
  auto later = udp6(a, 53, b, 1024, 2 << 3, 7);  // offset 16 bytes, the last one
  ASSERT_TRUE(fragment6(later, &f));
  EXPECT_FALSE(f.first);
  auto middle = udp6(a, 53, b, 1024, 2 << 3 | 1, 7);
  ASSERT_TRUE(fragment6(middle, &f));
  EXPECT_FALSE(f.first);
  auto whole = udp6(a, 53, b, 1024);
  EXPECT_FALSE(fragment6(whole, &f));
}

// Stateful NAT66 on worker 0 of two: replies that come as atomic fragments are translated at
// once on the worker owning their public port, as whole datagrams are. Taken for non-first
// fragments they would wait at their home worker for a first fragment that never comes, and
// time out.
TEST(FragmentPark, Nat66TranslatesInboundAtomicFragmentsAtOnceWithTwoWorkers) {
  const auto subscriber = ip6("fd7a:115c:a1e0::11"), remote = ip6("2001:db8:5::10");
  nat::NatConfig cfg;
  cfg.family = nat::NatFamily::kIpv6;
  cfg.pool6 = {{nat::Ipv6Address::from_bytes(ip6("2001:db8:100::").data()), 126}};
  cfg.n_workers = 2;
  cfg.max_sessions = 4096;
  cfg.ticks_per_second = rte_get_tsc_hz();
  ASSERT_TRUE(cfg.validate().ok()) << cfg.validate().error();
  rte_mempool* pool = rte_pktmbuf_pool_create("fp_nat66", 255, 0, sizeof(PacketMeta),
                                              RTE_MBUF_DEFAULT_BUF_SIZE, SOCKET_ID_ANY);
  ASSERT_NE(pool, nullptr);
  auto ctx = std::make_unique<DataplaneContext>();
  ctx->n_workers = 2;
  ctx->nat66 = &cfg;
  rte_ring* rings[2];
  for (unsigned i = 0; i < 2; ++i) {
    rings[i] = rte_ring_create(("fp_handoff" + std::to_string(i)).c_str(), 64, SOCKET_ID_ANY, 0);
    ASSERT_NE(rings[i], nullptr);
    ctx->workers[i].handoff = rings[i];
  }
  auto w = std::make_unique<Worker>(*ctx, 0);
  ASSERT_TRUE(w->init().ok());

  // The subscriber's datagram out: its mapping is worker 0's, a port of worker 0's slice.
  auto out = udp6(subscriber, 5000, remote, 53);
  nat::NatDrop why = nat::NatDrop::kCount;
  ASSERT_EQ(w->nat66()->out(reinterpret_cast<rte_ipv6_hdr*>(out.data()),
                            static_cast<uint32_t>(out.size()), rte_rdtsc(), &why),
            nat::NatVerdict::kForward);
  std::array<uint8_t, 16> public_addr;
  std::memcpy(public_addr.data(), &out[8], 16);
  const uint16_t public_port = static_cast<uint16_t>(out[40] << 8 | out[41]);
  ASSERT_EQ(cfg.owner_worker(public_port), 0u);

  // Replies as atomic fragments, with identifications whose home is either worker.
  constexpr unsigned kReplies = 8;
  rte_mbuf* pkts[kReplies];
  for (unsigned i = 0; i < kReplies; ++i) {
    const auto reply = udp6(remote, 53, public_addr, public_port, 0x0000, 0x1000 + i);
    pkts[i] = rte_pktmbuf_alloc(pool);
    ASSERT_NE(pkts[i], nullptr);
    meta(pkts[i])->in_port = 0;
    meta(pkts[i])->flags = 0;
    std::memcpy(rte_pktmbuf_append(pkts[i], static_cast<uint16_t>(reply.size())), reply.data(),
                reply.size());
  }
  FirstFragments firsts;
  const uint16_t n = nat66_in(*w, pkts, kReplies, firsts);
  EXPECT_EQ(n, kReplies) << "atomic fragments held back or handed to their home worker";
  EXPECT_FALSE(w->frag_park().holding());
  EXPECT_EQ(rte_ring_count(rings[0]) + rte_ring_count(rings[1]), 0u);
  EXPECT_EQ(firsts.n, 0u);
  for (uint16_t i = 0; i < n; ++i) {
    const auto* b = rte_pktmbuf_mtod(pkts[i], const uint8_t*);
    EXPECT_EQ(std::memcmp(b + 24, subscriber.data(), 16), 0);
    EXPECT_EQ(b[6], kFragmentHeader);  // left as it came, translated
    EXPECT_EQ(b[48 + 2] << 8 | b[48 + 3], 5000);
    EXPECT_EQ(udp6_checksum(b, b + 48, 16), 0);
  }
  // Whatever was held times out: no atomic fragment may be among the drops.
  w->frag_park().expire(*w, UINT64_MAX);
  EXPECT_EQ(
      ctx->workers[0].counters.drops[0][static_cast<size_t>(DropReason::kFragmentTimeout)].get(),
      0u);
  rte_pktmbuf_free_bulk(pkts, n);
  void* m;
  for (rte_ring* r : rings) {
    while (rte_ring_dequeue(r, &m) == 0) rte_pktmbuf_free(static_cast<rte_mbuf*>(m));
    rte_ring_free(r);
  }
  w->flush();
  w.reset();
  rte_mempool_free(pool);
}

}  // namespace
}  // namespace exitgw::dp
