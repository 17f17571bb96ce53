// Policy file validation: what is accepted, what is noted and ignored, and every rejection
// with file:line:column and the path of the offending value.
#include "control/policy/policy.h"
#include "control/policy/prefix.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <sstream>
#include <string>

namespace exitgw::policy {
namespace {

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool has_note(const Policy& p, const std::string& fragment) {
  for (const auto& n : p.notes) {
    if (n.find(fragment) != std::string::npos) return true;
  }
  return false;
}

TEST(PolicyParse, LabPolicyFileIsValid) {
  const std::string text = read_file(std::string(EXITGW_SOURCE_DIR) + "/conf/policy.hujson");
  ASSERT_FALSE(text.empty());
  auto p = parse_policy(text, "conf/policy.hujson");
  ASSERT_TRUE(p.ok()) << p.error();
  // grants[0], grants[1], acls[0]; acls[1] is tailnet-only and noted.
  ASSERT_EQ(p->permissions.size(), 3u);
  EXPECT_EQ(p->permissions[0].label, "acls[0]");
  EXPECT_EQ(p->permissions[1].label, "grants[0]");
  EXPECT_EQ(p->permissions[2].label, "grants[1]");
  EXPECT_TRUE(has_note(*p, "acls[1]"));
  EXPECT_TRUE(has_note(*p, "\"ssh\""));
  EXPECT_TRUE(has_note(*p, "\"tests\""));
  ASSERT_EQ(p->exit_node_approvers.size(), 1u);
  EXPECT_EQ(p->exit_node_approvers[0].name, "tag:exit");
  EXPECT_EQ(p->group_users.at("group:contractors").size(), 1u);
}

TEST(PolicyParse, DefaultPolicyIsOneMemberInternetGrant) {
  Policy p = default_policy();
  EXPECT_TRUE(p.is_default);
  ASSERT_EQ(p.permissions.size(), 1u);
  ASSERT_EQ(p.permissions[0].src.size(), 1u);
  EXPECT_EQ(p.permissions[0].src[0].kind, PrincipalKind::kMember);
  // autogroup:internet: 0.0.0.0/0 and, in IPv6, 2000::/3.
  ASSERT_EQ(p.permissions[0].targets.size(), 2u);
  for (const Target& t : p.permissions[0].targets) {
    if (t.ipv6) {
      EXPECT_EQ(t.prefix6, kInternet6);
    } else {
      EXPECT_EQ(t.prefix.len, 0);
    }
    EXPECT_FALSE(t.named);
    EXPECT_EQ(t.proto, kProtoAny);
    EXPECT_EQ(t.port_lo, 0);
    EXPECT_EQ(t.port_hi, 65535);
  }
  EXPECT_NE(p.permissions[0].targets[0].ipv6, p.permissions[0].targets[1].ipv6);
}

TEST(PolicyParse, AclWithoutProtoMeansTcpAndUdpPlusIcmpOnlyForAllPorts) {
  auto p = parse_policy(R"({"acls": [
      {"action": "accept", "src": ["*"], "dst": ["autogroup:internet:80,443", "8.8.8.8:*"]}]})",
                        "p");
  ASSERT_TRUE(p.ok()) << p.error();
  const auto& t = p->permissions[0].targets;
  // internet (IPv4 and IPv6): tcp 80, tcp 443, udp 80, udp 443; 8.8.8.8: tcp, udp, icmp.
  ASSERT_EQ(t.size(), 11u);
  int icmp = 0;
  for (const auto& x : t) {
    if (x.proto == kProtoIcmp) {
      ++icmp;
      EXPECT_EQ(x.prefix.addr, 0x08080808u);
      EXPECT_TRUE(x.named);
    }
  }
  EXPECT_EQ(icmp, 1);
}

TEST(PolicyParse, GrantIpSpecsExpandToProtocolsAndPorts) {
  auto p = parse_policy(R"({"grants": [{"src": ["*"], "dst": ["autogroup:internet"],
      "ip": ["tcp:443", "udp:53", "icmp:*", "8000-8080", "47:*"]}]})",
                        "p");
  ASSERT_TRUE(p.ok()) << p.error();
  const auto& t = p->permissions[0].targets;
  // IPv4: tcp 443, udp 53, icmp, tcp 8000-8080, udp 8000-8080, gre; IPv6 the same but ICMP.
  ASSERT_EQ(t.size(), 11u);
  EXPECT_EQ(std::count_if(t.begin(), t.end(), [](const Target& x) { return x.ipv6; }), 5);
  bool gre = false, range = false;
  for (const auto& x : t) {
    gre |= x.proto == 47 && x.port_lo == 0 && x.port_hi == 65535;
    range |= x.proto == kProtoTcp && x.port_lo == 8000 && x.port_hi == 8080;
  }
  EXPECT_TRUE(gre);
  EXPECT_TRUE(range);
}

