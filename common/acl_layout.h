// The exit-policy classifier's key layout and result encoding: what a worker fills per packet
// and how it reads the rte_acl answer. Header-only, no control/ dependencies, so the
// dataplane can include it.
#pragma once

#include <cstddef>
#include <cstdint>

#include <rte_acl.h>
#include <rte_byteorder.h>

namespace exitgw::policy {

// One key per packet, in network byte order as rte_acl reads its input (rules are given in
// host order and rte_acl compares them against big-endian input). rte_acl wants the first
// field one byte long and every later field in 4-byte groups; the last group holds the
// destination port and a reserved wildcard (room for source-port rules).
// IPv6 gets its own context later with the same class/proto/port fields and four 4-byte
// groups for the destination; the class id is shared, so a peer's class covers both.
struct __attribute__((packed)) AclKeyV4 {
  uint8_t proto;      // IP protocol
  uint8_t pad[3];     // not read by the classifier
  uint32_t class_id;  // big-endian: the peer's policy class (PolicySnapshot::class_of)
  uint32_t dst_ip;    // big-endian, straight from the inner IPv4 header
  uint16_t dst_port;  // big-endian from the TCP/UDP/SCTP header; 0 for other protocols and
                      // for non-first fragments (rules on those protocols never test ports)
  uint16_t reserved;  // 0
};
static_assert(sizeof(AclKeyV4) == 16);
static_assert(offsetof(AclKeyV4, class_id) == 4 && offsetof(AclKeyV4, dst_ip) == 8 &&
              offsetof(AclKeyV4, dst_port) == 12);

enum AclFieldV4 : uint8_t {
  kAclFieldProto,
  kAclFieldClass,
  kAclFieldDst,
  kAclFieldDstPort,
  kAclFieldReserved,
  kAclFieldCountV4,
};

inline constexpr rte_acl_field_def kAclFieldDefsV4[kAclFieldCountV4] = {
    {RTE_ACL_FIELD_TYPE_BITMASK, sizeof(uint8_t), kAclFieldProto, 0, offsetof(AclKeyV4, proto)},
    {RTE_ACL_FIELD_TYPE_BITMASK, sizeof(uint32_t), kAclFieldClass, 1, offsetof(AclKeyV4, class_id)},
    {RTE_ACL_FIELD_TYPE_MASK, sizeof(uint32_t), kAclFieldDst, 2, offsetof(AclKeyV4, dst_ip)},
    {RTE_ACL_FIELD_TYPE_RANGE, sizeof(uint16_t), kAclFieldDstPort, 3, offsetof(AclKeyV4, dst_port)},
    {RTE_ACL_FIELD_TYPE_BITMASK, sizeof(uint16_t), kAclFieldReserved, 3,
     offsetof(AclKeyV4, reserved)},
};

// Fills a key. `dst_ip_be` and `dst_port_be` as they are in the packet; class in host order.
inline void fill_acl_key_v4(AclKeyV4& key, uint32_t class_id, uint8_t proto, uint32_t dst_ip_be,
                            uint16_t dst_port_be) noexcept {
  key.proto = proto;
  key.pad[0] = key.pad[1] = key.pad[2] = 0;
  key.class_id = rte_cpu_to_be_32(class_id);
  key.dst_ip = dst_ip_be;
  key.dst_port = dst_port_be;
  key.reserved = 0;
}

// Classifier results: 0 = nothing matched (default deny); otherwise bit 0 is "allow" and the
// rest is the rule's counter index (PolicySnapshot::rule_names).
inline constexpr bool acl_result_allows(uint32_t result) noexcept {
  return (result & 1u) != 0;
}
inline constexpr uint32_t acl_result_counter(uint32_t result) noexcept {
  return result >> 1;
}
inline constexpr uint32_t acl_result_encode(uint32_t counter, bool allow) noexcept {
  return counter << 1 | (allow ? 1u : 0u);
}

}  // namespace exitgw::policy
