/* sarai-rt's C API (C99): opaque handles; every function that can fail
 * returns a sarai_rt_status*, NULL on success. A status carries a category
 * (sarai_rt_code) and a one-line message naming the file, input or node;
 * the caller frees it with sarai_rt_status_free. No C++ type or exception
 * crosses this boundary. Built on the C++ API (sarai_rt.hpp).
 *
 *   sarai_rt_session* s = NULL;
 *   sarai_rt_status* st = sarai_rt_session_open("model.sarai", NULL, &s);
 *   if (st) { fprintf(stderr, "%s\n", sarai_rt_status_message(st)); sarai_rt_status_free(st); }
 *
 * One session serves concurrent sarai_rt_session_run calls from several
 * threads (each call has an activation arena of its own; the weights and
 * plans are shared). Give each call threads = cores / concurrent callers.
 * docs/embedding.md has a complete example. */
#ifndef SARAI_RT_H_
#define SARAI_RT_H_

#include <stddef.h>
#include <stdint.h>

#if defined(SARAI_RT_BUILDING)
#define SARAI_RT_C_API __attribute__((visibility("default")))
#else
#define SARAI_RT_C_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

#define SARAI_RT_VERSION_MAJOR 0
#define SARAI_RT_VERSION_MINOR 1
#define SARAI_RT_VERSION_PATCH 0
#define SARAI_RT_VERSION "0.1.0"

/* The library's version, "MAJOR.MINOR.PATCH" (may differ from the header's
 * SARAI_RT_VERSION if the program runs against another build). */
SARAI_RT_C_API const char* sarai_rt_version(void);
/* The kernels' instruction-set level ("avx2", "avx512_vnni", ...), and why
 * SARAI_MAX_ISA was ignored, or NULL (the library never prints it). */
SARAI_RT_C_API const char* sarai_rt_isa_level(void);
SARAI_RT_C_API const char* sarai_rt_isa_cap_warning(void);

typedef enum sarai_rt_code {
  SARAI_RT_OK = 0,
  SARAI_RT_INVALID_MODEL = 1,
  SARAI_RT_UNSUPPORTED_OP = 2,
  SARAI_RT_BAD_INPUT = 3,
  SARAI_RT_OUT_OF_MEMORY_BUDGET = 4,
  SARAI_RT_IO = 5,
  SARAI_RT_INVALID_ARGUMENT = 6,
  SARAI_RT_INTERNAL = 7
} sarai_rt_code;

/* Element types, numbered as ONNX's TensorProto numbers them. */
typedef enum sarai_rt_dtype {
  SARAI_RT_FLOAT32 = 1, SARAI_RT_UINT8 = 2, SARAI_RT_INT8 = 3, SARAI_RT_UINT16 = 4, SARAI_RT_INT16 = 5,
  SARAI_RT_INT32 = 6, SARAI_RT_INT64 = 7, SARAI_RT_BOOL = 9, SARAI_RT_FLOAT16 = 10, SARAI_RT_FLOAT64 = 11,
  SARAI_RT_UINT32 = 12, SARAI_RT_UINT64 = 13
} sarai_rt_dtype;

typedef struct sarai_rt_status sarai_rt_status;
typedef struct sarai_rt_session sarai_rt_session;
typedef struct sarai_rt_outputs sarai_rt_outputs;

/* A status's category (SARAI_RT_OK for NULL) and message ("" for NULL). */
SARAI_RT_C_API sarai_rt_code sarai_rt_status_code(const sarai_rt_status* status);
SARAI_RT_C_API const char* sarai_rt_status_message(const sarai_rt_status* status);
SARAI_RT_C_API void sarai_rt_status_free(sarai_rt_status* status); /* NULL is fine */

/* "float32", "int64", ... ("unknown" for other values), and bytes per
 * element (0 for other values). */
SARAI_RT_C_API const char* sarai_rt_dtype_name(sarai_rt_dtype dtype);
SARAI_RT_C_API size_t sarai_rt_dtype_size(sarai_rt_dtype dtype);

typedef struct sarai_rt_options {
  int threads;            /* 0: one per physical core */
  uint64_t max_memory_mb; /* 0: no budget */
  int cache_size;         /* result cache entries, 0: off */
} sarai_rt_options;

/* Opens an .onnx model or a .sarai blob; options may be NULL (defaults). */
SARAI_RT_C_API sarai_rt_status* sarai_rt_session_open(const char* path, const sarai_rt_options* options,
                                                      sarai_rt_session** out);
/* The same from `size` bytes of a model in memory (copied: free them once
 * this returns; see sarai_rt::Session::open_memory). Errors name the model
 * "<memory>". */
SARAI_RT_C_API sarai_rt_status* sarai_rt_session_open_memory(const void* data, size_t size,
                                                             const sarai_rt_options* options, sarai_rt_session** out);
SARAI_RT_C_API void sarai_rt_session_close(sarai_rt_session* session); /* NULL is fine */

