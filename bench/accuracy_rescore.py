"""The accuracy bench's held-out feeds with their source photos, and per-feed task components for saved results.

Results saved before the rows carried per-feed components (bench/accuracy_metrics.py) are rescored from the output
models kept beside them (bench_out/accuracy/KEY[.PART]/*.onnx) on the held-out feeds made again as bench_model
makes them; the rows' saved figures must come out the same, or the folder is left as it is.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import numpy as np

from bench import accuracy_data as data
from bench.accuracy_metrics import task_scores
from bench.accuracy_models import BenchModel
from bench.accuracy_stats import missing_components
from bench.accuracy_tools import saved_output_path
from qdqtool.runner import create_session

HEADLINE = {"detection": "f1", "mask": "mask_iou", "top1": "top1_agree"}


def run_model(session_path: Path, feeds) -> List[List]:
    session = create_session(session_path)
    name = session.get_inputs()[0].name
    return [session.run(None, {name: feed}) for feed in feeds]


def held_out_set(model: BenchModel, work: Path, extra_photos: Sequence[Path] = (), calib: Optional[int] = None
                 ) -> Tuple[List[np.ndarray], List[str], List[np.ndarray], List[str]]:
    """(calibration RGB images, their source photos, held-out feeds, the source photo of each held-out feed)."""
    calibration, calibration_names, held_out = data.photo_split(work, extra_photos, calib)
    names = data.held_out_names(extra_photos, calib)
    if model.key == "orientation_cls":
        turned = data.turned_page()
        held_out, names = held_out + turned, names + [data.TURNED_PAGE_SOURCE] * len(turned)
    if len(names) != len(held_out):
        raise RuntimeError(f"{len(held_out)} held-out images but {len(names)} source names")
    feeds, sources = [], []
    for rgb, name in zip(held_out, names):
        cut = model.prepare(rgb)
        feeds += cut
        sources += [name] * len(cut)
    return calibration, calibration_names, feeds, sources


def rescore_folder(model: BenchModel, folder: Path, feeds: Sequence[np.ndarray], sources: Sequence[str]) -> str:
    """Add per-feed components and source photos to folder/result.json when it lacks them; what was done."""
    path = folder / "result.json"
    result = json.loads(path.read_text())
    if not missing_components(result):
        return f"{folder.name}: complete"
    if result["held_out_feeds"] != len(feeds):
        return f"{folder.name}: saved with {result['held_out_feeds']} held-out feeds, now {len(feeds)}: left as is"
    reference = run_model(folder / "fp32.onnx", feeds)
    measured = [r for r in result["rows"] if not r.get("error_message")]
    for row in measured:
        output = folder / "fp32.onnx" if row["name"] == "FP32" else saved_output_path(row, folder)
        if not output.is_file():
            return f"{folder.name}: {output.name} is gone: left as is"
        scores = task_scores(model, reference, run_model(output, feeds))
        key = HEADLINE[model.metric]
        if not np.isclose(scores[key], row["task"][key], rtol=0, atol=1e-9):
            return (f"{folder.name}: {row['name']} rescored {scores[key]} against the saved {row['task'][key]}: "
                    "left as is")
        row["task"]["per_feed"] = scores["per_feed"]
    write_json(path, {**result, "held_out_sources": list(sources)})
    return f"{folder.name}: per-feed components added to {len(measured)} rows"


def write_json(path: Path, content) -> None:
    """Write through a temporary file in the same folder, then rename (a stopped run keeps the old file)."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(handle, "w") as sink:
        json.dump(content, sink, indent=1)
    os.replace(temporary, path)
