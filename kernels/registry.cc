// The one place that says which ops the runtime implements, and what the
// executor may know of each (runtime/kernel.h's OpSchema): .in_place(inputs)
// where output 0 may overwrite those inputs, as audited in docs/memory.md;
// .attrs({...}) every attribute the op accepts, its type and, for the
// default domain, the opsets that define it (from ONNX's operator specs; a
// node with any other attribute is refused at session creation). An op
// without .attrs takes none.
// Add a line here when you add a kernel; nothing registers itself elsewhere.
#include "kernels/kernels.h"
#include "runtime/quantized_op.h"

namespace sarai {

namespace {

using K = Attribute::Kind;
constexpr K F = K::kFloat, I = K::kInt, S = K::kString, T = K::kTensor, G = K::kGraph, Fs = K::kFloats,
            Is = K::kInts, Ss = K::kStrings;

// Conv, ConvTranspose, ConvInteger and the quantized convolutions.
const std::initializer_list<AttrSpec> kConvAttrs = {
    {"auto_pad", S}, {"dilations", Is}, {"group", I}, {"kernel_shape", Is}, {"pads", Is}, {"strides", Is}};
const std::initializer_list<AttrSpec> kPoolAttrs = {
    {"auto_pad", S}, {"ceil_mode", I, 10}, {"kernel_shape", Is}, {"pads", Is}, {"strides", Is}};
// What `sarai-rt convert --static` (x_min, x_max) and the epilogue fusion
// (activation: runtime/fuse.cc) add to QMatMul and QConv.
const std::initializer_list<AttrSpec> kQuantizedAttrs = {{"x_min", F}, {"x_max", F}, {"activation", S}};

}  // namespace

void register_kernels(KernelTable& t) {
  using namespace kernels;
  t.add("Add", Add).in_place({0, 1});
  t.add("Sub", Sub).in_place({0, 1});
  t.add("Mul", Mul).in_place({0, 1});
  t.add("Div", Div).in_place({0, 1});
  t.add("Pow", Pow).in_place({0});  // the base only: an exponent of another dtype may have its bytes in another shape
  t.add("Equal", Equal);
  t.add("Greater", Greater);
  t.add("Less", Less);
  t.add("GreaterOrEqual", GreaterOrEqual, /*since_opset=*/12);
  t.add("LessOrEqual", LessOrEqual, /*since_opset=*/12);
  t.add("And", And);
  t.add("Or", Or);
  t.add("Xor", Xor);
  t.add("Not", Not);
  t.add("Where", Where);

  t.add("Sqrt", Sqrt).in_place({0});
  t.add("Log", Log).in_place({0});
  t.add("Exp", Exp).in_place({0});
  t.add("Reciprocal", Reciprocal).in_place({0});
  t.add("Floor", Floor).in_place({0});
  t.add("Ceil", Ceil).in_place({0});
  t.add("Neg", Neg).in_place({0});
  t.add("Abs", Abs).in_place({0});
  t.add("LeakyRelu", LeakyRelu).prepare(PrepareLeakyRelu).attrs({{"alpha", F}}).in_place({0});
  t.add("Erf", Erf).in_place({0});
  t.add("Gelu", Gelu, /*since_opset=*/20).prepare(PrepareGelu).attrs({{"approximate", S}}).in_place({0});  // Gelu joined the default domain in opset 20
  t.add("Relu", Relu).in_place({0});
  t.add("Sigmoid", Sigmoid).in_place({0});
  t.add("Tanh", Tanh).in_place({0});
  t.add("HardSigmoid", HardSigmoid).prepare(PrepareHardSigmoid).attrs({{"alpha", F}, {"beta", F}}).in_place({0});
  t.add("HardSwish", HardSwish, /*since_opset=*/14).in_place({0});
  t.add("Clip", Clip).prepare(PrepareClip).attrs({{"min", F, 1, 10}, {"max", F, 1, 10}}).in_place({0});

  t.add("Softmax", Softmax).prepare(PrepareSoftmax).attrs({{"axis", I}}).in_place({0});
  t.add("LayerNormalization", LayerNormalization, /*since_opset=*/17).prepare(PrepareLayerNormalization).attrs({{"axis", I}, {"epsilon", F}, {"stash_type", I}}).in_place({0});
  t.add("BatchNormalization", BatchNormalization).prepare(PrepareBatchNormalization).attrs({{"epsilon", F}, {"momentum", F}, {"spatial", I, 1, 8}, {"training_mode", I, 14}});
  t.add("InstanceNormalization", InstanceNormalization).prepare(PrepareInstanceNormalization).attrs({{"epsilon", F}});
  t.add("GroupNormalization", GroupNormalization, /*since_opset=*/18).prepare(PrepareGroupNormalization).attrs({{"epsilon", F}, {"num_groups", I}, {"stash_type", I, 21}});
  t.add("LpNormalization", LpNormalization).prepare(PrepareLpNormalization).attrs({{"axis", I}, {"p", I}});
  t.add("MeanVarianceNormalization", MeanVarianceNormalization, /*since_opset=*/9).prepare(PrepareMeanVarianceNormalization).attrs({{"axes", Is}});
  t.add("LRN", LRN).prepare(PrepareLRN).attrs({{"alpha", F}, {"beta", F}, {"bias", F}, {"size", I}});
  t.add("ReduceMean", ReduceMean).prepare(PrepareReduceMean).attrs({{"axes", Is, 1, 17}, {"keepdims", I}, {"noop_with_empty_axes", I, 18}});
  t.add("ReduceSum", ReduceSum).prepare(PrepareReduce).attrs({{"axes", Is, 1, 12}, {"keepdims", I}, {"noop_with_empty_axes", I, 13}});
  t.add("ReduceMax", ReduceMax).prepare(PrepareReduce).attrs({{"axes", Is, 1, 17}, {"keepdims", I}, {"noop_with_empty_axes", I, 18}});
  t.add("ReduceMin", ReduceMin).prepare(PrepareReduce).attrs({{"axes", Is, 1, 17}, {"keepdims", I}, {"noop_with_empty_axes", I, 18}});
  t.add("ReduceProd", ReduceProd).prepare(PrepareReduce).attrs({{"axes", Is, 1, 17}, {"keepdims", I}, {"noop_with_empty_axes", I, 18}});
  t.add("ReduceL1", ReduceL1).prepare(PrepareReduce).attrs({{"axes", Is, 1, 17}, {"keepdims", I}, {"noop_with_empty_axes", I, 18}});
  t.add("ReduceL2", ReduceL2).prepare(PrepareReduce).attrs({{"axes", Is, 1, 17}, {"keepdims", I}, {"noop_with_empty_axes", I, 18}});
  t.add("ReduceLogSum", ReduceLogSum).prepare(PrepareReduce).attrs({{"axes", Is, 1, 17}, {"keepdims", I}, {"noop_with_empty_axes", I, 18}});
  t.add("ReduceLogSumExp", ReduceLogSumExp).prepare(PrepareReduce).attrs({{"axes", Is, 1, 17}, {"keepdims", I}, {"noop_with_empty_axes", I, 18}});
  t.add("ReduceSumSquare", ReduceSumSquare).prepare(PrepareReduce).attrs({{"axes", Is, 1, 17}, {"keepdims", I}, {"noop_with_empty_axes", I, 18}});
  t.add("ArgMax", ArgMax).prepare(PrepareArgMinMax).attrs({{"axis", I}, {"keepdims", I}, {"select_last_index", I, 12}});
  t.add("ArgMin", ArgMin).prepare(PrepareArgMinMax).attrs({{"axis", I}, {"keepdims", I}, {"select_last_index", I, 12}});
  t.add("Max", Max);
  t.add("Min", Min);
  t.add("Sum", Sum);
  t.add("Mean", Mean);
  t.add("Mod", Mod, /*since_opset=*/10).prepare(PrepareMod).attrs({{"fmod", I}});
  t.add("BitShift", BitShift, /*since_opset=*/11).prepare(PrepareBitShift).attrs({{"direction", S}});
  t.add("PRelu", PRelu);
  t.add("Sin", Sin).in_place({0});
  t.add("Cos", Cos).in_place({0});
  t.add("Tan", Tan).in_place({0});
  t.add("Asin", Asin).in_place({0});
  t.add("Acos", Acos).in_place({0});
  t.add("Atan", Atan).in_place({0});
  t.add("Sinh", Sinh, /*since_opset=*/9).in_place({0});
  t.add("Cosh", Cosh, /*since_opset=*/9).in_place({0});
  t.add("Asinh", Asinh, /*since_opset=*/9).in_place({0});
  t.add("Acosh", Acosh, /*since_opset=*/9).in_place({0});
  t.add("Atanh", Atanh, /*since_opset=*/9).in_place({0});
  t.add("Softplus", Softplus).in_place({0});
  t.add("Softsign", Softsign).in_place({0});
  t.add("Mish", Mish, /*since_opset=*/18).in_place({0});
  t.add("Round", Round, /*since_opset=*/11).in_place({0});
  t.add("Sign", Sign, /*since_opset=*/9).in_place({0});
  t.add("IsNaN", IsNaN, /*since_opset=*/9);
  t.add("IsInf", IsInf, /*since_opset=*/10).prepare(PrepareIsInf).attrs({{"detect_negative", I}, {"detect_positive", I}});
  t.add("Elu", Elu).prepare(PrepareElu).attrs({{"alpha", F}}).in_place({0});
  t.add("Selu", Selu).prepare(PrepareSelu).attrs({{"alpha", F}, {"gamma", F}}).in_place({0});
  t.add("Celu", Celu, /*since_opset=*/12).prepare(PrepareCelu).attrs({{"alpha", F}}).in_place({0});
  t.add("ThresholdedRelu", ThresholdedRelu, /*since_opset=*/10).prepare(PrepareThresholdedRelu).attrs({{"alpha", F}}).in_place({0});
  t.add("Shrink", Shrink, /*since_opset=*/9).prepare(PrepareShrink).attrs({{"bias", F}, {"lambd", F}}).in_place({0});
  t.add("LogSoftmax", LogSoftmax).prepare(PrepareLogSoftmax).attrs({{"axis", I}});
  t.add("Hardmax", Hardmax).prepare(PrepareHardmax).attrs({{"axis", I}});
  t.add("CumSum", CumSum, /*since_opset=*/11).prepare(PrepareCumSum).attrs({{"exclusive", I}, {"reverse", I}});
  t.add("TopK", TopK).prepare(PrepareTopK).attrs({{"axis", I}, {"k", I, 1, 9}, {"largest", I, 11}, {"sorted", I, 11}});
  t.add("NegativeLogLikelihoodLoss", NegativeLogLikelihoodLoss, /*since_opset=*/12).prepare(PrepareLoss).attrs({{"ignore_index", I}, {"reduction", S}});
  t.add("SoftmaxCrossEntropyLoss", SoftmaxCrossEntropyLoss, /*since_opset=*/12).prepare(PrepareLoss).attrs({{"ignore_index", I}, {"reduction", S}});
  t.add("Dropout", Dropout).attrs({{"ratio", F, 1, 11}, {"seed", I, 12}});  // inference only
  t.add("CastLike", CastLike, /*since_opset=*/15).attrs({{"saturate", I, 19}});
  t.add("GlobalMaxPool", GlobalMaxPool);
  t.add("Det", Det, /*since_opset=*/11);
  t.add("NonMaxSuppression", NonMaxSuppression, /*since_opset=*/10).prepare(PrepareNonMaxSuppression).attrs({{"center_point_box", I}});
  t.add("GridSample", GridSample, /*since_opset=*/16).prepare(PrepareGridSample).attrs({{"align_corners", I}, {"mode", S}, {"padding_mode", S}});

  t.add("MatMul", MatMul);
  t.add("Einsum", Einsum, /*since_opset=*/12).prepare(PrepareEinsum).attrs({{"equation", S}});
  t.add("Gemm", Gemm).prepare(PrepareGemm).attrs({{"alpha", F}, {"beta", F}, {"transA", I}, {"transB", I}});
  t.add("Conv", Conv).prepare(PrepareConv).attrs(kConvAttrs);
  t.add("ConvTranspose", ConvTranspose).prepare(PrepareConvTranspose).attrs(kConvAttrs).attrs({{"output_padding", Is}, {"output_shape", Is}});
  t.add("GlobalAveragePool", GlobalAveragePool);
  t.add("AveragePool", AveragePool).prepare(PreparePool).attrs(kPoolAttrs).attrs({{"count_include_pad", I}, {"dilations", Is, 19}});
  t.add("MaxPool", MaxPool).prepare(PreparePool).attrs(kPoolAttrs).attrs({{"dilations", Is, 10}, {"storage_order", I}});
  t.add("Resize", Resize, /*since_opset=*/10).prepare(PrepareResize).attrs({{"mode", S},
                                                         {"coordinate_transformation_mode", S, 11},
                                                         {"cubic_coeff_a", F, 11},
                                                         {"exclude_outside", I, 11},
                                                         {"extrapolation_value", F, 11},
                                                         {"nearest_mode", S, 11},
                                                         {"antialias", I, 18},
                                                         {"axes", Is, 18},
                                                         {"keep_aspect_ratio_policy", S, 18}});

  t.add("LSTM", LSTM, /*since_opset=*/7).prepare(PrepareLSTM).attrs({{"activation_alpha", Fs}, {"activation_beta", Fs}, {"activations", Ss}, {"clip", F}, {"direction", S}, {"hidden_size", I}, {"input_forget", I}, {"layout", I, 14}});
  t.add("GRU", GRU, /*since_opset=*/7).prepare(PrepareGRU).attrs({{"activation_alpha", Fs}, {"activation_beta", Fs}, {"activations", Ss}, {"clip", F}, {"direction", S}, {"hidden_size", I}, {"layout", I, 14}, {"linear_before_reset", I}});
  t.add("RNN", RNN, /*since_opset=*/7).prepare(PrepareRNN).attrs({{"activation_alpha", Fs}, {"activation_beta", Fs}, {"activations", Ss}, {"clip", F}, {"direction", S}, {"hidden_size", I}, {"layout", I, 14}});

  t.add("Transpose", Transpose).prepare(PrepareTranspose).attrs({{"perm", Is}});
  t.add("Reshape", Reshape).attrs({{"allowzero", I, 14}});
  t.add("Flatten", Flatten).prepare(PrepareFlatten).attrs({{"axis", I}});
  t.add("Squeeze", Squeeze).prepare(PrepareSqueezeAxes).attrs({{"axes", Is, 1, 12}});
  t.add("Unsqueeze", Unsqueeze).prepare(PrepareSqueezeAxes).attrs({{"axes", Is, 1, 12}});
  t.add("Concat", Concat).prepare(PrepareConcat).attrs({{"axis", I}});
  t.add("Slice", Slice).prepare(PrepareSlice).attrs({{"starts", Is, 1, 9}, {"ends", Is, 1, 9}, {"axes", Is, 1, 9}});
  t.add("Split", Split).prepare(PrepareSplit).attrs({{"axis", I}, {"split", Is, 1, 12}, {"num_outputs", I, 18}});
  t.add("Gather", Gather).prepare(PrepareGather).attrs({{"axis", I}});
  t.add("Shape", ShapeOp).prepare(PrepareShape).attrs({{"start", I, 15}, {"end", I, 15}});
  t.add("Cast", Cast).prepare(PrepareCast).attrs({{"to", I}, {"saturate", I, 19}});
  t.add("Constant", Constant).prepare(PrepareConstant).attrs({{"value", T},
                                         {"sparse_value", G, 11},
                                         {"value_float", F, 12},
                                         {"value_floats", Fs, 12},
                                         {"value_int", I, 12},
                                         {"value_ints", Is, 12},
                                         {"value_string", S, 12},
                                         {"value_strings", Ss, 12}});
  t.add("ConstantOfShape", ConstantOfShape).prepare(PrepareConstantOfShape).attrs({{"value", T}});
  t.add("Identity", Identity);
  t.add("Size", Size);
  t.add("Pad", Pad, /*since_opset=*/2).prepare(PreparePad).attrs({{"mode", S}, {"pads", Is, 2, 10}, {"value", F, 2, 10}});
  t.add("Expand", Expand);
  t.add("Range", Range, /*since_opset=*/11);
  t.add("OneHot", OneHot, /*since_opset=*/9).prepare(PrepareOneHot).attrs({{"axis", I}});
  t.add("NonZero", NonZero, /*since_opset=*/9);
  t.add("GatherND", GatherND, /*since_opset=*/11).prepare(PrepareGatherND).attrs({{"batch_dims", I, 12}});
  t.add("ScatterND", ScatterND, /*since_opset=*/11).prepare(PrepareScatterND).attrs({{"reduction", S, 16}});
  t.add("GatherElements", GatherElements, /*since_opset=*/11).prepare(PrepareGatherElements).attrs({{"axis", I}});
  t.add("ScatterElements", ScatterElements, /*since_opset=*/11).prepare(PrepareScatterElements).attrs({{"axis", I}, {"reduction", S, 16}});
  t.add("Scatter", ScatterElements, /*since_opset=*/9, /*until_opset=*/10).prepare(PrepareScatterElements).attrs({{"axis", I}});  // ScatterElements before opset 11
  t.add("Tile", Tile);
  t.add("Trilu", Trilu, /*since_opset=*/14).prepare(PrepareTrilu).attrs({{"upper", I}});
  t.add("EyeLike", EyeLike, /*since_opset=*/9).prepare(PrepareEyeLike).attrs({{"dtype", I}, {"k", I}});
  t.add("DepthToSpace", DepthToSpace).prepare(PrepareDepthToSpace).attrs({{"blocksize", I}, {"mode", S, 11}});
  t.add("SpaceToDepth", SpaceToDepth).prepare(PrepareSpaceToDepth).attrs({{"blocksize", I}});
  t.add("Compress", Compress, /*since_opset=*/9).prepare(PrepareCompress).attrs({{"axis", I}});
  t.add("ReverseSequence", ReverseSequence, /*since_opset=*/10).prepare(PrepareReverseSequence).attrs({{"batch_axis", I}, {"time_axis", I}});
  t.add("Unique", Unique, /*since_opset=*/11).prepare(PrepareUnique).attrs({{"axis", I}, {"sorted", I}});
  t.add("DFT", DFT, /*since_opset=*/17).prepare(PrepareDFT).attrs({{"axis", I, 17, 19}, {"inverse", I}, {"onesided", I}});
  t.add("STFT", STFT, /*since_opset=*/17).prepare(PrepareSTFT).attrs({{"onesided", I}});
  t.add("HannWindow", HannWindow, /*since_opset=*/17).prepare(PrepareWindow).attrs({{"output_datatype", I}, {"periodic", I}});
  t.add("HammingWindow", HammingWindow, /*since_opset=*/17).prepare(PrepareWindow).attrs({{"output_datatype", I}, {"periodic", I}});
  t.add("BlackmanWindow", BlackmanWindow, /*since_opset=*/17).prepare(PrepareWindow).attrs({{"output_datatype", I}, {"periodic", I}});
  t.add("MelWeightMatrix", MelWeightMatrix, /*since_opset=*/17).prepare(PrepareMelWeightMatrix).attrs({{"output_datatype", I}});

  // Control flow (kernels/control_flow.cc): the session prepares the subgraphs.
  t.add("If", If).attrs({{"then_branch", G}, {"else_branch", G}});
  t.add("Loop", Loop).attrs({{"body", G}});
  t.add("Scan", Scan, /*since_opset=*/9).attrs({{"body", G}, {"num_scan_inputs", I}, {"scan_input_axes", Is},
                                           {"scan_input_directions", Is}, {"scan_output_axes", Is},
                                           {"scan_output_directions", Is}});

  // ONNX quantization ops (also in this function so every caller, the CLI
  // and the backend tests, sees them).
  t.add("DynamicQuantizeLinear", DynamicQuantizeLinear, /*since_opset=*/11);
  t.add("QuantizeLinear", QuantizeLinear, /*since_opset=*/10).prepare(PrepareQuantizeLinear)
      .attrs({{"axis", I, 13}, {"saturate", I, 19}, {"block_size", I, 21}, {"output_dtype", I, 21}});
  t.add("DequantizeLinear", DequantizeLinear, /*since_opset=*/10).prepare(PrepareDequantizeLinear).attrs({{"axis", I, 13}, {"block_size", I, 21}});
  t.add("MatMulInteger", MatMulInteger, /*since_opset=*/10);
  t.add("ConvInteger", ConvInteger, /*since_opset=*/10).prepare(PrepareConv).attrs(kConvAttrs);
  t.add("QLinearMatMul", QLinearMatMul, /*since_opset=*/10);
  t.add("QLinearConv", QLinearConv, /*since_opset=*/10).prepare(PrepareConv).attrs(kConvAttrs);

  // The quantized ops `sarai-rt convert` writes.
  t.add_domain_op("sarai", "Gelu", Gelu).prepare(PrepareGelu).attrs({{"approximate", S}}).in_place({0});  // fused erf-GELU chains (runtime/fuse.h), any opset
  t.add_domain_op("sarai", "ScaledSoftmax", ScaledSoftmax).prepare(PrepareScaledSoftmax).attrs({{"axis", I}, {"divisor", F}}).in_place({0});  // fused Div + Softmax
  t.add_domain_op("sarai", "Attention", Attention).prepare(PrepareAttention).attrs({{"divisor", F}, {"precision", S}});  // fused MatMul + ScaledSoftmax + MatMul
  t.add_domain_op("sarai", "QMatMul", QMatMul).prepare(PrepareQMatMul).attrs({{"K", I}, {"N", I}}).attrs(kQuantizedAttrs).in_place({qop::kResidual});
  t.add_domain_op("sarai", "QConv", QConv).prepare(PrepareQConv).attrs(kConvAttrs).attrs(kQuantizedAttrs).attrs({{"weight_shape", Is}}).in_place({qop::kResidual});
  t.add_domain_op("sarai", "QConvTranspose", QConvTranspose)
      .prepare(PrepareQConvTranspose)
      .attrs(kConvAttrs)
      .attrs({{"output_padding", Is}, {"output_shape", Is}, {"weight_shape", Is}, {"x_min", F}, {"x_max", F}});
  // Where INT8 cannot win on this machine (runtime/session_fallback.h).
  t.add_domain_op("sarai", "Fp32Conv", Fp32Conv).prepare(PrepareConv).attrs(kConvAttrs);
  t.add_domain_op("sarai", "Fp32ConvTranspose", Fp32ConvTranspose).prepare(PrepareConvTranspose).attrs(kConvAttrs).attrs({{"output_padding", Is}, {"output_shape", Is}});
}

}  // namespace sarai