TEST(PolicyParse, NestedGroupsExpandToUsers) {
  auto p = parse_policy(R"({"groups": {"group:a": ["a@x.com", "group:b"],
                                       "group:b": ["b@x.com", "group:c"],
                                       "group:c": ["c@x.com"]}})",
                        "p");
  ASSERT_TRUE(p.ok()) << p.error();
  EXPECT_EQ(p->group_users.at("group:a"), (std::set<std::string>{"a@x.com", "b@x.com", "c@x.com"}));
}

// `levels` groups, each listing the next one twice (the issue's 5 KB policy: unmemoised
// expansion doubles per level), the last listing one user, and a grant using the first.
std::string twice_nested_groups(int levels) {
  std::string groups;
  for (int i = 0; i < levels; ++i) {
    const std::string next = "\"group:g" + std::to_string(i + 1) + "\"";
    groups += "\"group:g" + std::to_string(i) + "\": [" +
              (i + 1 < levels ? next + ", " + next + ", \"u" + std::to_string(i) + "@x.com\""
                              : std::string("\"last@x.com\"")) +
              "],\n";
  }
  return "{\"groups\": {" + groups +
         "}, \"grants\": [{\"src\": [\"group:g0\"], \"dst\": [\"autogroup:internet\"], "
         "\"ip\": [\"*\"]}]}";
}

TEST(PolicyParse, GroupsListingTheNextTwiceThirtyTwoDeepExpandInMilliseconds) {
  for (int levels : {25, 32}) {
    const std::string text = twice_nested_groups(levels);
    const auto start = std::chrono::steady_clock::now();
    auto p = parse_policy(text, "p");
    const auto took = std::chrono::steady_clock::now() - start;
    ASSERT_TRUE(p.ok()) << p.error();
    EXPECT_LT(took, std::chrono::milliseconds(200)) << levels << " levels";
    EXPECT_EQ(p->group_users.at("group:g0").size(), size_t(levels));  // u0..u(n-2) and last
    EXPECT_EQ(p->group_users.at("group:g" + std::to_string(levels - 1)),
              (std::set<std::string>{"last@x.com"}));
  }
}

TEST(PolicyParse, GroupsNestedDeeperThanThirtyTwoAreRefusedNamingTheGroups) {
  auto p = parse_policy(twice_nested_groups(40), "p");
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.error().find("groups nested deeper than 32 (group \"group:g0\" reaches "
                           "\"group:g32\")"),
            std::string::npos)
      << p.error();
}

// Many groups that each include one large group: the expanded total is bounded, and the
// error names the group where it was passed.
TEST(PolicyParse, GroupsExpandingToTooManyMembersInAllAreRefused) {
  std::string big;
  for (int u = 0; u < 3000; ++u) big += "\"u" + std::to_string(u) + "@x.com\",";
  big.pop_back();
  std::string groups = "\"group:big\": [" + big + "]";
  for (int g = 0; g < 100; ++g) groups += ",\"group:c" + std::to_string(g) + "\": [\"group:big\"]";
  const auto start = std::chrono::steady_clock::now();
  auto p = parse_policy("{\"groups\": {" + groups + "}}", "p");
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.error().find("groups expand to more than 262144 members in all (at group "
                           "\"group:c86\")"),
            std::string::npos)
      << p.error();
}

TEST(PolicyParse, IgnoredSectionsAndDeviceDestinationsAreNoted) {
  auto p = parse_policy(R"({
    "tagOwners": {"tag:db": []},
    "nodeAttrs": [], "postures": {}, "ssh": [], "tests": [], "derpMap": {},
    "acls": [{"action": "accept", "src": ["*"], "dst": ["tag:db:5432", "autogroup:self:*"]},
             {"action": "accept", "src": ["*"], "dst": ["tag:db:*", "1.1.1.1:53"]}],
    "grants": [{"src": ["*"], "dst": ["tag:db"], "app": {"example.com/cap": [{}]}}],
    "autoApprovers": {"routes": {"10.0.0.0/8": ["tag:db"]}},
  })",
                        "p");
  ASSERT_TRUE(p.ok()) << p.error();
  ASSERT_EQ(p->permissions.size(), 1u);  // only acls[1] reaches the exit
  EXPECT_EQ(p->permissions[0].label, "acls[1]");
  for (const char* s : {"\"nodeAttrs\"", "\"postures\"", "\"derpMap\"", "acls[0]", "acls[1]",
                        "grants[0]", "routes"}) {
    EXPECT_TRUE(has_note(*p, s)) << s;
  }
}

