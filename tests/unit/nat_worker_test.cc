// NatWorker behaviours: mapping, filtering, pooling, blocks, limits, TCP/UDP/ICMP timeouts, ICMP
// query and error translation (byte-exact), checksums, fragments, hairpinning, deterministic
// mode and worker slices. Packets are built by hand with checksums computed from scratch.
#include "dataplane/nat/nat_worker.h"

#include <gtest/gtest.h>

#include <cstring>
#include <map>
#include <random>
#include <set>
#include <vector>

namespace exitgw::dp::nat {
namespace {

constexpr uint32_t ip4(uint32_t a, uint32_t b, uint32_t c, uint32_t d) {
  return a << 24 | b << 16 | c << 8 | d;
}
constexpr uint64_t kSec = 1'000'000'000;
const uint32_t kSubA = ip4(100, 64, 0, 1), kSubB = ip4(100, 64, 0, 2);
const uint32_t kRemote = ip4(203, 0, 113, 10), kRemote2 = ip4(203, 0, 113, 20);

// ---- from-scratch checksums and packet building ----

uint32_t sum_bytes(const uint8_t* p, size_t n, uint32_t sum = 0) {
  for (size_t i = 0; i < n; i += 2) sum += uint32_t{p[i]} << 8 | (i + 1 < n ? p[i + 1] : 0);
  return sum;
}
uint16_t finish(uint32_t sum) {
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return static_cast<uint16_t>(~sum);
}
void put16(uint8_t* p, uint16_t v) {
  p[0] = v >> 8, p[1] = v & 0xff;
}
void put32(uint8_t* p, uint32_t v) {
  put16(p, v >> 16), put16(p + 2, v & 0xffff);
}
uint16_t get16(const uint8_t* p) {
  return uint16_t(p[0] << 8 | p[1]);
}
uint32_t get32(const uint8_t* p) {
  return uint32_t{get16(p)} << 16 | get16(p + 2);
}

struct Pkt {
  std::vector<uint8_t> b;
  rte_ipv4_hdr* ip() { return reinterpret_cast<rte_ipv4_hdr*>(b.data()); }
  uint32_t len() const { return static_cast<uint32_t>(b.size()); }
  uint32_t src() const { return get32(&b[12]); }
  uint32_t dst() const { return get32(&b[16]); }
  const uint8_t* l4() const { return &b[(b[0] & 0xf) * 4]; }
  uint16_t sport() const { return get16(l4()); }
  uint16_t dport() const { return get16(l4() + 2); }
  uint16_t icmp_id() const { return get16(l4() + 4); }
};

// Fills the IP header checksum and the L4 checksum (pseudo-header for TCP/UDP).
void fix_checksums(Pkt& p, bool udp_zero = false) {
  uint8_t* b = p.b.data();
  const unsigned ihl = (b[0] & 0xf) * 4;
  put16(b + 10, 0);
  put16(b + 10, finish(sum_bytes(b, ihl)));
  uint8_t* l4 = b + ihl;
  const size_t l4_len = p.b.size() - ihl;
  const uint8_t proto = b[9];
  if (proto == 1) {
    put16(l4 + 2, 0);
    put16(l4 + 2, finish(sum_bytes(l4, l4_len)));
    return;
  }
  const unsigned off = proto == 6 ? 16 : 6;
  put16(l4 + off, 0);
  if (udp_zero) return;
  uint32_t s = sum_bytes(b + 12, 8) + proto + static_cast<uint32_t>(l4_len);
  uint16_t c = finish(sum_bytes(l4, l4_len, s));
  if (proto == 17 && c == 0) c = 0xffff;
  put16(l4 + off, c);
}

bool ip_ok(const Pkt& p) {
  return finish(sum_bytes(p.b.data(), (p.b[0] & 0xf) * 4u)) == 0;
}
bool l4_ok(const Pkt& p) {
  const uint8_t* b = p.b.data();
  const unsigned ihl = (b[0] & 0xf) * 4;
  const size_t n = p.b.size() - ihl;
  if (b[9] == 1) return finish(sum_bytes(b + ihl, n)) == 0;
  if (b[9] == 17 && get16(b + ihl + 6) == 0) return true;
  return finish(sum_bytes(b + ihl, n, sum_bytes(b + 12, 8) + b[9] + static_cast<uint32_t>(n))) == 0;
}

Pkt ipv4(uint8_t proto, uint32_t src, uint32_t dst, size_t l4_len, uint16_t id = 0x1234) {
  Pkt p;
  p.b.assign(20 + l4_len, 0);
  uint8_t* b = p.b.data();
  b[0] = 0x45;
  put16(b + 2, static_cast<uint16_t>(20 + l4_len));
  put16(b + 4, id);
  b[8] = 64;
  b[9] = proto;
  put32(b + 12, src);
  put32(b + 16, dst);
  return p;
}

Pkt udp(uint32_t src, uint16_t sport, uint32_t dst, uint16_t dport, size_t payload = 12,
        bool zero_csum = false) {
  Pkt p = ipv4(17, src, dst, 8 + payload);
  uint8_t* l4 = p.b.data() + 20;
  put16(l4, sport);
  put16(l4 + 2, dport);
  put16(l4 + 4, static_cast<uint16_t>(8 + payload));
  for (size_t i = 0; i < payload; ++i) l4[8 + i] = static_cast<uint8_t>(i * 7 + 1);
  fix_checksums(p, zero_csum);
  return p;
}

constexpr uint8_t kSyn = 0x02, kAck = 0x10, kFin = 0x01, kRst = 0x04;

Pkt tcp(uint32_t src, uint16_t sport, uint32_t dst, uint16_t dport, uint8_t flags) {
  Pkt p = ipv4(6, src, dst, 20 + 4);
  uint8_t* l4 = p.b.data() + 20;
  put16(l4, sport);
  put16(l4 + 2, dport);
  put32(l4 + 4, 1000);
  l4[12] = 5 << 4;
  l4[13] = flags;
  put16(l4 + 14, 65535);
  std::memcpy(l4 + 20, "data", 4);
  fix_checksums(p);
  return p;
}

Pkt icmp_query(uint32_t src, uint32_t dst, uint8_t type, uint16_t id, uint16_t seq = 1) {
  Pkt p = ipv4(1, src, dst, 8 + 16);
  uint8_t* l4 = p.b.data() + 20;
  l4[0] = type;
  put16(l4 + 4, id);
  put16(l4 + 6, seq);
  for (int i = 0; i < 16; ++i) l4[8 + i] = static_cast<uint8_t>(0xa0 + i);
  fix_checksums(p);
  return p;
}

// An ICMP error from `src` to `dst` quoting the first `quote` bytes of `about`.
Pkt icmp_error(uint32_t src, uint32_t dst, uint8_t type, uint8_t code, const Pkt& about,
               size_t quote, uint16_t mtu = 0) {
  Pkt p = ipv4(1, src, dst, 8 + quote);
  uint8_t* l4 = p.b.data() + 20;
  l4[0] = type;
  l4[1] = code;
  put16(l4 + 6, mtu);
  std::memcpy(l4 + 8, about.b.data(), quote);
  fix_checksums(p);
  return p;
}

NatConfig base_config() {
  NatConfig c;
  c.pool = {{ip4(198, 51, 100, 0), 30}};
  c.max_sessions = 4096;
  c.filtering = NatFiltering::kEndpointIndependent;
  return c;
}

struct Harness {
  explicit Harness(const NatConfig& c, unsigned worker = 0) : ring(1024), nat(c, worker, &ring) {
    EXPECT_TRUE(c.validate().ok()) << c.validate().error();
  }
  NatVerdict out(Pkt& p, uint64_t t = 0) {
    last = NatDrop::kCount;
    return nat.out(p.ip(), p.len(), t, &last);
  }
  NatVerdict in(Pkt& p, uint64_t t = 0) {
    last = NatDrop::kCount;
    return nat.in(p.ip(), p.len(), t, &last);
  }
  std::vector<NatEvent> drain() {
    std::vector<NatEvent> v;
    NatEvent e;
    while (ring.pop(&e)) v.push_back(e);
    return v;
  }
  NatEventRing ring;
  NatWorker nat;
  NatDrop last = NatDrop::kCount;
};

size_t count_type(const std::vector<NatEvent>& v, NatEventType t) {
  size_t n = 0;
  for (const auto& e : v) n += e.type == t;
  return n;
}

// ---- mapping and filtering ----

TEST(NatMapping, EndpointIndependentMappingReusesOnePublicEndpointForEveryDestination) {
  Harness h(base_config());
  std::set<std::pair<uint32_t, uint16_t>> seen;
  for (uint32_t d = 0; d < 20; ++d) {
    Pkt p = udp(kSubA, 5000, ip4(203, 0, 113, d), static_cast<uint16_t>(53 + d));
    ASSERT_EQ(h.out(p), NatVerdict::kForward);
    EXPECT_TRUE(ip_ok(p) && l4_ok(p));
    seen.insert({p.src(), p.sport()});
  }
  EXPECT_EQ(seen.size(), 1u);
  EXPECT_EQ(h.nat.mappings(), 1u);
  EXPECT_EQ(h.nat.sessions(), 20u);
}

TEST(NatFiltering, AddressDependentFilteringDropsUnknownAddressesAndAcceptsOtherPorts) {
  NatConfig c = base_config();
  c.filtering = NatFiltering::kAddressDependent;
  Harness h(c);
  Pkt o = udp(kSubA, 5000, kRemote, 3478);
  ASSERT_EQ(h.out(o), NatVerdict::kForward);
  Pkt stranger = udp(kRemote2, 3478, o.src(), o.sport());
  EXPECT_EQ(h.in(stranger), NatVerdict::kDrop);
  EXPECT_EQ(h.last, NatDrop::kFiltered);
  Pkt other_port = udp(kRemote, 9999, o.src(), o.sport());
  EXPECT_EQ(h.in(other_port), NatVerdict::kForward);
  EXPECT_EQ(other_port.dst(), kSubA);
  EXPECT_EQ(other_port.dport(), 5000);
  EXPECT_TRUE(ip_ok(other_port) && l4_ok(other_port));
  EXPECT_EQ(h.nat.counters().drops_of(NatDrop::kFiltered), 1u);
}

TEST(NatFiltering, EndpointIndependentFilteringAcceptsAnyRemote) {
  Harness h(base_config());
  Pkt o = udp(kSubA, 5000, kRemote, 3478);
  ASSERT_EQ(h.out(o), NatVerdict::kForward);
  Pkt stranger = udp(kRemote2, 1234, o.src(), o.sport());
  EXPECT_EQ(h.in(stranger), NatVerdict::kForward);
  EXPECT_EQ(stranger.dst(), kSubA);
  Pkt unknown_port = udp(kRemote2, 1234, o.src(), static_cast<uint16_t>(o.sport() + 1));
  EXPECT_EQ(h.in(unknown_port), NatVerdict::kDrop);
  EXPECT_EQ(h.last, NatDrop::kNoMapping);
}

// ---- pooling, blocks, limits ----

TEST(NatPool, PairedPoolingGivesEverySubscriberOneAddressAcrossProtocolsAndBlocks) {
  NatConfig c = base_config();
  c.block_size = 64;
  c.max_sessions = 16384;
  Harness h(c);
  std::set<uint32_t> addresses_used;
  for (uint32_t s = 0; s < 64; ++s) {
    const uint32_t sub = ip4(100, 64, 1, s);
    std::set<uint32_t> pubs;
    for (uint16_t port = 0; port < 100; ++port) {  // > one block of UDP
      Pkt p = udp(sub, static_cast<uint16_t>(10000 + port), kRemote, 443);
      ASSERT_EQ(h.out(p), NatVerdict::kForward);
      pubs.insert(p.src());
    }
    Pkt t = tcp(sub, 40000, kRemote, 443, kSyn);
    ASSERT_EQ(h.out(t), NatVerdict::kForward);
    pubs.insert(t.src());
    Pkt e = icmp_query(sub, kRemote, 8, 7);
    ASSERT_EQ(h.out(e), NatVerdict::kForward);
    pubs.insert(e.src());
    ASSERT_EQ(pubs.size(), 1u);
    EXPECT_EQ(*pubs.begin(), c.address(c.paired_address_index(sub)));
    EXPECT_EQ(h.nat.subscriber_blocks(sub), 2u);
    addresses_used.insert(*pubs.begin());
  }
  EXPECT_GT(addresses_used.size(), 1u);  // the hash spreads subscribers over the pool
}

TEST(NatBlocks, BlocksAreAllocatedOnNeedUpToTheLimitAndReleasedWithTheirLastSession) {
  NatConfig c = base_config();
  c.block_size = 64;
  c.max_blocks_per_subscriber = 2;
  Harness h(c);
  for (uint16_t i = 0; i < 128; ++i) {
    Pkt p = udp(kSubA, static_cast<uint16_t>(20000 + i), kRemote, 53);
    ASSERT_EQ(h.out(p), NatVerdict::kForward) << i;
  }
  auto ev = h.drain();
  ASSERT_EQ(count_type(ev, NatEventType::kBlockAllocated), 2u);
  for (const auto& e : ev) {
    EXPECT_EQ(e.subscriber, kSubA);
    EXPECT_EQ(e.port_last - e.port_first + 1, 64);
    EXPECT_EQ((e.port_first - c.port_min) % 64, 0);
  }
  Pkt over = udp(kSubA, 30000, kRemote, 53);
  EXPECT_EQ(h.out(over), NatVerdict::kDrop);
  EXPECT_EQ(h.last, NatDrop::kPortLimit);
  Pkt over2 = udp(kSubA, 30001, kRemote, 53);
  EXPECT_EQ(h.out(over2), NatVerdict::kDrop);
  ev = h.drain();
  EXPECT_EQ(count_type(ev, NatEventType::kPortLimit), 1u);  // reported once per episode
  // TCP has its own port space inside the same blocks: no new block needed.
  Pkt t = tcp(kSubA, 30000, kRemote, 80, kSyn);
  EXPECT_EQ(h.out(t), NatVerdict::kForward);
  EXPECT_EQ(h.nat.subscriber_blocks(kSubA), 2u);
  EXPECT_EQ(h.nat.counters().blocks_by_address[c.paired_address_index(kSubA)].get(), 2u);
  EXPECT_EQ(h.nat.expire(400 * kSec, 1'000'000), 129u);
  ev = h.drain();
  EXPECT_EQ(count_type(ev, NatEventType::kBlockReleased), 2u);
  EXPECT_EQ(h.nat.subscribers(), 0u);
  EXPECT_EQ(h.nat.counters().blocks_in_use.get(), 0u);
}

TEST(NatLimits, SessionLimitDropsCountsAndReportsOnce) {
  NatConfig c = base_config();
  c.max_sessions_per_subscriber = 10;
  Harness h(c);
  for (uint16_t i = 0; i < 10; ++i) {
    Pkt p = udp(kSubA, 1000, ip4(203, 0, 113, i), 53);
    ASSERT_EQ(h.out(p), NatVerdict::kForward);
  }
  for (uint16_t i = 0; i < 5; ++i) {
    Pkt p = udp(kSubA, static_cast<uint16_t>(2000 + i), kRemote, 53);
    EXPECT_EQ(h.out(p), NatVerdict::kDrop);
    EXPECT_EQ(h.last, NatDrop::kSessionLimit);
  }
  EXPECT_EQ(h.nat.counters().drops_of(NatDrop::kSessionLimit), 5u);
  EXPECT_EQ(count_type(h.drain(), NatEventType::kSessionLimit), 1u);
  Pkt other = udp(kSubB, 1000, kRemote, 53);
  EXPECT_EQ(h.out(other), NatVerdict::kForward);
  EXPECT_EQ(h.nat.mappings(), 2u);
}

TEST(NatLimits, TinyPoolExhaustionIsACountedDropAndAnEventNeverACrash) {
  NatConfig c = base_config();
  c.pool = {{ip4(198, 51, 100, 7), 32}};
  c.port_min = 1024;
  c.port_max = 1024 + 127;
  c.block_size = 64;
  c.max_blocks_per_subscriber = 1;
  Harness h(c);
  for (uint32_t s = 0; s < 2; ++s) {
    Pkt p = udp(ip4(100, 64, 2, s), 1000, kRemote, 53);
    ASSERT_EQ(h.out(p), NatVerdict::kForward);
  }
  for (int i = 0; i < 3; ++i) {
    Pkt p = udp(ip4(100, 64, 2, 9), static_cast<uint16_t>(1000 + i), kRemote, 53);
    EXPECT_EQ(h.out(p), NatVerdict::kDrop);
    EXPECT_EQ(h.last, NatDrop::kPoolExhausted);
  }
  auto ev = h.drain();
  EXPECT_EQ(count_type(ev, NatEventType::kPoolExhausted), 1u);
  EXPECT_EQ(h.nat.counters().pool_exhausted.get(), 1u);
  EXPECT_EQ(h.nat.counters().drops_of(NatDrop::kPoolExhausted), 3u);
  EXPECT_EQ(h.nat.subscribers(), 2u);  // the failed one holds nothing
  // A freed block serves the waiting subscriber.
  h.nat.expire(301 * kSec, 1000);
  Pkt p = udp(ip4(100, 64, 2, 9), 1000, kRemote, 53);
  EXPECT_EQ(h.out(p, 302 * kSec), NatVerdict::kForward);
}

// ---- TCP, UDP, ICMP state and timeouts ----

TEST(NatTcp, SynBothWaysEstablishesAndFinBothWaysOrRstMakesTransitory) {
  Harness h(base_config());
  Pkt syn = tcp(kSubA, 40000, kRemote, 443, kSyn);
  ASSERT_EQ(h.out(syn), NatVerdict::kForward);
  EXPECT_EQ(h.nat.counters().sessions_tcp_transitory.get(), 1u);
  Pkt synack = tcp(kRemote, 443, syn.src(), syn.sport(), kSyn | kAck);
  ASSERT_EQ(h.in(synack), NatVerdict::kForward);
  EXPECT_EQ(h.nat.counters().sessions_tcp_established.get(), 1u);
  // Established survives well past the transitory timeout.
  h.nat.expire(7000 * kSec, 1'000'000);
  EXPECT_EQ(h.nat.sessions(), 1u);
  Pkt ack = tcp(kSubA, 40000, kRemote, 443, kAck);
  ASSERT_EQ(h.out(ack, 7000 * kSec), NatVerdict::kForward);
  h.nat.expire(14000 * kSec, 1'000'000);
  EXPECT_EQ(h.nat.sessions(), 1u);
  Pkt fin1 = tcp(kSubA, 40000, kRemote, 443, kFin | kAck);
  ASSERT_EQ(h.out(fin1, 14000 * kSec), NatVerdict::kForward);
  EXPECT_EQ(h.nat.counters().sessions_tcp_established.get(), 1u);  // half-closed
  Pkt fin2 = tcp(kRemote, 443, syn.src(), syn.sport(), kFin | kAck);
  ASSERT_EQ(h.in(fin2, 14000 * kSec), NatVerdict::kForward);
  EXPECT_EQ(h.nat.counters().sessions_tcp_transitory.get(), 1u);
  h.nat.expire((14000 + 239) * kSec, 1'000'000);
  EXPECT_EQ(h.nat.sessions(), 1u);
  h.nat.expire((14000 + 240) * kSec, 1'000'000);
  EXPECT_EQ(h.nat.sessions(), 0u);
  EXPECT_EQ(h.nat.mappings(), 0u);
}

TEST(NatTcp, RstMovesEstablishedToTransitoryTimeout) {
  Harness h(base_config());
  Pkt syn = tcp(kSubA, 40001, kRemote, 443, kSyn);
  ASSERT_EQ(h.out(syn), NatVerdict::kForward);
  Pkt synack = tcp(kRemote, 443, syn.src(), syn.sport(), kSyn | kAck);
  ASSERT_EQ(h.in(synack), NatVerdict::kForward);
  Pkt rst = tcp(kRemote, 443, syn.src(), syn.sport(), kRst);
  ASSERT_EQ(h.in(rst, 10 * kSec), NatVerdict::kForward);
  EXPECT_EQ(h.nat.counters().sessions_tcp_transitory.get(), 1u);
  h.nat.expire(249 * kSec, 1'000'000);
  EXPECT_EQ(h.nat.sessions(), 1u);
  h.nat.expire(250 * kSec, 1'000'000);
  EXPECT_EQ(h.nat.sessions(), 0u);
}

TEST(NatTimeouts, UdpAndIcmpSessionsExpireAtTheirTimeoutsAndTrafficRefreshesThem) {
  Harness h(base_config());
  Pkt u = udp(kSubA, 5000, kRemote, 53);
  Pkt e = icmp_query(kSubA, kRemote, 8, 99);
  ASSERT_EQ(h.out(u), NatVerdict::kForward);
  ASSERT_EQ(h.out(e), NatVerdict::kForward);
  h.nat.expire(59 * kSec, 1000);
  EXPECT_EQ(h.nat.sessions(), 2u);
  h.nat.expire(60 * kSec, 1000);
  EXPECT_EQ(h.nat.sessions(), 1u);
  EXPECT_EQ(h.nat.counters().sessions_icmp.get(), 0u);
  Pkt reply = udp(kRemote, 53, u.src(), u.sport());  // inbound refreshes too
  ASSERT_EQ(h.in(reply, 200 * kSec), NatVerdict::kForward);
  h.nat.expire(499 * kSec, 1000);
  EXPECT_EQ(h.nat.sessions(), 1u);
  h.nat.expire(500 * kSec, 1000);
  EXPECT_EQ(h.nat.sessions(), 0u);
  EXPECT_EQ(h.nat.counters().sessions_expired.get(), 2u);
}

TEST(NatTimeouts, ExpireNeverFreesMoreThanItsBudget) {
  Harness h(base_config());
  for (uint16_t i = 0; i < 1000; ++i) {
    Pkt p = udp(kSubA, 7000, ip4(203, 0, 113, i % 250), static_cast<uint16_t>(1 + i));
    ASSERT_EQ(h.out(p), NatVerdict::kForward);
  }
  uint32_t total = 0, calls = 0;
  for (uint32_t n; (n = h.nat.expire(301 * kSec, 16)) > 0 || h.nat.sessions() > 0; ++calls) {
    EXPECT_LE(n, 16u);
    total += n;
    ASSERT_LT(calls, 10000u);
  }
  EXPECT_EQ(total, 1000u);
}

TEST(NatIcmp, EchoIdentifierIsMappedOutAndBack) {
  Harness h(base_config());
  Pkt req = icmp_query(kSubA, kRemote, 8, 77, 5);
  ASSERT_EQ(h.out(req), NatVerdict::kForward);
  EXPECT_TRUE(ip_ok(req) && l4_ok(req));
  const uint16_t pub_id = req.icmp_id();
  EXPECT_GE(pub_id, 1024);
  Pkt req2 = icmp_query(kSubA, kRemote2, 8, 77, 6);  // same id, another host: same mapping
  ASSERT_EQ(h.out(req2), NatVerdict::kForward);
  EXPECT_EQ(req2.icmp_id(), pub_id);
  Pkt rep = icmp_query(kRemote, req.src(), 0, pub_id, 5);
  ASSERT_EQ(h.in(rep), NatVerdict::kForward);
  EXPECT_EQ(rep.dst(), kSubA);
  EXPECT_EQ(rep.icmp_id(), 77);
  EXPECT_TRUE(ip_ok(rep) && l4_ok(rep));
  Pkt ping_gateway = icmp_query(kRemote, req.src(), 8, pub_id);
  EXPECT_EQ(h.in(ping_gateway), NatVerdict::kDrop);
  EXPECT_EQ(h.last, NatDrop::kUnsupportedIcmp);
}

// The translated error must equal, byte for byte, the error the router would have sent had
// the subscriber's packet reached it untranslated (quote = the original packet).
void expect_error_translated(uint8_t type, uint8_t code, Pkt original, size_t quote,
                             uint16_t mtu = 0) {
  Harness h(base_config());
  const Pkt before = original;
  ASSERT_EQ(h.out(original), NatVerdict::kForward);
  const uint32_t router = ip4(192, 0, 2, 1);
  Pkt err = icmp_error(router, original.src(), type, code, original, quote, mtu);
  ASSERT_EQ(h.in(err), NatVerdict::kForward) << nat_drop_name(h.last);
  Pkt expected = icmp_error(router, kSubA, type, code, before, quote, mtu);
  EXPECT_EQ(err.b, expected.b);
  EXPECT_TRUE(ip_ok(err) && l4_ok(err));
}

TEST(NatIcmpError, TimeExceededAboutUdpIsTranslatedByteExact) {
  expect_error_translated(11, 0, udp(kSubA, 5353, kRemote, 33434, 20), 28);
}

TEST(NatIcmpError, FragmentationNeededAboutTcpWithFullQuoteIsTranslatedByteExact) {
  expect_error_translated(3, 4, tcp(kSubA, 41000, kRemote, 443, kAck), 44, 1400);
}

TEST(NatIcmpError, PortUnreachableAboutTcpWithShortQuoteIsTranslatedByteExact) {
  expect_error_translated(3, 3, tcp(kSubA, 41000, kRemote, 443, kSyn), 28);
}

TEST(NatIcmpError, ParameterProblemAboutEchoRequestIsTranslatedByteExact) {
  expect_error_translated(12, 0, icmp_query(kSubA, kRemote, 8, 4242), 36);
}

TEST(NatIcmpError, ErrorAboutAFlowWeNeverSentIsDropped) {
  Harness h(base_config());
  Pkt o = udp(kSubA, 5000, kRemote, 53);
  ASSERT_EQ(h.out(o), NatVerdict::kForward);
  Pkt fake_about = udp(o.src(), o.sport(), kRemote2, 53);  // a destination never contacted
  Pkt err = icmp_error(ip4(192, 0, 2, 1), o.src(), 3, 3, fake_about, 28);
  EXPECT_EQ(h.in(err), NatVerdict::kDrop);
  EXPECT_EQ(h.last, NatDrop::kNoMapping);
  Pkt truncated = icmp_error(ip4(192, 0, 2, 1), o.src(), 3, 3, o, 24);
  EXPECT_EQ(h.in(truncated), NatVerdict::kDrop);
  EXPECT_EQ(h.last, NatDrop::kMalformed);
}

TEST(NatIcmpError, OutboundErrorFromSubscriberTranslatesEmbeddedDestination) {
  Harness h(base_config());
  Pkt o = udp(kSubA, 5000, kRemote, 4000);
  ASSERT_EQ(h.out(o), NatVerdict::kForward);
  Pkt in = udp(kRemote, 4000, o.src(), o.sport());
  const Pkt as_received_public = in;
  ASSERT_EQ(h.in(in), NatVerdict::kForward);
  Pkt err = icmp_error(kSubA, kRemote, 3, 3, in, 28);
  ASSERT_EQ(h.out(err), NatVerdict::kForward);
  Pkt expected = icmp_error(o.src(), kRemote, 3, 3, as_received_public, 28);
  EXPECT_EQ(err.b, expected.b);
}

// ---- checksums ----

TEST(NatChecksum, IncrementalUpdatesEqualFullRecomputationOnRandomPackets) {
  NatConfig c = base_config();
  Harness h(c);
  std::mt19937 rng(7);
  for (int i = 0; i < 3000; ++i) {
    const uint32_t sub = ip4(100, 64, rng() % 4, rng() % 256);
    const uint32_t dst = rng();
    if (c.address_index(dst) != kNone) continue;
    const uint16_t sp = static_cast<uint16_t>(rng()), dp = static_cast<uint16_t>(rng());
    Pkt p;
    switch (rng() % 3) {
      case 0:
        p = udp(sub, sp, dst, dp, rng() % 64);
        break;
      case 1:
        p = tcp(sub, sp, dst, dp, static_cast<uint8_t>(rng() & 0x3f));
        break;
      default:
        p = icmp_query(sub, dst, 8, sp);
    }
    for (size_t k = 28; k < p.b.size(); ++k) p.b[k] ^= static_cast<uint8_t>(rng());
    if (p.b[9] == 6) p.b[20 + 12] = 5 << 4;
    fix_checksums(p);
    if (h.out(p) != NatVerdict::kForward) continue;
    Pkt recomputed = p;
    fix_checksums(recomputed);
    ASSERT_EQ(p.b, recomputed.b) << "packet " << i;
    Pkt back = p.b[9] == 1 ? icmp_query(dst, p.src(), 0, p.icmp_id())
                           : (p.b[9] == 6 ? tcp(dst, dp, p.src(), p.sport(), kAck)
                                          : udp(dst, dp, p.src(), p.sport(), rng() % 40));
    ASSERT_EQ(h.in(back), NatVerdict::kForward);
    Pkt back_recomputed = back;
    fix_checksums(back_recomputed);
    ASSERT_EQ(back.b, back_recomputed.b) << "reply " << i;
  }
}

TEST(NatChecksum, ZeroUdpChecksumStaysZero) {
  Harness h(base_config());
  Pkt p = udp(kSubA, 5000, kRemote, 53, 12, true);
  ASSERT_EQ(h.out(p), NatVerdict::kForward);
  EXPECT_EQ(get16(p.l4() + 6), 0);
  EXPECT_TRUE(ip_ok(p));
  Pkt r = udp(kRemote, 53, p.src(), p.sport(), 12, true);
  ASSERT_EQ(h.in(r), NatVerdict::kForward);
  EXPECT_EQ(get16(r.l4() + 6), 0);
}

// ---- fragments ----

// Splits a UDP datagram into a first fragment (with the UDP header) and a second one.
std::pair<Pkt, Pkt> fragment(const Pkt& whole, uint16_t id) {
  const size_t first_payload = 16;  // multiple of 8
  Pkt a = ipv4(whole.b[9], whole.src(), whole.dst(), first_payload, id);
  std::memcpy(a.b.data() + 20, whole.b.data() + 20, first_payload);
  put16(a.b.data() + 6, 0x2000);
  put16(a.b.data() + 10, 0);
  put16(a.b.data() + 10, finish(sum_bytes(a.b.data(), 20)));
  const size_t rest = whole.b.size() - 20 - first_payload;
  Pkt b = ipv4(whole.b[9], whole.src(), whole.dst(), rest, id);
  std::memcpy(b.b.data() + 20, whole.b.data() + 20 + first_payload, rest);
  put16(b.b.data() + 6, first_payload / 8);
  put16(b.b.data() + 10, 0);
  put16(b.b.data() + 10, finish(sum_bytes(b.b.data(), 20)));
  return {a, b};
}

TEST(NatFragments, FirstFragmentCreatesStateAndLaterFragmentsFollowBothWays) {
  Harness h(base_config());
  auto [a, b] = fragment(udp(kSubA, 5000, kRemote, 53, 40), 0x4242);
  ASSERT_EQ(h.out(a), NatVerdict::kForward);
  ASSERT_EQ(h.out(b), NatVerdict::kForward);
  EXPECT_EQ(b.src(), a.src());
  EXPECT_TRUE(ip_ok(a) && ip_ok(b));
  // Reassembled, the UDP checksum (only in the first fragment) must verify.
  Pkt whole = ipv4(17, a.src(), a.dst(), 48);
  std::memcpy(whole.b.data() + 20, a.b.data() + 20, 16);
  std::memcpy(whole.b.data() + 36, b.b.data() + 20, 32);
  EXPECT_TRUE(l4_ok(whole));
  auto [ra, rb] = fragment(udp(kRemote, 53, a.src(), get16(a.b.data() + 20), 40), 0x0707);
  ASSERT_EQ(h.in(ra), NatVerdict::kForward);
  ASSERT_EQ(h.in(rb), NatVerdict::kForward);
  EXPECT_EQ(rb.dst(), kSubA);
  EXPECT_EQ(h.nat.counters().fragments_followed.get(), 2u);
}

TEST(NatFragments, NonFirstFragmentBeforeTheFirstIsDroppedAndCounted) {
  Harness h(base_config());
  auto [a, b] = fragment(udp(kSubA, 5000, kRemote, 53, 40), 0x1111);
  EXPECT_EQ(h.out(b), NatVerdict::kDrop);
  EXPECT_EQ(h.last, NatDrop::kFragmentNoState);
  EXPECT_EQ(h.nat.counters().drops_of(NatDrop::kFragmentNoState), 1u);
  ASSERT_EQ(h.out(a), NatVerdict::kForward);
  // Fragment state times out.
  auto [a2, b2] = fragment(udp(kSubA, 5000, kRemote, 53, 40), 0x2222);
  ASSERT_EQ(h.out(a2, 0), NatVerdict::kForward);
  EXPECT_EQ(h.out(b2, 5 * kSec), NatVerdict::kDrop);
}

TEST(NatFragments, FragmentTableIsBoundedAndEvictsTheOldest) {
  NatConfig c = base_config();
  c.fragment_entries = 8;
  Harness h(c);
  std::vector<Pkt> seconds;
  for (uint16_t id = 0; id < 100; ++id) {
    auto [a, b] = fragment(udp(kSubA, 5000, kRemote, 53, 40), id);
    ASSERT_EQ(h.out(a), NatVerdict::kForward);
    seconds.push_back(b);
  }
  int followed = 0;
  NatVerdict last = NatVerdict::kDrop;
  for (auto& b : seconds) followed += (last = h.out(b)) == NatVerdict::kForward;
  EXPECT_LE(followed, 8);
  EXPECT_GE(followed, 1);
  EXPECT_EQ(last, NatVerdict::kForward);  // the newest survives
}

// ---- hairpinning ----

TEST(NatHairpin, PacketToAnotherSubscribersPublicEndpointIsTranslatedOutThenIn) {
  Harness h(base_config());
  Pkt b_out = udp(kSubB, 6000, kRemote, 3478);
  ASSERT_EQ(h.out(b_out), NatVerdict::kForward);
  Pkt a_out = udp(kSubA, 5000, kRemote, 3478);
  ASSERT_EQ(h.out(a_out), NatVerdict::kForward);
  Pkt hp = udp(kSubA, 5000, b_out.src(), b_out.sport());
  ASSERT_EQ(h.out(hp), NatVerdict::kHairpin);
  EXPECT_EQ(hp.dst(), kSubB);
  EXPECT_EQ(hp.dport(), 6000);
  EXPECT_EQ(hp.src(), a_out.src());  // B sees A's public endpoint (REQ-9)
  EXPECT_EQ(hp.sport(), a_out.sport());
  EXPECT_TRUE(ip_ok(hp) && l4_ok(hp));
  // B answers A's public endpoint: hairpins back to A.
  Pkt back = udp(kSubB, 6000, a_out.src(), a_out.sport());
  ASSERT_EQ(h.out(back), NatVerdict::kHairpin);
  EXPECT_EQ(back.dst(), kSubA);
  EXPECT_EQ(back.dport(), 5000);
  EXPECT_EQ(h.nat.counters().hairpinned.get(), 2u);
}

TEST(NatHairpin, AddressDependentFilteringAppliesToHairpinnedPackets) {
  NatConfig c = base_config();
  c.filtering = NatFiltering::kAddressDependent;
  Harness h(c);
  Pkt b_out = udp(kSubB, 6000, kRemote, 3478);
  ASSERT_EQ(h.out(b_out), NatVerdict::kForward);
  Pkt hp = udp(kSubA, 5000, b_out.src(), b_out.sport());
  EXPECT_EQ(h.out(hp), NatVerdict::kDrop);
  EXPECT_EQ(h.last, NatDrop::kFiltered);
}

TEST(NatHairpin, DestinationOwnedByAnotherWorkerIsHandedOff) {
  NatConfig c = base_config();
  c.n_workers = 2;
  c.block_size = 504;  // 64512 / 2 = 32256 = 64 * 504
  Harness w0(c, 0), w1(c, 1);
  Pkt b_out = udp(kSubB, 6000, kRemote, 3478);
  ASSERT_EQ(w1.out(b_out), NatVerdict::kForward);
  ASSERT_EQ(c.owner_worker(b_out.sport()), 1u);
  Pkt hp = udp(kSubA, 5000, b_out.src(), b_out.sport());
  ASSERT_EQ(w0.out(hp), NatVerdict::kHairpinHandoff);
  ASSERT_EQ(inbound_owner(c, hp.ip(), hp.len()), 1u);
  ASSERT_EQ(w1.in(hp), NatVerdict::kForward);
  EXPECT_EQ(hp.dst(), kSubB);
  EXPECT_EQ(hp.dport(), 6000);
  EXPECT_TRUE(ip_ok(hp) && l4_ok(hp));
}

TEST(NatHairpin, IcmpErrorToAnotherSubscribersPublicEndpointIsTranslatedOutThenIn) {
  Harness h(base_config());
  Pkt a_out = udp(kSubA, 5000, kRemote, 3478);  // A's mapping, as a game or STUN would make
  ASSERT_EQ(h.out(a_out), NatVerdict::kForward);
  Pkt b_to_a = udp(kSubB, 6000, a_out.src(), a_out.sport());  // B to A's public endpoint
  ASSERT_EQ(h.out(b_to_a), NatVerdict::kHairpin);
  const Pkt a_received = b_to_a;  // from B's public endpoint to A's inside endpoint
  ASSERT_EQ(b_to_a.dst(), kSubA);
  // A's stack answers with port unreachable about what it received; it must reach B as the
  // error B's packet would have drawn from A's public endpoint.
  Pkt err = icmp_error(kSubA, a_received.src(), 3, 3, a_received, 28);
  ASSERT_EQ(h.out(err), NatVerdict::kHairpin) << nat_drop_name(h.last);
  Pkt b_sent = udp(kSubB, 6000, a_out.src(), a_out.sport());  // what B sent, untranslated
  Pkt expected = icmp_error(a_out.src(), kSubB, 3, 3, b_sent, 28);
  EXPECT_EQ(err.b, expected.b);
  EXPECT_TRUE(ip_ok(err) && l4_ok(err));
  EXPECT_EQ(h.nat.counters().hairpinned.get(), 2u);
}

TEST(NatHairpin, IcmpErrorIsDroppedWhenHairpinningIsOff) {
  NatConfig c = base_config();
  c.hairpinning = false;
  Harness h(c);
  Pkt a_out = udp(kSubA, 5000, kRemote, 3478);
  ASSERT_EQ(h.out(a_out), NatVerdict::kForward);
  Pkt about = udp(a_out.src(), 7000, kSubA, 5000);
  Pkt err = icmp_error(kSubA, a_out.src(), 3, 3, about, 28);
  EXPECT_EQ(h.out(err), NatVerdict::kDrop);
  EXPECT_EQ(h.last, NatDrop::kHairpinUnsupported);
}

TEST(NatHairpin, IcmpErrorForAPortOwnedByAnotherWorkerIsHandedOffByTheQuotedPort) {
  NatConfig c = base_config();
  c.n_workers = 2;
  c.block_size = 504;
  Harness w0(c, 0), w1(c, 1);
  Pkt b_out = udp(kSubB, 6000, kRemote, 3478);  // B's state on worker 1
  ASSERT_EQ(w1.out(b_out), NatVerdict::kForward);
  Pkt a_out = udp(kSubA, 5000, kRemote, 3478);  // A's on worker 0
  ASSERT_EQ(w0.out(a_out), NatVerdict::kForward);
  Pkt b_to_a = udp(kSubB, 6000, a_out.src(), a_out.sport());
  ASSERT_EQ(w1.out(b_to_a), NatVerdict::kHairpinHandoff);
  ASSERT_EQ(w0.in(b_to_a), NatVerdict::kForward);
  Pkt err = icmp_error(kSubA, b_to_a.src(), 3, 3, b_to_a, 28);
  ASSERT_EQ(w0.out(err), NatVerdict::kHairpinHandoff) << nat_drop_name(w0.last);
  ASSERT_EQ(inbound_owner(c, err.ip(), err.len()), 1u);
  ASSERT_EQ(w1.in(err), NatVerdict::kForward) << nat_drop_name(w1.last);
  EXPECT_EQ(err.dst(), kSubB);
  EXPECT_TRUE(ip_ok(err) && l4_ok(err));
}

// ---- removal (a peer taken off the gateway) ----

TEST(NatRemoval, RemovingASubscriberFreesItsSessionsMappingsAndBlocksWithEvents) {
  Harness h(base_config());
  for (uint16_t i = 0; i < 40; ++i) {
    Pkt u = udp(kSubA, static_cast<uint16_t>(5000 + i), kRemote, 53);
    ASSERT_EQ(h.out(u), NatVerdict::kForward);
    Pkt t = tcp(kSubA, static_cast<uint16_t>(6000 + i), kRemote2, 443, kSyn);
    ASSERT_EQ(h.out(t), NatVerdict::kForward);
  }
  Pkt other = udp(kSubB, 5000, kRemote, 53);
  ASSERT_EQ(h.out(other), NatVerdict::kForward);
  const Pkt other_public = other;
  h.drain();
  ASSERT_EQ(h.nat.sessions(), 81u);
  EXPECT_EQ(h.nat.remove_subscribers(kSubA, 32), 80u);
  EXPECT_EQ(h.nat.sessions(), 1u);
  EXPECT_EQ(h.nat.mappings(), 1u);
  EXPECT_EQ(h.nat.subscribers(), 1u);
  EXPECT_EQ(h.nat.subscriber_blocks(kSubA), 0u);
  EXPECT_FALSE(h.nat.find_mapping(kSubA, 5000, NatProto::kUdp));
  EXPECT_EQ(h.nat.counters().sessions_removed.get(), 80u);
  const auto events = h.drain();
  EXPECT_GE(count_type(events, NatEventType::kBlockReleased), 1u);
  for (const auto& e : events) EXPECT_EQ(e.subscriber, kSubA);
  // The other subscriber is untouched; replies to A's old public ports are unsolicited now.
  Pkt reply = udp(kRemote, 53, other_public.src(), other_public.sport());
  EXPECT_EQ(h.in(reply), NatVerdict::kForward);
  // Removing again, or a subscriber never seen, is harmless; A comes back with fresh state.
  EXPECT_EQ(h.nat.remove_subscribers(kSubA, 32), 0u);
  EXPECT_EQ(h.nat.remove_subscribers(ip4(100, 64, 9, 9), 32), 0u);
  Pkt again = udp(kSubA, 5000, kRemote, 53);
  EXPECT_EQ(h.out(again), NatVerdict::kForward);
}

TEST(NatRemoval, APrefixRemovesEverySubscriberInsideItAndNoneOutside) {
  Harness h(base_config());
  for (uint32_t i = 0; i < 20; ++i) {
    Pkt u = udp(ip4(100, 64, 1, i), 5000, kRemote, 53);
    ASSERT_EQ(h.out(u), NatVerdict::kForward);
  }
  Pkt outside = udp(ip4(100, 64, 2, 1), 5000, kRemote, 53);
  ASSERT_EQ(h.out(outside), NatVerdict::kForward);
  EXPECT_EQ(h.nat.remove_subscribers(ip4(100, 64, 1, 0), 24), 20u);
  EXPECT_EQ(h.nat.subscribers(), 1u);
  EXPECT_TRUE(h.nat.find_mapping(ip4(100, 64, 2, 1), 5000, NatProto::kUdp));
}

TEST(NatRemoval, DeterministicSubscriberRemovalFreesItsRange) {
  NatConfig c = base_config();
  c.mode = NatMode::kDeterministic;
  c.deterministic_inside = {ip4(100, 64, 0, 0), 24};
  Harness h(c);
  ASSERT_TRUE(c.validate().ok()) << c.validate().error();
  for (uint16_t i = 0; i < 10; ++i) {
    Pkt u = udp(kSubA, static_cast<uint16_t>(5000 + i), kRemote, 53);
    ASSERT_EQ(h.out(u), NatVerdict::kForward) << nat_drop_name(h.last);
  }
  EXPECT_EQ(h.nat.remove_subscribers(kSubA, 32), 10u);
  EXPECT_EQ(h.nat.sessions(), 0u);
  EXPECT_EQ(h.nat.subscribers(), 0u);
}

// ---- workers and deterministic mode ----

TEST(NatWorkers, DisjointSlicesNeverShareAPublicPortAndOwnerWorkerAgrees) {
  NatConfig c = base_config();
  c.n_workers = 3;
  c.block_size = 64;  // 64512 / 3 = 21504 = 336 * 64
  ASSERT_TRUE(c.validate().ok()) << c.validate().error();
  std::vector<std::unique_ptr<NatWorker>> w;
  for (unsigned i = 0; i < 3; ++i) w.push_back(std::make_unique<NatWorker>(c, i));
  std::set<std::tuple<uint32_t, uint16_t>> used;
  NatDrop why;
  for (uint32_t s = 0; s < 300; ++s) {
    for (unsigned i = 0; i < 3; ++i) {
      Pkt p = udp(ip4(100, 64, 3, s % 256) + (s / 256 << 8), static_cast<uint16_t>(1000 + i),
                  kRemote, 53);
      ASSERT_EQ(w[i]->out(p.ip(), p.len(), 0, &why), NatVerdict::kForward);
      EXPECT_EQ(c.owner_worker(p.sport()), i);
      EXPECT_TRUE(used.insert({p.src(), p.sport()}).second) << "port reused across workers";
    }
  }
}

TEST(NatDeterministic, FormulaMatchesRfc7422ArithmeticAndIsBijective) {
  NatConfig c;
  c.mode = NatMode::kDeterministic;
  c.pool = {{ip4(198, 51, 100, 0), 30}};            // 4 public addresses
  c.deterministic_inside = {ip4(10, 0, 0, 0), 24};  // 256 subscribers
  ASSERT_TRUE(c.validate().ok()) << c.validate().error();
  EXPECT_EQ(c.det_ratio(), 64u);
  EXPECT_EQ(c.det_ports_per_subscriber(), 1008u);  // (65535 - 1023) / 64
  NatConfig::DetRange r{};
  ASSERT_TRUE(c.det_forward(ip4(10, 0, 0, 70), 0, &r));
  EXPECT_EQ(r.public_address, ip4(198, 51, 100, 1));  // 70 / 64
  EXPECT_EQ(r.port_first, 1024 + 1008 * 6);           // 70 % 64 = 6
  EXPECT_EQ(r.port_last, 1024 + 1008 * 7 - 1);
  std::set<std::pair<uint32_t, uint16_t>> starts;
  for (uint32_t i = 0; i < 256; ++i) {
    ASSERT_TRUE(c.det_forward(ip4(10, 0, 0, i), 0, &r));
    EXPECT_TRUE(starts.insert({r.public_address, r.port_first}).second);
    for (uint16_t port : {r.port_first, r.port_last}) {
      uint32_t back = 0;
      ASSERT_TRUE(c.det_reverse(r.public_address, port, &back));
      EXPECT_EQ(back, ip4(10, 0, 0, i));
    }
  }
  EXPECT_FALSE(c.det_forward(ip4(10, 0, 1, 0), 0, &r));
}

TEST(NatDeterministic, WorkerAllocatesOnlyInsideTheSubscribersRangeWithoutBlockEvents) {
  NatConfig c = base_config();
  c.mode = NatMode::kDeterministic;
  c.deterministic_inside = {ip4(10, 0, 0, 0), 24};
  Harness h(c);
  NatConfig::DetRange r{};
  ASSERT_TRUE(c.det_forward(ip4(10, 0, 0, 70), 0, &r));
  for (uint16_t i = 0; i < 1008; ++i) {
    Pkt p = udp(ip4(10, 0, 0, 70), static_cast<uint16_t>(2000 + i), kRemote, 53);
    ASSERT_EQ(h.out(p), NatVerdict::kForward);
    EXPECT_EQ(p.src(), r.public_address);
    EXPECT_GE(p.sport(), r.port_first);
    EXPECT_LE(p.sport(), r.port_last);
  }
  Pkt over = udp(ip4(10, 0, 0, 70), 9999, kRemote, 53);
  EXPECT_EQ(h.out(over), NatVerdict::kDrop);
  EXPECT_EQ(h.last, NatDrop::kPortLimit);
  Pkt outsider = udp(ip4(10, 0, 1, 1), 9999, kRemote, 53);
  EXPECT_EQ(h.out(outsider), NatVerdict::kDrop);
  EXPECT_EQ(h.last, NatDrop::kNotDeterministicSubscriber);
  EXPECT_EQ(count_type(h.drain(), NatEventType::kBlockAllocated), 0u);
  h.nat.expire(301 * kSec, 100000);
  EXPECT_EQ(h.nat.subscribers(), 0u);
}

// ---- configuration ----

TEST(NatConfigValidate, RejectsImpossibleConfigurationsWithClearErrors) {
  NatConfig c = base_config();
  c.pool.clear();
  EXPECT_NE(c.validate().error().find("pool is empty"), std::string::npos);
  c = base_config();
  c.block_size = 500;
  EXPECT_NE(c.validate().error().find("does not divide"), std::string::npos);
  c = base_config();
  c.mode = NatMode::kDeterministic;
  c.pool = {{ip4(198, 51, 100, 1), 32}};
  c.deterministic_inside = {ip4(10, 0, 0, 0), 8};
  EXPECT_NE(c.validate().error().find("ratio impossible"), std::string::npos);
  c = base_config();
  c.pool.push_back({ip4(198, 51, 100, 2), 32});
  EXPECT_NE(c.validate().error().find("overlap"), std::string::npos);
  c = base_config();
  c.pool = {{ip4(198, 51, 100, 1), 24}};
  EXPECT_NE(c.validate().error().find("host bits"), std::string::npos);
  c = base_config();
  c.max_blocks_per_subscriber = 17;
  EXPECT_FALSE(c.validate().ok());
  EXPECT_TRUE(base_config().validate().ok());
}

}  // namespace
}  // namespace exitgw::dp::nat
