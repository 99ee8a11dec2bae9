// The platform table (kernels/cpu/platform.h): one row per ISA level, the
// process's row chosen once from max_isa().
#include "kernels/cpu/platform.h"

namespace sarai::kernels {
namespace {

Platform row(Isa isa) {
  switch (isa) {
    case Isa::kScalar:
      return {isa, &qgemm_u8s8_4x16c4__scalar(), &vec_kernels__scalar(), &qconv_loops__scalar()};
    case Isa::kAvx2:
      return {isa, &qgemm_u8s8_4x16c4__avx2(), &vec_kernels__avx2(), &qconv_loops__avx2()};
    case Isa::kAvx2Vnni:
      return {isa, &qgemm_u8s8_4x16c4__avx2_vnni(), &vec_kernels__avx2(), &qconv_loops__avx2()};
    case Isa::kAvx512Vnni:
      return {isa, &qgemm_u8s8_4x64c4__avx512_vnni(), &vec_kernels__avx512_vnni(),
              &qconv_loops__avx512_vnni()};
    case Isa::kAmx: {  // no AMX kernel of our own yet: AVX-512 VNNI's
      Platform p = row(Isa::kAvx512Vnni);
      p.isa = isa;
      return p;
    }
  }
  return row(Isa::kScalar);
}

constexpr int kLevels = static_cast<int>(Isa::kAmx) + 1;

struct Rows {
  Platform r[kLevels];
  Rows() {
    for (int i = 0; i < kLevels; ++i) r[i] = row(static_cast<Isa>(i));
  }
};

const Rows& rows() {
  static const Rows r;
  return r;
}

}  // namespace

const Platform* platform_for(Isa isa) {
  if (!isa_supported(isa)) return nullptr;
  return &rows().r[static_cast<int>(isa)];
}

const Platform& platform_row(Isa isa) { return rows().r[static_cast<int>(isa)]; }

const Platform& platform() {
  static const Platform& p = *platform_for(max_isa());  // max_isa() is supported
  return p;
}

const QgemmUkernel* qgemm_ukernel(Isa isa) {
  const Platform* p = platform_for(isa);
  return p != nullptr && p->qgemm->isa == isa ? p->qgemm : nullptr;
}

const QgemmUkernel& qgemm_default_ukernel() { return *platform().qgemm; }

const VecKernels& vec_kernels() { return *platform().vec; }

}  // namespace sarai::kernels
