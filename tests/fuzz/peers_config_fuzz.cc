// Arbitrary bytes into the peers file parser: it must never crash, and whatever it accepts must
// format to a canonical text that parses back to the same settings and formats identically.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "control/peers_config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto parsed = exitgw::parse_peers(text, "fuzz");
  if (!parsed.ok()) {
    // Every rejection names where it happened.
    if (!parsed.error().starts_with("fuzz:")) std::abort();
    return 0;
  }
  const std::string formatted = exitgw::format_peers(*parsed);
  auto reparsed = exitgw::parse_peers(formatted, "formatted");
  if (!reparsed.ok()) {
    std::fprintf(stderr, "canonical form rejected: %s\n%s\n", reparsed.error().c_str(),
                 formatted.c_str());
    std::abort();
  }
  if (!exitgw::same_settings(*parsed, *reparsed) || exitgw::format_peers(*reparsed) != formatted) {
    std::fprintf(stderr, "round trip changed the peers:\n%s\n", formatted.c_str());
    std::abort();
  }
  return 0;
}