TEST(PolicyParse, Ipv6DestinationsHostsAndSourcesAreParsedAsPrefixes) {
  auto p = parse_policy(R"({"hosts": {"v6": "2001:db8:1::/48", "me6": "fd7a:115c:a1e0::/120"},
      "acls": [{"action": "accept", "src": ["fd7a:115c:a1e0::1", "*", "me6"],
       "dst": ["2001:db8::/32:443", "v6:*",
       "[2001:db8::1]:22", "autogroup:internet:443"]}]})",
                        "p");
  ASSERT_TRUE(p.ok()) << p.error();
  ASSERT_EQ(p->permissions.size(), 1u);
  const auto& t = p->permissions[0].targets;
  // 2001:db8::/32 tcp/udp 443; v6: tcp, udp, icmpv6; 2001:db8::1 tcp/udp 22; internet tcp/udp
  // 443 in both families.
  ASSERT_EQ(t.size(), 11u);
  auto has = [&](const std::string& prefix, uint8_t proto, uint16_t port, bool named) {
    return std::any_of(t.begin(), t.end(), [&](const Target& x) {
      return x.ipv6 && format_prefix(x.prefix6) == prefix && x.proto == proto &&
             x.port_lo == port && x.named == named;
    });
  };
  EXPECT_TRUE(has("2001:db8::/32", kProtoTcp, 443, true));
  EXPECT_TRUE(has("2001:db8:1::/48", kProtoIcmpv6, 0, true));
  EXPECT_FALSE(has("2001:db8:1::/48", kProtoIcmp, 0, true));
  EXPECT_TRUE(has("2001:db8::1/128", kProtoUdp, 22, true));
  EXPECT_TRUE(has("2000::/3", kProtoTcp, 443, false));
  const auto& src = p->permissions[0].src;
  ASSERT_EQ(src.size(), 3u);
  EXPECT_TRUE(src[0].kind == PrincipalKind::kPrefix && src[0].ipv6 &&
              format_prefix(src[0].prefix6) == "fd7a:115c:a1e0::1/128");
  EXPECT_EQ(src[1].kind, PrincipalKind::kAll);
  EXPECT_TRUE(src[2].kind == PrincipalKind::kPrefix && src[2].ipv6 &&
              format_prefix(src[2].prefix6) == "fd7a:115c:a1e0::/120");
  // An IPv6 source with host bits set is refused, as a destination is.
  auto bad = parse_policy(
      R"({"acls": [{"action": "accept", "src": ["fd7a:115c:a1e0::1/64"], "dst": ["*:*"]}]})", "p");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().find("has host bits set"), std::string::npos) << bad.error();
}

TEST(PolicyParse, StarIsEveryIpv6AddressAndAutogroupInternetTheGlobalUnicastSpace) {
  auto p = parse_policy(R"({"grants": [{"src": ["*"], "dst": ["*"], "ip": ["*"]},
      {"src": ["*"], "dst": ["autogroup:internet"], "ip": ["*"]}]})",
                        "p");
  ASSERT_TRUE(p.ok()) << p.error();
  ASSERT_EQ(p->permissions.size(), 2u);
  auto v6 = [](const Permission& perm) {
    for (const Target& t : perm.targets)
      if (t.ipv6) return format_prefix(t.prefix6);
    return std::string("none");
  };
  EXPECT_EQ(v6(p->permissions[0]), "::/0");
  EXPECT_EQ(v6(p->permissions[1]), "2000::/3");
}

struct Rejection {
  const char* name;
  const char* text;
  const char* location;  // expected "p:line:col: path: "
  const char* fragment;
};

class PolicyRejects : public ::testing::TestWithParam<Rejection> {};

TEST_P(PolicyRejects, WithLineColumnPathAndProblem) {
  const Rejection& r = GetParam();
  auto p = parse_policy(r.text, "p");
  ASSERT_FALSE(p.ok()) << r.name;
  EXPECT_EQ(p.error().rfind(r.location, 0), 0u) << r.name << ": " << p.error();
  EXPECT_NE(p.error().find(r.fragment), std::string::npos) << r.name << ": " << p.error();
}

