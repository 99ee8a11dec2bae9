"""The Python module sarai_rt (api/python/module.cc), run by ctest as
python.module with Debian's /usr/bin/python3 and pytest:
  PYTHONPATH=build/release/python SARAI_RT=build/release/sarai-rt \
    /usr/bin/python3 -m pytest -p no:cacheprovider tests/python
Outputs are compared bit for bit with the CLI's (sarai-rt run --output-dir)
on the fixtures, FP32 and INT8; every bad input raises the exception of its
category and leaves the session usable."""
import os
import shutil
import subprocess
import threading
import time

import numpy as np
import pytest

import sarai_rt

SOURCE = os.environ.get("SARAI_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
FIXTURES = os.path.join(SOURCE, "tests", "fixtures")
CLI = os.environ["SARAI_RT"]
WHISPER = os.path.join(FIXTURES, "whisper_tiny_encoder.onnx")
CNN = os.path.join(FIXTURES, "small_cnn.onnx")


@pytest.fixture(scope="session")
def tmp():
    d = os.environ.get("SARAI_TEST_TMP") or "/tmp/sarai_rt_python_test"
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    return d


@pytest.fixture(scope="session")
def whisper_blob(tmp):
    path = os.path.join(tmp, "whisper_tiny_encoder.sarai")
    subprocess.run([CLI, "convert", WHISPER, "-o", path], check=True, capture_output=True)
    return path


def mel(frames, seed=1):
    return np.random.default_rng(seed).standard_normal((1, 80, frames)).astype(np.float32)


def cli_outputs(tmp, model, feeds, tag):
    """Runs the CLI on `feeds` ({name: array}) and loads its outputs."""
    d = os.path.join(tmp, tag)
    os.makedirs(d, exist_ok=True)
    args = [CLI, "run", model, "--threads", "1", "--output-dir", os.path.join(d, "out")]
    for name, a in feeds.items():
        f = os.path.join(d, name + ".npy")
        np.save(f, a)
        args += ["--input", f"{name}={f}"]
    subprocess.run(args, check=True, capture_output=True)
    return {n[:-4]: np.load(os.path.join(d, "out", n)) for n in os.listdir(os.path.join(d, "out"))}


def test_version_isa_and_exception_classes():
    assert sarai_rt.__version__ == "0.1.0"
    assert sarai_rt.isa_level() in ("scalar", "avx2", "avx2_vnni", "avx512_vnni", "amx")
    assert issubclass(sarai_rt.BadInput, sarai_rt.Error) and issubclass(sarai_rt.BadInput, ValueError)
    assert issubclass(sarai_rt.IoError, OSError)
    assert issubclass(sarai_rt.OutOfMemoryBudget, MemoryError)
    assert issubclass(sarai_rt.UnsupportedOp, NotImplementedError)
    assert issubclass(sarai_rt.Error, RuntimeError)


def test_an_unknown_isa_cap_is_a_warning_at_import():
    import sys
    env = dict(os.environ, SARAI_MAX_ISA="avx9")
    r = subprocess.run([sys.executable, "-B", "-W", "error::RuntimeWarning", "-c", "import sarai_rt"], env=env,
                       capture_output=True, text=True)
    assert r.returncode != 0 and "SARAI_MAX_ISA=avx9 is not a level" in r.stderr
    env["SARAI_MAX_ISA"] = "scalar"
    r = subprocess.run([sys.executable, "-B", "-c", "import sarai_rt; print(sarai_rt.isa_level())"], env=env,
                       capture_output=True, text=True, check=True)
    assert (r.stdout, r.stderr) == ("scalar\n", "")


def test_inputs_and_outputs_as_onnxruntime_describes_them():
    s = sarai_rt.InferenceSession(CNN, threads=1)
    [i] = s.get_inputs()
    assert (i.name, i.type, i.shape) == ("image", "tensor(float)", [1, 3, "H", "W"])
    [o] = s.get_outputs()
    assert (o.name, o.type, o.shape) == ("prob", "tensor(float)", [1, 1, "H_out", "W_out"])
    assert s.get_providers() == ["CPUExecutionProvider"]


@pytest.mark.parametrize("which", ["fp32", "int8"])
def test_outputs_equal_the_cli_bit_for_bit(tmp, whisper_blob, which):
    model = WHISPER if which == "fp32" else whisper_blob
    s = sarai_rt.InferenceSession(model, threads=1)
    feeds = {"mel": mel(300, seed=3)}
    ours = s.run(None, feeds)
    theirs = cli_outputs(tmp, model, feeds, "cli_" + which)
    names = [o.name for o in s.get_outputs()]
    assert len(ours) == len(names) == len(theirs)
    for name, y in zip(names, ours):
        assert y.dtype == theirs[name].dtype and y.shape == theirs[name].shape
        assert np.array_equal(y, theirs[name]), name


def test_cnn_equals_the_cli(tmp):
    s = sarai_rt.InferenceSession(CNN, threads=1)
    x = np.random.default_rng(5).random((1, 3, 32, 48), dtype=np.float32)
    [y] = s.run(["prob"], {"image": x})
    assert np.array_equal(y, cli_outputs(tmp, CNN, {"image": x}, "cli_cnn")["prob"])


def test_outputs_are_handed_over_without_a_copy():
    s = sarai_rt.InferenceSession(WHISPER, threads=1)
    [y] = s.run(None, {"mel": mel(30)})
    assert not y.flags.owndata and y.base is not None and not isinstance(y.base, np.ndarray)
    assert y.flags.c_contiguous and y.flags.writeable
    y[...] = 0  # ours alone: writing it touches nothing else
    [z] = s.run(None, {"mel": mel(30)})
    assert np.abs(z).sum() > 0


def test_any_layout_of_the_declared_dtype_gives_the_same_result():
    s = sarai_rt.InferenceSession(WHISPER, threads=1)
    x = mel(40, seed=9)
    [want] = s.run(None, {"mel": x})
    big = np.zeros((1, 80, 80), np.float32)
    big[:, :, ::2] = x
    strided = big[:, :, ::2]                       # not contiguous: copied
    fortran = np.asfortranarray(x)                 # not C order: copied
    swapped = x.astype(x.dtype.newbyteorder(">"))  # big-endian float32: converted
    readonly = x.copy()
    readonly.flags.writeable = False               # read in place (never written)
    for a in (strided, fortran, swapped, readonly, x.tolist()):
        [y] = s.run(None, {"mel": a})
        assert np.array_equal(y, want)
    assert np.array_equal(x, mel(40, seed=9)), "the input was not modified"


def test_output_names_pick_and_order():
    s = sarai_rt.InferenceSession(CNN, threads=1)
    x = np.ones((1, 3, 16, 16), np.float32)
    [a] = s.run(["prob"], {"image": x})
    [b] = s.run(None, {"image": x})
    assert np.array_equal(a, b)
    with pytest.raises(sarai_rt.BadInput, match="no output 'nope'.*prob"):
        s.run(["nope"], {"image": x})


def test_bad_inputs_raise_bad_input_and_the_session_stays_usable():
    s = sarai_rt.InferenceSession(WHISPER, threads=1)
    x = mel(30)
    [want] = s.run(None, {"mel": x})
    cases = [
        ({"mle": x}, "no input 'mle'.*mel"),
        ({"mel": x.astype(np.float64)}, "'mel' must be tensor\\(float\\), got a NumPy array of float64"),
        ({"mel": x.astype(np.int64)}, "'mel' must be tensor\\(float\\)"),
        ({"mel": x[0]}, "'mel' must be float32 \\[1, 80, frames\\].*rank 3"),
        ({"mel": np.zeros((1, 81, 30), np.float32)}, "dim 1 must be 80"),
        ({}, "missing input 'mel'"),
    ]
    for feed, message in cases:
        with pytest.raises(sarai_rt.BadInput, match=message) as e:
            s.run(None, feed)
        assert WHISPER in str(e.value)
        [y] = s.run(None, {"mel": x})
        assert np.array_equal(y, want)
    with pytest.raises(TypeError):
        s.run(None, {3: x})


def test_a_shape_no_node_can_take_is_bad_input():
    s = sarai_rt.InferenceSession(CNN, threads=1)
    with pytest.raises(sarai_rt.BadInput, match="MaxPool"):
        s.run(None, {"image": np.zeros((1, 3, 1, 1), np.float32)})
    [y] = s.run(None, {"image": np.zeros((1, 3, 16, 16), np.float32)})
    assert y.shape[:2] == (1, 1)


def test_files_that_cannot_be_opened_or_read(tmp, whisper_blob):
    with pytest.raises(sarai_rt.IoError, match="nope.onnx"):
        sarai_rt.InferenceSession(os.path.join(tmp, "nope.onnx"))
    with pytest.raises(sarai_rt.IoError, match="not a regular file"):
        sarai_rt.InferenceSession(tmp)
    cut = os.path.join(tmp, "cut.sarai")
    with open(whisper_blob, "rb") as f, open(cut, "wb") as g:
        g.write(f.read()[:5000])
    with pytest.raises(sarai_rt.Error, match="cut.sarai") as e:
        sarai_rt.InferenceSession(cut)
    assert isinstance(e.value, (sarai_rt.InvalidModel, sarai_rt.IoError))
    garbage = os.path.join(tmp, "garbage.onnx")
    with open(garbage, "wb") as g:
        g.write(b"\x08\x07not a model at all" * 10)
    with pytest.raises(sarai_rt.InvalidModel, match="garbage.onnx"):
        sarai_rt.InferenceSession(garbage)


def test_an_unsupported_op_is_named(tmp):
    import onnx
    from onnx import TensorProto, helper
    g = helper.make_graph([helper.make_node("RandomNormalLike", ["x"], ["y"])], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 2])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 2])])
    path = os.path.join(tmp, "random_normal_like.onnx")
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), path)
    with pytest.raises(sarai_rt.UnsupportedOp, match="RandomNormalLike"):
        sarai_rt.InferenceSession(path)


