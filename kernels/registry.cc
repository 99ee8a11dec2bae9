// The one place that says which ops the runtime implements, and what the
// executor may know of each (runtime/kernel.h's OpSchema: .in_place(inputs)
// where output 0 may overwrite those inputs, as audited in docs/memory.md).
// Add a line here when you add a kernel; nothing registers itself elsewhere.
#include "kernels/kernels.h"
#include "runtime/quantized_op.h"

namespace sarai {

void register_kernels(KernelTable& t) {
  using namespace kernels;
  t.add("Add", Add).in_place({0, 1});
  t.add("Sub", Sub).in_place({0, 1});
  t.add("Mul", Mul).in_place({0, 1});
  t.add("Div", Div).in_place({0, 1});
  t.add("Pow", Pow).in_place({0});  // the base only: an exponent of another dtype may have its bytes in another shape
  t.add("Equal", Equal);
  t.add("Where", Where);

  t.add("Sqrt", Sqrt).in_place({0});
  t.add("Erf", Erf).in_place({0});
  t.add("Gelu", Gelu, /*since_opset=*/20).in_place({0});  // Gelu joined the default domain in opset 20
  t.add("Relu", Relu).in_place({0});
  t.add("Sigmoid", Sigmoid).in_place({0});
  t.add("Tanh", Tanh).in_place({0});
  t.add("HardSigmoid", HardSigmoid).in_place({0});
  t.add("HardSwish", HardSwish, /*since_opset=*/14).in_place({0});
  t.add("Clip", Clip).in_place({0});

  t.add("Softmax", Softmax).in_place({0});
  t.add("LayerNormalization", LayerNormalization, /*since_opset=*/17).in_place({0});
  t.add("BatchNormalization", BatchNormalization);
  t.add("ReduceMean", ReduceMean);

  t.add("MatMul", MatMul);
  t.add("Gemm", Gemm);
  t.add("Conv", Conv);
  t.add("ConvTranspose", ConvTranspose);
  t.add("GlobalAveragePool", GlobalAveragePool);
  t.add("AveragePool", AveragePool);
  t.add("MaxPool", MaxPool);
  t.add("Resize", Resize, /*since_opset=*/10);

  t.add("Transpose", Transpose);
  t.add("Reshape", Reshape);
  t.add("Flatten", Flatten);
  t.add("Squeeze", Squeeze);
  t.add("Unsqueeze", Unsqueeze);
  t.add("Concat", Concat);
  t.add("Slice", Slice);
  t.add("Split", Split);
  t.add("Gather", Gather);
  t.add("Shape", ShapeOp);
  t.add("Cast", Cast);
  t.add("Constant", Constant);
  t.add("ConstantOfShape", ConstantOfShape);
  t.add("Identity", Identity);
  t.add("Expand", Expand);
  t.add("Range", Range, /*since_opset=*/11);

  // ONNX quantization ops (also in this function so every caller, the CLI
  // and the backend tests, sees them).
  t.add("DynamicQuantizeLinear", DynamicQuantizeLinear, /*since_opset=*/11);
  t.add("QuantizeLinear", QuantizeLinear, /*since_opset=*/10);
  t.add("DequantizeLinear", DequantizeLinear, /*since_opset=*/10);
  t.add("MatMulInteger", MatMulInteger, /*since_opset=*/10);
  t.add("ConvInteger", ConvInteger, /*since_opset=*/10);

  // The quantized ops `sarai-rt convert` writes.
  t.add_domain_op("sarai", "Gelu", Gelu).in_place({0});  // fused erf-GELU chains (runtime/fuse.h), any opset
  t.add_domain_op("sarai", "ScaledSoftmax", ScaledSoftmax).in_place({0});  // fused Div + Softmax
  t.add_domain_op("sarai", "Attention", Attention);  // fused MatMul + ScaledSoftmax + MatMul
  t.add_domain_op("sarai", "QMatMul", QMatMul).in_place({qop::kResidual});
  t.add_domain_op("sarai", "QConv", QConv).in_place({qop::kResidual});
  t.add_domain_op("sarai", "QConvTranspose", QConvTranspose);
}

}  // namespace sarai
