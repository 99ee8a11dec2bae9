// The compute layer's dispatch table (MLAS's MLAS_PLATFORM): for each ISA
// level of runtime/cpu_isa.h, the code this build has for it, one entry per
// kernel family. platform() is the table of max_isa() (cpuid + XCR0 under
// the SARAI_MAX_ISA cap), filled once; every family reads its code from
// there, so one cap moves all of them:
//
//   level        qgemm (INT8 GEMM)            vec (FP32 rows)   qconv loops
//   scalar       4x16c4__scalar               scalar (SSE2)     scalar
//   avx2         4x16c4__avx2                 avx2 (+FMA)       avx2
//   avx2_vnni    4x16c4__avx2_vnni            avx2 (+FMA)       avx2
//   avx512_vnni  4x64c4__avx512_vnni          avx512_vnni       avx512_vnni
//   amx          4x64c4__avx512_vnni (no AMX kernel of our own yet)
//
// A family's file is named after the level that selects it, and its code
// uses only what that level guarantees (e.g. the avx512_vnni FP32 rows use
// AVX-512 F/DQ/BW/VL, which cpu_isa.cc checks for that level).
//
// To add an ISA level: its files under kernels/cpu/ (named
// <family>...__<level>.cc), one row in platform.cc, and the tests that loop
// over levels (tests/qgemm_ukernel_test.cc, vec_kernels_test.cc, and the
// isa.<level> ctest entries) cover it.
//
// Outside the table: the blob checksum (runtime/crc32c.cc) picks its SSE4.2
// path from max_isa() too, but lives below the compute layer (the loader
// uses it), and oneDNN gets the same cap through kernels/onednn_cap.h.
#pragma once

#include "kernels/cpu/qconv_loops.h"
#include "kernels/cpu/qgemm.h"
#include "kernels/cpu/vec_kernels.h"
#include "runtime/cpu_isa.h"

namespace sarai::kernels {

struct Platform {
  Isa isa;                   // the level this table is for
  const QgemmUkernel* qgemm; // never null (isa may be lower: amx runs avx512_vnni's)
  const VecKernels* vec;
  const QconvLoops* qconv;
};

// The table of one level, or nullptr when the CPU or the OS lacks it
// (ignores SARAI_MAX_ISA: tests and benchmarks run every level there is).
const Platform* platform_for(Isa isa);

// The table of one level whether or not this CPU has it: for callers that
// already hold code of that level (a micro-kernel from platform_for or
// qgemm_ukernel passed the check), to find the rest of its row.
const Platform& platform_row(Isa isa);

// The table of max_isa(), decided on first call.
const Platform& platform();

}  // namespace sarai::kernels
