// The one place that says which ops the runtime implements. Add a line here
// when you add a kernel; nothing registers itself elsewhere.
#include "kernels/kernels.h"

namespace sarai {

void register_kernels(KernelTable& t) {
  using namespace kernels;
  t.add("Add", Add);
  t.add("Sub", Sub);
  t.add("Mul", Mul);
  t.add("Div", Div);
  t.add("Pow", Pow);
  t.add("Equal", Equal);
  t.add("Where", Where);

  t.add("Sqrt", Sqrt);
  t.add("Erf", Erf);
  t.add("Gelu", Gelu, /*since_opset=*/20);  // Gelu joined the default domain in opset 20
  t.add("Relu", Relu);
  t.add("Sigmoid", Sigmoid);
  t.add("Tanh", Tanh);
  t.add("HardSigmoid", HardSigmoid);
  t.add("HardSwish", HardSwish, /*since_opset=*/14);
  t.add("Clip", Clip);

  t.add("Softmax", Softmax);
  t.add("LayerNormalization", LayerNormalization, /*since_opset=*/17);
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
  t.add_domain_op("sarai", "Gelu", Gelu);  // fused erf-GELU chains (runtime/fuse.h), any opset
  t.add_domain_op("sarai", "ScaledSoftmax", ScaledSoftmax);  // fused Div + Softmax
  t.add_domain_op("sarai", "Attention", Attention);  // fused MatMul + ScaledSoftmax + MatMul
  t.add_domain_op("sarai", "QMatMul", QMatMul);
  t.add_domain_op("sarai", "QConv", QConv);
  t.add_domain_op("sarai", "QConvTranspose", QConvTranspose);
}

}  // namespace sarai