def test_paths_as_pathlike_and_models_as_bytes(tmp):
    import pathlib
    s = sarai_rt.InferenceSession(pathlib.Path(WHISPER), threads=1)
    assert s.get_inputs()[0].name == "mel"
    x = mel(40)
    want = s.run(None, {"mel": x})[0]
    # ONNX Runtime's InferenceSession(model_bytes): bytes, bytearray or a
    # memoryview, for the ONNX model and for its blob alike.
    blob = os.path.join(tmp, "w.sarai")
    sarai_rt.convert(WHISPER, blob)
    want_blob = sarai_rt.InferenceSession(blob, threads=1).run(None, {"mel": x})[0]
    for path, expected in ((WHISPER, want), (blob, want_blob)):
        with open(path, "rb") as f:
            data = f.read()
        for given in (data, bytearray(data), memoryview(data)):
            got = sarai_rt.InferenceSession(given, threads=1).run(None, {"mel": x})[0]
            assert np.array_equal(got, expected), (path, type(given))
    with pytest.raises(sarai_rt.InvalidModel, match="^<bytes>: not a valid ONNX model"):
        sarai_rt.InferenceSession(b"not a model")
    with pytest.raises(sarai_rt.InvalidModel, match="^<bytes>: the model is empty"):
        sarai_rt.InferenceSession(b"")
    with pytest.raises(TypeError):
        sarai_rt.InferenceSession(12)


