// main() of every test executable: GoogleTest's, plus the ISA gate of the
// `isa.<level>.*` ctest entries (tests/CMakeLists.txt).
//
// Those entries run a whole executable under SARAI_MAX_ISA=<level> and set
// SARAI_TEST_REQUIRE_ISA=<level>. A cap above what the CPU has resolves to
// the best level below it (runtime/cpu_isa.h), so without this gate such an
// entry would run the AVX2 kernels again and report Passed for AVX-512 VNNI.
// Here it exits with 77 instead, which ctest reports as Skipped
// (SKIP_RETURN_CODE), after one line saying why; and when the CPU has the
// level, the runtime must actually have chosen it.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>

#include "runtime/cpu_isa.h"

namespace {

constexpr int kSkipped = 77;

// 0: run the tests; kSkipped: the CPU lacks the level; 1: misuse or a cap
// that did not take.
int isa_gate() {
  const char* want = std::getenv("SARAI_TEST_REQUIRE_ISA");
  if (want == nullptr || *want == '\0') return 0;
  const auto level = sarai::parse_isa(want);
  if (!level) {
    std::fprintf(stderr, "test: SARAI_TEST_REQUIRE_ISA=%s is not an ISA level\n", want);
    return 1;
  }
  if (!sarai::isa_supported(*level)) {
    std::printf("test: SKIPPED: this CPU lacks %s, so none of its kernels can run here "
                "(the best level it has is checked by the other isa.* entries)\n",
                want);
    return kSkipped;
  }
  if (sarai::max_isa() != *level) {
    const char* cap = std::getenv("SARAI_MAX_ISA");
    std::fprintf(stderr, "test: SARAI_TEST_REQUIRE_ISA=%s but the runtime chose %s (SARAI_MAX_ISA=%s)\n",
                 want, sarai::isa_name(sarai::max_isa()), cap ? cap : "unset");
    return 1;
  }
  std::printf("test: kernels at ISA level %s\n", want);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  if (const int gate = isa_gate(); gate != 0) return gate;
  return RUN_ALL_TESTS();
}
