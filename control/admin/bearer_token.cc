// Bearer token comparison by BLAKE2s digest and a constant-time compare.
#include "control/admin/bearer_token.h"

namespace exitgw::admin {

namespace {

// A domain separator so the digest is of no use anywhere else.
constexpr std::string_view kLabel = "exitgw admin bearer token v1";

wg::HashValue digest(std::string_view token) {
  wg::HashValue out{};
  if (!wg::hash(out, {wg::as_bytes(kLabel), wg::as_bytes(token)})) out.fill(0);
  return out;
}

bool starts_with_bearer(std::string_view s) {
  constexpr std::string_view kScheme = "bearer ";
  if (s.size() < kScheme.size()) return false;
  for (size_t i = 0; i < kScheme.size(); ++i) {
    const char c = s[i] >= 'A' && s[i] <= 'Z' ? static_cast<char>(s[i] - 'A' + 'a') : s[i];
    if (c != kScheme[i]) return false;
  }
  return true;
}

}  // namespace

BearerToken::BearerToken(std::string_view token) : digest_(digest(token)) {}

bool BearerToken::accepts(std::string_view authorization) const {
  if (!starts_with_bearer(authorization)) return false;
  std::string_view token = authorization.substr(7);
  while (!token.empty() && token.front() == ' ') token.remove_prefix(1);
  while (!token.empty() && token.back() == ' ') token.remove_suffix(1);
  if (token.empty() || wg::is_zero(wg::as_bytes(digest_))) return false;
  // A token is printable ASCII without spaces (as read_token_file requires): a NUL or another
  // control byte is refused here, not hashed, whatever the HTTP layer let through.
  for (char c : token)
    if (c < 0x21 || c > 0x7e) return false;
  const wg::HashValue offered = digest(token);
  return wg::equal_constant_time(wg::as_bytes(offered), wg::as_bytes(digest_));
}

}  // namespace exitgw::admin