def test_options_budget_and_providers():
    with pytest.raises(sarai_rt.OutOfMemoryBudget, match="too small"):
        s = sarai_rt.InferenceSession(WHISPER, max_memory_mb=1)
        s.run(None, {"mel": mel(3000)})
    # Providers this build lacks are dropped with a warning, as in ONNX
    # Runtime: an application listing CUDA first still runs, on the CPU.
    with pytest.warns(RuntimeWarning, match="'CUDAExecutionProvider' is not available"):
        s = sarai_rt.InferenceSession(WHISPER, providers=["CUDAExecutionProvider", "CPUExecutionProvider"])
    assert s.get_providers() == ["CPUExecutionProvider"]
    assert len(s.run(None, {"mel": mel(30)})) == 1
    with pytest.raises(sarai_rt.InvalidArgument, match="3 is not a provider name"):
        sarai_rt.InferenceSession(WHISPER, providers=[3])
    with pytest.raises(sarai_rt.InvalidArgument, match="threads"):
        sarai_rt.InferenceSession(WHISPER, threads=-1)

    class Options:  # onnxruntime.SessionOptions, as far as sarai-rt reads it
        intra_op_num_threads = 1
    s = sarai_rt.InferenceSession(WHISPER, sess_options=Options(), providers=["CPUExecutionProvider"])
    assert len(s.run(None, {"mel": mel(30)})) == 1


