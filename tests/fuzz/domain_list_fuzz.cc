// Arbitrary text as a domain list through parse_domain_list(): never crash; an accepted list
// holds only well-formed rules whose lines lie within the text.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "dataplane/domain/domain_list.h"

using namespace exitgw::dp::domain;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  auto list = parse_domain_list(text, "fuzz");
  if (!list.ok()) {
    if (!list.error().starts_with("fuzz:")) std::abort();
    return 0;
  }
  size_t lines = 1;
  for (char c : text) lines += c == '\n';
  for (const DomainRule& r : list->rules) {
    if (r.line == 0 || r.line > lines || r.pattern.empty()) std::abort();
    if (r.action != Action::kBlock && r.action != Action::kLog) std::abort();
    if (r.kind != MatchKind::kRegex) {
      if (r.pattern.size() > 253 || r.pattern.front() == '.' || r.pattern.back() == '.')
        std::abort();
      for (char c : r.pattern)
        if (c >= 'A' && c <= 'Z') std::abort();
    }
  }
  return 0;
}
