// Nat66Worker (the NAT core's IPv6 instantiation): mapping, filtering, paired pooling, blocks
// and their events, TCP state, timeouts, ICMPv6 echo and error translation (types 1-4, the
// embedded packet rewritten both ways), hairpinning, Fragment headers, subscriber removal by
// prefix, deterministic ranges, steering and config errors. Packets are built by hand and every
// checksum is verified from scratch (RFC 8200 8.1 pseudo-header), not with the NAT's helpers.
#include <gtest/gtest.h>

#include <arpa/inet.h>

#include <cstring>
#include <set>
#include <string>
#include <vector>

#include "dataplane/nat/nat_worker.h"

namespace exitgw::dp::nat {
namespace {

constexpr uint64_t kSec = 1'000'000'000;

Ipv6Address ip6(const char* text) {
  uint8_t b[16];
  EXPECT_EQ(inet_pton(AF_INET6, text, b), 1) << text;
  return Ipv6Address::from_bytes(b);
}

const Ipv6Address kSubA = ip6("fd7a:115c:a1e0::11"), kSubB = ip6("fd7a:115c:a1e0::12");
const Ipv6Address kRemote = ip6("2001:db8:5::10"), kRemote2 = ip6("2001:db8:5::20");
const Ipv6Address kRouter = ip6("2001:db8:ff::1");

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
uint16_t get16(const uint8_t* p) {
  return uint16_t(p[0] << 8 | p[1]);
}

constexpr uint8_t kTcp = 6, kUdp = 17, kIcmp6 = 58, kFragHeader = 44;

// An IPv6 packet: the fixed header, optionally a Fragment header, then `l4_len` bytes of L4.
struct Pkt {
  std::vector<uint8_t> b;
  unsigned l4_off = 40;
  rte_ipv6_hdr* ip() { return reinterpret_cast<rte_ipv6_hdr*>(b.data()); }
  uint32_t len() const { return static_cast<uint32_t>(b.size()); }
  Ipv6Address src() const { return Ipv6Address::from_bytes(&b[8]); }
  Ipv6Address dst() const { return Ipv6Address::from_bytes(&b[24]); }
  uint8_t* l4() { return &b[l4_off]; }
  const uint8_t* l4() const { return &b[l4_off]; }
  uint8_t proto() const { return l4_off == 40 ? b[6] : b[40]; }
  uint16_t sport() const { return get16(l4()); }
  uint16_t dport() const { return get16(l4() + 2); }
  uint16_t icmp_id() const { return get16(l4() + 4); }
};

// The L4 checksum's offset per protocol.
unsigned csum_off(uint8_t proto) {
  return proto == kTcp ? 16 : proto == kUdp ? 6 : 2;
}

// The upper-layer checksum of bytes [l4, l4 + n) with the pseudo-header of `hdr` (RFC 8200 8.1).
uint16_t l4_checksum(const uint8_t* hdr, const uint8_t* l4, size_t n, uint8_t proto) {
  uint32_t s = sum_bytes(hdr + 8, 32) + proto + static_cast<uint32_t>(n);
  return finish(sum_bytes(l4, n, s));
}

void fix_checksum(Pkt& p) {
  const uint8_t proto = p.proto();
  uint8_t* l4 = p.l4();
  const size_t n = p.b.size() - p.l4_off;
  put16(l4 + csum_off(proto), 0);
  uint16_t c = l4_checksum(p.b.data(), l4, n, proto);
  if (proto == kUdp && c == 0) c = 0xffff;
  put16(l4 + csum_off(proto), c);
}

// A checksum over the whole upper-layer packet (not for fragments) verifies to zero.
bool l4_ok(const Pkt& p) {
  const size_t n = p.b.size() - p.l4_off;
  uint32_t s = sum_bytes(p.b.data() + 8, 32) + p.proto() + static_cast<uint32_t>(n);
  return finish(sum_bytes(p.l4(), n, s)) == 0;
}

Pkt ipv6(uint8_t proto, const Ipv6Address& src, const Ipv6Address& dst, size_t l4_len) {
  Pkt p;
  p.b.assign(40 + l4_len, 0);
  uint8_t* b = p.b.data();
  b[0] = 0x60;
  put16(b + 4, static_cast<uint16_t>(l4_len));
  b[6] = proto;
  b[7] = 64;
  src.to_bytes(b + 8);
  dst.to_bytes(b + 24);
  return p;
}

Pkt udp(const Ipv6Address& src, uint16_t sport, const Ipv6Address& dst, uint16_t dport,
        size_t payload = 12) {
  Pkt p = ipv6(kUdp, src, dst, 8 + payload);
  uint8_t* l4 = p.l4();
  put16(l4, sport);
  put16(l4 + 2, dport);
  put16(l4 + 4, static_cast<uint16_t>(8 + payload));
  for (size_t i = 0; i < payload; ++i) l4[8 + i] = static_cast<uint8_t>(i * 7 + 1);
  fix_checksum(p);
  return p;
}

constexpr uint8_t kSyn = 0x02, kAck = 0x10, kRst = 0x04;

Pkt tcp(const Ipv6Address& src, uint16_t sport, const Ipv6Address& dst, uint16_t dport,
        uint8_t flags) {
  Pkt p = ipv6(kTcp, src, dst, 20 + 4);
  uint8_t* l4 = p.l4();
  put16(l4, sport);
  put16(l4 + 2, dport);
  l4[12] = 5 << 4;
  l4[13] = flags;
  put16(l4 + 14, 65535);
  std::memcpy(l4 + 20, "data", 4);
  fix_checksum(p);
  return p;
}

Pkt echo(const Ipv6Address& src, const Ipv6Address& dst, uint8_t type, uint16_t id) {
  Pkt p = ipv6(kIcmp6, src, dst, 8 + 16);
  uint8_t* l4 = p.l4();
  l4[0] = type;
  put16(l4 + 4, id);
  put16(l4 + 6, 1);
  for (int i = 0; i < 16; ++i) l4[8 + i] = static_cast<uint8_t>(0xa0 + i);
  fix_checksum(p);
  return p;
}

// An ICMPv6 error from `src` to `dst` quoting the first `quote` bytes of `about`.
Pkt icmp6_error(const Ipv6Address& src, const Ipv6Address& dst, uint8_t type, uint8_t code,
                const Pkt& about, size_t quote, uint32_t word = 0) {
  Pkt p = ipv6(kIcmp6, src, dst, 8 + quote);
  uint8_t* l4 = p.l4();
  l4[0] = type;
  l4[1] = code;
  put16(l4 + 4, static_cast<uint16_t>(word >> 16));
  put16(l4 + 6, static_cast<uint16_t>(word));
  std::memcpy(l4 + 8, about.b.data(), quote);
  fix_checksum(p);
  return p;
}

// Splits an upper-layer packet into fragments carrying `first` and then the rest of its L4
// bytes (a multiple of 8 first), each with a Fragment header (RFC 8200 4.5).
std::vector<Pkt> fragment(const Pkt& whole, size_t first, uint32_t id) {
  const uint8_t proto = whole.b[6];
  const std::vector<uint8_t> l4(whole.b.begin() + 40, whole.b.end());
  std::vector<Pkt> out;
  for (size_t off = 0; off < l4.size(); off += first) {
    const size_t n = std::min(first, l4.size() - off);
    Pkt f;
    f.b.assign(whole.b.begin(), whole.b.begin() + 40);
    f.b.resize(48 + n);
    f.l4_off = 48;
    put16(f.b.data() + 4, static_cast<uint16_t>(8 + n));
    f.b[6] = kFragHeader;
    uint8_t* h = f.b.data() + 40;
    h[0] = proto;
    put16(h + 2, static_cast<uint16_t>(off | (off + n < l4.size() ? 1 : 0)));
    put16(h + 4, static_cast<uint16_t>(id >> 16));
    put16(h + 6, static_cast<uint16_t>(id));
    std::memcpy(f.b.data() + 48, l4.data() + off, n);
    out.push_back(f);
  }
  return out;
}

NatConfig base_config() {
  NatConfig c;
  c.family = NatFamily::kIpv6;
  c.pool6 = {{ip6("2001:db8:100::"), 126}};  // 4 public addresses
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
  Nat66Worker nat;
  NatDrop last = NatDrop::kCount;
};

bool in_pool(const NatConfig& c, const Ipv6Address& a) {
  return c.address_index6(a) != kNone;
}

// ---- mapping, filtering, pooling ----

TEST(Nat66Mapping, EndpointIndependentMappingReusesOnePublicEndpointWithValidChecksums) {
  const NatConfig c = base_config();
  Harness h(c);
  std::set<std::pair<uint64_t, uint16_t>> seen;
  for (uint16_t d = 0; d < 20; ++d) {
    Pkt p = udp(kSubA, 5000, d % 2 ? kRemote : kRemote2, static_cast<uint16_t>(53 + d));
    ASSERT_EQ(h.out(p), NatVerdict::kForward);
    EXPECT_TRUE(l4_ok(p));
    EXPECT_TRUE(in_pool(c, p.src()));
    EXPECT_EQ(p.dst(), d % 2 ? kRemote : kRemote2);
    seen.insert({p.src().lo, p.sport()});
  }
  EXPECT_EQ(seen.size(), 1u);
  EXPECT_EQ(h.nat.mappings(), 1u);
  EXPECT_EQ(h.nat.sessions(), 20u);
  const auto t = h.nat.find_mapping(kSubA, 5000, NatProto::kUdp);
  ASSERT_TRUE(t.has_value());
  EXPECT_TRUE(h.nat.has_session(kSubA, 5000, NatProto::kUdp, kRemote, 54));
}

TEST(Nat66Filtering, AddressDependentFilteringDropsUnknownAddressesAndAcceptsOtherPorts) {
  NatConfig c = base_config();
  c.filtering = NatFiltering::kAddressDependent;
  Harness h(c);
  Pkt o = udp(kSubA, 5000, kRemote, 3478);
  ASSERT_EQ(h.out(o), NatVerdict::kForward);
  Pkt stranger = udp(kRemote2, 3478, o.src(), o.sport());
  EXPECT_EQ(h.in(stranger), NatVerdict::kDrop);
  EXPECT_EQ(h.last, NatDrop::kFiltered);
  Pkt other_port = udp(kRemote, 9999, o.src(), o.sport());
  ASSERT_EQ(h.in(other_port), NatVerdict::kForward);
  EXPECT_EQ(other_port.dst(), kSubA);
  EXPECT_EQ(other_port.dport(), 5000);
  EXPECT_TRUE(l4_ok(other_port));
  EXPECT_EQ(h.nat.counters().drops_of(NatDrop::kFiltered), 1u);
}

TEST(Nat66Filtering, EndpointIndependentFilteringAcceptsAnyRemoteAndDropsUnmappedPorts) {
  Harness h(base_config());
  Pkt o = udp(kSubA, 5000, kRemote, 3478);
  ASSERT_EQ(h.out(o), NatVerdict::kForward);
  Pkt stranger = udp(kRemote2, 1234, o.src(), o.sport());
  ASSERT_EQ(h.in(stranger), NatVerdict::kForward);
  EXPECT_EQ(stranger.dst(), kSubA);
  EXPECT_TRUE(l4_ok(stranger));
  Pkt unknown = udp(kRemote2, 1234, o.src(), static_cast<uint16_t>(o.sport() + 1));
  EXPECT_EQ(h.in(unknown), NatVerdict::kDrop);
  EXPECT_EQ(h.last, NatDrop::kNoMapping);
}

TEST(Nat66Pool, PairedPoolingGivesEverySubscriberOneAddressAcrossProtocols) {
  NatConfig c = base_config();
  c.block_size = 64;
  c.max_sessions = 16384;
  Harness h(c);
  std::set<uint64_t> used;
  for (uint32_t s = 0; s < 32; ++s) {
    const Ipv6Address sub = kSubA.plus(0x100 + s);
    std::set<uint64_t> pubs;
    for (uint16_t port = 0; port < 80; ++port) {  // more than one block of UDP
      Pkt p = udp(sub, static_cast<uint16_t>(10000 + port), kRemote, 443);
      ASSERT_EQ(h.out(p), NatVerdict::kForward);
      pubs.insert(p.src().lo);
    }
    Pkt t = tcp(sub, 40000, kRemote, 443, kSyn);
    ASSERT_EQ(h.out(t), NatVerdict::kForward);
    pubs.insert(t.src().lo);
    Pkt e = echo(sub, kRemote, 128, 7);
    ASSERT_EQ(h.out(e), NatVerdict::kForward);
    pubs.insert(e.src().lo);
    ASSERT_EQ(pubs.size(), 1u);
    EXPECT_EQ(*pubs.begin(), c.address6(c.paired_address_index6(sub)).lo);
    EXPECT_EQ(h.nat.subscriber_blocks(sub), 2u);
    used.insert(*pubs.begin());
  }
  EXPECT_GT(used.size(), 1u);
}

TEST(Nat66Blocks, BlockEventsCarryTheIpv6AddressesAndBlocksAreReleasedOnExpiry) {
  NatConfig c = base_config();
  c.block_size = 64;
  c.max_blocks_per_subscriber = 2;
  Harness h(c);
  Ipv6Address pub{};
  for (uint16_t i = 0; i < 128; ++i) {
    Pkt p = udp(kSubA, static_cast<uint16_t>(20000 + i), kRemote, 53);
    ASSERT_EQ(h.out(p), NatVerdict::kForward) << i;
    pub = p.src();
  }
  auto ev = h.drain();
  ASSERT_EQ(ev.size(), 2u);
  for (const auto& e : ev) {
    EXPECT_EQ(e.type, NatEventType::kBlockAllocated);
    EXPECT_EQ(e.family, 6);
    EXPECT_EQ(e.subscriber, 0u);
    EXPECT_EQ(e.subscriber6, kSubA.bytes());
    EXPECT_EQ(e.public_address6, pub.bytes());
    EXPECT_EQ(e.port_last - e.port_first + 1, 64);
  }
  Pkt over = udp(kSubA, 30000, kRemote, 53);
  EXPECT_EQ(h.out(over), NatVerdict::kDrop);
  EXPECT_EQ(h.last, NatDrop::kPortLimit);
  EXPECT_EQ(h.nat.expire(400 * kSec, 1'000'000), 128u);
  ev = h.drain();
  size_t released = 0;
  for (const auto& e : ev) released += e.type == NatEventType::kBlockReleased;
  EXPECT_EQ(released, 2u);
  EXPECT_EQ(h.nat.subscribers(), 0u);
}

TEST(Nat66Limits, SessionLimitDropsAndCounts) {
  NatConfig c = base_config();
  c.max_sessions_per_subscriber = 4;
  Harness h(c);
  for (uint16_t i = 0; i < 4; ++i) {
    Pkt p = udp(kSubA, 1000, kRemote.plus(i), 53);
    ASSERT_EQ(h.out(p), NatVerdict::kForward);
  }
  Pkt p = udp(kSubA, 2000, kRemote, 53);
  EXPECT_EQ(h.out(p), NatVerdict::kDrop);
  EXPECT_EQ(h.last, NatDrop::kSessionLimit);
  EXPECT_EQ(h.nat.counters().drops_of(NatDrop::kSessionLimit), 1u);
}

// ---- TCP state and timeouts ----

TEST(Nat66Tcp, SynBothWaysEstablishesAndRstMakesTransitory) {
  Harness h(base_config());
  Pkt syn = tcp(kSubA, 40000, kRemote, 443, kSyn);
  ASSERT_EQ(h.out(syn), NatVerdict::kForward);
  EXPECT_TRUE(l4_ok(syn));
  EXPECT_EQ(h.nat.counters().sessions_tcp_transitory.get(), 1u);
  Pkt synack = tcp(kRemote, 443, syn.src(), syn.sport(), kSyn | kAck);
  ASSERT_EQ(h.in(synack), NatVerdict::kForward);
  EXPECT_TRUE(l4_ok(synack));
  EXPECT_EQ(synack.dst(), kSubA);
  EXPECT_EQ(synack.dport(), 40000);
  EXPECT_EQ(h.nat.counters().sessions_tcp_established.get(), 1u);
  // Established outlives the transitory timeout.
  EXPECT_EQ(h.nat.expire(1000 * kSec, 1000), 0u);
  Pkt rst = tcp(kSubA, 40000, kRemote, 443, kRst);
  ASSERT_EQ(h.out(rst, 1000 * kSec), NatVerdict::kForward);
  EXPECT_EQ(h.nat.counters().sessions_tcp_transitory.get(), 1u);
  EXPECT_EQ(h.nat.expire((1000 + 241) * kSec, 1000), 1u);
  EXPECT_EQ(h.nat.sessions(), 0u);
}

TEST(Nat66Timeouts, UdpAndIcmpSessionsExpireAtTheirTimeouts) {
  Harness h(base_config());
  Pkt u = udp(kSubA, 5000, kRemote, 53);
  ASSERT_EQ(h.out(u), NatVerdict::kForward);
  Pkt e = echo(kSubA, kRemote, 128, 9);
  ASSERT_EQ(h.out(e), NatVerdict::kForward);
  EXPECT_EQ(h.nat.expire(59 * kSec, 1000), 0u);
  EXPECT_EQ(h.nat.expire(61 * kSec, 1000), 1u);  // ICMP: 60 s
  EXPECT_EQ(h.nat.expire(299 * kSec, 1000), 0u);
  EXPECT_EQ(h.nat.expire(301 * kSec, 1000), 1u);  // UDP: 300 s
  EXPECT_EQ(h.nat.sessions(), 0u);
  EXPECT_EQ(h.nat.mappings(), 0u);
}

TEST(Nat66Timeouts, ExpireNeverFreesMoreThanItsBudget) {
  Harness h(base_config());
  for (uint16_t i = 0; i < 50; ++i) {
    Pkt p = udp(kSubA, static_cast<uint16_t>(6000 + i), kRemote, 53);
    ASSERT_EQ(h.out(p), NatVerdict::kForward);
  }
  uint32_t freed = 0;
  for (int k = 0; k < 100 && h.nat.sessions() > 0; ++k) {
    const uint32_t f = h.nat.expire(400 * kSec, 8);
    EXPECT_LE(f, 8u);
    freed += f;
  }
  EXPECT_EQ(freed, 50u);
}

// ---- ICMPv6 ----

TEST(Nat66Icmp, EchoIdentifierIsMappedOutAndBackWithPseudoHeaderChecksums) {
  const NatConfig c = base_config();
  Harness h(c);
  Pkt req = echo(kSubA, kRemote, 128, 0x4242);
  ASSERT_EQ(h.out(req), NatVerdict::kForward);
  EXPECT_TRUE(in_pool(c, req.src()));
  EXPECT_TRUE(l4_ok(req));  // ICMPv6's checksum covers the pseudo-header: the new source too
  Pkt reply = echo(kRemote, req.src(), 129, req.icmp_id());
  ASSERT_EQ(h.in(reply), NatVerdict::kForward);
  EXPECT_EQ(reply.dst(), kSubA);
  EXPECT_EQ(reply.icmp_id(), 0x4242);
  EXPECT_TRUE(l4_ok(reply));
  // A subscriber's echo reply and an echo request from the internet map nothing.
  Pkt stray_reply = echo(kSubA, kRemote, 129, 1);
  EXPECT_EQ(h.out(stray_reply), NatVerdict::kDrop);
  EXPECT_EQ(h.last, NatDrop::kUnsupportedIcmp);
  Pkt ping_in = echo(kRemote, req.src(), 128, req.icmp_id());
  EXPECT_EQ(h.in(ping_in), NatVerdict::kDrop);
  EXPECT_EQ(h.last, NatDrop::kUnsupportedIcmp);
  // Neighbour discovery and other informational types are not NAT's.
  Pkt ns = echo(kSubA, kRemote, 135, 1);
  EXPECT_EQ(h.out(ns), NatVerdict::kDrop);
  EXPECT_EQ(h.last, NatDrop::kUnsupportedIcmp);
}

// The internet's error about a packet the subscriber sent: the outer destination and the
// quoted source go back to the subscriber's endpoint; everything else is unchanged byte for
// byte, and both the outer and the quoted checksums verify from scratch.
void inbound_error_case(uint8_t type, uint8_t code, uint32_t word, Pkt sent, size_t quote,
                        bool quoted_l4_whole) {
  const NatConfig c = base_config();
  Harness h(c);
  const Pkt original = sent;
  ASSERT_EQ(h.out(sent), NatVerdict::kForward);
  quote = std::min(quote, sent.b.size());
  Pkt err = icmp6_error(kRouter, sent.src(), type, code, sent, quote, word);
  ASSERT_EQ(h.in(err), NatVerdict::kForward) << nat_drop_name(h.last);
  EXPECT_TRUE(l4_ok(err)) << "outer ICMPv6 checksum";
  EXPECT_EQ(err.dst(), kSubA);
  EXPECT_EQ(err.src(), kRouter);
  // The expected error: built from the subscriber's original packet, checksums from scratch.
  Pkt want = icmp6_error(kRouter, kSubA, type, code, original, quote, word);
  // The quote is of the packet as it left (hop limit etc. unchanged by NAT here).
  EXPECT_EQ(err.b, want.b) << "byte-exact";
  if (quoted_l4_whole) {
    Pkt q;
    q.b.assign(err.b.begin() + 48, err.b.end());
    EXPECT_TRUE(l4_ok(q)) << "quoted L4 checksum";
  }
}

TEST(Nat66IcmpError, PacketTooBigAboutUdpIsTranslatedByteExact) {
  inbound_error_case(2, 0, 1280, udp(kSubA, 5000, kRemote, 53, 100), 1232, true);
}
TEST(Nat66IcmpError, DestinationUnreachableAboutTcpIsTranslatedByteExact) {
  inbound_error_case(1, 4, 0, tcp(kSubA, 40000, kRemote, 443, kSyn), 1232, true);
}
TEST(Nat66IcmpError, TimeExceededAboutTcpWithShortQuoteIsTranslatedByteExact) {
  // 40 + 12 bytes of TCP: the ports, not the checksum (nothing more to fix inside).
  inbound_error_case(3, 0, 0, tcp(kSubA, 40001, kRemote, 443, kSyn), 52, false);
}
TEST(Nat66IcmpError, ParameterProblemAboutEchoRequestIsTranslatedByteExact) {
  inbound_error_case(4, 0, 7, echo(kSubA, kRemote, 128, 0x77), 1232, true);
}

TEST(Nat66IcmpError, ErrorAboutAFlowWeNeverSentIsDropped) {
  const NatConfig c = base_config();
  Harness h(c);
  Pkt sent = udp(kSubA, 5000, kRemote, 53);
  ASSERT_EQ(h.out(sent), NatVerdict::kForward);
  Pkt other = sent;
  put16(other.l4() + 2, 54);  // a remote port the mapping never sent to
  Pkt err = icmp6_error(kRouter, sent.src(), 1, 4, other, other.b.size());
  EXPECT_EQ(h.in(err), NatVerdict::kDrop);
  EXPECT_EQ(h.last, NatDrop::kNoMapping);
  Pkt truncated = icmp6_error(kRouter, sent.src(), 2, 0, sent, 44);  // no room for the ports
  EXPECT_EQ(h.in(truncated), NatVerdict::kDrop);
  EXPECT_EQ(h.last, NatDrop::kMalformed);
}

TEST(Nat66IcmpError, OutboundErrorFromSubscriberTranslatesEmbeddedDestination) {
  const NatConfig c = base_config();
  Harness h(c);
  Pkt sent = udp(kSubA, 5000, kRemote, 53);
  ASSERT_EQ(h.out(sent), NatVerdict::kForward);
  Pkt reply = udp(kRemote, 53, sent.src(), sent.sport(), 40);
  const Pkt as_sent = reply;  // what the remote sent (public destination)
  ASSERT_EQ(h.in(reply), NatVerdict::kForward);
  Pkt err = icmp6_error(kSubA, kRemote, 1, 4, reply, reply.b.size());
  ASSERT_EQ(h.out(err), NatVerdict::kForward);
  Pkt want = icmp6_error(sent.src(), kRemote, 1, 4, as_sent, as_sent.b.size());
  EXPECT_EQ(err.b, want.b);
  EXPECT_TRUE(l4_ok(err));
}

// ---- hairpinning ----

TEST(Nat66Hairpin, PacketToAnotherSubscribersPublicEndpointIsTranslatedOutThenIn) {
  Harness h(base_config());
  Pkt b_out = udp(kSubB, 7000, kRemote, 3478);
  ASSERT_EQ(h.out(b_out), NatVerdict::kForward);
  Pkt a_out = udp(kSubA, 6000, kRemote, 3478);
  ASSERT_EQ(h.out(a_out), NatVerdict::kForward);
  Pkt to_b = udp(kSubA, 6000, b_out.src(), b_out.sport());
  ASSERT_EQ(h.out(to_b), NatVerdict::kHairpin);
  EXPECT_EQ(to_b.src(), a_out.src());
  EXPECT_EQ(to_b.sport(), a_out.sport());
  EXPECT_EQ(to_b.dst(), kSubB);
  EXPECT_EQ(to_b.dport(), 7000);
  EXPECT_TRUE(l4_ok(to_b));
  EXPECT_EQ(h.nat.counters().hairpinned.get(), 1u);
}

TEST(Nat66Hairpin, IsDroppedWhenHairpinningIsOff) {
  NatConfig c = base_config();
  c.hairpinning = false;
  Harness h(c);
  Pkt b_out = udp(kSubB, 7000, kRemote, 3478);
  ASSERT_EQ(h.out(b_out), NatVerdict::kForward);
  Pkt to_b = udp(kSubA, 6000, b_out.src(), b_out.sport());
  EXPECT_EQ(h.out(to_b), NatVerdict::kDrop);
  EXPECT_EQ(h.last, NatDrop::kHairpinUnsupported);
}

TEST(Nat66Hairpin, DestinationOwnedByAnotherWorkerIsHandedOff) {
  NatConfig c = base_config();
  c.n_workers = 2;
  c.port_min = 1024;
  c.port_max = 65535;
  Harness w0(c, 0), w1(c, 1);
  Pkt b_out = udp(kSubB, 7000, kRemote, 3478);
  ASSERT_EQ(w1.out(b_out), NatVerdict::kForward);
  EXPECT_EQ(c.owner_worker(b_out.sport()), 1u);
  Pkt to_b = udp(kSubA, 6000, b_out.src(), b_out.sport());
  ASSERT_EQ(w0.out(to_b), NatVerdict::kHairpinHandoff);
  EXPECT_EQ(inbound_owner(c, to_b.ip(), to_b.len()), 1u);
  ASSERT_EQ(w1.in(to_b), NatVerdict::kForward);
  EXPECT_EQ(to_b.dst(), kSubB);
  EXPECT_TRUE(l4_ok(to_b));
}

// ---- fragments ----

TEST(Nat66Fragments, FirstFragmentCreatesStateAndLaterFragmentsFollowBothWays) {
  const NatConfig c = base_config();
  Harness h(c);
  const Pkt whole = udp(kSubA, 5000, kRemote, 53, 200);
  auto frags = fragment(whole, 104, 0xabcdef01);
  ASSERT_EQ(frags.size(), 2u);
  ASSERT_EQ(h.out(frags[0]), NatVerdict::kForward);
  ASSERT_EQ(h.out(frags[1]), NatVerdict::kForward);
  EXPECT_EQ(frags[1].src(), frags[0].src());
  EXPECT_TRUE(in_pool(c, frags[0].src()));
  EXPECT_EQ(h.nat.counters().fragments_followed.get(), 1u);
  // Reassembled, the datagram's checksum verifies with the new pseudo-header.
  Pkt joined = ipv6(kUdp, frags[0].src(), kRemote, 208);
  std::memcpy(joined.l4(), frags[0].l4(), 104);
  std::memcpy(joined.l4() + 104, frags[1].l4(), 104);
  EXPECT_TRUE(l4_ok(joined));
  EXPECT_EQ(get16(joined.l4()), frags[0].sport());

  // The reply, fragmented too, comes back to the subscriber.
  const Pkt back = udp(kRemote, 53, frags[0].src(), get16(frags[0].l4()), 200);
  auto rf = fragment(back, 104, 0x1234);
  ASSERT_EQ(h.in(rf[0]), NatVerdict::kForward);
  ASSERT_EQ(h.in(rf[1]), NatVerdict::kForward);
  EXPECT_EQ(rf[0].dst(), kSubA);
  EXPECT_EQ(rf[1].dst(), kSubA);
  Pkt joined_in = ipv6(kUdp, kRemote, kSubA, 208);
  std::memcpy(joined_in.l4(), rf[0].l4(), 104);
  std::memcpy(joined_in.l4() + 104, rf[1].l4(), 104);
  EXPECT_TRUE(l4_ok(joined_in));
  EXPECT_EQ(get16(joined_in.l4() + 2), 5000);
}

TEST(Nat66Fragments, NonFirstFragmentBeforeTheFirstIsDroppedAndCounted) {
  Harness h(base_config());
  auto frags = fragment(udp(kSubA, 5000, kRemote, 53, 200), 104, 7);
  EXPECT_EQ(h.out(frags[1]), NatVerdict::kDrop);
  EXPECT_EQ(h.last, NatDrop::kFragmentNoState);
  EXPECT_EQ(h.nat.counters().drops_of(NatDrop::kFragmentNoState), 1u);
}

TEST(Nat66Fragments, FirstFragmentWithoutTheUpperLayerHeaderIsDroppedWithItsOwnReason) {
  Harness h(base_config());
  const Pkt tcp_whole = tcp(kSubA, 40000, kRemote, 443, kSyn);  // 24 bytes of TCP
  auto frags = fragment(tcp_whole, 16, 9);  // the first holds 16 bytes: not the whole header
  EXPECT_EQ(h.out(frags[0]), NatVerdict::kDrop);
  EXPECT_EQ(h.last, NatDrop::kFragmentNoUpperHeader);
  EXPECT_EQ(h.nat.counters().drops_of(NatDrop::kFragmentNoUpperHeader), 1u);
  EXPECT_EQ(h.nat.sessions(), 0u);
}

// ---- removal, deterministic, workers, parse ----

TEST(Nat66Removal, APrefixRemovesEverySubscriberInsideItAndNoneOutside) {
  Harness h(base_config());
  const Ipv6Address other = ip6("fd00:1::5");
  for (uint32_t s = 0; s < 5; ++s) {
    Pkt p = udp(kSubA.plus(s), 5000, kRemote, 53);
    ASSERT_EQ(h.out(p), NatVerdict::kForward);
  }
  Pkt o = udp(other, 5000, kRemote, 53);
  ASSERT_EQ(h.out(o), NatVerdict::kForward);
  EXPECT_EQ(h.nat.remove_subscribers(kSubA, 128), 1u);
  EXPECT_EQ(h.nat.remove_subscribers(ip6("fd7a:115c:a1e0::"), 48), 4u);
  EXPECT_EQ(h.nat.subscribers(), 1u);
  EXPECT_TRUE(h.nat.find_mapping(other, 5000, NatProto::kUdp).has_value());
  EXPECT_EQ(h.nat.counters().sessions_removed.get(), 5u);
}

TEST(Nat66Deterministic, SubscribersGetTheirRfc7422RangeWithoutBlockEvents) {
  NatConfig c = base_config();
  c.mode = NatMode::kDeterministic;
  c.pool6 = {{ip6("2001:db8:100::1"), 128}};
  c.deterministic_inside6 = {ip6("fd7a:115c:a1e0::"), 120};  // 256 subscribers on 1 address
  Harness h(c);
  const uint32_t per = c.det_ports_per_subscriber();
  ASSERT_EQ(per, (65535u - 1024 + 1) / 256);
  for (uint32_t i : {0u, 17u, 255u}) {
    Pkt p = udp(ip6("fd7a:115c:a1e0::").plus(i), 40000, kRemote, 53);
    ASSERT_EQ(h.out(p), NatVerdict::kForward);
    EXPECT_EQ(p.src(), ip6("2001:db8:100::1"));
    EXPECT_GE(p.sport(), 1024 + i * per);
    EXPECT_LT(p.sport(), 1024 + (i + 1) * per);
    EXPECT_TRUE(l4_ok(p));
  }
  Pkt outside = udp(ip6("fd7a:115c:a1e0::100"), 40000, kRemote, 53);
  EXPECT_EQ(h.out(outside), NatVerdict::kDrop);
  EXPECT_EQ(h.last, NatDrop::kNotDeterministicSubscriber);
  EXPECT_TRUE(h.drain().empty());
}

TEST(Nat66Workers, InboundOwnerFollowsThePortIdentifierAndQuotedPort) {
  NatConfig c = base_config();
  c.n_workers = 4;
  c.block_size = 256;  // divides the 16128-port slices
  Harness w2(c, 2);
  Pkt p = udp(kSubA, 5000, kRemote, 53);
  ASSERT_EQ(w2.out(p), NatVerdict::kForward);
  EXPECT_EQ(c.owner_worker(p.sport()), 2u);
  Pkt back = udp(kRemote, 53, p.src(), p.sport());
  EXPECT_EQ(inbound_owner(c, back.ip(), back.len()), 2u);
  Pkt e = echo(kSubA, kRemote, 128, 99);
  ASSERT_EQ(w2.out(e), NatVerdict::kForward);
  Pkt er = echo(kRemote, e.src(), 129, e.icmp_id());
  EXPECT_EQ(inbound_owner(c, er.ip(), er.len()), 2u);
  Pkt ptb = icmp6_error(kRouter, p.src(), 2, 0, p, p.b.size(), 1280);
  EXPECT_EQ(inbound_owner(c, ptb.ip(), ptb.len()), 2u);
  auto frags = fragment(back, 8, 3);
  EXPECT_EQ(inbound_owner(c, frags[1].ip(), frags[1].len()), kNone);
}

TEST(Nat66Parse, MalformedAndUnsupportedPacketsAreCountedDrops) {
  Harness h(base_config());
  Pkt p = udp(kSubA, 5000, kRemote, 53);
  Pkt v4 = p;
  v4.b[0] = 0x45;
  EXPECT_EQ(h.out(v4), NatVerdict::kDrop);
  EXPECT_EQ(h.last, NatDrop::kMalformed);
  Pkt long_len = p;
  put16(long_len.b.data() + 4, 200);
  EXPECT_EQ(h.out(long_len), NatVerdict::kDrop);
  EXPECT_EQ(h.last, NatDrop::kMalformed);
  Pkt sctp = ipv6(132, kSubA, kRemote, 12);
  EXPECT_EQ(h.out(sctp), NatVerdict::kDrop);
  EXPECT_EQ(h.last, NatDrop::kUnsupportedProtocol);
  Pkt short_tcp = ipv6(kTcp, kSubA, kRemote, 12);
  EXPECT_EQ(h.out(short_tcp), NatVerdict::kDrop);
  EXPECT_EQ(h.last, NatDrop::kMalformed);
  EXPECT_EQ(h.nat.counters().drops_of(NatDrop::kMalformed), 3u);
}

TEST(Nat66Burst, BurstGivesTheSameVerdictsAndBytesAsOnePacketAtATime) {
  const NatConfig c = base_config();
  Harness one(c), many(c);
  std::vector<Pkt> a, b;
  for (uint16_t i = 0; i < 40; ++i) {
    const Ipv6Address sub = kSubA.plus(i % 5);
    a.push_back(i % 3 ? udp(sub, static_cast<uint16_t>(1000 + i % 7), kRemote, 53)
                      : tcp(sub, static_cast<uint16_t>(2000 + i % 4), kRemote, 443, kSyn));
  }
  b = a;
  std::vector<NatVerdict> v1;
  for (auto& p : a) v1.push_back(one.out(p));
  std::vector<rte_ipv6_hdr*> ips;
  std::vector<uint32_t> lens;
  for (auto& p : b) ips.push_back(p.ip()), lens.push_back(p.len());
  std::vector<NatVerdict> v2(b.size());
  std::vector<NatDrop> why(b.size());
  many.nat.out_burst(ips.data(), lens.data(), static_cast<uint16_t>(b.size()), 0, v2.data(),
                     why.data());
  EXPECT_EQ(v1, v2);
  for (size_t i = 0; i < a.size(); ++i) EXPECT_EQ(a[i].b, b[i].b) << i;
}

TEST(Nat66Config, RejectsBadPoolsWithClearErrors) {
  NatConfig c = base_config();
  EXPECT_TRUE(c.validate().ok());
  c.pool6.clear();
  ASSERT_FALSE(c.validate().ok());
  EXPECT_NE(c.validate().error().find("IPv6 pool is empty"), std::string::npos);
  c.pool6 = {{ip6("2001:db8:100::"), 64}};
  ASSERT_FALSE(c.validate().ok());
  EXPECT_NE(c.validate().error().find("larger than /112"), std::string::npos);
  c.pool6 = {{ip6("2001:db8:100::1"), 127}};
  ASSERT_FALSE(c.validate().ok());
  EXPECT_NE(c.validate().error().find("host bits"), std::string::npos);
  c.pool6 = {{ip6("2001:db8:100::"), 120}, {ip6("2001:db8:100::8"), 125}};
  ASSERT_FALSE(c.validate().ok());
  EXPECT_NE(c.validate().error().find("overlap"), std::string::npos);
  c.pool6 = {{ip6("2001:db8:100::"), 112}, {ip6("2001:db8:101::"), 128}};
  ASSERT_FALSE(c.validate().ok());
  EXPECT_NE(c.validate().error().find("65536"), std::string::npos);
  c.pool6 = {{ip6("2001:db8:100::"), 112}};
  EXPECT_TRUE(c.validate().ok());
  EXPECT_EQ(c.pool_size(), 65536u);
  EXPECT_EQ(c.address6(65535), ip6("2001:db8:100::ffff"));
  EXPECT_EQ(c.address_index6(ip6("2001:db8:100::1:0")), kNone);
  EXPECT_EQ(c.address_index6(ip6("2001:db8:100::ff")), 255u);
}

}  // namespace
}  // namespace exitgw::dp::nat
