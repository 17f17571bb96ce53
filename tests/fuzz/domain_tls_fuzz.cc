// Arbitrary bytes as the first TCP segment of a TLS connection through tls_client_hello_sni(),
// under the extractor contract of domain_extract_fuzz.h.
#include "tests/fuzz/domain_extract_fuzz.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return fuzz_extractor(exitgw::dp::domain::tls_client_hello_sni, data, size);
}
