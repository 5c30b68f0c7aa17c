"""Every bad input ends in one line on stderr, a non-zero exit and nothing written (the README's troubleshooting
table in full). Each row: the case, the command, the exit status and a phrase the one line must hold.

Commands that take a model: calibrate, fix-residuals, check, build --backend ort, report --compare.
"""

from __future__ import annotations

from pathlib import Path

import bad_inputs as bad
import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from qdqtool.cli.main import cli

from qdqtool.calibrate.trtcache import read_calibration_cache
from qdqtool.onnxgraph.qdqview import read_qdq

LAYER_INFO = "trex_mobilenet_qat.graph.json"   # in the shared TensorRT fixtures
OUTPUTS = ("out.onnx", "out.ranges.json", "out.engine", "out.json", "out.cache", "out.onnx.data")


def command(name: str, model: Path, root: Path, data: Path | None = None, layer_info: Path | None = None) -> list:
    """The command line of `name` on model, writing its outputs into root."""
    return {
        "calibrate": ["calibrate", model, "--data", data or bad.good_data(root), "-o", root / "out.onnx"],
        "fix-residuals": ["fix-residuals", model, "-o", root / "out.onnx"]
        + (["--data", data] if data is not None else []),
        "check": ["check", model],
        "build": ["build", model, "--backend", "ort", "-o", root / "out.engine", "--runs", "1", "--warmup", "0",
                  "--report", root / "out.json"],
        "report": ["report", layer_info, "--compare", model, "-o", root / "out.json"],
    }[name]


ALL = ("calibrate", "fix-residuals", "check", "build", "report")
ONNX_READERS = {name: ALL for name in ("missing", "directory", "empty_file", "truncated", "random_bytes",
                                       "not_a_model", "checker_failure", "external_data_outside",
                                       "external_data_missing", "external_data_short")}
PHRASES = {
    "missing": "does not exist",
    "directory": "is a folder",
    "empty_file": "is not an ONNX model",
    "truncated": "is not an ONNX model",
    "random_bytes": "is not an ONNX model",
    "not_a_model": "is not an ONNX model",
    "checker_failure": "fails onnx's checker",
    "external_data_outside": "point outside the model's folder",
    "external_data_missing": "external weights cannot be read",
    "external_data_short": "external weights cannot be read",
}
# (case, command, exit status, phrase): the model cases whose answer depends on the command
MODEL_ROWS = [
    *[(case, name, 1, PHRASES[case]) for case, names in ONNX_READERS.items() for name in names],
    ("integer_kernels", "calibrate", 1, "integer kernels"),
    ("integer_kernels", "fix-residuals", 1, "integer kernels"),
    ("integer_kernels", "check", 1, "integer kernels"),
    ("integer_kernels", "build", 1, "integer kernels"),
    ("integer_kernels", "report", 1, "integer kernels"),
    ("nonzero_zero_point", "calibrate", 1, "fix-residuals"),
    ("nonzero_zero_point", "fix-residuals", 1, "zero point 0"),
    ("nonzero_zero_point", "check", 1, "zero point 0"),      # TensorRT rejects it: a gate must not pass it
    ("nonzero_zero_point", "report", 1, "zero point 0"),     # report --compare predicts with check
    ("opset_too_old", "fix-residuals", 1, "no QuantizeLinear/DequantizeLinear"),
    ("with_subgraph", "fix-residuals", 1, "no QuantizeLinear/DequantizeLinear"),
]
DATA_ROWS = [
    ("data_empty", "is empty"),
    ("data_unreadable", "cannot read tensor file"),
    ("data_wrong_shape", "expects shape 1x4x8x8, got 1x3x8x8"),
    ("data_wrong_dtype", "save numbers"),
    ("data_nan", "NaN or Inf"),
    ("data_inf", "NaN or Inf"),
    ("data_pickled", "Object arrays cannot be loaded"),
]


