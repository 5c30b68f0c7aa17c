"""The engine page in headless Chromium: boxes, colours and Reformat marks read back from the rendered DOM equal
report's and check's JSON (the three TensorRT engine pairs, the demo model, hand-built models), no script error, and
a 10,000-layer network renders. Screenshots are kept under out/screenshots/ (test artifacts)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from chromium import READY, SKIP_REASON, Browser, find_chromium
from click.testing import CliRunner
from engine_models import residual_engine, tiny_engine
from qdqtool.cli.main import cli

import qdqtool
from qdqtool.report.engine import engine_from_layers
from qdqtool.report.engine_page import PageView, write_engine_page

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "out" / "screenshots"
PAIRS = ("resnet18-qat", "resnet18-qat-residual", "resnet18-qat-residual-qgap")
pytestmark = pytest.mark.skipif(find_chromium() is None, reason=SKIP_REASON)

# what the page drew, read from the DOM: one row per box, the legend's colours, the header's gate chips
READ_DOM = """(function (v) {
  var svg = document.getElementById('view-' + v);
  var legend = {};
  document.querySelectorAll('#legend .key[data-precision]').forEach(function (k) {
    legend[k.dataset.precision] = k.dataset.colour; });
  var gates = {};
  document.querySelectorAll('#stats .gate').forEach(function (g) { gates[g.dataset.gate] = +g.dataset.count; });
  return {boxes: Array.prototype.map.call(svg.querySelectorAll('g.box'), function (g) {
            return {i: +g.dataset.i, precision: g.dataset.precision, role: g.dataset.role,
                    marks: g.dataset.marks ? g.dataset.marks.split(' ') : [],
                    fill: g.querySelector('rect.body').getAttribute('fill'),
                    computed: getComputedStyle(g.querySelector('rect.body')).fill}; }),
          edges: svg.querySelectorAll('path.edge').length, legend: legend, gates: gates,
          errors: document.body.dataset.errors};
})(%d)"""


@pytest.fixture(scope="module")
def browser():
    with Browser(1400, 900) as opened:
        yield opened


def _open(browser: Browser, page: Path, shot: str | None = None, view: int = 0) -> dict:
    browser.errors.clear()
    browser.open(page)
    if view:
        browser.evaluate(f"qdqShowView({view})")
        browser.wait(f"document.getElementById('view-{view}') && {READY}")
    dom = browser.evaluate(READ_DOM % view)
    if shot:
        SHOTS.mkdir(parents=True, exist_ok=True)
        browser.screenshot(SHOTS / shot)
    assert browser.errors == [] and dom["errors"] == "", (browser.errors, dom["errors"])
    return dom


def _assert_boxes_match(dom: dict, layers: list[dict], gates: dict) -> None:
    """Every layer one box in order, with its precision, role, marks and the legend's colour for its precision."""
    boxes = sorted(dom["boxes"], key=lambda b: b["i"])
    assert [b["i"] for b in boxes] == list(range(len(layers)))
    assert [b["precision"] for b in boxes] == [layer["precision"] for layer in layers]
    assert [b["role"] for b in boxes] == [layer["role"] for layer in layers]
    for box in boxes:
        assert box["fill"] == dom["legend"][box["precision"]]
    fills = {b["precision"]: b["computed"] for b in boxes}
    if "int8" in fills:   # a person tells INT8 from any other precision by colour
        assert all(fill != fills["int8"] for p, fill in fills.items() if p != "int8")
    assert dom["gates"] == {str(k): v for k, v in gates.items()}


def test_hand_built_engine(browser, tmp_path):
    model = tiny_engine()
    page = write_engine_page(tmp_path / "tiny.html", "tiny", [PageView("engine", model, {"float-add": 1})])
    dom = _open(browser, page, "tiny.png")
    _assert_boxes_match(dom, model.to_json()["layers"], {"float-add": 1})
    marks = {b["i"]: b["marks"] for b in dom["boxes"]}
    assert marks[0] == ["reformat", "input-quantize"] and marks[3] == ["reformat", "qdq"]
    assert marks[2] == ["float-add"] and marks[6] == ["float-concat"] and marks[1] == []
    assert dom["edges"] == 9
    assert sorted(browser.evaluate("qdqSearch('x3')")) == [3, 4, 6]   # writes x3, reads x3 (two readers)
    browser.evaluate("document.querySelector('g.box[data-i=\"2\"]').dispatchEvent("
                     "new MouseEvent('click', {bubbles: true}))")
    details = browser.evaluate("document.getElementById('details').textContent")
    assert "the skip input of Add_4 arrives in float" in details
    assert "quantize the skip input of Add_4 at x0's scale" in details


