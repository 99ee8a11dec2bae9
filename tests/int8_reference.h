// What the INT8 and convolution tests share, written out once:
//   - the fused float epilogue of kernels/cpu/qgemm.h (QgemmEpilogue,
//     QconvEpilogue) on one accumulator, which the kernels must equal bit
//     for bit (qgemm_test, qconv_test);
//   - the dequantization formula the op tests evaluate in double
//     (qlinear_test);
//   - one convolution case: the ONNX shapes and attributes of a Conv,
//     ConvTranspose, QConv or QConvTranspose node (conv_test, qconv_test,
//     qlinear_test).
// Compiled with -ffp-contract=off (tests/CMakeLists.txt), as the kernels'
// exact-float sources are, so no multiply-add is fused here either.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kernels/cpu/qgemm.h"
#include "runtime/graph.h"
#include "runtime/tensor.h"

namespace sarai::test {

// One output of the epilogue: (acc - comp) as float, times cscale, plus
// bias (kernels::dequantize_acc; pass 0 when there is no bias), plus
// *residual when residual is not null, then Relu when act is kRelu. GELU
// (kGelu) is left to the caller: the kernels apply it to whole rows
// afterwards, with vec_kernels().gelu.
float epilogue_ref(int32_t acc, int32_t comp, float cscale, float bias, const float* residual,
                   kernels::QgemmActivation act);

// x_scale * w_scale * (acc - comp) in double (x_scale * w_scale first):
// the op tests' expected value before the bias, with comp = zp * wsum (0
// for ConvTranspose, whose accumulators are compensated already).
double dequantize_ref(int64_t acc, int64_t comp, float x_scale, float w_scale);

// One convolution: X [N, C, in...] and W [M, C/group, k...] (ConvTranspose:
// [C, M/group, k...]) as ONNX shapes them; an empty attribute is not set
// (ONNX's default).
struct ConvCase {
  Shape x, w;
  int64_t group = 1;
  std::vector<int64_t> strides, dilations, pads, output_padding, output_shape;
  std::string auto_pad;
  bool bias = true;

  // "X [1, 3, 9, 8] W [4, 3, 3, 3] group 1 strides [2, 2] ...": the shapes,
  // the group and every attribute that is set, then "no bias" if so.
  std::string str() const;
  // str() with every character other than a letter or digit as '_' (runs
  // collapsed), a valid name for a parameterized test.
  std::string name() const;
  // Sets "group" and every attribute that is set on node.
  void set_attrs(Node& node) const;
};

}  // namespace sarai::test