CACHE_ROWS = [
    # (cache maker, phrase): calibrate --from-cache refuses each in one line, without --data
    ("cache_other_model", "only 0 of its 13 tensor names are tensors of this model"),
    ("cache_empty", "is empty"),
    ("cache_header_only", "has its header but no 'tensor: <hex>' entries"),
    ("cache_truncated", "the cache looks truncated"),
    ("cache_unknown_header", "names calibrator 'Percentile99', which qdqtool does not know"),
    ("cache_no_header", "does not start with a 'TRT-<version>-<calibrator>' header"),
    ("cache_non_hex", "line 2 is not 'tensor: <hex float32>'"),
    ("cache_missing_tensors", "no scale for 3 tensors the placement needs (relu1_out, relu2_out, stem_relu_out)"),
]


def invoke(args: list):
    return CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)


def written(root: Path) -> list[str]:
    """Outputs and temp files (dot files) in root: must be none after a refused run."""
    return sorted(p.name for p in root.iterdir() if p.name in OUTPUTS or p.name.startswith("."))


def assert_refused(result, status: int, phrase: str, root: Path) -> None:
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == status, result.output
    assert len(lines) == 1 and lines[0].startswith("qdqtool: error: "), lines
    assert phrase in lines[0], lines[0]
    assert written(root) == []


@pytest.fixture
def root(tmp_path):
    bad.good_data(tmp_path)
    return tmp_path


@pytest.mark.parametrize("case,name,status,phrase", MODEL_ROWS, ids=[f"{r[0]}-{r[1]}" for r in MODEL_ROWS])
def test_bad_model(request, root, case, name, status, phrase):
    layer_info = request.getfixturevalue("trt_fixtures") / LAYER_INFO if name == "report" else None
    model = getattr(bad, case)(root)
    assert_refused(invoke(command(name, model, root, layer_info=layer_info)), status, phrase, root)


@pytest.mark.parametrize("case,phrase", DATA_ROWS, ids=[r[0] for r in DATA_ROWS])
@pytest.mark.parametrize("name", ["calibrate", "fix-residuals"])
def test_bad_data(root, name, case, phrase):
    model = bad.good_model(root) if name == "calibrate" else bad.good_qdq_model(root)
    assert_refused(invoke(command(name, model, root, getattr(bad, case)(root))), 1, phrase, root)


def test_dynamic_spatial_dims_need_a_size(root):
    model, images = bad.dynamic_spatial(root), bad.data_images_for_dynamic(root)
    assert_refused(invoke(command("calibrate", model, root, images)), 1, "dynamic height/width", root)
    # build without a shape profile is a usage error (exit 2): the missing setting is an option, not a bad file
    result = invoke(command("build", model, root))
    assert result.exit_code == 2, result.output
    assert "has dynamic dimensions" in result.stderr and "(see --shapes)" in result.stderr
    assert written(root) == []


@pytest.mark.parametrize("case,phrase", CACHE_ROWS, ids=[r[0] for r in CACHE_ROWS])
def test_bad_cache(root, case, phrase):
    args = ["calibrate", bad.good_model(root), "--from-cache", getattr(bad, case)(root), "-o", root / "out.onnx",
            "--cache", root / "out.cache"]
    assert_refused(invoke(args), 1, phrase, root)


def test_from_cache_never_writes_over_its_cache(root):
    cache = root / "given.cache"
    cache.write_text(bad.good_cache_text(root))
    args = ["calibrate", bad.good_model(root), "--from-cache", cache, "-o", root / "out.onnx", "--cache", cache]
    assert_refused(invoke(args), 1, "is the input file", root)
    assert cache.read_text() == bad.good_cache_text(root)


