// Arbitrary bytes into the HuJSON reader, the policy validator and, when they accept, the
// compiler; the same bytes into the approvals parser. Must never crash or throw.
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "control/policy/approvals.h"
#include "control/policy/compile.h"
#include "control/policy/policy.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace exitgw::policy;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  (void)parse_approvals(text, "fuzz");
  auto policy = parse_policy(text, "fuzz");
  if (!policy.ok()) return 0;
  std::vector<PolicyPeer> peers(3);
  peers[0] = {0, "alice@example.com", {}, {{0x6440000b, 32}}};
  peers[1] = {1, "bob@example.com", {"tag:server"}, {{0x6440000c, 32}}};
  peers[2] = {7, "", {}, {{0x64400100, 24}}};
  NodeIdentity node;
  node.exit_advertised = true;
  node.tags = {"tag:exit"};
  node.own_addresses = {0xc0000201};
  auto compiled = compile_policy(*policy, peers, node, {});
  if (compiled.ok() && compiled->rule_names.empty()) __builtin_trap();
  return 0;
}
