// NatWorker's burst entry points stage their lookups across the burst; they must decide and
// rewrite exactly as the per-packet path does. Two workers with one configuration see the same
// random traffic (new flows, repeats, replies, unsolicited and hairpinned packets, ICMP, TCP,
// malformed headers), one packet by packet and one in bursts of random sizes.
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <vector>

#include "dataplane/nat/nat_worker.h"

namespace exitgw::dp::nat {
namespace {

constexpr uint32_t ip4(uint32_t a, uint32_t b, uint32_t c, uint32_t d) {
  return a << 24 | b << 16 | c << 8 | d;
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

using Bytes = std::vector<uint8_t>;

// A packet of protocol `proto` (6, 17 or 1 as an echo request/reply) with zeroed checksums
// filled by a plain sum: the test compares bytes between the two workers, not validity.
Bytes packet(uint8_t proto, uint32_t src, uint16_t sport, uint32_t dst, uint16_t dport,
             uint8_t icmp_type, uint8_t tcp_flags) {
  const size_t l4 = proto == 6 ? 20 : 8;
  Bytes b(20 + l4 + 8, 0);
  b[0] = 0x45;
  put16(&b[2], static_cast<uint16_t>(b.size()));
  b[8] = 64;
  b[9] = proto;
  put32(&b[12], src);
  put32(&b[16], dst);
  uint8_t* p = &b[20];
  if (proto == 1) {
    p[0] = icmp_type;
    put16(p + 4, sport);
  } else {
    put16(p, sport);
    put16(p + 2, dport);
    if (proto == 6) {
      p[12] = 5 << 4;
      p[13] = tcp_flags;
    } else {
      put16(p + 4, static_cast<uint16_t>(l4 + 8));
      put16(p + 6, 0x1234);
    }
  }
  return b;
}

struct Observed {
  NatVerdict verdict;
  NatDrop why;
  Bytes bytes;
};

void run_equivalence(NatFiltering filtering) {
  NatConfig c;
  c.pool = {{ip4(198, 51, 100, 0), 30}};
  c.max_sessions = 2048;
  c.max_sessions_per_subscriber = 64;
  c.block_size = 64;
  c.filtering = filtering;
  c.ticks_per_second = 1000;
  ASSERT_TRUE(c.validate().ok());
  NatWorker single(c, 0), burst(c, 0);

  std::mt19937 rng(11);
  struct Public {
    uint8_t proto;
    uint32_t address;
    uint16_t port;
  };
  std::vector<Public> seen_public;  // translated sources, for replies and hairpins
  uint64_t now = 0;
  for (int round = 0; round < 3000; ++round) {
    now += rng() % 400;  // seconds pass: sessions expire between rounds
    single.expire(now, 64);
    burst.expire(now, 64);
    const bool outbound = rng() % 2 == 0;
    const uint16_t n = static_cast<uint16_t>(1 + rng() % 40);
    std::vector<Bytes> a(n), b(n);
    for (uint16_t i = 0; i < n; ++i) {
      const uint8_t proto = std::vector<uint8_t>{6, 17, 17, 1}[rng() % 4];
      const uint8_t flags = std::vector<uint8_t>{0x02, 0x10, 0x12, 0x01, 0x04}[rng() % 5];
      const uint32_t remote = ip4(203, 0, 113, rng() % 4);
      const uint16_t rport = static_cast<uint16_t>(443 + rng() % 3);
      if (outbound) {
        const uint32_t sub = ip4(100, 64, 0, rng() % 24);
        const uint16_t sport = static_cast<uint16_t>(40000 + rng() % 16);
        if (!seen_public.empty() && rng() % 8 == 0) {
          // To another subscriber's public endpoint: hairpinning.
          const Public& to = seen_public[rng() % seen_public.size()];
          a[i] = packet(to.proto, sub, sport, to.address, to.port, 8, flags);
        } else {
          a[i] = packet(proto, sub, sport, remote, rport, 8, flags);
        }
      } else if (!seen_public.empty() && rng() % 4 != 0) {
        const Public& to = seen_public[rng() % seen_public.size()];
        a[i] = packet(to.proto, remote, rport, to.address, to.port, 0, flags);
      } else {
        a[i] = packet(proto, remote, rport, ip4(198, 51, 100, rng() % 4),
                      static_cast<uint16_t>(1024 + rng() % 2000), 0, flags);
      }
      if (rng() % 50 == 0) a[i][0] = 0x46;   // malformed: options promised, none there
      if (rng() % 50 == 0) a[i].resize(10);  // truncated
      b[i] = a[i];
    }
    std::vector<Observed> one(n);
    for (uint16_t i = 0; i < n; ++i) {
      NatDrop why = NatDrop::kCount;
      auto* ip = reinterpret_cast<rte_ipv4_hdr*>(a[i].data());
      const auto len = static_cast<uint32_t>(a[i].size());
      const NatVerdict v =
          outbound ? single.out(ip, len, now, &why) : single.in(ip, len, now, &why);
      one[i] = Observed{v, v == NatVerdict::kDrop ? why : NatDrop::kCount, a[i]};
    }
    std::vector<rte_ipv4_hdr*> ips(n);
    std::vector<uint32_t> lens(n);
    for (uint16_t i = 0; i < n; ++i) {
      ips[i] = reinterpret_cast<rte_ipv4_hdr*>(b[i].data());
      lens[i] = static_cast<uint32_t>(b[i].size());
    }
    std::vector<NatVerdict> verdict(n);
    std::vector<NatDrop> why(n, NatDrop::kCount);
    if (outbound)
      burst.out_burst(ips.data(), lens.data(), n, now, verdict.data(), why.data());
    else
      burst.in_burst(ips.data(), lens.data(), n, now, verdict.data(), why.data());
    for (uint16_t i = 0; i < n; ++i) {
      ASSERT_EQ(verdict[i], one[i].verdict) << "round " << round << " packet " << i;
      if (verdict[i] == NatVerdict::kDrop) {
        ASSERT_EQ(why[i], one[i].why) << "round " << round << " packet " << i;
      }
      ASSERT_EQ(b[i], one[i].bytes) << "round " << round << " packet " << i;
      if (outbound && verdict[i] == NatVerdict::kForward && b[i].size() >= 24)
        seen_public.push_back(
            Public{b[i][9], get32(&b[i][12]), b[i][9] == 1 ? get16(&b[i][24]) : get16(&b[i][20])});
    }
    ASSERT_EQ(burst.sessions(), single.sessions());
    ASSERT_EQ(burst.mappings(), single.mappings());
  }
  EXPECT_GT(single.sessions(), 0u);
  EXPECT_EQ(burst.counters().translated_out.get(), single.counters().translated_out.get());
  EXPECT_EQ(burst.counters().translated_in.get(), single.counters().translated_in.get());
  // The traffic exercised the paths that matter: replies, hairpins, filtering, bad headers.
  EXPECT_GT(burst.counters().translated_in.get(), 0u);
  if (filtering == NatFiltering::kEndpointIndependent)
    EXPECT_GT(burst.counters().hairpinned.get(), 0u);
  else
    EXPECT_GT(burst.counters().drops_of(NatDrop::kFiltered), 0u);
  EXPECT_GT(burst.counters().drops_of(NatDrop::kMalformed), 0u);
  EXPECT_GT(burst.counters().sessions_expired.get(), 0u);
}

TEST(NatBurst, BurstsDecideAndRewriteExactlyAsPacketByPacketWithAddressDependentFiltering) {
  run_equivalence(NatFiltering::kAddressDependent);
}

TEST(NatBurst, BurstsDecideAndRewriteExactlyAsPacketByPacketWithEndpointIndependentFiltering) {
  run_equivalence(NatFiltering::kEndpointIndependent);
}

}  // namespace
}  // namespace exitgw::dp::nat