/* Declared inputs and outputs. `dims` points at `rank` values owned by the
 * session, -1 where a dimension is open (symbolic). */
SARAI_RT_C_API sarai_rt_status* sarai_rt_session_input_count(const sarai_rt_session* session, size_t* count);
SARAI_RT_C_API sarai_rt_status* sarai_rt_session_output_count(const sarai_rt_session* session, size_t* count);
SARAI_RT_C_API sarai_rt_status* sarai_rt_session_input_info(const sarai_rt_session* session, size_t index,
                                                            const char** name, sarai_rt_dtype* dtype, size_t* rank,
                                                            const int64_t** dims);
SARAI_RT_C_API sarai_rt_status* sarai_rt_session_output_info(const sarai_rt_session* session, size_t index,
                                                             const char** name, sarai_rt_dtype* dtype, size_t* rank,
                                                             const int64_t** dims);

/* The model's description, as ONNX Runtime's ModelMetadata reports it (for
 * a .sarai blob, that of the ONNX model it was converted from). Strings are
 * owned by the session, "" when the model has none; any out-pointer may be
 * NULL. */
SARAI_RT_C_API sarai_rt_status* sarai_rt_session_metadata(const sarai_rt_session* session, const char** producer_name,
                                                          const char** graph_name, const char** domain,
                                                          const char** description, const char** graph_description,
                                                          int64_t* version);
/* Its custom metadata (ONNX metadata_props), in file order: `count` pairs,
 * pair `index` as key and value owned by the session. */
SARAI_RT_C_API sarai_rt_status* sarai_rt_session_custom_metadata_count(const sarai_rt_session* session, size_t* count);
SARAI_RT_C_API sarai_rt_status* sarai_rt_session_custom_metadata(const sarai_rt_session* session, size_t index,
                                                                 const char** key, const char** value);

/* An input, borrowed for the call: C-contiguous data of `dtype`. */
typedef struct sarai_rt_tensor {
  const char* name;
  sarai_rt_dtype dtype;
  size_t rank;
  const int64_t* dims;
  const void* data;
} sarai_rt_tensor;

/* Runs the model on `count` inputs; *outputs receives every output
 * (free it with sarai_rt_outputs_free). */
SARAI_RT_C_API sarai_rt_status* sarai_rt_session_run(sarai_rt_session* session, const sarai_rt_tensor* inputs,
                                                     size_t count, sarai_rt_outputs** outputs);
SARAI_RT_C_API sarai_rt_status* sarai_rt_outputs_count(const sarai_rt_outputs* outputs, size_t* count);
/* Output `index`: its pointers stay valid until sarai_rt_outputs_free. */
SARAI_RT_C_API sarai_rt_status* sarai_rt_outputs_get(const sarai_rt_outputs* outputs, size_t index,
                                                     sarai_rt_tensor* tensor);
SARAI_RT_C_API void sarai_rt_outputs_free(sarai_rt_outputs* outputs); /* NULL is fine */

/* The result cache's counters (all 0 while it is off). */
SARAI_RT_C_API sarai_rt_status* sarai_rt_session_cache_counters(const sarai_rt_session* session, uint64_t* hits,
                                                                uint64_t* misses, uint64_t* bytes);

/* Converting an ONNX model (sarai_rt::convert, sarai_rt.hpp): weights per
 * output channel to INT8, streamed in bounded memory, into a .sarai blob or
 * a quantized ONNX model; the output whole or not at all, the source never
 * written. Every field may be 0 / NULL for its default. */
typedef struct sarai_rt_convert_options {
  const char* to;                /* "sarai" or "onnx"; NULL: "onnx" when dst ends in .onnx, else "sarai" */
  int per_tensor;                /* nonzero: one scale per weight instead of per output channel */
  const char* const* keep_fp32;  /* keep_fp32_count node names, weight names or globs left in FP32 */
  size_t keep_fp32_count;
  int64_t min_elements;          /* weights with fewer elements stay FP32 */
  const char* attention;         /* blob: "int8" (NULL), "int8-per-tensor" or "fp32" */
  const char* recurrent;         /* blob: "fp32" (NULL) or "int8" */
  const char* onnx_weights;      /* ONNX output: "u8" (NULL), "s8" or "s7" */
  const char* depthwise_activations; /* blob: "per-channel" (NULL) or "per-tensor" */
  const char* matmul_activations;    /* blob: "per-row" (NULL) or "per-tensor" */
} sarai_rt_convert_options;
/* options may be NULL; quantized / kept_fp32 (may be NULL) receive how many
 * weights went to INT8 and how many stayed FP32. */
SARAI_RT_C_API sarai_rt_status* sarai_rt_convert(const char* src, const char* dst,
                                                 const sarai_rt_convert_options* options, int* quantized,
                                                 int* kept_fp32);

#ifdef __cplusplus
}
#endif

#endif /* SARAI_RT_H_ */
