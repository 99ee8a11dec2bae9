// Opening a .sarai blob: map + validate header and tables (load_blob), the
// cost a session pays before its first run. It must not grow with the
// model's size.
//   SARAI_BLOB=model.sarai build/release/bench/blob_open_bench
#include <benchmark/benchmark.h>

#include <cstdlib>

#include "loader/blob_reader.h"

static void BM_LoadBlob(benchmark::State& state) {
  const char* path = std::getenv("SARAI_BLOB");
  if (!path) {
    state.SkipWithError("set SARAI_BLOB to a .sarai file");
    return;
  }
  for (auto _ : state) {
    auto m = sarai::load_blob(path);
    if (!m) {
      state.SkipWithError(m.message().c_str());
      return;
    }
    benchmark::DoNotOptimize(m);
  }
}
BENCHMARK(BM_LoadBlob)->Unit(benchmark::kMillisecond)->UseRealTime();
