"""`make bench BENCH_ARGS=engine-page`: the engine page in headless Chromium: seconds from opening the file to every
box and edge drawn, and the file size, at 2,000 and 10,000 layers, on a generated residual network (repeated blocks:
identical segments are laid out once) and on an irregular one (skip lengths drawn at random: every segment distinct).
Targets (issue 23): 10,000 layers under 10 s; a 2,000-layer page under 5 MB.

`python -m bench.bench_engine_page shot FILE.png` writes the README's screenshot (TensorRT pair
resnet18-qat-residual from ../shared, report --compare)."""

from __future__ import annotations

import gzip
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))   # the Chromium driver and the generated models live with the tests

from chromium import Browser, find_chromium  # noqa: E402
from engine_models import irregular_engine, residual_engine  # noqa: E402

from qdqtool.report.engine_page import PageView, write_engine_page  # noqa: E402
from qdqtool.trt.engine_model import EngineModel  # noqa: E402

TARGET_SECONDS = {10_000: 10.0}
TARGET_BYTES = {2_000: 5_000_000}
def measure(browser: Browser, model: EngineModel, folder: Path, name: str) -> tuple[float, int, str]:
    page = write_engine_page(folder / f"{name}.html", name, [PageView("engine", model)])
    seconds = browser.open(page, timeout=600)
    boxes = browser.evaluate("document.querySelectorAll('g.box').length")
    layout = browser.evaluate("document.querySelector('svg.view').dataset.layout")
    if boxes != len(model.layers) or browser.errors:
        raise RuntimeError(f"{name}: {boxes} boxes of {len(model.layers)}, errors {browser.errors}")
    return seconds, page.stat().st_size, layout


def main() -> list[str]:
    if find_chromium() is None:
        return ["engine page: skipped, chromium not installed (make browser)"]
    lines = ["engine page in headless Chromium (open -> every box and edge drawn):"]
    with tempfile.TemporaryDirectory() as folder, Browser() as browser:
        for count in (2_000, 10_000):
            for kind, model in (("residual", residual_engine(count)), ("irregular", irregular_engine(count))):
                seconds, size, layout = measure(browser, model, Path(folder), f"{kind}{count}")
                verdicts = []
                if count in TARGET_SECONDS:
                    verdicts.append("time ok" if seconds < TARGET_SECONDS[count] else
                                    f"SLOWER than {TARGET_SECONDS[count]:.0f} s")
                if count in TARGET_BYTES:
                    verdicts.append("size ok" if size < TARGET_BYTES[count] else "LARGER than 5 MB")
                lines.append(f"  {kind:9s} {count:6d} layers: {seconds:5.1f} s, {size / 1e6:4.2f} MB ({layout})"
                             + (f"  [{', '.join(verdicts)}]" if verdicts else ""))
    return lines


def screenshot(path: Path) -> Path:
    """The README's picture: report --compare on the TensorRT pair resnet18-qat-residual, a float Add selected."""
    from click.testing import CliRunner
    from qdqtool.cli.main import cli
    pairs = ROOT.parent / "shared" / "fixtures" / "trt" / "pairs"
    with tempfile.TemporaryDirectory() as folder:
        model = Path(folder) / "resnet18-qat-residual.onnx"
        model.write_bytes(gzip.decompress((pairs / "resnet18-qat-residual.onnx.gz").read_bytes()))
        page = Path(folder) / "page.html"
        result = CliRunner().invoke(cli, ["report", str(pairs / "resnet18-qat-residual.engine.graph.json"),
                                          "--compare", str(model), "--html", str(page)])
        if result.exit_code != 0:
            raise RuntimeError(result.output)
        with Browser(1400, 860) as browser:
            browser.open(page)
            browser.evaluate("(function () { var g = document.querySelector('g.box.m-float-add');"
                             "g.dispatchEvent(new MouseEvent('click', {bubbles: true})); })()")
            browser.evaluate("document.getElementById('fit').click()")
            browser.wait("true")
            __import__("time").sleep(0.5)
            return browser.screenshot(path)


if __name__ == "__main__":
    if sys.argv[1:2] == ["shot"]:
        print(screenshot(Path(sys.argv[2])))
    else:
        print("\n".join(main()))
