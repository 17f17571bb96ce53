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
// IPv6 has its own context (AclKeyV6) with the same proto/class/port fields; the class id is
// shared, so a peer's class covers both families.
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

// The IPv6 key, laid out as DPDK's ipv6 ACL example: the destination as four 4-byte MASK
// fields (rte_acl compares at most 4 bytes per field), each in its own input group.
struct __attribute__((packed)) AclKeyV6 {
  uint8_t proto;       // the upper-layer protocol after the extension headers
  uint8_t pad[3];      // not read by the classifier
  uint32_t class_id;   // big-endian: the same class ids as IPv4
  uint8_t dst_ip[16];  // straight from the inner IPv6 header
  uint16_t dst_port;   // big-endian; 0 for other protocols and non-first fragments
  uint16_t reserved;   // 0
};
static_assert(sizeof(AclKeyV6) == 28);
static_assert(offsetof(AclKeyV6, class_id) == 4 && offsetof(AclKeyV6, dst_ip) == 8 &&
              offsetof(AclKeyV6, dst_port) == 24);

enum AclFieldV6 : uint8_t {
  kAcl6FieldProto,
  kAcl6FieldClass,
  kAcl6FieldDst0,
  kAcl6FieldDst1,
  kAcl6FieldDst2,
  kAcl6FieldDst3,
  kAcl6FieldDstPort,
  kAcl6FieldReserved,
  kAclFieldCountV6,
};

inline constexpr rte_acl_field_def kAclFieldDefsV6[kAclFieldCountV6] = {
    {RTE_ACL_FIELD_TYPE_BITMASK, sizeof(uint8_t), kAcl6FieldProto, 0, offsetof(AclKeyV6, proto)},
    {RTE_ACL_FIELD_TYPE_BITMASK, sizeof(uint32_t), kAcl6FieldClass, 1,
     offsetof(AclKeyV6, class_id)},
    {RTE_ACL_FIELD_TYPE_MASK, sizeof(uint32_t), kAcl6FieldDst0, 2, offsetof(AclKeyV6, dst_ip)},
    {RTE_ACL_FIELD_TYPE_MASK, sizeof(uint32_t), kAcl6FieldDst1, 3, offsetof(AclKeyV6, dst_ip) + 4},
    {RTE_ACL_FIELD_TYPE_MASK, sizeof(uint32_t), kAcl6FieldDst2, 4, offsetof(AclKeyV6, dst_ip) + 8},
    {RTE_ACL_FIELD_TYPE_MASK, sizeof(uint32_t), kAcl6FieldDst3, 5, offsetof(AclKeyV6, dst_ip) + 12},
    {RTE_ACL_FIELD_TYPE_RANGE, sizeof(uint16_t), kAcl6FieldDstPort, 6,
     offsetof(AclKeyV6, dst_port)},
    {RTE_ACL_FIELD_TYPE_BITMASK, sizeof(uint16_t), kAcl6FieldReserved, 6,
     offsetof(AclKeyV6, reserved)},
};

// Fills a key. `dst_ip` as in the packet, `dst_port_be` big-endian; class in host order.
inline void fill_acl_key_v6(AclKeyV6& key, uint32_t class_id, uint8_t proto,
                            const uint8_t dst_ip[16], uint16_t dst_port_be) noexcept {
  key.proto = proto;
  key.pad[0] = key.pad[1] = key.pad[2] = 0;
  key.class_id = rte_cpu_to_be_32(class_id);
  __builtin_memcpy(key.dst_ip, dst_ip, 16);
  key.dst_port = dst_port_be;
  key.reserved = 0;
}

// Classifier results (both families): 0 = nothing matched (default deny); otherwise bit 0 is
// "allow" and the rest is the rule's counter index (PolicySnapshot::rule_names, one list for
// IPv4 and IPv6 rules).
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
