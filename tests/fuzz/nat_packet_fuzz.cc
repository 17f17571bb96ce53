// Arbitrary bytes as an IPv4 packet through NatWorker::out() and in(): never crash, never touch
// a byte outside [data, data + len). The first byte picks the direction; mode 2 aims the packet
// (or the packet an ICMP error quotes) at a live mapping so inbound translation paths run.
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "dataplane/nat/nat_worker.h"

namespace {

using namespace exitgw::dp::nat;

struct State {
  NatConfig config;
  std::unique_ptr<NatEventRing> ring;
  std::unique_ptr<NatWorker> nat;
  uint16_t pub_port[3] = {};
  uint32_t pub_ip = 0;
  uint64_t now = 0;
};

void put16(uint8_t* p, uint16_t v) {
  p[0] = v >> 8, p[1] = v & 0xff;
}
void put32(uint8_t* p, uint32_t v) {
  put16(p, v >> 16), put16(p + 2, v & 0xffff);
}

State& state() {
  static State* s = [] {
    auto* st = new State;
    st->config.pool = {{0xc6336400, 30}};
    st->config.max_sessions = 4096;
    st->config.block_size = 64;
    st->config.fragment_entries = 16;
    st->ring = std::make_unique<NatEventRing>(64);
    st->nat = std::make_unique<NatWorker>(st->config, 0, st->ring.get());
    // Prime one UDP, TCP and ICMP mapping: 100.64.0.1 -> 203.0.113.10.
    const uint8_t protos[3] = {6, 17, 1};
    for (int i = 0; i < 3; ++i) {
      std::vector<uint8_t> b(48, 0);
      b[0] = 0x45;
      put16(&b[2], 48);
      b[8] = 64;
      b[9] = protos[i];
      put32(&b[12], 0x64400001);
      put32(&b[16], 0xcb00710a);
      put16(&b[20], 5000);
      put16(&b[22], 80);
      if (protos[i] == 1) b[20] = 8;
      NatDrop why;
      st->nat->out(reinterpret_cast<rte_ipv4_hdr*>(b.data()), 48, 0, &why);
      st->pub_ip = uint32_t{b[12]} << 24 | b[13] << 16 | b[14] << 8 | b[15];
      st->pub_port[i] = uint16_t(protos[i] == 1 ? (b[24] << 8 | b[25]) : (b[20] << 8 | b[21]));
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
  if (mode == 2 && len >= 24) {
    const int pi = buf[9] == 6 ? 0 : buf[9] == 17 ? 1 : 2;
    put32(&buf[16], st.pub_ip);
    const unsigned ihl = (buf[0] & 0xf) * 4u;
    if (ihl >= 20 && ihl + 4 <= len) put16(&buf[ihl + 2], st.pub_port[pi]);
    // An ICMP error: aim the quoted packet's source at the mapping too.
    if (buf[9] == 1 && ihl + 8 + 20 + 4 <= len) {
      uint8_t* e = &buf[ihl + 8];
      put32(e + 12, st.pub_ip);
      put32(e + 16, 0xcb00710a);
      const unsigned eihl = (e[0] & 0xf) * 4u;
      const int epi = e[9] == 6 ? 0 : e[9] == 17 ? 1 : 2;
      if (eihl >= 20 && ihl + 8 + eihl + 8 <= len)
        put16(e + eihl + (epi == 2 ? 4 : 0), st.pub_port[epi]);
    }
  }
  // An empty packet has no storage; give the worker a valid pointer anyway.
  uint8_t empty[1];
  auto* ip = reinterpret_cast<rte_ipv4_hdr*>(buf.empty() ? empty : buf.data());
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
