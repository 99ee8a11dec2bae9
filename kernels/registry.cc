// The one place that says which ops the runtime implements, and what the
// executor may know of each (runtime/kernel.h's OpSchema): .in_place(inputs)
// where output 0 may overwrite those inputs, as audited in docs/memory.md;
// .attrs({...}) every attribute the op accepts, its type and, for the
// default domain, the opsets that define it (from ONNX's operator specs; a
// node with any other attribute is refused at session creation). An op
// without .attrs takes none. .types(...) the element types each input takes
// (every op declares them; a node fed another type is refused at session
// creation, and docs/ops.md lists them).
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

// Input types (.types: runtime/kernel.h's named sets, and these), as each
// kernel's dtype checks and dispatch accept them.
using namespace dtypes;
constexpr TypeSet kReduce = kFloat | kI8 | kU8 | kI32 | kU32 | kI64 | kU64;  // the Reduce* kernels' dispatch
constexpr TypeSet kArith = kNumeric | kF16 | kBF16;  // read as numbers (Tensor::float_at), bool excluded
constexpr TypeSet kQuant = kI8 | kU8 | kI16 | kU16;   // QuantizeLinear's outputs
// QMatMul, QConv, QConvTranspose (runtime/quantized_op.h's slots).
const std::initializer_list<InputTypes> kQuantizedTypes = {
    {qop::kX, kF32}, {qop::kWeight, kI8}, {qop::kScale, kF32}, {qop::kWeightSum, kI32}, {qop::kBias, qop::kResidual, kF32}};

}  // namespace