def test_without_workers_the_page_lays_itself_out(browser, tmp_path):
    model = residual_engine(400)
    page = write_engine_page(tmp_path / "plain.html", "no workers", [PageView("engine", model)])
    script = browser.run_before_scripts("window.Worker = undefined;")
    try:
        dom = _open(browser, page)
        layout = browser.evaluate("document.getElementById('view-0').dataset.layout")
    finally:
        browser.forget_script(script)
    assert layout.startswith("page")
    _assert_boxes_match(dom, model.to_json()["layers"], {})


@pytest.mark.parametrize("name", PAIRS)
def test_engine_pairs_match_report_and_check_json(browser, trt_fixtures, tmp_path, name):
    onnx_path = tmp_path / f"{name}.onnx"
    onnx_path.write_bytes(gzip.decompress((trt_fixtures / "pairs" / f"{name}.onnx.gz").read_bytes()))
    layers = trt_fixtures / "pairs" / f"{name}.engine.graph.json"
    page = tmp_path / f"{name}.html"
    runner = CliRunner()
    reported = runner.invoke(cli, ["report", str(layers), "--compare", str(onnx_path), "--json", "--html", str(page)])
    assert reported.exit_code == 0, reported.output
    report_json = json.loads(reported.stdout)
    checked = runner.invoke(cli, ["check", str(onnx_path), "--json"])
    check_json = json.loads(checked.stdout)

    engine = engine_from_layers(qdqtool.read_report(layers)).to_json()
    dom = _open(browser, page, f"{name}.report.png")
    _assert_boxes_match(dom, engine["layers"], report_json["summary"]["gate_counts"])
    reformats = [b["i"] for b in sorted(dom["boxes"], key=lambda b: b["i"]) if "reformat" in b["marks"]]
    assert reformats == [i for i, layer in enumerate(report_json["layers"]) if layer["is_reformat"]]
    assert browser.evaluate("+document.getElementById('reformats').dataset.count") == len(reformats)
    differing = browser.evaluate("document.querySelectorAll('#differences li').length")
    assert differing == len(report_json["compare"]["differences"])

    predicted = qdqtool.check_model(onnx_path).engine.to_json()
    dom = _open(browser, page, f"{name}.predicted.png", view=1)
    _assert_boxes_match(dom, predicted["layers"], check_json["counts"])


@pytest.fixture(scope="module")
def demo_qdq(models_dir, images_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("page") / "yolov8n.qdq.onnx"
    result = CliRunner().invoke(cli, ["calibrate", str(models_dir / "yolov8n_320.onnx"), "-o", str(out), "--method",
                                      "max", "--data", str(images_dir), "--preset", "yolo", "--size", "320",
                                      "--max-samples", "2"])
    assert result.exit_code == 0, result.output
    return out


def test_demo_model_matches_check_json(browser, demo_qdq):
    page = demo_qdq.with_name("yolov8n.check.html")
    result = CliRunner().invoke(cli, ["check", str(demo_qdq), "--json", "--html", str(page)])
    assert result.exit_code == 0, result.output
    dom = _open(browser, page, "yolov8n.check.png")
    _assert_boxes_match(dom, qdqtool.check_model(demo_qdq).engine.to_json()["layers"],
                        json.loads(result.stdout)["counts"])


def test_ten_thousand_layers_render(browser, tmp_path):
    """Renders at all, with every box and edge (the time target, under 10 s, is measured by `make bench`)."""
    model = residual_engine(10_000)
    page = write_engine_page(tmp_path / "big.html", "10k", [PageView("engine", model)])
    browser.errors.clear()
    seconds = browser.open(page, timeout=300)
    counts = browser.evaluate("[document.querySelectorAll('g.box').length, document.querySelectorAll('path.edge')"
                              ".length, document.body.dataset.errors]")
    assert counts == [10_000, 14_998, ""], counts
    assert browser.errors == []
    print(f"10,000 layers ready in {seconds:.1f} s")
