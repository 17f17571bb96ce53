// Arbitrary bytes as an IPv6 packet through Nat66Worker::out() and in() (the NAT core's IPv6
// instantiation: extension-header walk, Fragment headers, ICMPv6 quotes): never crash, never
// touch a byte outside [data, data + len). The first byte picks the direction; mode 2 aims the
// packet (or the packet an ICMPv6 error quotes) at a live mapping so inbound paths run.
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "dataplane/nat/nat_worker.h"

namespace {

using namespace exitgw::dp::nat;

constexpr uint8_t kSub[16] = {0xfd, 0x7a, 0x11, 0x5c, 0xa1, 0xe0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10};
constexpr uint8_t kRemote[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10};

struct State {
  NatConfig config;
  std::unique_ptr<NatEventRing> ring;
  std::unique_ptr<Nat66Worker> nat;
  uint16_t pub_port[3] = {};
  uint8_t pub_ip[16] = {};
  uint64_t now = 0;
};

void put16(uint8_t* p, uint16_t v) {
  p[0] = v >> 8, p[1] = v & 0xff;
}

State& state() {
  static State* s = [] {
    auto* st = new State;
    uint8_t pool[16] = {0x20, 0x01, 0x0d, 0xb8, 0x01, 0x00};
    st->config.family = NatFamily::kIpv6;
    st->config.pool6 = {{Ipv6Address::from_bytes(pool), 126}};
    st->config.max_sessions = 4096;
    st->config.block_size = 64;
    st->config.fragment_entries = 16;
    st->ring = std::make_unique<NatEventRing>(64);
    st->nat = std::make_unique<Nat66Worker>(st->config, 0, st->ring.get());
    // Prime one TCP, UDP and ICMPv6 echo mapping: fd7a:115c:a1e0::10 -> 2001:db8:5::10.
    const uint8_t protos[3] = {6, 17, 58};
    for (int i = 0; i < 3; ++i) {
      std::vector<uint8_t> b(40 + 20, 0);
      b[0] = 0x60;
      put16(&b[4], 20);
      b[6] = protos[i];
      b[7] = 64;
      std::memcpy(&b[8], kSub, 16);
      std::memcpy(&b[24], kRemote, 16);
      put16(&b[40], 5000);
      put16(&b[42], 80);
      if (protos[i] == 58) b[40] = 128;
      NatDrop why;
      st->nat->out(reinterpret_cast<rte_ipv6_hdr*>(b.data()), 60, 0, &why);
      std::memcpy(st->pub_ip, &b[8], 16);
      st->pub_port[i] = uint16_t(protos[i] == 58 ? (b[44] << 8 | b[45]) : (b[40] << 8 | b[41]));
    }
    return st;
  }();
  return *s;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  State& st = state();
  const uint8_t mode = data[0] % 3;
  // An exact-size heap copy: ASan flags any access past the packet.
  std::vector<uint8_t> buf(data + 1, data + size);
  const auto len = static_cast<uint32_t>(buf.size());
  if (mode == 2 && len >= 44) {
    const int pi = buf[6] == 6 ? 0 : buf[6] == 17 ? 1 : 2;
    std::memcpy(&buf[24], st.pub_ip, 16);
    put16(&buf[42], st.pub_port[pi]);
    // An ICMPv6 error right after the header: aim the quoted packet's source at the mapping.
    if (buf[6] == 58 && len >= 40 + 8 + 40 + 4) {
      uint8_t* e = &buf[48];
      std::memcpy(e + 8, st.pub_ip, 16);
      std::memcpy(e + 24, kRemote, 16);
      const int epi = e[6] == 6 ? 0 : e[6] == 17 ? 1 : 2;
      if (len >= 48 + 40 + 8) put16(e + 40 + (epi == 2 ? 4 : 0), st.pub_port[epi]);
    }
  }
  // An empty packet has no storage; give the worker a valid pointer anyway.
  uint8_t empty[1];
  auto* ip = reinterpret_cast<rte_ipv6_hdr*>(buf.empty() ? empty : buf.data());
  NatDrop why;
  st.now += 1'000'000;  // 1 ms: primed UDP/TCP mappings outlive 200k inputs
  if (mode == 0)
    st.nat->out(ip, len, st.now, &why);
  else
    st.nat->in(ip, len, st.now, &why);
  (void)inbound_owner(st.config, ip, len);
  st.nat->expire(st.now, 4);
  NatEvent e;
  while (st.ring->pop(&e)) {
  }
  return 0;
}
