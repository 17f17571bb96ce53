// Arbitrary bytes as a DNS query (UDP payload) through dns_query_name(), under the extractor
// contract of domain_extract_fuzz.h.
#include "tests/fuzz/domain_extract_fuzz.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return fuzz_extractor(exitgw::dp::domain::dns_query_name, data, size);
}
