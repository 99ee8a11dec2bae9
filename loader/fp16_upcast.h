// Float16 ONNX models run on the float32 kernels: a graph pass the ONNX
// loader runs once after parsing (loader/onnx_loader.cc), before anything
// else sees the graph, so the session, the fusion passes and `sarai-rt
// convert` (which then quantizes the weights to INT8 like any float32 ones)
// only meet float32 inside the graph.
//
//  (a) float16 initializers are upcast once to float32 heap copies (exact:
//      every half is a float). They then count as heap weights, not mapped
//      ones, and cost 4 bytes per weight (the float16 source stays mapped
//      or in the parsed protobuf, untouched after this pass).
//  (b) every other float16 value inside the graph becomes float32 (value
//      dtypes rewritten), as do float16 tensor attributes (Constant,
//      ConstantOfShape's value) and `dtype` attributes naming float16
//      (EyeLike, RandomNormal(Like), RandomUniform(Like), Bernoulli).
//  (c) float16 graph inputs and outputs stay float16 at the API: a
//      Cast(to=FLOAT) after each float16 input and a Cast(to=FLOAT16) before
//      each float16 output, between the interface name (unchanged) and a
//      fresh internal value ("<name>__fp32").
//  (d) Cast(to=FLOAT16) inside the graph (and CastLike to a float16 target)
//      still rounds to the nearest half: it becomes Cast(to=FLOAT16) →
//      "<name>__fp16" → Cast(to=FLOAT), a float32 → float32 rounding in
//      standard ONNX (so `convert --to onnx` exports stay runnable by any
//      runtime). That short-lived float16 value is the one float16 value left
//      inside the graph; only its Cast back reads it. Rounding matters: a
//      model that casts to float16 on purpose (overflow to inf, clamping
//      precision before a comparison) must see the same values as in ONNX
//      Runtime. A Cast(to=FLOAT16) that produces a float16 graph output which
//      no node reads is left alone.
//
// Arithmetic between nodes is then float32 where ONNX Runtime's float16
// model rounds every intermediate to half: results differ by float16
// rounding (tests/fp16_test.cc, tests/ort/fp16_model.sh measure it).
// Subgraphs (If/Loop/Scan bodies, at any depth) get the same pass on a
// copy, except that their inputs, outputs and captures become float32 with
// no Casts: they connect to the enclosing graph's values, float32 by then.
//
// SARAI_FP16_UPCAST=0 (or "off") switches the pass off: a float16 model then
// loads as written and fails at session creation where a kernel refuses
// float16, as before.
#pragma once

#include "runtime/model.h"
#include "runtime/status.h"

namespace sarai {

// Rewrites model.graph as above; a no-op (nothing allocated) for a model
// without float16. The graph must be complete (every value defined); errors
// name the tensor or node.
Status upcast_float16(Model& model);

// Whether SARAI_FP16_UPCAST leaves the pass on (true when unset); an error
// when it is set to something other than 0/1/on/off.
Expected<bool> fp16_upcast_enabled();

}  // namespace sarai
