// Fuzzes what etcd (or anything answering on its port) sends: the watch stream, split into
// lines and parsed (whole, and again fed in small pieces, which must agree), the range reply,
// and the peer values the etcd source reads.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "control/etcd/etcd_source.h"
#include "control/etcd/etcd_wire.h"

using exitgw::etcd::WatchLineParser;
using exitgw::etcd::WatchResponse;

namespace {

struct Digest {
  std::vector<int64_t> values;
  bool stopped_with_error = false;
};

Digest run(std::string_view data, size_t piece) {
  Digest d;
  WatchLineParser parser([&](WatchResponse&& r) {
    d.values.push_back(r.revision);
    d.values.push_back(r.compact_revision);
    d.values.push_back(r.created * 4 + r.canceled * 2 + r.error);
    for (const auto& e : r.events) {
      d.values.push_back(e.kv.mod_revision);
      d.values.push_back(static_cast<int64_t>(e.kv.key.size() + e.kv.value.size()));
      if (e.kv.mod_revision <= 0) std::abort();  // the parser promises a revision
    }
    return true;
  });
  for (size_t off = 0; off < data.size(); off += piece) {
    auto r = parser.feed(data.substr(off, piece));
    if (!r) {
      d.stopped_with_error = true;
      break;
    }
  }
  return d;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const Digest whole = run(text, size == 0 ? 1 : size);
  const Digest pieces = run(text, 7);
  if (whole.values != pieces.values || whole.stopped_with_error != pieces.stopped_with_error)
    std::abort();  // how bytes arrive must not change what is parsed

  (void)exitgw::etcd::parse_range_response(text);
  (void)exitgw::etcd::gateway_error_text(text);
  // Round trip of the base64 the wire uses.
  if (auto d = exitgw::etcd::base64_decode(text.substr(0, 256))) {
    if (exitgw::etcd::base64_decode(exitgw::etcd::base64_encode(*d)) != d) std::abort();
  }
  // A peer value under an arbitrary name.
  const size_t split = text.find('\n');
  if (split != std::string_view::npos)
    (void)exitgw::etcd::peer_from_etcd(text.substr(0, split), text.substr(split + 1));
  (void)exitgw::etcd::approval_from_etcd(text);
  return 0;
}
