// The runtime's kernels: the FP32 kernels of the default ONNX domain (the
// oracle every faster path is tested against; the heavy ones call oneDNN's
// sgemm), the ONNX quantization ops, and the INT8 reference kernels of the
// quantized ops in domain "sarai".
//
// Each function implements one ONNX op across the opsets the runtime
// supports (9-21), including the attribute forms of older opsets; see
// runtime/kernel.h for the contract. register_kernels() in registry.cc
// is the one place that maps op names to these functions.
#pragma once

#include "runtime/kernel.h"

namespace sarai {

void register_kernels(KernelTable& table);

namespace kernels {

// elementwise.cc: NumPy-broadcasting binary ops, Where.
Status Add(KernelContext& ctx);
Status Sub(KernelContext& ctx);
Status Mul(KernelContext& ctx);
Status Div(KernelContext& ctx);
Status Pow(KernelContext& ctx);
Status Equal(KernelContext& ctx);
Status Greater(KernelContext& ctx);
Status Less(KernelContext& ctx);
Status GreaterOrEqual(KernelContext& ctx);
Status LessOrEqual(KernelContext& ctx);
Status And(KernelContext& ctx);
Status Or(KernelContext& ctx);
Status Xor(KernelContext& ctx);
Status Where(KernelContext& ctx);

// activation.cc: unary float ops.
Status Sqrt(KernelContext& ctx);
Status Log(KernelContext& ctx);
Status Exp(KernelContext& ctx);
Status Reciprocal(KernelContext& ctx);
Status Floor(KernelContext& ctx);
Status Ceil(KernelContext& ctx);
Status Neg(KernelContext& ctx);
Status Abs(KernelContext& ctx);
Status Not(KernelContext& ctx);
Status LeakyRelu(KernelContext& ctx);
Expected<std::shared_ptr<const void>> PrepareLeakyRelu(const Node& node, int64_t opset);  // alpha
Status Erf(KernelContext& ctx);
Status Gelu(KernelContext& ctx);
Expected<std::shared_ptr<const void>> PrepareGelu(const Node& node, int64_t opset);  // its approximation, checked once
Status Relu(KernelContext& ctx);
Status Sigmoid(KernelContext& ctx);
Status Tanh(KernelContext& ctx);
Status HardSigmoid(KernelContext& ctx);
Expected<std::shared_ptr<const void>> PrepareHardSigmoid(const Node& node, int64_t opset);  // alpha, beta
Status HardSwish(KernelContext& ctx);
Status Clip(KernelContext& ctx);
Expected<std::shared_ptr<const void>> PrepareClip(const Node& node, int64_t opset);  // min/max attributes (< 11)

// normalization.cc / reduce.cc
Status Softmax(KernelContext& ctx);
Status ScaledSoftmax(KernelContext& ctx);
Status Attention(KernelContext& ctx);  // attention.cc
// ScaledSoftmax's and Attention's divisor (finite, non-zero), checked once.
Expected<std::shared_ptr<const void>> PrepareDivisor(const Node& node, int64_t opset);
// Attention: the divisor and attribute `precision` (fp32, int8, int8-per-tensor).
Expected<std::shared_ptr<const void>> PrepareAttention(const Node& node, int64_t opset);
Expected<std::shared_ptr<const void>> PrepareScaledSoftmax(const Node& node, int64_t opset);  // divisor, axis
Expected<std::shared_ptr<const void>> PrepareSoftmax(const Node& node, int64_t opset);  // axis
Status LayerNormalization(KernelContext& ctx);
// axis, epsilon; stash_type 1 when the node has Mean/InvStdDev.
Expected<std::shared_ptr<const void>> PrepareLayerNormalization(const Node& node, int64_t opset);
Status BatchNormalization(KernelContext& ctx);
// epsilon; refuses training_mode, the statistics outputs and spatial = 0.
Expected<std::shared_ptr<const void>> PrepareBatchNormalization(const Node& node, int64_t opset);
Status ReduceMean(KernelContext& ctx);
// axes (< 18: no repeats), keepdims and noop_with_empty_axes (0 or 1).
Expected<std::shared_ptr<const void>> PrepareReduceMean(const Node& node, int64_t opset);
// normalization.cc: per-instance/group/vector normalizations (float32).
Status InstanceNormalization(KernelContext& ctx);
Expected<std::shared_ptr<const void>> PrepareInstanceNormalization(const Node& node, int64_t opset);  // epsilon
Status GroupNormalization(KernelContext& ctx);
Expected<std::shared_ptr<const void>> PrepareGroupNormalization(const Node& node, int64_t opset);  // num_groups, epsilon
Status LpNormalization(KernelContext& ctx);
Expected<std::shared_ptr<const void>> PrepareLpNormalization(const Node& node, int64_t opset);  // axis, p (1 or 2)
Status MeanVarianceNormalization(KernelContext& ctx);
Expected<std::shared_ptr<const void>> PrepareMeanVarianceNormalization(const Node& node, int64_t opset);  // axes
Status LRN(KernelContext& ctx);
Expected<std::shared_ptr<const void>> PrepareLRN(const Node& node, int64_t opset);  // size, alpha, beta, bias
// reduce.cc: the rest of the Reduce family (one generic fold; axes an
// input from opset 13 for ReduceSum, 18 for the others) and ArgMax/ArgMin.
Status ReduceSum(KernelContext& ctx);
Status ReduceMax(KernelContext& ctx);
Status ReduceMin(KernelContext& ctx);
Status ReduceProd(KernelContext& ctx);
Status ReduceL1(KernelContext& ctx);
Status ReduceL2(KernelContext& ctx);
Status ReduceLogSum(KernelContext& ctx);
Status ReduceLogSumExp(KernelContext& ctx);
Status ReduceSumSquare(KernelContext& ctx);
// Every Reduce op's axes (no repeats), keepdims and noop_with_empty_axes.
Expected<std::shared_ptr<const void>> PrepareReduce(const Node& node, int64_t opset);
Status ArgMax(KernelContext& ctx);
Status ArgMin(KernelContext& ctx);
// axis; keepdims and select_last_index (0 or 1).
Expected<std::shared_ptr<const void>> PrepareArgMinMax(const Node& node, int64_t opset);
// elementwise.cc: variadic Max, Min, Sum, Mean (broadcasting), Mod (fmod),
// BitShift (direction), PRelu.
Status Max(KernelContext& ctx);
Status Min(KernelContext& ctx);
Status Sum(KernelContext& ctx);
Status Mean(KernelContext& ctx);
Status Mod(KernelContext& ctx);
Expected<std::shared_ptr<const void>> PrepareMod(const Node& node, int64_t opset);  // fmod 0 or 1
Status BitShift(KernelContext& ctx);
Expected<std::shared_ptr<const void>> PrepareBitShift(const Node& node, int64_t opset);  // LEFT or RIGHT
Status PRelu(KernelContext& ctx);
// activation.cc: element-wise math.
Status Sin(KernelContext& ctx);
Status Cos(KernelContext& ctx);
Status Tan(KernelContext& ctx);
Status Asin(KernelContext& ctx);
Status Acos(KernelContext& ctx);
Status Atan(KernelContext& ctx);
Status Sinh(KernelContext& ctx);
Status Cosh(KernelContext& ctx);
Status Asinh(KernelContext& ctx);
Status Acosh(KernelContext& ctx);
Status Atanh(KernelContext& ctx);
Status Softplus(KernelContext& ctx);
Status Softsign(KernelContext& ctx);
Status Mish(KernelContext& ctx);
Status Round(KernelContext& ctx);
Status Sign(KernelContext& ctx);
Status IsNaN(KernelContext& ctx);
Status IsInf(KernelContext& ctx);
Expected<std::shared_ptr<const void>> PrepareIsInf(const Node& node, int64_t opset);  // detect_* flags
Status Elu(KernelContext& ctx);
Expected<std::shared_ptr<const void>> PrepareElu(const Node& node, int64_t opset);  // alpha
Status Selu(KernelContext& ctx);
Expected<std::shared_ptr<const void>> PrepareSelu(const Node& node, int64_t opset);  // alpha, gamma
Status Celu(KernelContext& ctx);
Expected<std::shared_ptr<const void>> PrepareCelu(const Node& node, int64_t opset);  // alpha != 0
Status ThresholdedRelu(KernelContext& ctx);
Expected<std::shared_ptr<const void>> PrepareThresholdedRelu(const Node& node, int64_t opset);  // alpha
Status Shrink(KernelContext& ctx);
Expected<std::shared_ptr<const void>> PrepareShrink(const Node& node, int64_t opset);  // bias, lambd
// axis_ops.cc: LogSoftmax, Hardmax (Softmax's axis rules), CumSum, TopK.
Status LogSoftmax(KernelContext& ctx);
Expected<std::shared_ptr<const void>> PrepareLogSoftmax(const Node& node, int64_t opset);  // axis
Status Hardmax(KernelContext& ctx);
Expected<std::shared_ptr<const void>> PrepareHardmax(const Node& node, int64_t opset);  // axis
Status CumSum(KernelContext& ctx);
Expected<std::shared_ptr<const void>> PrepareCumSum(const Node& node, int64_t opset);  // exclusive, reverse
Status TopK(KernelContext& ctx);
Expected<std::shared_ptr<const void>> PrepareTopK(const Node& node, int64_t opset);  // axis, k (< 10), flags
// loss.cc: NegativeLogLikelihoodLoss, SoftmaxCrossEntropyLoss (evaluation).
Status NegativeLogLikelihoodLoss(KernelContext& ctx);
Status SoftmaxCrossEntropyLoss(KernelContext& ctx);
Expected<std::shared_ptr<const void>> PrepareLoss(const Node& node, int64_t opset);  // reduction, ignore_index
Status Dropout(KernelContext& ctx);  // activation.cc: inference (identity, mask all true)
Status CastLike(KernelContext& ctx);  // data_ops.cc: Cast to input 1's dtype
Status GlobalMaxPool(KernelContext& ctx);  // reduce.cc
Status Det(KernelContext& ctx);  // axis_ops.cc
Status NonMaxSuppression(KernelContext& ctx);  // detection.cc
Expected<std::shared_ptr<const void>> PrepareNonMaxSuppression(const Node& node, int64_t opset);  // center_point_box
Status GridSample(KernelContext& ctx);  // grid_sample.cc
Expected<std::shared_ptr<const void>> PrepareGridSample(const Node& node, int64_t opset);  // mode, padding_mode, align_corners

// matmul.cc, conv.cc, pool.cc, resize.cc
Status MatMul(KernelContext& ctx);
Status Gemm(KernelContext& ctx);
Expected<std::shared_ptr<const void>> PrepareGemm(const Node& node, int64_t opset);  // transA/transB flags
Status Einsum(KernelContext& ctx);  // einsum.cc
Expected<std::shared_ptr<const void>> PrepareEinsum(const Node& node, int64_t opset);  // the parsed equation
Status Conv(KernelContext& ctx);
Status ConvTranspose(KernelContext& ctx);
Status GlobalAveragePool(KernelContext& ctx);
Status AveragePool(KernelContext& ctx);
Status MaxPool(KernelContext& ctx);
Status Resize(KernelContext& ctx);
// Resize's modes, checked once per node (runtime/kernel.h's PrepareFn).
Expected<std::shared_ptr<const void>> PrepareResize(const Node& node, int64_t opset);
// Resize's replication path (nearest, every axis an integer factor k with
// input floor(x / k)), for the tests that hold it to the general path:
// off, every Resize takes the general path (process-wide; default on);
// and how many Resize runs on the calling thread took it.
void SetResizeReplication(bool enabled);
int64_t ResizeReplicationRuns();
// The sliding-window ops' attributes (kernels/conv_geometry.h), checked once
// per node the same way: conv.cc (PrepareConv also serves ConvInteger),
// pool.cc (AveragePool, MaxPool) and qmatmul_qconv.cc (the sarai domain's).
Expected<std::shared_ptr<const void>> PrepareConv(const Node& node, int64_t opset);
Expected<std::shared_ptr<const void>> PrepareConvTranspose(const Node& node, int64_t opset);
Expected<std::shared_ptr<const void>> PreparePool(const Node& node, int64_t opset);
Expected<std::shared_ptr<const void>> PrepareQMatMul(const Node& node, int64_t opset);
Expected<std::shared_ptr<const void>> PrepareQConv(const Node& node, int64_t opset);
Expected<std::shared_ptr<const void>> PrepareQConvTranspose(const Node& node, int64_t opset);

// shape_ops.cc / data_ops.cc: data movement and shape computation.
Status Transpose(KernelContext& ctx);
Status Reshape(KernelContext& ctx);
Status Flatten(KernelContext& ctx);
Status Squeeze(KernelContext& ctx);
Status Unsqueeze(KernelContext& ctx);
// The prepared attribute forms (runtime/kernel.h's PrepareFn): checked once.
Expected<std::shared_ptr<const void>> PrepareTranspose(const Node& node, int64_t opset);  // perm: a permutation
Expected<std::shared_ptr<const void>> PrepareSqueezeAxes(const Node& node, int64_t opset);  // axes < 13: no repeats
Expected<std::shared_ptr<const void>> PrepareSlice(const Node& node, int64_t opset);  // < 10: starts/ends/axes
Expected<std::shared_ptr<const void>> PrepareSplit(const Node& node, int64_t opset);  // split sizes, num_outputs
Expected<std::shared_ptr<const void>> PrepareCast(const Node& node, int64_t opset);  // to, saturate
Expected<std::shared_ptr<const void>> PrepareConstant(const Node& node, int64_t opset);  // the one value
Expected<std::shared_ptr<const void>> PrepareConstantOfShape(const Node& node, int64_t opset);  // one-element value
Expected<std::shared_ptr<const void>> PrepareConcat(const Node& node, int64_t opset);  // axis, required
Expected<std::shared_ptr<const void>> PrepareGather(const Node& node, int64_t opset);  // axis
Expected<std::shared_ptr<const void>> PrepareFlatten(const Node& node, int64_t opset);  // axis
Expected<std::shared_ptr<const void>> PrepareShape(const Node& node, int64_t opset);  // start/end (15)
Status Concat(KernelContext& ctx);
Status Slice(KernelContext& ctx);
Status Split(KernelContext& ctx);
Status Gather(KernelContext& ctx);
Status ShapeOp(KernelContext& ctx);  // "Shape": named apart from the sarai::Shape type
Status Cast(KernelContext& ctx);
Status Constant(KernelContext& ctx);
Status ConstantOfShape(KernelContext& ctx);
Status Identity(KernelContext& ctx);
Status Size(KernelContext& ctx);
Status Pad(KernelContext& ctx);  // data_ops.cc
Expected<std::shared_ptr<const void>> PreparePad(const Node& node, int64_t opset);  // mode
Status Expand(KernelContext& ctx);
Status Range(KernelContext& ctx);

// control_flow.cc: run their subgraphs through the session (SubgraphRunner).
Status If(KernelContext& ctx);
Status Loop(KernelContext& ctx);
Status Scan(KernelContext& ctx);

// recurrent.cc: LSTM, GRU, RNN (opsets 7 and 14); the prepare functions
// check direction, hidden_size, clip, layout, the flags and the activations.
Status LSTM(KernelContext& ctx);
Status GRU(KernelContext& ctx);
Status RNN(KernelContext& ctx);
Expected<std::shared_ptr<const void>> PrepareLSTM(const Node& node, int64_t opset);
Expected<std::shared_ptr<const void>> PrepareGRU(const Node& node, int64_t opset);
Expected<std::shared_ptr<const void>> PrepareRNN(const Node& node, int64_t opset);
// Their INT8 forms (domain "sarai", `convert --recurrent int8`).
Status QLSTM(KernelContext& ctx);
Status QGRU(KernelContext& ctx);
Status QRNN(KernelContext& ctx);
Expected<std::shared_ptr<const void>> PrepareQLSTM(const Node& node, int64_t opset);
Expected<std::shared_ptr<const void>> PrepareQGRU(const Node& node, int64_t opset);
Expected<std::shared_ptr<const void>> PrepareQRNN(const Node& node, int64_t opset);
// index_ops.cc: indexing and data-dependent ops (NonZero, Compress and
// Unique: output shapes from values).
Status OneHot(KernelContext& ctx);
Expected<std::shared_ptr<const void>> PrepareOneHot(const Node& node, int64_t opset);  // axis
Status NonZero(KernelContext& ctx);
Status GatherND(KernelContext& ctx);
Expected<std::shared_ptr<const void>> PrepareGatherND(const Node& node, int64_t opset);  // batch_dims >= 0
Status ScatterND(KernelContext& ctx);
Expected<std::shared_ptr<const void>> PrepareScatterND(const Node& node, int64_t opset);  // reduction
Status GatherElements(KernelContext& ctx);
Expected<std::shared_ptr<const void>> PrepareGatherElements(const Node& node, int64_t opset);  // axis
Status ScatterElements(KernelContext& ctx);  // also Scatter (opsets 9-10)
Expected<std::shared_ptr<const void>> PrepareScatterElements(const Node& node, int64_t opset);  // axis, reduction
Status Tile(KernelContext& ctx);
Status Trilu(KernelContext& ctx);
Expected<std::shared_ptr<const void>> PrepareTrilu(const Node& node, int64_t opset);  // upper (0/1)
Status EyeLike(KernelContext& ctx);
Expected<std::shared_ptr<const void>> PrepareEyeLike(const Node& node, int64_t opset);  // dtype, k
Status DepthToSpace(KernelContext& ctx);
Expected<std::shared_ptr<const void>> PrepareDepthToSpace(const Node& node, int64_t opset);  // blocksize, mode
Status SpaceToDepth(KernelContext& ctx);
Expected<std::shared_ptr<const void>> PrepareSpaceToDepth(const Node& node, int64_t opset);  // blocksize
Status Compress(KernelContext& ctx);
Expected<std::shared_ptr<const void>> PrepareCompress(const Node& node, int64_t opset);  // optional axis
Status ReverseSequence(KernelContext& ctx);
Expected<std::shared_ptr<const void>> PrepareReverseSequence(const Node& node, int64_t opset);  // time/batch axis
Status Unique(KernelContext& ctx);
Expected<std::shared_ptr<const void>> PrepareUnique(const Node& node, int64_t opset);  // sorted, optional axis

// signal_ops.cc: the audio front-end ops (float32 signals).
Status DFT(KernelContext& ctx);
Expected<std::shared_ptr<const void>> PrepareDFT(const Node& node, int64_t opset);  // axis (< 20), inverse, onesided
Status STFT(KernelContext& ctx);
Expected<std::shared_ptr<const void>> PrepareSTFT(const Node& node, int64_t opset);  // onesided
Status HannWindow(KernelContext& ctx);
Status HammingWindow(KernelContext& ctx);
Status BlackmanWindow(KernelContext& ctx);
Expected<std::shared_ptr<const void>> PrepareWindow(const Node& node, int64_t opset);  // output_datatype, periodic
Status MelWeightMatrix(KernelContext& ctx);
Expected<std::shared_ptr<const void>> PrepareMelWeightMatrix(const Node& node, int64_t opset);  // output_datatype

// quant_ops.cc: the standard ONNX quantization ops (scalar references).
Status DynamicQuantizeLinear(KernelContext& ctx);
Status QuantizeLinear(KernelContext& ctx);
Status DequantizeLinear(KernelContext& ctx);
// axis; block_size refused; QuantizeLinear's saturate (0/1) and output_dtype.
Expected<std::shared_ptr<const void>> PrepareQuantizeLinear(const Node& node, int64_t opset);
Expected<std::shared_ptr<const void>> PrepareDequantizeLinear(const Node& node, int64_t opset);
Status MatMulInteger(KernelContext& ctx);
Status ConvInteger(KernelContext& ctx);
// qlinear_ops.cc: QLinearMatMul, QLinearConv (PrepareConv), on the
// MatMulInteger / ConvInteger cores plus a requantization.
Status QLinearMatMul(KernelContext& ctx);
Status QLinearConv(KernelContext& ctx);

// qmatmul_qconv.cc: the quantized ops of domain "sarai" (contract in
// kernels/cpu/int8_layout.h; integer cores in kernels/cpu/qref.h). Reference
// kernels: the oracle for the fast INT8 paths.
Status QMatMul(KernelContext& ctx);
Status QConv(KernelContext& ctx);
Status QConvTranspose(KernelContext& ctx);
// The FP32 fallbacks runtime/session_fallback.h puts in their place
// (dequantized weights): a 1x1 unpadded group-1 Conv, and a ConvTranspose
// whose kernel equals its strides; the same at every thread count.
Status Fp32Conv(KernelContext& ctx);
Status Fp32ConvTranspose(KernelContext& ctx);

}  // namespace kernels
}  // namespace sarai