def test_onnxruntime_style_code_runs_unchanged():
    """What a service written for onnxruntime does, with `ort` = sarai_rt."""
    ort = sarai_rt
    assert ort.get_available_providers() == ["CPUExecutionProvider"]
    assert ort.get_all_providers() == ["CPUExecutionProvider"]
    assert ort.get_device() == "CPU"
    assert ort.get_version_string() == sarai_rt.__version__
    ort.set_default_logger_severity(3)
    so = ort.SessionOptions()
    assert so.intra_op_num_threads == 0
    assert so.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.execution_order = ort.ExecutionOrder.DEFAULT
    so.enable_cpu_mem_arena = False
    so.enable_mem_pattern = False
    so.enable_mem_reuse = True
    so.use_deterministic_compute = True
    so.log_severity_level = 3
    so.log_verbosity_level = 0
    so.logid = "assistant"
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    assert so.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    so.add_free_dimension_override_by_name("frames", 30)
    # sess_options positionally, providers as names or (name, options) pairs.
    s = ort.InferenceSession(WHISPER, so, providers=["CPUExecutionProvider"])
    t = ort.InferenceSession(WHISPER, sess_options=so, providers=[("CPUExecutionProvider", {})],
                             provider_options=[{}])
    assert s.get_providers() == ["CPUExecutionProvider"]
    assert s.get_provider_options() == {"CPUExecutionProvider": {}}
    kept = s.get_session_options()
    assert kept.intra_op_num_threads == 1 and kept.logid == "assistant"
    assert kept.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    ro = ort.RunOptions()
    ro.log_severity_level = 3
    ro.run_tag = "request-1"
    ro.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")
    assert ro.get_run_config_entry("memory.enable_memory_arena_shrinkage") == "cpu:0"
    name = s.get_inputs()[0].name
    [a] = s.run(None, {name: mel(30)}, ro)
    [b] = t.run([s.get_outputs()[0].name], {name: mel(30)}, run_options=ro)
    [c] = ort.InferenceSession(WHISPER, threads=1).run(None, {name: mel(30)})
    assert np.array_equal(a, b) and np.array_equal(a, c)


def test_onnxruntime_options_sarai_rt_cannot_honour_are_refused():
    so = sarai_rt.SessionOptions()
    with pytest.raises(AttributeError):
        so.intra_op_threads = 1  # a typo is an error, as in ONNX Runtime
    with pytest.raises(TypeError):
        so.graph_optimization_level = 99  # the enum, not an int
    for attr, value, message in [("enable_profiling", True, "enable_profiling"),
                                 ("optimized_model_filepath", "/tmp/opt.onnx", "optimized_model_filepath")]:
        so = sarai_rt.SessionOptions()
        setattr(so, attr, value)
        with pytest.raises(sarai_rt.InvalidArgument, match=message):
            sarai_rt.InferenceSession(WHISPER, so)
    so = sarai_rt.SessionOptions()
    so.register_custom_ops_library("libcustom.so")
    with pytest.raises(sarai_rt.InvalidArgument, match="libcustom.so"):
        sarai_rt.InferenceSession(WHISPER, so)
    so = sarai_rt.SessionOptions()
    so.intra_op_num_threads = -2
    with pytest.raises(sarai_rt.InvalidArgument, match="threads"):
        sarai_rt.InferenceSession(WHISPER, so)
    with pytest.raises(sarai_rt.InvalidArgument, match="SessionOptions: no config entry 'missing'"):
        so.get_session_config_entry("missing")
    with pytest.raises(sarai_rt.InvalidArgument, match="RunOptions: no config entry 'missing'"):
        sarai_rt.RunOptions().get_run_config_entry("missing")
    with pytest.raises(TypeError, match="sess_options must be a sarai_rt.SessionOptions, got 2"):
        sarai_rt.InferenceSession(WHISPER, 2)  # sarai-rt's old positional threads
    with pytest.raises(ValueError, match="provider_options has 2 entries for 1 providers"):
        sarai_rt.InferenceSession(WHISPER, providers=["CPUExecutionProvider"], provider_options=[{}, {}])
    s = sarai_rt.InferenceSession(WHISPER, threads=1)
    ro = sarai_rt.RunOptions()
    ro.terminate = True
    with pytest.raises(sarai_rt.InvalidArgument, match="terminate"):
        s.run(None, {"mel": mel(30)}, ro)
    ro.terminate = False
    assert len(s.run(None, {"mel": mel(30)}, ro)) == 1  # usable


