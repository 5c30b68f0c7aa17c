"""Calibrated tensor ranges and the ranges file that `calibrate` writes and `fix-residuals`/`build` read."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Dict, Iterable, Mapping, Optional, Tuple

from qdqtool.errors import QdqError
from qdqtool.fileio import write_json_atomically

FORMAT = "qdqtool-ranges"
VERSION = 1


@dataclass(frozen=True)
class TensorRange:
    """The calibrated absolute range of one tensor; scale = amax / 127 for int8."""

    tensor: str
    amax: float
    method: str
    observed_max: float = 0.0  # plain max |x| seen, for reports (ratio checks, clipping)
    candidates: Tuple[Tuple[str, float], ...] = ()   # method auto: (candidate name, amax) it chose from
    cv_gain: Optional[float] = None    # method auto, a clip: mean held-out gain of the choice over folds
    cv_spread: Optional[float] = None  # ... and the spread (largest minus smallest) of those gains



def ranges_beside(model: Path) -> Path:
    """MODEL.ranges.json: where calibrate writes the ranges of MODEL.onnx by default, and where build looks."""
    return Path(model).with_name(Path(model).stem + ".ranges.json")

def save_ranges(path, ranges: Iterable[TensorRange], model_name: str = "") -> Path:
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "model": model_name,
        "ranges": [_entry(r) for r in sorted(ranges, key=lambda r: r.tensor)],
    }
    return write_json_atomically(path, payload)


def _bad(message: str) -> QdqError:
    """A bad ranges file; the ranges setting fixes it."""
    return QdqError(message, settings=("ranges",))


def _entry(item: TensorRange) -> Dict[str, object]:
    entry = asdict(item)
    entry["candidates"] = dict(item.candidates)
    if not item.candidates:
        del entry["candidates"]
    for key in ("cv_gain", "cv_spread"):
        if entry[key] is None:
            del entry[key]
    return entry


def load_ranges(path) -> Dict[str, TensorRange]:
    """Read a ranges file; raises QdqError with what is wrong and how to get a good one."""
    source = Path(path)
    hint = "give the ranges JSON that qdqtool's calibrate writes"
    try:
        payload = json.loads(source.read_text())
    except FileNotFoundError:
        raise _bad(f"ranges file {source} does not exist; {hint}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _bad(f"ranges file {source} is not readable JSON ({exc.__class__.__name__}); {hint}") from None
    entries = payload.get("ranges") if isinstance(payload, dict) else None
    if not isinstance(entries, list):
        raise _bad(f"ranges file {source} has no 'ranges' list; {hint}")
    result: Dict[str, TensorRange] = {}
    for entry in entries:
        try:
            item = TensorRange(
                tensor=str(entry["tensor"]),
                amax=float(entry["amax"]),
                method=str(entry.get("method", "unknown")),
                observed_max=float(entry.get("observed_max", entry["amax"])),
            )
        except (KeyError, TypeError, ValueError):
            raise _bad(f"ranges file {source} has an entry without tensor/amax: {entry!r}; {hint}") from None
        if not math.isfinite(item.amax) or item.amax < 0:
            raise _bad(f"ranges file {source}: tensor {item.tensor!r} has amax {item.amax}; {hint}")
        result[item.tensor] = item
    return result


def amax_map(ranges: Mapping[str, TensorRange]) -> Dict[str, float]:
    return {name: r.amax for name, r in ranges.items()}
