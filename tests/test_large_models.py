"""Models with external data, through every command: outputs carry their data file beside them, written as a set,
never over the input's data file; byte-identical across runs. The >2 GB case itself runs in `make bench`
(bench/bench_large.py); here the 2 GB limit is lowered so the large-model code paths run on a few MB."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import onnx
import pytest
import tiny
from click.testing import CliRunner
from qdqtool.cli.main import cli

from qdqtool import weightstore
from qdqtool.onnxgraph.prepare import load_model_with_data_files
from qdqtool.runner import create_session

CHANNELS, SIDE = 32, 16


def external_model(folder: Path, name: str = "m.onnx", location: str | None = None) -> Path:
    """A residual block and a Gemm head (about 4 MB of weights) saved with every weight in a data file."""
    b = tiny.Builder(seed=3)
    x = b.input("x", [1, 3, SIDE, SIDE])
    stem = b.op("Relu", [b.conv(x, 3, CHANNELS, "stem")], "stem_relu")
    y = b.op("Relu", [b.conv(stem, CHANNELS, CHANNELS, "conv1")], "relu1")
    y = b.op("Relu", [b.op("Add", [b.conv(y, CHANNELS, CHANNELS, "conv2"), stem], "add")], "relu2")
    flat = b.op("Flatten", [y], "flatten")
    w = b.const((b.rng.standard_normal((CHANNELS * SIDE * SIDE, 128)) * 0.01).astype(np.float32))
    model = b.model([b.op("Gemm", [flat, w], "fc")])
    folder.mkdir(parents=True, exist_ok=True)
    onnx.save(model, folder / name, save_as_external_data=True, location=location or name + ".data",
              size_threshold=1024)
    return folder / name


def samples(folder: Path, count: int = 4) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for index in range(count):
        np.save(folder / f"s{index}.npy", rng.standard_normal((1, 3, SIDE, SIDE)).astype(np.float32))
    return folder


def invoke(*args):
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.fixture(params=["external", "over-the-limit"])
def limit(request, monkeypatch):
    """external: the input's format is kept; over-the-limit: the 2 GB limit lowered to 1 MB, so every proto this
    run builds counts as too large for one protobuf (sessions from files, ORT's optimised graph with a data file)."""
    if request.param == "over-the-limit":
        monkeypatch.setattr(weightstore, "INLINE_LIMIT", 1_000_000)
    return request.param


def test_every_command_on_an_external_data_model(tmp_path, limit):
    source = external_model(tmp_path / "in")
    data = samples(tmp_path / "data")
    before = digests(source.parent)
    out = tmp_path / "out" / "m.qdq.onnx"
    out.parent.mkdir()
    invoke("calibrate", source, "--data", data, "-o", out, "--cache", out.parent / "m.cache")
    assert digests(source.parent) == before  # the input and its data file are untouched
    assert (out.parent / "m.qdq.onnx.data").is_file() and not list(out.parent.glob(".*"))
    _, files = load_model_with_data_files(out)
    assert files == ((out.parent / "m.qdq.onnx.data").resolve(),)
    feed = {"x": np.ones((1, 3, SIDE, SIDE), np.float32)}
    reference = create_session(source).run(None, feed)[0]
    quantized = create_session(out).run(None, feed)[0]
    assert np.abs(quantized - reference).max() <= 0.1 * np.abs(reference).max()
    fixed = tmp_path / "out" / "m.fixed.onnx"
    invoke("fix-residuals", out, "-o", fixed, "--data", data)
    assert (fixed.parent / "m.fixed.onnx.data").is_file()
    assert "counts:" in invoke("check", fixed).output
    engine = tmp_path / "out" / "m.engine"
    invoke("build", fixed, "--backend", "ort", "-o", engine, "--runs", "1", "--warmup", "0")
    assert engine.is_file() and not list(out.parent.glob(".*"))
    onnx.load(str(engine), load_external_data=True)  # the engine set is complete (its data file too, if any)


def test_outputs_are_byte_identical_across_runs_and_fix_is_a_fixed_point(tmp_path, limit):
    source = external_model(tmp_path / "in")
    data = samples(tmp_path / "data")
    runs = []
    for run in ("a", "b"):
        folder = tmp_path / run
        folder.mkdir()
        invoke("calibrate", source, "--data", data, "-o", folder / "m.onnx", "--cache", folder / "m.cache",
               "--keep-float", "1")
        invoke("fix-residuals", folder / "m.onnx", "-o", folder / "fixed.onnx", "--data", data)
        invoke("fix-residuals", folder / "fixed.onnx", "-o", folder / "again.onnx", "--data", data)
        runs.append(digests(folder))
    assert runs[0] == runs[1]
    assert set(runs[0]) == {"m.onnx", "m.onnx.data", "m.ranges.json", "m.cache", "fixed.onnx", "fixed.onnx.data",
                            "again.onnx", "again.onnx.data"}
    folder = tmp_path / "a"
    assert (folder / "fixed.onnx.data").read_bytes() == (folder / "again.onnx.data").read_bytes()
    fixed = onnx.load(str(folder / "fixed.onnx"), load_external_data=False)
    again = onnx.load(str(folder / "again.onnx"), load_external_data=False)
    for tensor in again.graph.initializer:  # the only difference allowed: the data file's name
        for entry in tensor.external_data:
            if entry.key == "location":
                entry.value = "fixed.onnx.data"
    assert again.SerializeToString(deterministic=True) == fixed.SerializeToString(deterministic=True)


def test_output_never_replaces_the_inputs_data_file(tmp_path):
    source = external_model(tmp_path, "a.onnx", location="b.onnx.data")  # a.onnx keeps its weights in b.onnx.data
    data = samples(tmp_path / "data")
    before = digests(tmp_path)
    result = CliRunner().invoke(cli, ["calibrate", str(source), "--data", str(data), "-o", str(tmp_path / "b.onnx")])
    assert result.exit_code == 1 and "holds the input model's weights" in result.stderr
    assert digests(tmp_path) == before


def test_skeleton_copy_then_fill_is_byte_exact_and_leaves_the_source_alone():
    model = tiny.resnet_block(channels=16)
    expected = model.SerializeToString(deterministic=True)
    skeleton = weightstore.skeleton_copy(model)
    assert skeleton.ByteSize() < len(expected) // 2
    assert model.SerializeToString(deterministic=True) == expected
    again = weightstore.skeleton_copy(skeleton)
    weightstore.fill_weights(again, skeleton)  # a skeleton has no bytes to give: the tensors stay detached
    assert again.SerializeToString(deterministic=True) == skeleton.SerializeToString(deterministic=True)
    weightstore.fill_weights(skeleton, model)
    assert skeleton.SerializeToString(deterministic=True) == expected


def test_streamed_write_of_a_skeleton_equals_the_write_of_the_filled_model(tmp_path):
    model = tiny.resnet_block(channels=16)
    skeleton = weightstore.skeleton_copy(model)
    source = {t.name: t for t in model.graph.initializer}
    asked = []

    def weights(tensor):
        asked.append(tensor.name)
        return memoryview(source[tensor.name].raw_data)

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    weightstore.write_with_external_data(model, tmp_path / "a" / "m.onnx", "m.data", durable=False)
    weightstore.write_with_external_data(skeleton, tmp_path / "b" / "m.onnx", "m.data", durable=False, weights=weights)
    assert asked and set(asked) == {t.name for t in skeleton.graph.initializer if weightstore.is_detached(t)}
    assert digests(tmp_path / "a") == digests(tmp_path / "b")


def test_the_float_model_is_made_on_demand_and_streams_to_the_same_session(tmp_path):
    import tiny_qdq

    from qdqtool.onnxgraph.qdqview import read_qdq

    model = tiny_qdq.ort_static(tiny.resnet_block(channels=8))   # int8 weights behind DequantizeLinear
    view = read_qdq(model)
    detached = [t.name for t in view.float_graph.graph.initializer if weightstore.is_detached(t)]
    assert set(view.dequantized) <= set(detached) and view.dequantized
    assert "float_model" not in view.__dict__        # nothing dequantized yet (check and fix plans never need it)
    assert not any(weightstore.is_detached(t) for t in view.float_model.graph.initializer)
    assert weightstore.float_weight_bytes(view.float_graph) == weightstore.float_weight_bytes(view.float_model)
    feed = tiny.random_feed(model, 0)
    whole = create_session(view.float_model, optimize=False).run(None, feed)
    streamed = create_session(view.float_graph, optimize=False, weights=view.float_weight).run(None, feed)
    assert all(np.array_equal(a, b) for a, b in zip(whole, streamed))


def test_a_lean_session_gives_the_same_outputs(monkeypatch):
    model = tiny.resnet_block(channels=8)
    feed = tiny.random_feed(model, 1)
    usual = create_session(model).run(None, feed)
    assert not weightstore.needs_lean_session(model)
    monkeypatch.setattr(weightstore, "PREPACK_LIMIT", 1000)   # no pre-packing, no arena: memory, not results
    assert weightstore.needs_lean_session(model)
    lean = create_session(model).run(None, feed)
    assert all(np.array_equal(a, b) for a, b in zip(usual, lean))


def test_check_reads_the_graph_and_scales_but_never_the_large_weights(tmp_path, monkeypatch):
    from qdqtool.onnxgraph import prepare

    source = external_model(tmp_path / "in")
    out = tmp_path / "out" / "m.qdq.onnx"
    out.parent.mkdir()
    invoke("calibrate", source, "--data", samples(tmp_path / "data"), "-o", out)
    before = invoke("check", out, "--json").output
    monkeypatch.setattr(prepare, "SMALL_TENSOR_BYTES", 4096)   # the int8 conv and Gemm weights are larger
    graph = prepare.load_model_graph(out)
    detached = [t.name for t in graph.graph.initializer if weightstore.is_detached(t)]
    assert len(detached) >= 3   # conv1, conv2 and the Gemm
    data = out.parent / "m.qdq.onnx.data"
    data.write_bytes(b"")   # the large weights' bytes are gone: reading any of them would fail
    assert invoke("check", out, "--json").output == before
    assert '"int8"' in before or "int8" in before


def test_weights_on_file_are_read_one_at_a_time_and_written_as_the_loaded_model(tmp_path):
    source = external_model(tmp_path / "in")
    loaded = onnx.load(str(source))
    model = onnx.load(str(source), load_external_data=False)
    assert weightstore.refer_to_files(model, source.parent) == sum(
        t.data_location == onnx.TensorProto.EXTERNAL for t in model.graph.initializer) > 0
    on_file = [t for t in model.graph.initializer if weightstore.is_on_file(t)]
    assert on_file and model.ByteSize() < 20_000 and weightstore.needs_external_data(model)
    assert sum(len(t.raw_data) for t in loaded.graph.initializer if t.data_location != 1) <= weightstore.weight_bytes(
        model) <= weightstore.weight_bytes(loaded)
    values = {t.name: t for t in loaded.graph.initializer}
    for tensor in on_file:
        assert np.array_equal(weightstore.tensor_array(tensor), onnx.numpy_helper.to_array(values[tensor.name]))
    copy = weightstore.skeleton_copy(model)   # copies carry the references, not the bytes
    assert [weightstore.is_on_file(t) for t in copy.graph.initializer] == [
        weightstore.is_on_file(t) for t in model.graph.initializer]
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    weightstore.write_with_external_data(loaded, tmp_path / "a" / "m.onnx", "m.data", durable=False)
    weightstore.write_with_external_data(copy, tmp_path / "b" / "m.onnx", "m.data", durable=False)
    assert digests(tmp_path / "a") == digests(tmp_path / "b")
    feed = {"x": np.ones((1, 3, SIDE, SIDE), np.float32)}
    assert np.array_equal(create_session(copy).run(None, feed)[0], create_session(loaded).run(None, feed)[0])


def test_calibrate_never_loads_the_external_weights_whole_and_matches_the_one_file_model(tmp_path, monkeypatch):
    from onnx import external_data_helper

    source = external_model(tmp_path / "in")
    single = tmp_path / "single" / "m.onnx"
    single.parent.mkdir()
    onnx.save(onnx.load(str(source)), single)
    data = samples(tmp_path / "data")
    invoke("calibrate", single, "--data", data, "-o", tmp_path / "single.qdq.onnx", "--method", "max")

    def refuse(*args, **kwargs):
        raise AssertionError("the whole model's external weights were read into one proto")

    monkeypatch.setattr(external_data_helper, "load_external_data_for_model", refuse)
    out = tmp_path / "out" / "m.qdq.onnx"
    out.parent.mkdir()
    invoke("calibrate", source, "--data", data, "-o", out, "--method", "max")
    monkeypatch.undo()
    external, one_file = onnx.load(str(out)), onnx.load(str(tmp_path / "single.qdq.onnx"))
    for tensor in external.graph.initializer:   # loaded: the bytes are in; only where they were stored differs
        del tensor.external_data[:]
        tensor.ClearField("data_location")
    assert external.SerializeToString(deterministic=True) == one_file.SerializeToString(deterministic=True)
