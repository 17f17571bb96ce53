// NatWorker against a naive std::map model of mapping, filtering, limits, blocks and expiry,
// on 100k random operations (outbound, inbound, time steps, budgeted and full expiry).
#include "dataplane/nat/nat_worker.h"

#include <gtest/gtest.h>

#include <map>
#include <random>
#include <set>
#include <tuple>
#include <vector>

namespace exitgw::dp::nat {
namespace {

constexpr uint64_t kSec = 1'000'000'000;

uint32_t fold(uint32_t s) {
  while (s >> 16) s = (s & 0xffff) + (s >> 16);
  return s;
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

// A UDP (proto 17) or ICMP echo (proto 1, request or reply) packet with a valid IP checksum.
std::vector<uint8_t> packet(uint8_t proto, uint32_t src, uint16_t sport, uint32_t dst,
                            uint16_t dport, bool reply = false) {
  std::vector<uint8_t> b(20 + 16, 0);
  b[0] = 0x45;
  put16(&b[2], static_cast<uint16_t>(b.size()));
  b[8] = 64;
  b[9] = proto;
  put32(&b[12], src);
  put32(&b[16], dst);
  uint32_t s = 0;
  for (int i = 0; i < 20; i += 2) s += get16(&b[i]);
  put16(&b[10], static_cast<uint16_t>(~fold(s)));
  if (proto == 17) {
    put16(&b[20], sport);
    put16(&b[22], dport);
    put16(&b[24], 16);
  } else {
    b[20] = reply ? 0 : 8;
    put16(&b[24], reply ? dport : sport);
  }
  return b;
}

struct Model {
  using InKey = std::tuple<uint32_t, uint16_t, uint8_t>;   // subscriber, port, proto
  using OutKey = std::tuple<uint32_t, uint16_t, uint8_t>;  // public address, port, proto
  struct MapState {
    uint32_t pub_ip = 0;
    uint16_t pub_port = 0;
    std::map<std::pair<uint32_t, uint16_t>, uint32_t> sessions;  // remote -> last seen
  };
  std::map<InKey, MapState> mappings;
  std::map<OutKey, InKey> by_public;
  std::map<uint32_t, uint32_t> sessions_of;  // subscriber -> count
  uint32_t timeout(uint8_t proto) const { return proto == 17 ? 300 : 60; }

  void expire(uint32_t now_s) {
    for (auto it = mappings.begin(); it != mappings.end();) {
      auto& ss = it->second.sessions;
      for (auto s = ss.begin(); s != ss.end();) {
        if (s->second + timeout(std::get<2>(it->first)) <= now_s) {
          --sessions_of[std::get<0>(it->first)];
          s = ss.erase(s);
        } else {
          ++s;
        }
      }
      if (ss.empty()) {
        by_public.erase({it->second.pub_ip, it->second.pub_port, std::get<2>(it->first)});
        it = mappings.erase(it);
      } else {
        ++it;
      }
    }
  }
  size_t total_sessions() const {
    size_t n = 0;
    for (const auto& [k, m] : mappings) n += m.sessions.size();
    return n;
  }
};

void run_model(NatFiltering filtering, uint32_t seed) {
  NatConfig c;
  c.pool = {{0xc6336400, 29}};  // 198.51.100.0/29
  c.block_size = 64;
  c.max_blocks_per_subscriber = 2;
  c.max_sessions_per_subscriber = 24;
  c.max_sessions = 8192;
  c.filtering = filtering;
  ASSERT_TRUE(c.validate().ok());
  NatEventRing ring(1 << 16);
  NatWorker nat(c, 0, &ring);
  Model model;
  std::mt19937 rng(seed);
  uint64_t now = 0;
  int64_t blocks_live = 0;
  uint32_t expected_fwd = 0, expected_drop = 0;

  for (int op = 0; op < 100000; ++op) {
    const uint32_t now_s = static_cast<uint32_t>(now / kSec);
    const unsigned kind = rng() % 100;
    if (kind < 55) {  // outbound
      const uint32_t sub = 0x64400000 + rng() % 8;
      const uint8_t proto = rng() % 4 ? 17 : 1;
      const uint16_t sport = static_cast<uint16_t>(1000 + rng() % 20);  // < one block
      const uint32_t remote = 0xcb007100 + rng() % 6;
      const uint16_t rport = proto == 1 ? 0 : static_cast<uint16_t>(53 + rng() % 3);
      auto b = packet(proto, sub, sport, remote, rport);
      NatDrop why = NatDrop::kCount;
      const NatVerdict v =
          nat.out(reinterpret_cast<rte_ipv4_hdr*>(b.data()), uint32_t(b.size()), now, &why);
      const Model::InKey key{sub, sport, proto};
      auto it = model.mappings.find(key);
      const bool session_exists =
          it != model.mappings.end() && it->second.sessions.count({remote, rport});
      if (!session_exists && model.sessions_of[sub] >= c.max_sessions_per_subscriber) {
        ASSERT_EQ(v, NatVerdict::kDrop) << "op " << op;
        ASSERT_EQ(why, NatDrop::kSessionLimit);
        ++expected_drop;
        continue;
      }
      ASSERT_EQ(v, NatVerdict::kForward) << "op " << op << " " << nat_drop_name(why);
      ++expected_fwd;
      const uint32_t pub_ip = get32(&b[12]);
      const uint16_t pub_port = get16(&b[proto == 17 ? 20 : 24]);
      ASSERT_EQ(pub_ip, c.address(c.paired_address_index(sub))) << "paired pooling";
      if (it != model.mappings.end()) {
        ASSERT_EQ(pub_port, it->second.pub_port) << "EIM broken at op " << op;
      } else {
        ASSERT_TRUE(model.by_public.emplace(Model::OutKey{pub_ip, pub_port, proto}, key).second)
            << "public endpoint handed out twice";
        it = model.mappings.emplace(key, Model::MapState{pub_ip, pub_port, {}}).first;
      }
      if (!session_exists) ++model.sessions_of[sub];
      it->second.sessions[{remote, rport}] = now_s;
    } else if (kind < 85) {  // inbound
      const uint32_t remote = 0xcb007100 + rng() % 8;
      uint32_t pub_ip;
      uint16_t pub_port;
      uint8_t proto;
      if (!model.by_public.empty() && rng() % 5) {
        auto it = model.by_public.begin();
        std::advance(it, rng() % model.by_public.size());
        std::tie(pub_ip, pub_port, proto) = it->first;
      } else {
        pub_ip = 0xc6336400 + rng() % 8;
        pub_port = static_cast<uint16_t>(1024 + rng() % 64512);
        proto = rng() % 2 ? 17 : 1;
      }
      const uint16_t rport = proto == 1 ? 0 : static_cast<uint16_t>(53 + rng() % 4);
      auto b = packet(proto, remote, rport, pub_ip, pub_port, true);
      NatDrop why = NatDrop::kCount;
      const NatVerdict v =
          nat.in(reinterpret_cast<rte_ipv4_hdr*>(b.data()), uint32_t(b.size()), now, &why);
      auto pit = model.by_public.find({pub_ip, pub_port, proto});
      if (pit == model.by_public.end()) {
        ASSERT_EQ(v, NatVerdict::kDrop);
        ASSERT_EQ(why, NatDrop::kNoMapping);
        continue;
      }
      auto& m = model.mappings[pit->second];
      const uint32_t sub = std::get<0>(pit->second);
      const bool exists = m.sessions.count({remote, rport});
      bool permitted = exists || filtering == NatFiltering::kEndpointIndependent;
      for (const auto& [r, t] : m.sessions) permitted |= r.first == remote;
      if (!permitted) {
        ASSERT_EQ(v, NatVerdict::kDrop);
        ASSERT_EQ(why, NatDrop::kFiltered) << "op " << op;
        continue;
      }
      if (!exists && model.sessions_of[sub] >= c.max_sessions_per_subscriber) {
        ASSERT_EQ(v, NatVerdict::kDrop);
        ASSERT_EQ(why, NatDrop::kSessionLimit);
        continue;
      }
      ASSERT_EQ(v, NatVerdict::kForward) << "op " << op << " " << nat_drop_name(why);
      ASSERT_EQ(get32(&b[16]), sub);
      ASSERT_EQ(get16(&b[proto == 17 ? 22 : 24]), std::get<1>(pit->second));
      if (!exists) ++model.sessions_of[sub];
      m.sessions[{remote, rport}] = now_s;
    } else if (kind < 97) {
      now += (rng() % 8) * kSec + rng() % kSec;
    } else {
      // Full expiry (budget large enough) keeps the model exact; small budgets are checked
      // for their bound and then completed.
      const uint32_t small = 1 + rng() % 8;
      ASSERT_LE(nat.expire(now, small), small);
      while (nat.expire(now, 1u << 20) > 0) {
      }
      model.expire(static_cast<uint32_t>(now / kSec));
      ASSERT_EQ(nat.sessions(), model.total_sessions()) << "op " << op;
      ASSERT_EQ(nat.mappings(), model.mappings.size());
    }
    // Blocks: with < 64 ports per protocol each live subscriber holds exactly one block.
    if (op % 997 == 0) {
      std::set<uint32_t> subs;
      for (const auto& [k, m] : model.mappings) subs.insert(std::get<0>(k));
      NatEvent e;
      while (ring.pop(&e)) {
        if (e.type == NatEventType::kBlockAllocated) ++blocks_live;
        if (e.type == NatEventType::kBlockReleased) --blocks_live;
      }
      // Expiry in the worker may lag the model between full expiries; compare after one.
      while (nat.expire(now, 1u << 20) > 0) {
      }
      model.expire(static_cast<uint32_t>(now / kSec));
      while (ring.pop(&e)) {
        if (e.type == NatEventType::kBlockAllocated) ++blocks_live;
        if (e.type == NatEventType::kBlockReleased) --blocks_live;
      }
      subs.clear();
      for (const auto& [k, m] : model.mappings) subs.insert(std::get<0>(k));
      ASSERT_EQ(nat.subscribers(), subs.size());
      ASSERT_EQ(static_cast<size_t>(blocks_live), subs.size());
      for (uint32_t s : subs) ASSERT_EQ(nat.subscriber_blocks(s), 1u);
      ASSERT_EQ(nat.counters().sessions(), nat.sessions());
    }
  }
  EXPECT_GT(expected_fwd, 10000u);
  EXPECT_GT(expected_drop, 10u);  // the session limit was exercised
}

TEST(NatModel, AddressDependentFilteringMatchesNaiveModelOn100kRandomOperations) {
  run_model(NatFiltering::kAddressDependent, 1);
}

TEST(NatModel, EndpointIndependentFilteringMatchesNaiveModelOn100kRandomOperations) {
  run_model(NatFiltering::kEndpointIndependent, 2);
}

}  // namespace
}  // namespace exitgw::dp::nat
