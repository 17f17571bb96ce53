// Reading small owner-only secret files (the admin token, a preshared key), through the one
// bounded reader (common/bounded_read.h). Header-only so that exitgwctl, which links nothing of
// the daemon, holds its files to the same rules.
#pragma once

#include <string>
#include <string_view>

#include "common/bounded_read.h"
#include "common/result.h"

namespace exitgw::admin {

inline constexpr size_t kMinTokenChars = 16;
inline constexpr size_t kMaxTokenChars = 1024;

// The trimmed content of a regular file that only its owner may read or write
// (common/bounded_read.h's read_regular_file). Refuses more than `max_bytes`, and a file holding
// only white space.
inline Result<std::string> read_secret_file(const std::string& path, std::string_view what_kind,
                                            size_t max_bytes) {
  auto text = read_regular_file(path, what_kind, max_bytes, true);
  if (!text) return text;
  constexpr std::string_view kSpace = " \t\r\n\v\f";
  const size_t first = text->find_first_not_of(kSpace);
  if (first == std::string::npos)
    return make_error(std::string(what_kind) + " " + path + " is empty");
  return text->substr(first, text->find_last_not_of(kSpace) - first + 1);
}

// An admin token: kMinTokenChars to kMaxTokenChars printable ASCII characters without spaces,
// so it fits an Authorization header as is.
inline Result<std::string> read_token_file(const std::string& path) {
  auto token = read_secret_file(path, "admin token file", kMaxTokenChars + 2);
  if (!token) return token;
  if (token->size() > kMaxTokenChars) {
    return make_error("admin token file " + path + " holds more than " +
                      std::to_string(kMaxTokenChars) + " characters");
  }
  for (char c : *token) {
    if (c < 0x21 || c > 0x7e) {
      return make_error("admin token file " + path +
                        " holds a space or a non-printable byte inside the token; a token is "
                        "printable ASCII, as `openssl rand -hex 32` writes it");
    }
  }
  if (token->size() < kMinTokenChars) {
    return make_error("admin token file " + path + " holds a token of " +
                      std::to_string(token->size()) + " characters; use at least " +
                      std::to_string(kMinTokenChars) +
                      " (e.g. `openssl rand -hex 32 > FILE; chmod 600 FILE`)");
  }
  return token;
}

}  // namespace exitgw::admin
