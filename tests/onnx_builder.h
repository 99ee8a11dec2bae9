// Builds small ONNX models in tests, including deliberately broken ones, so
// every loader error path has a test that asserts its message.
#pragma once

#include <onnx/onnx_pb.h>

#include <string>
#include <vector>

#include "runtime/tensor.h"

namespace sarai::test {

// A fresh folder under $SARAI_TEST_TMP (or /tmp) unique to this test.
std::string temp_dir(const std::string& tag);

// y = Add(x, w): x is a float32 input of `dims`, w a float32 initializer of
// the same dims holding 0, 1, 2, ... Opset 17.
onnx::ModelProto add_model(const std::vector<int64_t>& dims = {2, 3});

// Moves initializer `name` into external data: writes its bytes at `offset`
// of `dir/location` (created or extended) and points the tensor there.
void externalize(onnx::ModelProto& m, const std::string& name, const std::string& dir,
                 const std::string& location, uint64_t offset = 0);

void save(const onnx::ModelProto& m, const std::string& path);
// A float32 graph input/output `name` of `dims`.
void set_tensor_type(onnx::ValueInfoProto* vi, const std::string& name, const std::vector<int64_t>& dims);
// A float32 initializer holding t's values (raw data).
void add_float_initializer(onnx::GraphProto* g, const std::string& name, const Tensor& t);
// A graph input/output `name` of element type `elem` (onnx::TensorProto
// codes, e.g. FLOAT16) and `dims`.
void set_tensor_type(onnx::ValueInfoProto* vi, const std::string& name, const std::vector<int64_t>& dims,
                     int32_t elem);
// An initializer holding t's bytes as raw data, of t's dtype (float16,
// int64, ...).
void add_initializer(onnx::GraphProto* g, const std::string& name, const Tensor& t);
// float32 <-> float16 tensors (round to nearest even; exact the other way).
Tensor to_float16(const Tensor& f32);
Tensor to_float32(const Tensor& f16);
// x [in_dims] -> MatMul(w0) -> h0 -> MatMul(w1) -> ... -> y [out_dims], opset
// 17: weights[i] is initializer "w<i>", node i is named node_names[i].
onnx::ModelProto matmul_chain_model(const std::vector<int64_t>& in_dims, const std::vector<int64_t>& out_dims,
                                    const std::vector<Tensor>& weights, const std::vector<std::string>& node_names);
// x [1, 16, 64] -> MatMul "first" (w0) -> h0 -> MatMul "second" (w1) -> y
// [1, 16, 32] (matmul_chain_model), where w0's first column is 300x the
// others: h0 has one huge channel, so quantizing h0 per tensor for the
// second MatMul wipes out the small channels that w1 reads (its first row
// is zero). Plain INT8 misses a 0.999 cosine; keeping "second" in FP32
// reaches it.
onnx::ModelProto sensitive_chain_model();
// A value_info (graph input, output or inner value) `name` of element type
// `elem` (onnx::TensorProto codes) and `dims`; no shape at all when
// has_shape is false.
void typed(onnx::ValueInfoProto* vi, const std::string& name, int elem, const std::vector<int64_t>& dims,
           bool has_shape = true);
// A node of `op` in g (named "<op>_<count>" when name is empty).
onnx::NodeProto* node(onnx::GraphProto* g, const std::string& op, std::vector<std::string> in,
                      std::vector<std::string> out, const std::string& name = "");
// Attributes on a proto node.
void graph_attr(onnx::NodeProto* n, const std::string& name, const onnx::GraphProto& g);
void ints_attr(onnx::NodeProto* n, const std::string& name, const std::vector<int64_t>& v);
void int_attr(onnx::NodeProto* n, const std::string& name, int64_t v);
void write_file(const std::string& path, const std::string& bytes);
std::string read_file(const std::string& path);

}  // namespace sarai::test