def test_model_metadata_as_onnxruntime_reports_it(tmp):
    """get_modelmeta(): what e.g. an OCR wrapper reads its characters from,
    on the ONNX model and on the blob converted from it."""
    import onnx
    from onnx import TensorProto, helper
    w = helper.make_tensor("w", TensorProto.FLOAT, [64, 32], np.full(64 * 32, 0.01, np.float32))
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")], "rec_graph",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 32])], [w],
                              doc_string="the graph")
    model = helper.make_model(graph, producer_name="paddle2onnx", opset_imports=[helper.make_opsetid("", 17)],
                              doc_string="a recognizer", domain="ai.example", model_version=3)
    helper.set_model_props(model, {"character": "a\nb\n\u00e9", "shape": "[3, 48, 320]"})
    path = os.path.join(tmp, "meta.onnx")
    onnx.save(model, path)
    blob = os.path.join(tmp, "meta.sarai")
    subprocess.run([CLI, "convert", path, "-o", blob, "-q", "--no-check"], check=True, capture_output=True)
    for p in (path, blob):
        meta = sarai_rt.InferenceSession(p, threads=1).get_modelmeta()
        assert meta.producer_name == "paddle2onnx"
        assert meta.graph_name == "rec_graph"
        assert meta.domain == "ai.example"
        assert meta.description == "a recognizer"
        assert meta.graph_description == "the graph"
        assert meta.version == 3
        assert meta.custom_metadata_map == {"character": "a\nb\n\u00e9", "shape": "[3, 48, 320]"}
    s = sarai_rt.InferenceSession(blob, threads=1)
    s.close()
    with pytest.raises(sarai_rt.InvalidArgument, match="closed"):
        s.get_modelmeta()


