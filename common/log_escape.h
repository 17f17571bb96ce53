// Escaping text that came from a file or a client before it goes into a log line or an error
// message, so a hostile file cannot forge log lines or drive a terminal. One helper for every
// place that quotes such text; it counts the bytes it escaped (exported as a metric).
#pragma once

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

namespace exitgw {

// Bytes escaped by escape_for_log since start, over every caller.
inline std::atomic<uint64_t> g_log_bytes_escaped{0};

// `s` with every control byte, DEL, byte >= 0x80 and (when `escape_backslash`) backslash written
// as \xHH, cut after `max_bytes` input bytes with "..." appended.
inline std::string escape_for_log(std::string_view s, size_t max_bytes = 80,
                                  bool escape_backslash = true) {
  std::string out;
  uint64_t escaped = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    if (i == max_bytes) {
      out += "...";
      break;
    }
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c < 0x7f && (c != '\\' || !escape_backslash)) {
      out += static_cast<char>(c);
    } else {
      char hex[8];
      std::snprintf(hex, sizeof(hex), "\\x%02x", c);
      out += hex;
      ++escaped;
    }
  }
  if (escaped) g_log_bytes_escaped.fetch_add(escaped, std::memory_order_relaxed);
  return out;
}

}  // namespace exitgw
