// Fuzzes the IPFIX decoder (the tests' and driver's reader): any bytes, never a crash.
// The input is split into messages by a leading length byte so templates carry across.
#include <cstddef>
#include <cstdint>

#include "control/export/ipfix_decode.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  exitgw::exporter::IpfixDecoder decoder;
  std::span<const uint8_t> in(data, size);
  // Whole input as one message, then as a TCP-like stream of messages.
  (void)decoder.decode(in);
  while (size_t len = exitgw::exporter::IpfixDecoder::next_message_length(in)) {
    auto m = decoder.decode(in.first(len));
    if (m.ok())
      for (const auto& r : m->records)
        for (const auto& f : r.fields) (void)f.as_uint();
    in = in.subspan(len);
  }
  return 0;
}