def test_convert_and_quantize_dynamic(tmp):
    """sarai_rt.convert and ONNX Runtime's quantize_dynamic: a blob equal to
    the CLI's, a quantized ONNX whose weight encoding follows weight_type,
    excluded nodes kept in FP32, errors as exceptions, the source untouched."""
    from sarai_rt.quantization import QuantType, quantize_dynamic
    blob = os.path.join(tmp, "api.sarai")
    r = sarai_rt.convert(WHISPER, blob)
    assert r["format"] == "sarai" and r["quantized"] > 0 and r["kept_fp32"] == 0 and r["bytes_out"] > 0
    cli_blob = os.path.join(tmp, "cli.sarai")
    subprocess.run([CLI, "convert", WHISPER, "-o", cli_blob, "-q", "--no-check"], check=True, capture_output=True)
    x = {"mel": mel(30)}
    [a] = sarai_rt.InferenceSession(blob, threads=1).run(None, x)
    [b] = sarai_rt.InferenceSession(cli_blob, threads=1).run(None, x)
    assert np.array_equal(a, b)

    onnx_out = os.path.join(tmp, "api.int8.onnx")
    assert sarai_rt.convert(WHISPER, onnx_out)["format"] == "onnx"
    assert os.path.exists(onnx_out + ".data")
    meta = sarai_rt.InferenceSession(onnx_out, threads=1).get_modelmeta().custom_metadata_map
    assert meta["sarai.onnx_weights"] == "u8"

    for kwargs, weights in [({}, "u8"), ({"weight_type": QuantType.QUInt8}, "u8"),
                            ({"weight_type": QuantType.QInt8}, "s8"), ({"reduce_range": True}, "s7")]:
        out = os.path.join(tmp, "qd.onnx")
        quantize_dynamic(WHISPER, out, **kwargs)
        meta = sarai_rt.InferenceSession(out, threads=1).get_modelmeta().custom_metadata_map
        assert meta["sarai.onnx_weights"] == weights, kwargs

    import onnx
    first_matmul = next(n.name for n in onnx.load(WHISPER).graph.node if n.op_type == "MatMul")
    excl = os.path.join(tmp, "excl.sarai")
    quantize_dynamic(WHISPER, excl, nodes_to_exclude=[first_matmul])
    assert r["quantized"] - 1 == sarai_rt.convert(WHISPER, excl, keep_fp32=[first_matmul])["quantized"]

    with pytest.raises(sarai_rt.InvalidArgument, match="op_types_to_quantize"):
        quantize_dynamic(WHISPER, excl, op_types_to_quantize=["MatMul"])
    with pytest.raises(sarai_rt.InvalidArgument, match="format 'tflite'"):
        sarai_rt.convert(WHISPER, excl, to="tflite")
    with pytest.raises(sarai_rt.InvalidArgument, match="attention 'int4'"):
        sarai_rt.convert(WHISPER, excl, attention="int4")
    with pytest.raises(sarai_rt.InvalidArgument, match="matmul activations 'per-channel'"):
        sarai_rt.convert(WHISPER, excl, matmul_activations="per-channel")
    # X per tensor: the CLI's --matmul-activations per-tensor blob, bit for bit.
    pt = os.path.join(tmp, "pt.sarai")
    sarai_rt.convert(WHISPER, pt, matmul_activations="per-tensor", depthwise_activations="per-tensor")
    cli_pt = os.path.join(tmp, "cli_pt.sarai")
    subprocess.run([CLI, "convert", WHISPER, "-o", cli_pt, "-q", "--no-check", "--matmul-activations", "per-tensor",
                    "--depthwise-activations", "per-tensor"], check=True, capture_output=True)
    [c] = sarai_rt.InferenceSession(pt, threads=1).run(None, x)
    [d] = sarai_rt.InferenceSession(cli_pt, threads=1).run(None, x)
    assert np.array_equal(c, d) and not np.array_equal(a, c)
    with pytest.raises(sarai_rt.IoError, match="nope.onnx"):
        sarai_rt.convert(os.path.join(tmp, "nope.onnx"), excl)
    with pytest.raises(sarai_rt.Error, match="does not exist"):
        sarai_rt.convert(WHISPER, os.path.join(tmp, "no_such_dir", "x.sarai"))
    # The source is never the output, for the .onnx nor its .data.
    src = os.path.join(tmp, "src.onnx")
    shutil.copy(WHISPER, src)
    before = open(src, "rb").read()
    with pytest.raises(sarai_rt.Error, match="overwrite the source"):
        sarai_rt.convert(src, src)
    with pytest.raises(sarai_rt.Error, match="source file"):  # a blob over the .onnx: convert_to_blob's words
        sarai_rt.convert(src, src, to="sarai")
    assert open(src, "rb").read() == before


def test_ctrl_c_stops_a_conversion_and_writes_nothing(tmp):
    """A SIGINT during sarai_rt.convert (GIL released) raises KeyboardInterrupt
    at the converter's next progress call, with no output left behind."""
    import signal
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    w = numpy_helper.from_array(np.random.default_rng(0).standard_normal((4096, 4096)).astype(np.float32), "w")
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4096])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4096])], [w])
    src = os.path.join(tmp, "big64mb.onnx")
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), src)
    out = os.path.join(tmp, "big64mb.sarai")
    hits = []

    def once(signum, frame):  # later signals (none expected) are only counted
        hits.append(signum)
        if len(hits) == 1:
            raise KeyboardInterrupt

    started = threading.Event()

    def interrupt():
        started.wait()
        time.sleep(0.005)
        os.kill(os.getpid(), signal.SIGINT)

    previous = signal.signal(signal.SIGINT, once)
    try:
        t = threading.Thread(target=interrupt)
        t.start()
        with pytest.raises(KeyboardInterrupt):
            started.set()
            sarai_rt.convert(src, out)  # 64 MB: hundreds of ms, the signal lands inside
        t.join()
    finally:
        signal.signal(signal.SIGINT, previous)
    assert hits == [signal.SIGINT]
    assert not os.path.exists(out)
    assert not [f for f in os.listdir(tmp) if ".tmp-" in f]
    # And without the interruption it converts.
    assert sarai_rt.convert(src, out)["quantized"] == 1