OUTPUT_ROWS = [
    # (name, how the output is spoiled, phrase)
    ("calibrate", "input", "is the input file"),
    ("calibrate", "missing-folder", "does not exist"),
    ("calibrate", "unwritable", "cannot write in"),
    ("calibrate", "twice", "two outputs of this run are the same file"),
    ("fix-residuals", "input", "is the input file"),
    ("fix-residuals", "missing-folder", "does not exist"),
    ("fix-residuals", "unwritable", "cannot write in"),
    ("build", "input", "is the input file"),
    ("build", "missing-folder", "does not exist"),
    ("build", "unwritable", "cannot write in"),
    ("build", "twice", "two outputs of this run are the same file"),
    ("report", "input", "is the input file"),
    ("report", "missing-folder", "does not exist"),
]


def spoil(args: list, how: str, root: Path) -> list:
    """The command line with its output (after -o) spoiled as `how` says."""
    args = list(args)
    at = args.index("-o") + 1
    if how == "twice":
        if args[0] == "build":
            args[args.index("--report") + 1] = args[at]
        else:
            args += ["--ranges", args[at]]
        return args
    args[at] = {"input": args[1], "missing-folder": root / "no" / "out.onnx",
                "unwritable": Path("/proc/self/out.onnx")}[how]
    return args


@pytest.mark.parametrize("name,how,phrase", OUTPUT_ROWS, ids=[f"{r[0]}-{r[1]}" for r in OUTPUT_ROWS])
def test_bad_output_path(request, root, name, how, phrase):
    layer_info = request.getfixturevalue("trt_fixtures") / LAYER_INFO if name == "report" else None
    model = bad.good_qdq_model(root) if name in ("fix-residuals", "build") else bad.good_model(root)
    before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    assert_refused(invoke(spoil(command(name, model, root, layer_info=layer_info), how, root)), 1, phrase, root)
    assert {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} == before  # nothing given was touched


def test_zero_data_gives_finite_nonzero_scales(root):
    """All-zero calibration data: every tensor's range is 0, yet no scale may be 0 or infinite."""
    out = root / "out.onnx"
    result = invoke([*command("calibrate", bad.good_model(root), root, bad.data_zeros(root)),
                     "--cache", root / "out.cache"])
    assert result.exit_code == 0, result.output
    qdq = read_qdq(onnx.load(out))
    scales = [q.scale for q in qdq.edges.values()]
    assert scales and all(np.isfinite(s) and s > 0 for s in scales)
    _, cache_scales = read_calibration_cache(root / "out.cache")
    assert cache_scales and all(np.isfinite(s) and s > 0 for s in cache_scales.values())


def test_old_opset_models_are_converted(root):
    result = invoke([*command("calibrate", bad.opset_11(root), root), "--json"])
    assert result.exit_code == 0, result.output
    assert "opset 11 converted to 13" in result.stdout
    onnx.checker.check_model(onnx.load(root / "out.onnx"))
    data = root / "opset7-data"
    data.mkdir()
    np.save(data / "a.npy", np.ones((1, 1, 4, 4), np.float32))
    result = invoke([*command("calibrate", bad.opset_too_old(root), root, data), "--json"])
    assert result.exit_code == 0 and "opset 7 converted to 13" in result.stdout


def test_subgraph_nodes_stay_float_with_a_note(root):
    result = invoke(["calibrate", bad.with_subgraph(root), "--data", bad.good_data(root), "-o", root / "out.onnx",
                     "--json"])
    assert result.exit_code == 0, result.output
    assert "2 nodes inside If/Loop/Scan subgraphs stay float" in result.stdout


def test_an_existing_output_is_replaced_on_success_and_kept_on_failure(root):
    """No --force: outputs are replaced (atomically) like any compiler's; a failed run leaves the old file intact."""
    out = root / "out.onnx"
    out.write_bytes(b"previous")
    assert invoke(command("calibrate", bad.good_model(root), root, bad.data_nan(root))).exit_code == 1
    assert out.read_bytes() == b"previous"
    assert invoke(command("calibrate", bad.good_model(root), root)).exit_code == 0
    onnx.checker.check_model(onnx.load(out))
