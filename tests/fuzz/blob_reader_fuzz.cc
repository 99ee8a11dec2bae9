// libFuzzer target for the .sarai reader (tests/fuzz/run.sh builds and runs
// it). Whatever the bytes, load_blob and verify_blob must return a Status
// with a one-line message, never crash, hang or read out of bounds.
//
// Random bytes rarely get past the header checksum, so each input is also
// tried "resealed" (its section and header checksums recomputed, as the
// corruption tests do): the mutations then reach the stream parsers.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "loader/blob_reader.h"

namespace {

void check_message(const sarai::Status& s, const char* what) {
  if (s) return;
  const std::string& m = s.message();
  if (m.empty() || m.find('\n') != std::string::npos || m.rfind("fuzz.sarai: ", 0) != 0) {
    std::fprintf(stderr, "%s: bad error message: '%s'\n", what, m.c_str());
    std::abort();
  }
}

void run(const uint8_t* data, size_t size) {
  auto m = sarai::blob_internal::load_blob_bytes(data, size, nullptr, "fuzz.sarai", /*verify=*/false);
  check_message(m.status(), "load_blob");
  if (m) {
    // Touch what the runtime would: the graph and every initializer's first byte.
    const sarai::Graph& g = (*m)->graph;
    volatile uint8_t sink = 0;
    for (const auto& v : g.values)
      if (v.is_initializer && v.initializer.nbytes() > 0) sink = sink + *static_cast<const uint8_t*>(v.initializer.raw());
    (void)sink;
  }
  sarai::Status v = sarai::blob_internal::verify_blob_bytes(data, size, "fuzz.sarai");
  check_message(v, "verify_blob");
  // verify checks everything load checks: it may not pass where load fails.
  if (v && !m) {
    std::fprintf(stderr, "verify passed but load failed: %s\n", m.message().c_str());
    std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // An exact-size copy, so ASan sees any read past the end.
  std::vector<uint8_t> bytes(data, data + size);
  run(bytes.data(), bytes.size());
  if (size >= 256) {
    sarai::blob_internal::reseal(bytes.data(), bytes.size());
    run(bytes.data(), bytes.size());
  }
  return 0;
}
