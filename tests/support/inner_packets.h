// Inner IPv4 and IPv6 packets as a peer sends them (100.64.0.2 -> 93.184.216.34,
// fd7a:115c:a1e0::2 -> 2606:4700::1111), and the application
// payloads the domain policy inspects: a DNS query, a TLS ClientHello with SNI, an HTTP
// request with Host. Checksums are left 0: the domain stage does not read them.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace exitgw::testing {

using Bytes = std::vector<uint8_t>;

inline void put16(Bytes& b, size_t v) {
  b.push_back(uint8_t(v >> 8));
  b.push_back(uint8_t(v));
}

// An IPv4 packet (no options) around an L4 header and payload.
inline Bytes ipv4(uint8_t proto, const Bytes& l4, uint16_t frag = 0) {
  Bytes b = {0x45, 0};
  put16(b, 20 + l4.size());
  put16(b, 1);
  put16(b, frag);
  b.push_back(64);
  b.push_back(proto);
  put16(b, 0);
  for (uint8_t x : {100, 64, 0, 2, 93, 184, 216, 34}) b.push_back(x);
  b.insert(b.end(), l4.begin(), l4.end());
  return b;
}

// The UDP and TCP headers (with payload) the helpers below put behind an IP header.
inline Bytes udp_l4(uint16_t dport, const Bytes& payload) {
  Bytes l4;
  put16(l4, 40000);
  put16(l4, dport);
  put16(l4, 8 + payload.size());
  put16(l4, 0);
  l4.insert(l4.end(), payload.begin(), payload.end());
  return l4;
}

inline Bytes tcp_l4(uint16_t dport, const Bytes& payload, uint8_t data_offset_words = 5) {
  Bytes l4;
  put16(l4, 40000);
  put16(l4, dport);
  for (int i = 0; i < 8; ++i) l4.push_back(0);  // seq, ack
  l4.push_back(uint8_t(data_offset_words << 4));
  l4.push_back(0x18);  // PSH|ACK
  put16(l4, 65535);
  put16(l4, 0);
  put16(l4, 0);
  l4.resize(l4.size() + (data_offset_words - 5) * 4, 1);  // NOP options
  l4.insert(l4.end(), payload.begin(), payload.end());
  return l4;
}

inline Bytes udp(uint16_t dport, const Bytes& payload) {
  return ipv4(17, udp_l4(dport, payload));
}

inline Bytes tcp(uint16_t dport, const Bytes& payload, uint8_t data_offset_words = 5) {
  return ipv4(6, tcp_l4(dport, payload, data_offset_words));
}

// An IPv6 packet (fd7a:115c:a1e0::2 -> 2606:4700::1111): `next` is the first header after
// the fixed one, `rest` everything from there (extension headers, then the upper layer).
inline Bytes ipv6(uint8_t next, const Bytes& rest) {
  Bytes b = {0x60, 0, 0, 0};
  put16(b, rest.size());
  b.push_back(next);
  b.push_back(64);
  for (uint8_t x : {0xfd, 0x7a, 0x11, 0x5c, 0xa1, 0xe0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2})
    b.push_back(x);
  for (uint8_t x : {0x26, 0x06, 0x47, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x11, 0x11}) b.push_back(x);
  b.insert(b.end(), rest.begin(), rest.end());
  return b;
}

// An 8-byte IPv6 extension header of type Destination Options (PadN) or Fragment
// (`frag_field`: offset << 3 | M), followed by `next`.
inline Bytes ipv6_dest_options(uint8_t next) {
  return {next, 0, 1, 4, 0, 0, 0, 0};
}
inline Bytes ipv6_fragment(uint8_t next, uint16_t frag_field) {
  return {next, 0, uint8_t(frag_field >> 8), uint8_t(frag_field), 0, 0, 0, 7};
}

// A DNS query for `dotted` (qtype 1: A).
inline Bytes dns_query(const std::string& dotted, uint16_t qtype = 1) {
  Bytes b = {0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0};
  size_t start = 0;
  while (start <= dotted.size()) {
    size_t dot = dotted.find('.', start);
    if (dot == std::string::npos) dot = dotted.size();
    b.push_back(uint8_t(dot - start));
    b.insert(b.end(), dotted.begin() + long(start), dotted.begin() + long(dot));
    start = dot + 1;
  }
  b.push_back(0);
  put16(b, qtype);
  put16(b, 1);
  return b;
}

// A TLS record holding a ClientHello whose only extension is server_name = host.
inline Bytes client_hello(const std::string& host) {
  Bytes body = {3, 3};
  body.resize(body.size() + 32, 7);
  body.push_back(0);
  put16(body, 2);
  put16(body, 0x1301);
  body.push_back(1);
  body.push_back(0);
  Bytes ext;
  put16(ext, 0);
  put16(ext, host.size() + 5);
  put16(ext, host.size() + 3);
  ext.push_back(0);
  put16(ext, host.size());
  ext.insert(ext.end(), host.begin(), host.end());
  put16(body, ext.size());
  body.insert(body.end(), ext.begin(), ext.end());
  Bytes rec = {22, 3, 1};
  put16(rec, body.size() + 4);
  rec.push_back(1);
  rec.push_back(0);
  put16(rec, body.size());
  rec.insert(rec.end(), body.begin(), body.end());
  return rec;
}

inline Bytes http_request(const std::string& host) {
  const std::string s = "GET / HTTP/1.1\r\nHost: " + host + "\r\n\r\n";
  return Bytes(s.begin(), s.end());
}

}  // namespace exitgw::testing
