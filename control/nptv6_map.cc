// --nptv6_map parsing and checking (control/nptv6_map.h).
#include "control/nptv6_map.h"

#include <algorithm>
#include <string>
#include <utility>

#include "common/ipv6_addr.h"
#include "common/nptv6.h"

namespace exitgw {

namespace {

std::string text(const Ipv6Prefix& p) {
  return format_ipv6(p.addr.data()) + "/" + std::to_string(p.len);
}

// Two prefixes overlap when the shorter holds the longer's first address.
bool overlap(const Ipv6Prefix& a, const Ipv6Prefix& b) {
  return ipv6_prefix_match(a.addr.data(), b.addr.data(), std::min(a.len, b.len));
}

bool special(const Ipv6Prefix& p) {
  return ipv6_prefix_overlaps_special(p.addr.data(), p.len);
}

// Bits set past the prefix length (fd00::1/48): refused rather than guessed at.
bool host_bits(const Ipv6Prefix& p) {
  for (unsigned bit = p.len; bit < 128; ++bit)
    if (p.addr[bit / 8] & (0x80 >> (bit % 8))) return true;
  return false;
}

// A mapping's two prefixes, by name: each of one mapping's is checked against each of another's.
constexpr std::pair<const char*, Ipv6Prefix Nptv6Mapping::*> kSides[] = {
    {"inside", &Nptv6Mapping::inside}, {"outside", &Nptv6Mapping::outside}};

Error refuse(const std::string& why) {
  return Error{"--nptv6_map: " + why};
}

}  // namespace

Result<std::vector<Nptv6Mapping>> parse_nptv6_map(std::string_view rest,
                                                  const Nptv6MapContext& context) {
  std::vector<Nptv6Mapping> maps;
  while (!rest.empty()) {
    const size_t comma = rest.find(',');
    const std::string_view pair = rest.substr(0, comma);
    if (comma != std::string_view::npos && comma + 1 == rest.size())
      return refuse("a trailing comma after '" + std::string(pair) + "'");
    rest = comma == std::string_view::npos ? std::string_view{} : rest.substr(comma + 1);
    const size_t eq = pair.find('=');
    if (eq == std::string_view::npos)
      return refuse("'" + std::string(pair) + "' is not INSIDE=OUTSIDE (two IPv6 prefixes)");
    auto inside = parse_ipv6_prefix(pair.substr(0, eq));
    if (!inside) return refuse("'" + std::string(pair) + "': " + inside.error());
    auto outside = parse_ipv6_prefix(pair.substr(eq + 1));
    if (!outside) return refuse("'" + std::string(pair) + "': " + outside.error());
    const std::string shown = text(*inside) + "=" + text(*outside);
    if (inside->len != outside->len)
      return refuse(shown + ": NPTv6 maps prefixes 1:1, give both the same length");
    if (inside->len == 0 || inside->len > dp::Nptv6::kMaxLen)
      return refuse(shown + ": NPTv6 needs prefixes of /1 to /48 (RFC 6296 adjusts bits 48-63)");
    for (const Ipv6Prefix* p : {&*inside, &*outside}) {
      if (host_bits(*p))
        return refuse(shown + ": " + text(*p) + " has bits set past /" + std::to_string(p->len));
      if (special(*p))
        return refuse(shown + ": " + text(*p) +
                      " holds multicast, link-local, loopback, unspecified or IPv4-mapped "
                      "addresses; they cannot be translated to or from");
    }
    maps.push_back({*inside, *outside});
  }
  if (maps.size() + context.existing.size() > dp::Nptv6Table::kMax)
    return refuse(
        std::to_string(maps.size()) + " mappings" +
        (context.existing.empty() ? std::string() : " beside --nat_inside6/--nat_pool6's") +
        ": at most " + std::to_string(dp::Nptv6Table::kMax) + " in all");
  for (size_t i = 0; i < maps.size(); ++i) {
    const Nptv6Mapping& m = maps[i];
    const std::string shown = text(m.inside) + "=" + text(m.outside);
    // Against the ones before it and --nat_inside6/--nat_pool6's.
    std::vector<std::pair<Nptv6Mapping, std::string>> others;
    for (const Nptv6Mapping& e : context.existing)
      others.push_back({e, "--nat_inside6/--nat_pool6 " + text(e.inside) + "=" + text(e.outside)});
    for (size_t j = 0; j < i; ++j)
      others.push_back({maps[j], text(maps[j].inside) + "=" + text(maps[j].outside)});
    if (overlap(m.inside, m.outside))
      return refuse(shown + ": the inside " + text(m.inside) + " overlaps the outside " +
                    text(m.outside));
    for (const auto& [o, name] : others)
      for (const auto& [a_name, a] : kSides)
        for (const auto& [b_name, b] : kSides)
          if (overlap(m.*a, o.*b))
            return refuse(shown + ": the " + a_name + " " + text(m.*a) + " overlaps the " + b_name +
                          " " + text(o.*b) + " of " + name);
    for (const Ipv6Prefix& pool : context.stateful_pool6)
      for (const auto& [side, p] : kSides)
        if (overlap(m.*p, pool))
          return refuse(shown + ": the " + side + " " + text(m.*p) + " overlaps --nat_pool6 " +
                        text(pool));
    for (const auto& own : context.own_addresses6)
      if (ipv6_prefix_match(own.data(), m.outside.addr.data(), m.outside.len))
        return refuse(shown + ": the outside " + text(m.outside) +
                      " holds the gateway's own address " + format_ipv6(own.data()));
  }
  return maps;
}

}  // namespace exitgw
