// The contract every domain name extractor keeps under arbitrary input, shared by the
// domain_*_fuzz targets: never read past len, never write past cap, any name it reports is one
// the matcher can trust (lowercase printable labels of 1..63 bytes, at most 253 in all), and a
// smaller buffer gives the same answer or kMalformed.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "dataplane/domain/name_extract.h"

namespace {

using namespace exitgw::dp::domain;

void check_name(const char* name, size_t n) {
  if (n == 0 || n > kMaxNameLength) std::abort();
  size_t label = 0;
  for (size_t i = 0; i < n; ++i) {
    const char c = name[i];
    if (c < 0x21 || c > 0x7e || (c >= 'A' && c <= 'Z')) std::abort();
    if (c == '.') {
      if (label == 0) std::abort();
      label = 0;
    } else if (++label > 63) {
      std::abort();
    }
  }
  if (label == 0) std::abort();
}

// One extractor under the contract every extractor keeps.
template <typename Extract>
int fuzz_extractor(Extract extract, const uint8_t* data, size_t size) {
  const std::vector<uint8_t> input(data, data + size);  // exactly sized, for ASan
  char out[kNameCapacity + 1];
  out[kNameCapacity] = 0x5a;
  size_t n = 0;
  const NameStatus s = extract(input.data(), input.size(), out, kNameCapacity, &n);
  if (out[kNameCapacity] != 0x5a || size_t(s) >= size_t(NameStatus::kCount)) std::abort();
  if (s == NameStatus::kFound) {
    check_name(out, n);
    if (n < kNameCapacity && out[n] != '\0') std::abort();
  } else if (n != 0) {
    std::abort();
  }

  // The same input into a 16-byte buffer: a name that fits comes out identical.
  char small[17];
  small[16] = 0x5a;
  size_t m = 0;
  const NameStatus t = extract(input.data(), input.size(), small, 16, &m);
  if (small[16] != 0x5a) std::abort();
  if (s == NameStatus::kFound && n <= 16) {
    if (t != NameStatus::kFound || m != n || std::memcmp(out, small, n) != 0) std::abort();
  } else if (s == NameStatus::kFound) {
    if (t != NameStatus::kMalformed) std::abort();
  } else if (t != s && t != NameStatus::kMalformed) {  // the small buffer may overflow first
    std::abort();
  }
  return 0;
}

}  // namespace