void register_kernels(KernelTable& t) {
  using namespace kernels;
  t.add("Add", Add).in_place({0, 1}).types(kF32 | kInts);
  t.add("Sub", Sub).in_place({0, 1}).types(kF32 | kInts);
  t.add("Mul", Mul).in_place({0, 1}).types(kF32 | kInts);
  t.add("Div", Div).in_place({0, 1}).types(kF32 | kInts);
  t.add("Pow", Pow).in_place({0}).types({{0, kF32 | kI32 | kI64}, {1, kF32 | kInts}});  // the base only: an exponent of another dtype may have its bytes in another shape
  t.add("Equal", Equal).types(kF32 | kInts | kBool);
  t.add("Greater", Greater).types(kF32 | kInts);
  t.add("Less", Less).types(kF32 | kInts);
  t.add("GreaterOrEqual", GreaterOrEqual, /*since_opset=*/12).types(kF32 | kInts);
  t.add("LessOrEqual", LessOrEqual, /*since_opset=*/12).types(kF32 | kInts);
  t.add("And", And).types(kBool);
  t.add("Or", Or).types(kBool);
  t.add("Xor", Xor).types(kBool);
  t.add("Not", Not).types(kBool);
  t.add("Where", Where).types({{0, kBool}, {1, 2, kAny}});

  t.add("Sqrt", Sqrt).in_place({0}).types(kF32);
  t.add("Log", Log).in_place({0}).types(kF32);
  t.add("Exp", Exp).in_place({0}).types(kF32);
  t.add("Reciprocal", Reciprocal).in_place({0}).types(kF32);
  t.add("Floor", Floor).in_place({0}).types(kF32);
  t.add("Ceil", Ceil).in_place({0}).types(kF32);
  t.add("Neg", Neg).in_place({0}).types(kF32 | kI8 | kI16 | kI32 | kI64);
  t.add("Abs", Abs).in_place({0}).types(kF32 | kInts);
  t.add("LeakyRelu", LeakyRelu).prepare(PrepareLeakyRelu).attrs({{"alpha", F}}).in_place({0}).types(kF32);
  t.add("Erf", Erf).in_place({0}).types(kF32);
  t.add("Gelu", Gelu, /*since_opset=*/20).prepare(PrepareGelu).attrs({{"approximate", S}}).in_place({0}).types(kF32);  // Gelu joined the default domain in opset 20
  t.add("Relu", Relu).in_place({0}).types(kF32 | kInts);
  t.add("Sigmoid", Sigmoid).in_place({0}).types(kF32);
  t.add("Tanh", Tanh).in_place({0}).types(kF32);
  t.add("HardSigmoid", HardSigmoid).prepare(PrepareHardSigmoid).attrs({{"alpha", F}, {"beta", F}}).in_place({0}).types(kF32);
  t.add("HardSwish", HardSwish, /*since_opset=*/14).in_place({0}).types(kF32);
  t.add("Clip", Clip).prepare(PrepareClip).attrs({{"min", F, 1, 10}, {"max", F, 1, 10}}).in_place({0}).types(kF32 | kInts);

  t.add("Softmax", Softmax).prepare(PrepareSoftmax).attrs({{"axis", I}}).in_place({0}).types(kF32);
  t.add("LayerNormalization", LayerNormalization, /*since_opset=*/17).prepare(PrepareLayerNormalization).attrs({{"axis", I}, {"epsilon", F}, {"stash_type", I}}).in_place({0}).types(kF32);
  t.add("BatchNormalization", BatchNormalization).prepare(PrepareBatchNormalization).attrs({{"epsilon", F}, {"momentum", F}, {"spatial", I, 1, 8}, {"training_mode", I, 14}}).types(kF32);
  t.add("InstanceNormalization", InstanceNormalization).prepare(PrepareInstanceNormalization).attrs({{"epsilon", F}}).types(kF32);
  t.add("GroupNormalization", GroupNormalization, /*since_opset=*/18).prepare(PrepareGroupNormalization).attrs({{"epsilon", F}, {"num_groups", I}, {"stash_type", I, 21}}).types(kF32);
  t.add("LpNormalization", LpNormalization).prepare(PrepareLpNormalization).attrs({{"axis", I}, {"p", I}}).types(kF32);
  t.add("MeanVarianceNormalization", MeanVarianceNormalization, /*since_opset=*/9).prepare(PrepareMeanVarianceNormalization).attrs({{"axes", Is}}).types(kF32);
  t.add("LRN", LRN).prepare(PrepareLRN).attrs({{"alpha", F}, {"beta", F}, {"bias", F}, {"size", I}}).types(kF32);
  t.add("ReduceMean", ReduceMean).prepare(PrepareReduceMean).attrs({{"axes", Is, 1, 17}, {"keepdims", I}, {"noop_with_empty_axes", I, 18}}).types({{0, kReduce}, {1, kIndex}});
  t.add("ReduceSum", ReduceSum).prepare(PrepareReduce).attrs({{"axes", Is, 1, 12}, {"keepdims", I}, {"noop_with_empty_axes", I, 13}}).types({{0, kReduce}, {1, kIndex}});
  t.add("ReduceMax", ReduceMax).prepare(PrepareReduce).attrs({{"axes", Is, 1, 17}, {"keepdims", I}, {"noop_with_empty_axes", I, 18}}).types({{0, kReduce}, {1, kIndex}});
  t.add("ReduceMin", ReduceMin).prepare(PrepareReduce).attrs({{"axes", Is, 1, 17}, {"keepdims", I}, {"noop_with_empty_axes", I, 18}}).types({{0, kReduce}, {1, kIndex}});
  t.add("ReduceProd", ReduceProd).prepare(PrepareReduce).attrs({{"axes", Is, 1, 17}, {"keepdims", I}, {"noop_with_empty_axes", I, 18}}).types({{0, kReduce}, {1, kIndex}});
  t.add("ReduceL1", ReduceL1).prepare(PrepareReduce).attrs({{"axes", Is, 1, 17}, {"keepdims", I}, {"noop_with_empty_axes", I, 18}}).types({{0, kReduce}, {1, kIndex}});
  t.add("ReduceL2", ReduceL2).prepare(PrepareReduce).attrs({{"axes", Is, 1, 17}, {"keepdims", I}, {"noop_with_empty_axes", I, 18}}).types({{0, kReduce}, {1, kIndex}});
  t.add("ReduceLogSum", ReduceLogSum).prepare(PrepareReduce).attrs({{"axes", Is, 1, 17}, {"keepdims", I}, {"noop_with_empty_axes", I, 18}}).types({{0, kReduce}, {1, kIndex}});
  t.add("ReduceLogSumExp", ReduceLogSumExp).prepare(PrepareReduce).attrs({{"axes", Is, 1, 17}, {"keepdims", I}, {"noop_with_empty_axes", I, 18}}).types({{0, kReduce}, {1, kIndex}});
  t.add("ReduceSumSquare", ReduceSumSquare).prepare(PrepareReduce).attrs({{"axes", Is, 1, 17}, {"keepdims", I}, {"noop_with_empty_axes", I, 18}}).types({{0, kReduce}, {1, kIndex}});
  t.add("ArgMax", ArgMax).prepare(PrepareArgMinMax).attrs({{"axis", I}, {"keepdims", I}, {"select_last_index", I, 12}}).types(kNumeric);
  t.add("ArgMin", ArgMin).prepare(PrepareArgMinMax).attrs({{"axis", I}, {"keepdims", I}, {"select_last_index", I, 12}}).types(kNumeric);
  t.add("Max", Max).types(kNumeric | kF16);
  t.add("Min", Min).types(kNumeric | kF16);
  t.add("Sum", Sum).types(kFloat | kF16);
  t.add("Mean", Mean).types(kFloat | kF16);
  t.add("Mod", Mod, /*since_opset=*/10).prepare(PrepareMod).attrs({{"fmod", I}}).types(kNumeric | kF16);
  t.add("BitShift", BitShift, /*since_opset=*/11).prepare(PrepareBitShift).attrs({{"direction", S}}).types(kU8 | kU16 | kU32 | kU64);
  t.add("PRelu", PRelu).types(kNumeric);
  t.add("Sin", Sin).in_place({0}).types(kF32);
  t.add("Cos", Cos).in_place({0}).types(kF32);
  t.add("Tan", Tan).in_place({0}).types(kF32);
  t.add("Asin", Asin).in_place({0}).types(kF32);
  t.add("Acos", Acos).in_place({0}).types(kF32);
  t.add("Atan", Atan).in_place({0}).types(kF32);
  t.add("Sinh", Sinh, /*since_opset=*/9).in_place({0}).types(kF32);
  t.add("Cosh", Cosh, /*since_opset=*/9).in_place({0}).types(kF32);
  t.add("Asinh", Asinh, /*since_opset=*/9).in_place({0}).types(kF32);
  t.add("Acosh", Acosh, /*since_opset=*/9).in_place({0}).types(kF32);
  t.add("Atanh", Atanh, /*since_opset=*/9).in_place({0}).types(kF32);
  t.add("Softplus", Softplus).in_place({0}).types(kF32);
  t.add("Softsign", Softsign).in_place({0}).types(kF32);
  t.add("Mish", Mish, /*since_opset=*/18).in_place({0}).types(kF32);
  t.add("Round", Round, /*since_opset=*/11).in_place({0}).types(kF32);
  t.add("Sign", Sign, /*since_opset=*/9).in_place({0}).types(kF32 | kInts);
  t.add("IsNaN", IsNaN, /*since_opset=*/9).types(kF32);
  t.add("IsInf", IsInf, /*since_opset=*/10).prepare(PrepareIsInf).attrs({{"detect_negative", I}, {"detect_positive", I}}).types(kF32);
  t.add("Elu", Elu).prepare(PrepareElu).attrs({{"alpha", F}}).in_place({0}).types(kF32);
  t.add("Selu", Selu).prepare(PrepareSelu).attrs({{"alpha", F}, {"gamma", F}}).in_place({0}).types(kF32);
  t.add("Celu", Celu, /*since_opset=*/12).prepare(PrepareCelu).attrs({{"alpha", F}}).in_place({0}).types(kF32);
  t.add("ThresholdedRelu", ThresholdedRelu, /*since_opset=*/10).prepare(PrepareThresholdedRelu).attrs({{"alpha", F}}).in_place({0}).types(kF32);
  t.add("Shrink", Shrink, /*since_opset=*/9).prepare(PrepareShrink).attrs({{"bias", F}, {"lambd", F}}).in_place({0}).types(kF32);
  t.add("LogSoftmax", LogSoftmax).prepare(PrepareLogSoftmax).attrs({{"axis", I}}).types(kF32);
  t.add("Hardmax", Hardmax).prepare(PrepareHardmax).attrs({{"axis", I}}).types(kF32);
  t.add("CumSum", CumSum, /*since_opset=*/11).prepare(PrepareCumSum).attrs({{"exclusive", I}, {"reverse", I}}).types({{0, kFloat | kI32 | kI64 | kU32 | kU64}, {1, kIndex}});
  t.add("TopK", TopK).prepare(PrepareTopK).attrs({{"axis", I}, {"k", I, 1, 9}, {"largest", I, 11}, {"sorted", I, 11}}).types({{0, kNumeric}, {1, kI64}});
  t.add("NegativeLogLikelihoodLoss", NegativeLogLikelihoodLoss, /*since_opset=*/12).prepare(PrepareLoss).attrs({{"ignore_index", I}, {"reduction", S}}).types({{0, kFloat}, {1, kIndex}, {2, kFloat}});
  t.add("SoftmaxCrossEntropyLoss", SoftmaxCrossEntropyLoss, /*since_opset=*/12).prepare(PrepareLoss).attrs({{"ignore_index", I}, {"reduction", S}}).types({{0, kFloat}, {1, kIndex}, {2, kFloat}});
  t.add("Dropout", Dropout).attrs({{"ratio", F, 1, 11}, {"seed", I, 12}}).types({{0, kAny}, {1, kAny}, {2, kBool}});  // inference only
  t.add("CastLike", CastLike, /*since_opset=*/15).attrs({{"saturate", I, 19}}).types(kAny);
  t.add("GlobalMaxPool", GlobalMaxPool).types(kFloat);
  t.add("Det", Det, /*since_opset=*/11).types(kFloat);
  t.add("NonMaxSuppression", NonMaxSuppression, /*since_opset=*/10).prepare(PrepareNonMaxSuppression).attrs({{"center_point_box", I}}).types({{0, 1, kF32}, {2, kI64}, {3, 4, kF32}});
  t.add("GridSample", GridSample, /*since_opset=*/16).prepare(PrepareGridSample).attrs({{"align_corners", I}, {"mode", S}, {"padding_mode", S}}).types(kF32);

  t.add("MatMul", MatMul).types(kF32);
  t.add("Einsum", Einsum, /*since_opset=*/12).prepare(PrepareEinsum).attrs({{"equation", S}}).types(kFloat | kI32 | kI64);
  t.add("Gemm", Gemm).prepare(PrepareGemm).attrs({{"alpha", F}, {"beta", F}, {"transA", I}, {"transB", I}}).types(kF32);
  t.add("Conv", Conv).prepare(PrepareConv).attrs(kConvAttrs).types(kF32);
  t.add("ConvTranspose", ConvTranspose).prepare(PrepareConvTranspose).attrs(kConvAttrs).attrs({{"output_padding", Is}, {"output_shape", Is}}).types(kF32);
  t.add("GlobalAveragePool", GlobalAveragePool).types(kF32);
  t.add("AveragePool", AveragePool).prepare(PreparePool).attrs(kPoolAttrs).attrs({{"count_include_pad", I}, {"dilations", Is, 19}}).types(kF32);
  t.add("MaxPool", MaxPool).prepare(PreparePool).attrs(kPoolAttrs).attrs({{"dilations", Is, 10}, {"storage_order", I}}).types(kF32 | kI8 | kU8);
  t.add("Resize", Resize, /*since_opset=*/10).prepare(PrepareResize).attrs({{"mode", S},
                                                         {"coordinate_transformation_mode", S, 11},
                                                         {"cubic_coeff_a", F, 11},
                                                         {"exclude_outside", I, 11},
                                                         {"extrapolation_value", F, 11},
                                                         {"nearest_mode", S, 11},
                                                         {"antialias", I, 18},
                                                         {"axes", Is, 18},
                                                         {"keep_aspect_ratio_policy", S, 18}}).types({{0, 1, kAny}, {2, kF32}, {3, kI64}});

  t.add("LSTM", LSTM, /*since_opset=*/7).prepare(PrepareLSTM).attrs({{"activation_alpha", Fs}, {"activation_beta", Fs}, {"activations", Ss}, {"clip", F}, {"direction", S}, {"hidden_size", I}, {"input_forget", I}, {"layout", I, 14}}).types({{0, 3, kF32}, {4, kIndex}, {5, kLastInput, kF32}});
  t.add("GRU", GRU, /*since_opset=*/7).prepare(PrepareGRU).attrs({{"activation_alpha", Fs}, {"activation_beta", Fs}, {"activations", Ss}, {"clip", F}, {"direction", S}, {"hidden_size", I}, {"layout", I, 14}, {"linear_before_reset", I}}).types({{0, 3, kF32}, {4, kIndex}, {5, kLastInput, kF32}});
  t.add("RNN", RNN, /*since_opset=*/7).prepare(PrepareRNN).attrs({{"activation_alpha", Fs}, {"activation_beta", Fs}, {"activations", Ss}, {"clip", F}, {"direction", S}, {"hidden_size", I}, {"layout", I, 14}}).types({{0, 3, kF32}, {4, kIndex}, {5, kLastInput, kF32}});

  t.add("Transpose", Transpose).prepare(PrepareTranspose).attrs({{"perm", Is}}).types(kAny);
  t.add("Reshape", Reshape).attrs({{"allowzero", I, 14}}).types({{0, kAny}, {1, kIndex}});
  t.add("Flatten", Flatten).prepare(PrepareFlatten).attrs({{"axis", I}}).types(kAny);
  t.add("Squeeze", Squeeze).prepare(PrepareSqueezeAxes).attrs({{"axes", Is, 1, 12}}).types({{0, kAny}, {1, kIndex}});
  t.add("Unsqueeze", Unsqueeze).prepare(PrepareSqueezeAxes).attrs({{"axes", Is, 1, 12}}).types({{0, kAny}, {1, kIndex}});
  t.add("Concat", Concat).prepare(PrepareConcat).attrs({{"axis", I}}).types(kAny);
  t.add("Slice", Slice).prepare(PrepareSlice).attrs({{"starts", Is, 1, 9}, {"ends", Is, 1, 9}, {"axes", Is, 1, 9}}).types({{0, kAny}, {1, 4, kIndex}});
  t.add("Split", Split).prepare(PrepareSplit).attrs({{"axis", I}, {"split", Is, 1, 12}, {"num_outputs", I, 18}}).types({{0, kAny}, {1, kIndex}});
  t.add("Gather", Gather).prepare(PrepareGather).attrs({{"axis", I}}).types({{0, kAny}, {1, kIndex}});
  t.add("Shape", ShapeOp).prepare(PrepareShape).attrs({{"start", I, 15}, {"end", I, 15}}).types(kAny);
  t.add("Cast", Cast).prepare(PrepareCast).attrs({{"to", I}, {"saturate", I, 19}}).types(kAny);
  t.add("Constant", Constant).prepare(PrepareConstant).attrs({{"value", T},
                                         {"sparse_value", G, 11},
                                         {"value_float", F, 12},
                                         {"value_floats", Fs, 12},
                                         {"value_int", I, 12},
                                         {"value_ints", Is, 12},
                                         {"value_string", S, 12},
                                         {"value_strings", Ss, 12}}).types({});
  t.add("ConstantOfShape", ConstantOfShape).prepare(PrepareConstantOfShape).attrs({{"value", T}}).types(kIndex);
  t.add("Identity", Identity).types(kAny);
  t.add("Size", Size).types(kAny);
  t.add("Pad", Pad, /*since_opset=*/2).prepare(PreparePad).attrs({{"mode", S}, {"pads", Is, 2, 10}, {"value", F, 2, 10}}).types({{0, kAny}, {1, kIndex}, {2, kAny}, {3, kIndex}});
  t.add("Expand", Expand).types({{0, kAny}, {1, kIndex}});
  t.add("Range", Range, /*since_opset=*/11).types(kFloat | kI16 | kI32 | kI64);
  t.add("OneHot", OneHot, /*since_opset=*/9).prepare(PrepareOneHot).attrs({{"axis", I}}).types({{0, 1, kArith}, {2, kAny}});
  t.add("NonZero", NonZero, /*since_opset=*/9).types(kAny);
  t.add("GatherND", GatherND, /*since_opset=*/11).prepare(PrepareGatherND).attrs({{"batch_dims", I, 12}}).types({{0, kAny}, {1, kIndex}});
  t.add("ScatterND", ScatterND, /*since_opset=*/11).prepare(PrepareScatterND).attrs({{"reduction", S, 16}}).types({{0, kAny}, {1, kIndex}, {2, kAny}});
  t.add("GatherElements", GatherElements, /*since_opset=*/11).prepare(PrepareGatherElements).attrs({{"axis", I}}).types({{0, kAny}, {1, kIndex}});
  t.add("ScatterElements", ScatterElements, /*since_opset=*/11).prepare(PrepareScatterElements).attrs({{"axis", I}, {"reduction", S, 16}}).types({{0, kAny}, {1, kIndex}, {2, kAny}});
  t.add("Scatter", ScatterElements, /*since_opset=*/9, /*until_opset=*/10).prepare(PrepareScatterElements).attrs({{"axis", I}}).types({{0, kAny}, {1, kIndex}, {2, kAny}});  // ScatterElements before opset 11
  t.add("Tile", Tile).types({{0, kAny}, {1, kIndex}});
  t.add("Trilu", Trilu, /*since_opset=*/14).prepare(PrepareTrilu).attrs({{"upper", I}}).types({{0, kAny}, {1, kIndex}});
  t.add("EyeLike", EyeLike, /*since_opset=*/9).prepare(PrepareEyeLike).attrs({{"dtype", I}, {"k", I}}).types(kAny);
  t.add("DepthToSpace", DepthToSpace).prepare(PrepareDepthToSpace).attrs({{"blocksize", I}, {"mode", S, 11}}).types(kAny);
  t.add("SpaceToDepth", SpaceToDepth).prepare(PrepareSpaceToDepth).attrs({{"blocksize", I}}).types(kAny);
  t.add("Compress", Compress, /*since_opset=*/9).prepare(PrepareCompress).attrs({{"axis", I}}).types({{0, kAny}, {1, kBool}});
  t.add("ReverseSequence", ReverseSequence, /*since_opset=*/10).prepare(PrepareReverseSequence).attrs({{"batch_axis", I}, {"time_axis", I}}).types({{0, kAny}, {1, kIndex}});
  t.add("Unique", Unique, /*since_opset=*/11).prepare(PrepareUnique).attrs({{"axis", I}, {"sorted", I}}).types(kNumeric | kBool);
  t.add("DFT", DFT, /*since_opset=*/17).prepare(PrepareDFT).attrs({{"axis", I, 17, 19}, {"inverse", I}, {"onesided", I}}).types({{0, kF32}, {1, 2, kIndex}});
  t.add("STFT", STFT, /*since_opset=*/17).prepare(PrepareSTFT).attrs({{"onesided", I}}).types({{0, kF32}, {1, kIndex}, {2, kF32}, {3, kIndex}});
  t.add("HannWindow", HannWindow, /*since_opset=*/17).prepare(PrepareWindow).attrs({{"output_datatype", I}, {"periodic", I}}).types(kIndex);
  t.add("HammingWindow", HammingWindow, /*since_opset=*/17).prepare(PrepareWindow).attrs({{"output_datatype", I}, {"periodic", I}}).types(kIndex);
  t.add("BlackmanWindow", BlackmanWindow, /*since_opset=*/17).prepare(PrepareWindow).attrs({{"output_datatype", I}, {"periodic", I}}).types(kIndex);
  t.add("MelWeightMatrix", MelWeightMatrix, /*since_opset=*/17).prepare(PrepareMelWeightMatrix).attrs({{"output_datatype", I}}).types({{0, 2, kIndex}, {3, 4, kArith}});

  // Control flow (kernels/control_flow.cc): the session prepares the subgraphs.
  t.add("If", If).attrs({{"then_branch", G}, {"else_branch", G}}).types(kBool);
  t.add("Loop", Loop).attrs({{"body", G}}).types({{0, kI64}, {1, kBool}, {2, kLastInput, kAny}});
  t.add("Scan", Scan, /*since_opset=*/9).attrs({{"body", G}, {"num_scan_inputs", I}, {"scan_input_axes", Is},
                                           {"scan_input_directions", Is}, {"scan_output_axes", Is},
                                           {"scan_output_directions", Is}}).types(kAny);

  // ONNX quantization ops (also in this function so every caller, the CLI
  // and the backend tests, sees them).
  t.add("DynamicQuantizeLinear", DynamicQuantizeLinear, /*since_opset=*/11).types(kF32);
  t.add("QuantizeLinear", QuantizeLinear, /*since_opset=*/10).prepare(PrepareQuantizeLinear)
      .attrs({{"axis", I, 13}, {"saturate", I, 19}, {"block_size", I, 21}, {"output_dtype", I, 21}}).types({{0, kFloat | kF16 | kBF16 | kI32}, {1, kF32}, {2, kQuant}});
  t.add("DequantizeLinear", DequantizeLinear, /*since_opset=*/10).prepare(PrepareDequantizeLinear).attrs({{"axis", I, 13}, {"block_size", I, 21}}).types({{0, kQuant | kI32}, {1, kF32}, {2, kQuant | kI32}});
  t.add("MatMulInteger", MatMulInteger, /*since_opset=*/10).types(kI8 | kU8);
  t.add("ConvInteger", ConvInteger, /*since_opset=*/10).prepare(PrepareConv).attrs(kConvAttrs).types(kI8 | kU8);
  t.add("QLinearMatMul", QLinearMatMul, /*since_opset=*/10).types({{0, kI8 | kU8}, {1, kF32}, {2, 3, kI8 | kU8}, {4, kF32}, {5, kI8 | kU8}, {6, kF32}, {7, kI8 | kU8}});
  t.add("QLinearConv", QLinearConv, /*since_opset=*/10).prepare(PrepareConv).attrs(kConvAttrs).types({{0, kI8 | kU8}, {1, kF32}, {2, 3, kI8 | kU8}, {4, kF32}, {5, kI8 | kU8}, {6, kF32}, {7, kI8 | kU8}, {8, kI32}});

  // The quantized ops `sarai-rt convert` writes.
  t.add_domain_op("sarai", "Gelu", Gelu).prepare(PrepareGelu).attrs({{"approximate", S}}).in_place({0}).types(kF32);  // fused erf-GELU chains (runtime/fuse.h), any opset
  t.add_domain_op("sarai", "ScaledSoftmax", ScaledSoftmax).prepare(PrepareScaledSoftmax).attrs({{"axis", I}, {"divisor", F}}).in_place({0}).types(kF32);  // fused Div + Softmax
  t.add_domain_op("sarai", "Attention", Attention).prepare(PrepareAttention).attrs({{"divisor", F}, {"precision", S}}).types(kF32);  // fused MatMul + ScaledSoftmax + MatMul
  t.add_domain_op("sarai", "QMatMul", QMatMul).prepare(PrepareQMatMul).attrs({{"K", I}, {"N", I}, {"x_per_row", I}}).attrs(kQuantizedAttrs).in_place({qop::kResidual}).types(kQuantizedTypes);
  t.add_domain_op("sarai", "QConv", QConv).prepare(PrepareQConv).attrs(kConvAttrs).attrs(kQuantizedAttrs).attrs({{"weight_shape", Is}, {"x_per_channel", I}}).in_place({qop::kResidual}).types(kQuantizedTypes);
  t.add_domain_op("sarai", "QConvTranspose", QConvTranspose)
      .prepare(PrepareQConvTranspose)
      .attrs(kConvAttrs)
      .attrs({{"output_padding", Is}, {"output_shape", Is}, {"weight_shape", Is}, {"x_min", F}, {"x_max", F}}).types(kQuantizedTypes);
  // LSTM / GRU / RNN with INT8 gate GEMMs (`convert --recurrent int8`; kernels/recurrent.cc).
  t.add_domain_op("sarai", "QLSTM", QLSTM).prepare(PrepareQLSTM).attrs({{"activation_alpha", Fs}, {"activation_beta", Fs}, {"activations", Ss}, {"clip", F}, {"direction", S}, {"hidden_size", I}, {"input_size", I}, {"input_forget", I}, {"layout", I}}).types({{0, 1, kF32}, {2, kI32}, {3, 5, kF32}, {6, kLastInput, kAny}});
  t.add_domain_op("sarai", "QGRU", QGRU).prepare(PrepareQGRU).attrs({{"activation_alpha", Fs}, {"activation_beta", Fs}, {"activations", Ss}, {"clip", F}, {"direction", S}, {"hidden_size", I}, {"input_size", I}, {"layout", I}, {"linear_before_reset", I}}).types({{0, 1, kF32}, {2, kI32}, {3, 5, kF32}, {6, kLastInput, kAny}});
  t.add_domain_op("sarai", "QRNN", QRNN).prepare(PrepareQRNN).attrs({{"activation_alpha", Fs}, {"activation_beta", Fs}, {"activations", Ss}, {"clip", F}, {"direction", S}, {"hidden_size", I}, {"input_size", I}, {"layout", I}}).types({{0, 1, kF32}, {2, kI32}, {3, 5, kF32}, {6, kLastInput, kAny}});
  // Where INT8 cannot win on this machine (runtime/session_fallback.h).
  t.add_domain_op("sarai", "Fp32Conv", Fp32Conv).prepare(PrepareConv).attrs(kConvAttrs).types(kF32);
  t.add_domain_op("sarai", "Fp32ConvTranspose", Fp32ConvTranspose).prepare(PrepareConvTranspose).attrs(kConvAttrs).attrs({{"output_padding", Is}, {"output_shape", Is}}).types(kF32);
}

}  // namespace sarai
