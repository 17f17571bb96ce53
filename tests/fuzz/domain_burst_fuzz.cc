// Arbitrary bytes as an inner IPv4 or IPv6 packet through prefilter() and classify_burst() against
// a small compiled policy: never crash, never read outside the packet, and every result is
// consistent (a verdict only for a found name, a rule only with a verdict).
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string_view>
#include <vector>

#include "dataplane/domain/domain_burst.h"

namespace {

using namespace exitgw::dp::domain;

struct State {
  std::unique_ptr<DomainDatabase> db;
  std::unique_ptr<DomainScratch> scratch;
};

State& state() {
  static State* s = [] {
    auto list = parse_domain_list(
        "block suffix example.com\nlog exact a.example.org\nlog regex ^ads[0-9]*\\.\n"
        "block regex (?:^|\\.)x{2,}\\.\n",
        "fuzz");
    if (!list.ok()) std::abort();
    auto db = compile(*list);
    if (!db.ok()) std::abort();
    auto* st = new State;
    st->db = std::make_unique<DomainDatabase>(std::move(db).value());
    auto scratch = DomainScratch::create(*st->db);
    if (!scratch.ok()) std::abort();
    st->scratch = std::make_unique<DomainScratch>(std::move(scratch).value());
    return st;
  }();
  return *s;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  State& st = state();
  const std::vector<uint8_t> packet(data, data + size);
  const uint8_t* ptr = packet.data();
  const uint32_t len = uint32_t(packet.size());
  DomainResult result;
  DomainName name;
  classify_burst(*st.db, *st.scratch, &ptr, &len, 1, &result, &name);
  const Candidate c = prefilter(ptr, len);
  if (c.protocol != result.protocol) std::abort();
  if (c.protocol != Protocol::kNone &&
      (c.payload < ptr || c.payload + c.payload_length > ptr + len))
    std::abort();
  if (result.action != Action::kNone) {
    if (result.status != NameStatus::kFound || result.rule >= st.db->rule_count()) std::abort();
    if (st.db->rule(result.rule).action != result.action) std::abort();
  } else if (result.rule != kNoRule) {
    std::abort();
  }
  if (result.status == NameStatus::kFound && std::strlen(name.text) != result.name_length)
    std::abort();
  if (st.scratch->scan_errors() != 0) std::abort();
  return 0;
}