def test_result_cache_serves_a_second_identical_request():
    s = sarai_rt.InferenceSession(WHISPER, threads=1, cache_size=2)
    x = mel(100)
    [a] = s.run(None, {"mel": x})
    [b] = s.run(None, {"mel": x.copy()})
    assert np.array_equal(a, b)
    c = s.cache_counters()
    assert (c["hits"], c["misses"], c["entries"]) == (1, 1, 1)


def test_a_closed_session_raises_and_close_is_idempotent():
    with sarai_rt.InferenceSession(WHISPER, threads=1) as s:
        s.run(None, {"mel": mel(30)})
    assert s.closed
    s.close()
    with pytest.raises(sarai_rt.InvalidArgument, match="closed session"):
        s.run(None, {"mel": mel(30)})
    with pytest.raises(sarai_rt.InvalidArgument, match="closed session"):
        s.cache_counters()


def test_the_gil_is_released_while_running():
    s = sarai_rt.InferenceSession(WHISPER, threads=1)
    x = mel(3000)
    s.run(None, {"mel": x})  # planned
    ticks = 0
    done = threading.Event()

    def work():
        for _ in range(5):
            s.run(None, {"mel": x})
        done.set()
    t0 = time.perf_counter()
    th = threading.Thread(target=work)
    th.start()
    while not done.is_set():
        ticks += 1
        time.sleep(0)
    th.join()
    elapsed = time.perf_counter() - t0
    # Holding the GIL through a run would starve this loop for all of it;
    # released, the loop spins the whole time (~1e5 turns per second).
    assert ticks > 1000 * elapsed, (ticks, elapsed)


def test_concurrent_calls_on_one_session_match_sequential_ones(whisper_blob):
    s = sarai_rt.InferenceSession(whisper_blob, threads=1)
    feeds = [mel(20 + 10 * (i % 4), seed=i) for i in range(8)]
    want = [s.run(None, {"mel": f})[0] for f in feeds]
    errors = []

    def work(i):
        try:
            for _ in range(3):
                [y] = s.run(None, {"mel": feeds[i]})
                if not np.array_equal(y, want[i]):
                    errors.append(f"thread {i}: differs")
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(f"thread {i}: {e!r}")
    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_a_float16_model_takes_and_gives_float16(tmp):
    # loader/fp16_upcast.h: float16 weights computed in float32, float16 at the interface.
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    rng = np.random.default_rng(3)
    w = rng.uniform(-1, 1, (4, 3)).astype(np.float16)
    b = rng.uniform(-1, 1, (3,)).astype(np.float16)
    g = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["m"]), helper.make_node("Add", ["m", "b"], ["y"])],
                          "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT16, [2, 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT16, [2, 3])],
                          [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")])
    path = os.path.join(tmp, "fp16.onnx")
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), path)
    s = sarai_rt.InferenceSession(path, threads=1)
    assert [(i.name, i.type) for i in s.get_inputs()] == [("x", "tensor(float16)")]
    assert [(o.name, o.type) for o in s.get_outputs()] == [("y", "tensor(float16)")]
    x = rng.uniform(-1, 1, (2, 4)).astype(np.float16)
    [y] = s.run(None, {"x": x})
    assert y.dtype == np.float16 and y.shape == (2, 3)
    ref = (x.astype(np.float32) @ w.astype(np.float32) + b.astype(np.float32)).astype(np.float16)
    np.testing.assert_allclose(y.astype(np.float32), ref.astype(np.float32), rtol=1e-3, atol=1e-3)
    with pytest.raises(sarai_rt.BadInput, match="must be tensor\\(float16\\)"):
        s.run(None, {"x": x.astype(np.float32)})
