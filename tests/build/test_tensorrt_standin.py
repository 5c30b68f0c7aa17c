"""How qdqtool handles TensorRT's answers, driven by a STAND-IN for the tensorrt module (tests/build/trt_standin.py).
These prove our control flow (log routing, skipped latency, clear errors, fallbacks), not what TensorRT does."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from qdqtool.cli.main import cli
from tiny_build import tiny_qdq_conv
from trt_standin import STANDIN_LAYER_INFO, DataType, Script, Severity, Tensor, TensorIOMode, install

from qdqtool.build import tensorrt_backend
from qdqtool.build.config import BuildConfig
from qdqtool.build.pipeline import choose_backend
from qdqtool.build.tensorrt_backend import build_with_tensorrt, tensorrt_status
from qdqtool.build.tensorrt_status import TensorRTUnavailable, TrtProblem
from qdqtool.build.trt_latency import ExecutionFailed, engine_latency
from qdqtool.errors import ModelError

WARNING = "[standin] Detected layers running in FP32 after INT8 calibration"


@pytest.fixture
def model(tmp_path):
    path = tmp_path / "tiny.qdq.onnx"
    tiny_qdq_conv(path)
    return path


def _config(model, **options) -> BuildConfig:
    options = {"runs": 3, "warmup": 1, **options}
    return BuildConfig(model=model, engine=model.with_name("tiny.plan"), backend="trt", **options)


def _cli(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_tensorrt_log_goes_to_stderr_and_json_stdout_stays_clean(monkeypatch, model):
    install(monkeypatch, Script(build_messages=((Severity.WARNING, WARNING), (Severity.INFO, "[standin] info"))))
    report = model.with_name("layers.json")
    result = _cli("build", model, "-o", model.with_name("tiny.plan"), "--backend", "trt", "--json", "--runs", "2",
                  "--report", report)
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)  # nothing but the JSON document on stdout
    assert payload["backend"] == "tensorrt 10.16.1.11" and payload["engine"].endswith("tiny.plan")
    assert f"qdqtool: WARNING: TensorRT: {WARNING}" in result.stderr
    assert "[standin] info" not in result.stderr  # INFO needs -v
    assert json.loads(report.read_text())["layers"][0]["precision"] == "fp32"


@pytest.mark.parametrize("flags, shown, hidden", [
    ([], [WARNING], ["[standin] info", "[standin] verbose"]),
    (["-v"], [WARNING, "[standin] info"], ["[standin] verbose"]),
    (["-vv"], [WARNING, "[standin] info", "[standin] verbose"], []),
    (["-q"], [], [WARNING, "[standin] info"]),
])
def test_verbosity_flags_decide_which_tensorrt_severities_show(monkeypatch, model, flags, shown, hidden):
    messages = ((Severity.WARNING, WARNING), (Severity.INFO, "[standin] info"),
                (Severity.VERBOSE, "[standin] verbose"))
    install(monkeypatch, Script(build_messages=messages))
    result = _cli(*flags, "build", model, "-o", model.with_name("tiny.plan"), "--backend", "trt", "--no-latency")
    assert result.exit_code == 0, result.output
    assert all(text in result.stderr for text in shown)
    assert not any(text in result.stderr for text in hidden)
    assert not any(text in result.stdout for text in shown + hidden)


def test_probe_without_gpu_falls_back_quietly_and_says_why(monkeypatch, model):
    install(monkeypatch, Script(builder_raises=True))
    monkeypatch.setattr(tensorrt_backend, "wheel_cuda_major", lambda: 13)
    monkeypatch.setattr(tensorrt_backend, "driver_cuda_version", lambda: None)
    status = tensorrt_status()
    assert not status.usable and status.problem is TrtProblem.NO_GPU
    assert "CUDA initialization failure" in status.reason and "driver/CUDA mismatch?" in status.reason
    result = _cli("build", model, "-o", model.with_name("tiny.ort.onnx"), "--json", "--no-latency")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["backend"].startswith("onnxruntime")
    assert any(n.startswith("backend ort: TensorRT 10.16.1.11 sees no usable GPU") for n in payload["notes"])
    assert "CUDA initialization failure" not in result.stderr  # the probe's own log is debug output


def test_driver_older_than_the_wheel_cuda_is_named(monkeypatch):
    install(monkeypatch, Script(version="11.4.0.106", builder_raises=True))
    monkeypatch.setattr(tensorrt_backend, "wheel_cuda_major", lambda: 13)
    monkeypatch.setattr(tensorrt_backend, "driver_cuda_version", lambda: (12, 4))
    status = tensorrt_status()
    assert status.problem is TrtProblem.DRIVER_MISMATCH
    assert "CUDA 13 wheel" in status.reason and "supports CUDA 12.4" in status.reason and "r580" in status.reason
    with pytest.raises(TensorRTUnavailable) as info:
        choose_backend("trt")
    assert info.value.problem is TrtProblem.DRIVER_MISMATCH


def test_oserror_on_import_falls_back_in_auto(monkeypatch):
    def broken():
        raise OSError("[WinError 126] The specified module could not be found: nvinfer_10.dll")

    monkeypatch.setattr(tensorrt_backend, "_import_tensorrt_module", broken)
    status = tensorrt_status()
    assert status.problem is TrtProblem.BROKEN_INSTALL and "nvinfer_10.dll" in status.reason
    backend, _, why = choose_backend("auto")
    assert backend == "ort" and why.endswith("using ONNX Runtime")
    with pytest.raises(TensorRTUnavailable) as info:
        choose_backend("trt")
    assert info.value.problem is TrtProblem.BROKEN_INSTALL


@pytest.mark.parametrize("version, problem", [("8.6.1", TrtProblem.TOO_OLD), ("unknown", TrtProblem.BROKEN_INSTALL)])
def test_old_or_unreadable_tensorrt_is_refused_with_its_cause(monkeypatch, version, problem):
    install(monkeypatch, Script(version=version))
    assert tensorrt_status().problem is problem and choose_backend("auto")[0] == "ort"
    with pytest.raises(TensorRTUnavailable) as info:
        choose_backend("trt")
    assert info.value.problem is problem and "pip install" in str(info.value)


def test_data_dependent_output_skips_latency_and_keeps_engine_and_report(monkeypatch, model):
    script = Script(tensors=[Tensor("x", TensorIOMode.INPUT, (1, 3, 32, 32)),
                             Tensor("boxes", TensorIOMode.OUTPUT, (-1, 4), runtime_shape=(-1, 4))])
    install(monkeypatch, script)
    report = model.with_name("layers.json")
    result = _cli("build", model, "-o", model.with_name("tiny.plan"), "--backend", "trt", "--report", report)
    assert result.exit_code == 0, result.output
    notes = json.loads(report.read_text())["notes"]
    assert any(n.startswith("latency skipped: output 'boxes' has a data-dependent shape (?x4") for n in notes)
    assert model.with_name("tiny.plan").read_bytes() == b"standin-engine"
    assert not any(call[0] == "execute_async_v3" for call in script.calls)


def test_unsupported_dtype_skips_latency_with_a_note(monkeypatch, model):
    install(monkeypatch, Script(tensors=[Tensor("x", TensorIOMode.INPUT, (1, 3, 32, 32)),
                                         Tensor("y", TensorIOMode.OUTPUT, (1, 8, 32, 32), DataType.BF16)]))
    result = build_with_tensorrt(_config(model))
    assert result.report.latency is None and result.engine.is_file()
    assert any(n.startswith("latency skipped: a tensor has data type BF16") for n in result.report.notes)


def test_input_shapes_are_set_before_any_tensor_is_sized(monkeypatch, model, tmp_path):
    """Outputs listed first and a dynamic input: every set_input_shape comes before the first get_tensor_shape."""
    from qdqtool.build.shapes import parse_shapes

    dynamic = tmp_path / "dynamic.onnx"
    tiny_qdq_conv(dynamic, shape=(None, 3, None, None))
    script = Script(tensors=[Tensor("y", TensorIOMode.OUTPUT, (1, 8, 32, 32)),
                             Tensor("x", TensorIOMode.INPUT, (-1, 3, -1, -1))])
    install(monkeypatch, script)
    shapes = parse_shapes("x:1x3x16x16/1x3x32x32/2x3x64x64")
    result = build_with_tensorrt(_config(dynamic, shapes=shapes, reference=None))
    names = [call[0] for call in script.calls]
    assert names.index("get_tensor_shape") > names.index("set_input_shape")
    assert script.builds[0]["profiles"] == [{"x": ((1, 3, 16, 16), (1, 3, 32, 32), (2, 3, 64, 64))}]
    context = script.inspectors[0].execution_context  # layer info read at the opt shape, not "N/A (dynamic)"
    assert context is not None and context.shapes == {"x": (1, 3, 32, 32)}
    assert result.report.latency is not None and result.report.latency.engine.runs == 3
    assert (4 * 3 * 32 * 32) in [nbytes for _, had_data, nbytes in script.fills if had_data]  # the opt-shape feed


def test_false_from_execute_async_v3_is_a_clear_error_and_the_report_survives(monkeypatch, model, caplog):
    script = Script(execute_ok=False)
    trt = install(monkeypatch, script)
    engine = trt.Runtime(None).deserialize_cuda_engine(b"")
    with pytest.raises(ExecutionFailed, match="execute_async_v3 returned False"):
        engine_latency(trt, engine, {}, {}, runs=3, warmup=0)
    result = build_with_tensorrt(_config(model))
    assert result.engine.is_file() and result.report.latency is None
    assert any(n.startswith("latency failed: TensorRT's execute_async_v3 returned False") for n in result.report.notes)
    assert "execute_async_v3 returned False" in caplog.text


def test_none_engine_is_a_clear_error(monkeypatch, model):
    install(monkeypatch, Script(engine_none=True))
    with pytest.raises(ModelError, match="could not load it back"):
        build_with_tensorrt(_config(model))


def test_failed_build_quotes_tensorrt_and_writes_nothing(monkeypatch, model):
    install(monkeypatch, Script(build_returns_none=True))
    with pytest.raises(ModelError, match=r"no implementation for a layer") as info:
        build_with_tensorrt(_config(model))
    assert "-vv" not in str(info.value) and not model.with_name("tiny.plan").exists()


def test_tensorrt_10_times_fp32_and_fp16_references_in_the_same_run(monkeypatch, model):
    script = Script()
    install(monkeypatch, script)
    result = build_with_tensorrt(_config(model))
    assert [b["builder_flags"] for b in script.builds] == [[], [], ["FP16"]]
    assert script.builds[0]["network_flags"] == 1 << 1  # INT8 engine: 1 << STRONGLY_TYPED (= 1 in TensorRT 10)
    assert [b["network_flags"] for b in script.builds[1:]] == [0, 0]   # references weakly typed
    assert [b["cleared_flags"] for b in script.builds] == [[], ["TF32"], []]  # the FP32 reference is not TF32
    assert script.builds[0]["model"] == str(model) and script.builds[1]["model"] != str(model)
    latency = result.report.latency
    assert latency.reference is not None and latency.reference_name == "the model without Q/DQ (FP32)"
    assert any(n.startswith("INT8/FP16 latency ratio 1.00") for n in result.report.notes)


def test_tensorrt_11_fp16_reference_needs_the_converter(monkeypatch, model):
    script = Script(version="11.4.0.106")
    install(monkeypatch, script)
    result = build_with_tensorrt(_config(model))  # with or without onnxconverter-common installed
    assert all(b["builder_flags"] == [] and b["network_flags"] == 0 for b in script.builds)
    assert script.builds[1]["cleared_flags"] == ["TF32"]  # TensorRT 11 keeps TF32 (and has no INT8/FP16 flags)
    converter = any(n.startswith("INT8/FP16 latency ratio") for n in result.report.notes)
    skipped = any(n.startswith("FP16 reference skipped") and "onnxconverter-common" in n for n in result.report.notes)
    assert converter != skipped and len(script.builds) == (3 if converter else 2)


def test_unknown_precision_names_are_listed(monkeypatch, model):
    info = json.loads(STANDIN_LAYER_INFO)
    info["Layers"].append({"Name": "mystery", "LayerType": "Pointwise",
                           "Outputs": [{"Name": "z", "Format": "Row major linear", "DataType": "kFP8E5M2"}]})
    install(monkeypatch, Script(layer_info=json.dumps(info)))
    result = build_with_tensorrt(_config(model, measure_latency=False))
    assert "precision unknown: 1 layers, names seen: 'kFP8E5M2', 'Row major linear'; these layers count neither " \
           "as int8 nor as float in the summary and the gates" in result.report.notes


def test_tensorrt_11_refuses_fp16_as_a_usage_error_naming_the_option(monkeypatch, model):
    install(monkeypatch, Script(version="11.4.0.106"))
    result = _cli("build", model, "-o", model.with_name("tiny.plan"), "--backend", "trt", "--fp16")
    assert result.exit_code == 2 and "TensorRT 11 builds strongly typed" in result.stderr
    assert "(see --fp16)" in result.stderr
    assert not model.with_name("tiny.plan").exists()


def test_parser_rejection_names_the_nodes(monkeypatch, model):
    install(monkeypatch, Script(parser_errors=(("/model.0/conv/Conv", "Conv", "weights must be constant"),
                                               ("", "", "graph has no outputs"))))
    with pytest.raises(ModelError) as info:
        build_with_tensorrt(_config(model))
    expected = "node '/model.0/conv/Conv' (Conv): weights must be constant; the model: graph has no outputs"
    assert expected in str(info.value)


def test_workspace_and_detailed_profiling_are_set(monkeypatch, model):
    script = Script()
    install(monkeypatch, script)
    build_with_tensorrt(_config(model, workspace_mib=256, measure_latency=False))
    assert script.builds[0]["workspace"] == 256 << 20 and script.builds[0]["verbosity"] == "DETAILED"


def test_no_cuda_buffers_skips_latency_with_what_to_install(monkeypatch, model):
    from qdqtool.build import trt_latency
    from qdqtool.errors import BackendUnavailable

    install(monkeypatch, Script())

    def no_device():
        raise BackendUnavailable("latency needs CUDA buffers: pip install 'qdqtool[trt]'")

    monkeypatch.setattr(trt_latency, "open_cuda_device", no_device)
    result = build_with_tensorrt(_config(model))
    assert result.engine.is_file() and result.report.latency is None
    assert "latency skipped: latency needs CUDA buffers: pip install 'qdqtool[trt]'" in result.report.notes


def test_wheel_cuda_major_from_the_installed_distribution(monkeypatch):
    from importlib import metadata

    from qdqtool.build import tensorrt_status as status_module

    installed = {"tensorrt-cu12": "10.16.1.11"}

    def version(name):
        if name not in installed:
            raise metadata.PackageNotFoundError(name)
        return installed[name]

    monkeypatch.setattr(status_module.metadata, "version", version)
    assert status_module.wheel_cuda_major() == 12
    installed.clear()
    assert status_module.wheel_cuda_major() is None


def _dynamic(tmp_path, **script_options):
    from qdqtool.build.shapes import parse_shapes

    dynamic = tmp_path / "dynamic.onnx"
    tiny_qdq_conv(dynamic, shape=(None, 3, None, None))
    script = Script(tensors=[Tensor("x", TensorIOMode.INPUT, (-1, 3, -1, -1)),
                             Tensor("y", TensorIOMode.OUTPUT, (1, 8, 32, 32))], **script_options)
    return dynamic, script, parse_shapes("x:1x3x16x16/1x3x32x32/2x3x64x64")


def test_a_profile_tensorrt_refuses_is_a_setting_error(monkeypatch, tmp_path):
    """add_optimization_profile returns -1 for a profile TensorRT finds invalid: said, not built on."""
    from qdqtool.build.config import BuildSettingError

    dynamic, script, shapes = _dynamic(tmp_path, profile_invalid=True)
    install(monkeypatch, script)
    with pytest.raises(BuildSettingError, match="TensorRT refused the shape profile x:1x3x16x16/1x3x32x32/2x3x64x64"):
        build_with_tensorrt(_config(dynamic, shapes=shapes))
    assert script.builds == [] and not dynamic.with_name("tiny.plan").exists()


def test_an_input_shape_tensorrt_refuses_is_said(monkeypatch, tmp_path):
    """set_input_shape returns False for a shape outside the profile: an error, not a report at no shape."""
    from qdqtool.build.config import BuildSettingError

    dynamic, script, shapes = _dynamic(tmp_path, shape_refused=True)
    install(monkeypatch, script)
    with pytest.raises(BuildSettingError, match="refused the opt shape 1x3x32x32 of input 'x'"):
        build_with_tensorrt(_config(dynamic, shapes=shapes, measure_latency=False))


@pytest.mark.parametrize("version, strongly_typed, has_int8", [("10.16.1.11", 1, True), ("11.1.0.1", 0, False)])
def test_the_standin_flags_have_tensorrts_values(version, strongly_typed, has_int8):
    """include/NvInfer.h of TensorRT 10.16 and 11.1: what the flag arithmetic in trt_engine relies on."""
    from trt_standin import version_enums

    network, builder = version_enums(version)
    assert int(network.STRONGLY_TYPED) == strongly_typed and int(builder.TF32) == 6
    assert hasattr(builder, "INT8") == has_int8 == hasattr(builder, "FP16")