INSTANTIATE_TEST_SUITE_P(
    AllRejections, PolicyRejects,
    ::testing::Values(
        Rejection{"NotAnObject", "[]", "p:1:1: (top level): ", "one JSON object"},
        Rejection{"UnknownSection", "{\n  \"acl\": []\n}", "p:2:3: acl: ", "unknown section"},
        Rejection{"MisspelledSectionHint", "{\"ACLs\": []}",
                  "p:1:2: ACLs: ", "did you mean \"acls\""},
        Rejection{"SyntaxError", "{\n\"acls\": [\n  {\"action\": accept}]}",
                  "p:3:14: ", "invalid literal"},
        Rejection{"ActionNotAccept",
                  "{\"acls\": [\n {\"action\": \"deny\", \"src\": [\"*\"], \"dst\": [\"*:*\"]}]}",
                  "p:2:3: acls[0].action: ", "must be \"accept\""},
        Rejection{"MissingAction", "{\"acls\": [{\"src\": [\"*\"], \"dst\": [\"*:*\"]}]}",
                  "p:1:11: acls[0]: ", "missing \"action\""},
        Rejection{"UnknownRuleKey",
                  "{\"acls\": [{\"action\": \"accept\", \"users\": [\"*\"], \"dst\": []}]}",
                  "p:1:32: acls[0].users: ", "legacy"},
        Rejection{
            "DstWithoutPorts",
            "{\"acls\": [{\"action\": \"accept\", \"src\": [\"*\"],\n \"dst\": [\"8.8.8.8\"]}]}",
            "p:2:10: acls[0].dst[0]: ", "needs ports"},
        Rejection{"InternetWithoutPorts",
                  "{\"acls\": [{\"action\": \"accept\", \"src\": [\"*\"], \"dst\": "
                  "[\"autogroup:internet\"]}]}",
                  "p:1:54: acls[0].dst[0]: ", "needs ports"},
        Rejection{
            "BadPort",
            "{\"acls\": [{\"action\": \"accept\", \"src\": [\"*\"], \"dst\": [\"*:70000\"]}]}",
            "p:1:54: acls[0].dst[0]: ", "bad ports"},
        Rejection{
            "ReversedPortRange",
            "{\"acls\": [{\"action\": \"accept\", \"src\": [\"*\"], \"dst\": [\"*:90-80\"]}]}",
            "p:1:54: acls[0].dst[0]: ", "bad ports"},
        Rejection{"PortsOnIcmp",
                  "{\"acls\": [{\"action\": \"accept\", \"src\": [\"*\"], \"dst\": [\"*:80\"], "
                  "\"proto\": \"icmp\"}]}",
                  "p:1:54: acls[0].dst[0]: ", "has no ports"},
        Rejection{"UnknownProto",
                  "{\"acls\": [{\"action\": \"accept\", \"src\": [\"*\"], \"dst\": [\"*:*\"], "
                  "\"proto\": \"quic\"}]}",
                  "p:1:62: acls[0].proto: ", "not a protocol"},
        Rejection{"HostBitsSet",
                  "{\"acls\": [{\"action\": \"accept\", \"src\": [\"*\"], \"dst\": "
                  "[\"198.51.100.1/24:*\"]}]}",
                  "p:1:54: acls[0].dst[0]: ", "host bits"},
        Rejection{
            "UndefinedGroup",
            "{\"acls\": [{\"action\": \"accept\", \"src\": [\"group:x\"], \"dst\": [\"*:*\"]}]}",
            "p:1:40: acls[0].src[0]: ", "not defined"},
        Rejection{"UndefinedTag",
                  "{\"grants\": [{\"src\": [\"tag:x\"], \"dst\": [\"*\"], \"ip\": [\"*\"]}]}",
                  "p:1:22: grants[0].src[0]: ", "not defined in tagOwners"},
        Rejection{"UnknownPrincipal",
                  "{\"grants\": [{\"src\": [\"bogus\"], \"dst\": [\"*\"], \"ip\": [\"*\"]}]}",
                  "p:1:22: grants[0].src[0]: ", "is not a user"},
        Rejection{"InternetAsSource",
                  "{\"grants\": [{\"src\": [\"autogroup:internet\"], \"dst\": [\"*\"], \"ip\": "
                  "[\"*\"]}]}",
                  "p:1:22: grants[0].src[0]: ", "not a source"},
        Rejection{"UnresolvableSourceOnExitRule",
                  "{\"grants\": [{\"src\": [\"autogroup:admin\"], \"dst\": "
                  "[\"autogroup:internet\"], \"ip\": [\"*\"]}]}",
                  "p:1:13: grants[0]: ", "cannot be evaluated"},
        Rejection{"PostureOnRule",
                  "{\"grants\": [{\"src\": [\"*\"], \"dst\": [\"autogroup:internet\"], \"ip\": "
                  "[\"*\"], \"srcPosture\": [\"posture:ok\"]}]}",
                  "p:1:72: grants[0].srcPosture: ", "posture"},
        Rejection{"DefaultPosture", "{\"defaultSrcPosture\": [\"posture:ok\"]}",
                  "p:1:2: defaultSrcPosture: ", "posture"},
        Rejection{"IpsetDestination",
                  "{\"grants\": [{\"src\": [\"*\"], \"dst\": [\"ipset:x\"], \"ip\": [\"*\"]}]}",
                  "p:1:36: grants[0].dst[0]: ", "ipsets"},
        Rejection{"GrantWithoutIpOrApp", "{\"grants\": [{\"src\": [\"*\"], \"dst\": [\"*\"]}]}",
                  "p:1:13: grants[0]: ", "\"ip\" or \"app\""},
        Rejection{"GrantBadIp",
                  "{\"grants\": [{\"src\": [\"*\"], \"dst\": [\"*\"], \"ip\": [\"tcp:x\"]}]}",
                  "p:1:49: grants[0].ip[0]: ", "bad ports"},
        Rejection{"ViaUnknownTag",
                  "{\"grants\": [{\"src\": [\"*\"], \"dst\": [\"*\"], \"ip\": [\"*\"], \"via\": "
                  "[\"tag:exit\"]}]}",
                  "p:1:63: grants[0].via[0]: ", "tagOwners"},
        Rejection{"GroupCycle",
                  "{\"groups\": {\"group:a\": [\"group:b\"],\n \"group:b\": [\"group:a\"]}}",
                  "p:1:13: groups.group:a: ", "include each other"},
        Rejection{"GroupMemberNotUser", "{\"groups\": {\"group:a\": [\"alice\"]}}",
                  "p:1:25: groups.group:a[0]: ", "not a user"},
        Rejection{"BadTagName", "{\"tagOwners\": {\"tag:a b\": []}}",
                  "p:1:16: tagOwners.tag:a b: ", "not a tag"},
        Rejection{"Ipv6HostBitsSet",
                  "{\"acls\": [{\"action\": \"accept\", \"src\": [\"*\"], \"dst\": "
                  "[\"2001:db8::1/32:*\"]}]}",
                  "p:1:54: acls[0].dst[0]: ", "has host bits set (did you mean 2001:db8::/32?)"},
        Rejection{"Ipv6PrefixLengthTooLong",
                  "{\"acls\": [{\"action\": \"accept\", \"src\": [\"*\"], \"dst\": "
                  "[\"2001:db8::/129:443\"]}]}",
                  "p:1:54: acls[0].dst[0]: ", "prefix length \"129\" is not a number 0..128"},
        Rejection{
            "Ipv6BadAddress",
            "{\"grants\": [{\"src\": [\"*\"], \"dst\": [\"2001:db8:::1\"], \"ip\": "
            "[\"*\"]}]}",
            "p:1:36: grants[0].dst[0]: ",
            "\"2001:db8:::1\" is not an IPv6 address or prefix: the address is not IPv6 text"},
        Rejection{"HostIpv6HostBitsSet", "{\"hosts\": {\"h\": \"fd00::1/8\"}}",
                  "p:1:12: hosts.h: ", "has host bits set (did you mean fd00::/8?)"},
        Rejection{"HostIsAnAddress", "{\"hosts\": {\"1.2.3.4\": \"1.2.3.4\"}}",
                  "p:1:12: hosts.1.2.3.4: ", "not a host name"},
        Rejection{"HostBadAddress", "{\"hosts\": {\"h\": \"1.2.3\"}}",
                  "p:1:12: hosts.h: ", "not an address"},
        Rejection{"AutoApproverUnknownKey", "{\"autoApprovers\": {\"exitnodes\": []}}",
                  "p:1:20: autoApprovers.exitnodes: ", "unknown key"},
        Rejection{"AutoApproverUnresolvable",
                  "{\"autoApprovers\": {\"exitNode\": [\"autogroup:owner\"]}}",
                  "p:1:33: autoApprovers.exitNode[0]: ", "cannot be evaluated"},
        Rejection{"SrcNotList",
                  "{\"acls\": [{\"action\": \"accept\", \"src\": \"*\", \"dst\": [\"*:*\"]}]}",
                  "p:1:32: acls[0].src: ", "list of strings"},
        Rejection{"EmptySrc",
                  "{\"acls\": [{\"action\": \"accept\", \"src\": [], \"dst\": [\"*:*\"]}]}",
                  "p:1:32: acls[0].src: ", "at least one"},
        Rejection{"DuplicateKey", "{\"acls\": [],\n\"acls\": []}", "p:2:1: ", "duplicate key"}),
    [](const ::testing::TestParamInfo<Rejection>& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace exitgw::policy
