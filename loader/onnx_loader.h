// Reads ONNX models (.onnx, opsets 9-21, default domain) into the runtime's
// IR. The only code in the project that sees protobuf types.
//
// External data is memory-mapped and used in place; nothing is copied
// unless a tensor's offset is misaligned for its element type. Every error
// is one line that starts with the file and names the tensor or node.
#pragma once

#include <memory>
#include <string>

#include "runtime/model.h"
#include "runtime/status.h"
#include "runtime/tensor.h"

namespace sarai {

class MappedFile;  // runtime/mapped_file.h

inline constexpr int64_t kMinOpset = 9;
inline constexpr int64_t kMaxOpset = 21;

Expected<std::shared_ptr<Model>> load_onnx(const std::string& path);
// The same for a file the caller has mapped (the model keeps nothing of it).
Expected<std::shared_ptr<Model>> load_onnx(const MappedFile& file);

// Reads a serialized TensorProto file (the format of the ONNX backend test
// data, input_0.pb / output_0.pb).
Expected<Tensor> load_tensor_proto_file(const std::string& path);

}  // namespace sarai
