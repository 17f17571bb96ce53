// A peer's endpoint (common/wg_state.h): IPv4 in the one 64-bit word, IPv6 in the word plus a
// two-slot address entry. Single-threaded behaviour, then writers and readers racing on real
// threads: no reader may ever see an address with another endpoint's port (a torn copy).
#include "common/wg_state.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <thread>
#include <vector>

namespace exitgw {
namespace {

// Address n: 2001:db8::/32, then n in every remaining 32-bit word (a mix of two is visible).
void address_of(uint32_t n, uint8_t out[16]) {
  static constexpr uint8_t kPrefix[4] = {0x20, 0x01, 0x0d, 0xb8};
  std::memcpy(out, kPrefix, 4);
  for (int w = 1; w < 4; ++w) std::memcpy(out + 4 * w, &n, 4);
}

TEST(PeerEndpoint, Ipv6StoredReadBackAndComparedByAddressAndPort) {
  PeerRuntime peer;
  PeerEndpoint6 e6;
  uint8_t a[16], b[16], got[16];
  address_of(7, a);
  address_of(8, b);
  EXPECT_FALSE(endpoint6_is(peer, e6, a, 0x1234));
  ASSERT_TRUE(store_endpoint6(peer, e6, a, 0x1234));
  uint64_t word = peer.endpoint.load();
  EXPECT_TRUE(word & kEndpointValid);
  EXPECT_TRUE(endpoint_is_ipv6(word));
  EXPECT_EQ(endpoint_port(word), 0x1234);
  ASSERT_TRUE(load_endpoint6(peer, e6, &word, got));
  EXPECT_EQ(std::memcmp(got, a, 16), 0);
  EXPECT_TRUE(endpoint6_is(peer, e6, a, 0x1234));
  EXPECT_FALSE(endpoint6_is(peer, e6, a, 0x1235));
  EXPECT_FALSE(endpoint6_is(peer, e6, b, 0x1234));
  // Two more generations: each in the other slot, the newest always the one read.
  ASSERT_TRUE(store_endpoint6(peer, e6, b, 0x9999));
  ASSERT_TRUE(store_endpoint6(peer, e6, a, 0x4321));
  word = peer.endpoint.load();
  ASSERT_TRUE(load_endpoint6(peer, e6, &word, got));
  EXPECT_EQ(std::memcmp(got, a, 16), 0);
  EXPECT_EQ(endpoint_port(word), 0x4321);
}

TEST(PeerEndpoint, RoamingToIpv4MakesTheIpv6ReadFailWithTheNewWord) {
  PeerRuntime peer;
  PeerEndpoint6 e6;
  uint8_t a[16], got[16];
  address_of(1, a);
  ASSERT_TRUE(store_endpoint6(peer, e6, a, 1));
  uint64_t word = peer.endpoint.load();
  peer.endpoint.store(pack_endpoint(0x0a00000b, 0x5000));  // a worker saw the peer over IPv4
  EXPECT_FALSE(load_endpoint6(peer, e6, &word, got));
  EXPECT_EQ(word, pack_endpoint(0x0a00000b, 0x5000));
  EXPECT_FALSE(endpoint_is_ipv6(word));
  EXPECT_FALSE(endpoint6_is(peer, e6, a, 1));
}

TEST(PeerEndpoint, AWriterHoldingTheEntryMakesAnotherSkip) {
  PeerRuntime peer;
  PeerEndpoint6 e6;
  uint8_t a[16];
  address_of(3, a);
  e6.writing.store(1);
  EXPECT_FALSE(store_endpoint6(peer, e6, a, 3));
  EXPECT_EQ(peer.endpoint.load(), 0u);
  e6.writing.store(0);
  EXPECT_TRUE(store_endpoint6(peer, e6, a, 3));
}

// Writers store endpoint n with port n (IPv6) or an IPv4 endpoint, readers check that what
// they read is whole: the port always the address's own number.
TEST(PeerEndpoint, RacingWritersAndReadersNeverSeeATornEndpoint) {
  PeerRuntime peer;
  PeerEndpoint6 e6;
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> torn{0}, reads6{0}, stores{0};
  auto writer = [&](uint32_t first) {
    uint8_t a[16];
    for (uint32_t n = first; !stop.load(std::memory_order_relaxed); n += 2) {
      const uint16_t port = static_cast<uint16_t>(n % 60000 + 1);
      if (n % 7 == 0) {
        peer.endpoint.store(pack_endpoint(port, port), std::memory_order_relaxed);
        continue;
      }
      address_of(port, a);
      if (store_endpoint6(peer, e6, a, port)) stores.fetch_add(1, std::memory_order_relaxed);
    }
  };
  auto reader = [&] {
    uint8_t got[16], want[16];
    while (!stop.load(std::memory_order_relaxed)) {
      uint64_t word = peer.endpoint.load(std::memory_order_acquire);
      if (!endpoint_is_ipv6(word)) {
        if ((word & kEndpointValid) && endpoint_ip(word) != endpoint_port(word)) torn.fetch_add(1);
        continue;
      }
      if (!load_endpoint6(peer, e6, &word, got)) continue;
      address_of(endpoint_port(word), want);
      if (std::memcmp(got, want, 16) != 0) torn.fetch_add(1);
      reads6.fetch_add(1, std::memory_order_relaxed);
    }
  };
  std::vector<std::thread> threads;
  threads.emplace_back(writer, 0);
  threads.emplace_back(writer, 1);
  threads.emplace_back(reader);
  threads.emplace_back(reader);
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  stop.store(true);
  for (auto& t : threads) t.join();
  EXPECT_EQ(torn.load(), 0u);
  EXPECT_GT(reads6.load(), 0u);
  EXPECT_GT(stores.load(), 0u);
}

}  // namespace
}  // namespace exitgw
