// Checks an HTTP Authorization header against the admin token without leaking it by timing.
#pragma once

#include <string_view>

#include "control/wg/crypto.h"

namespace exitgw::admin {

// Holds only a hash of the token, so the token itself is not kept in memory after start-up.
class BearerToken {
 public:
  explicit BearerToken(std::string_view token);
  // Whether `authorization` is "Bearer <token>" (scheme case-insensitive). Both sides are hashed
  // before a constant-time comparison, so neither the content nor the length of the token shows
  // in the time taken.
  bool accepts(std::string_view authorization) const;

 private:
  wg::HashValue digest_{};
};

}  // namespace exitgw::admin
