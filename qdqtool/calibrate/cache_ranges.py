"""Ranges from a TensorRT calibration cache (calibrate from a cache): each tensor's amax is its scale x 127.

A cache keys scales by the tensor names TensorRT's ONNX parser saw: the model's own names, plus helper tensors the
parser made (ONNXTRT_Broadcast_*, ONNXTRT_flattenTensor_*, "(Unnamed Layer* N) ...", bare numbers, and an ONNX
node's or constant's name + "_output" for a layer of its own, e.g. ".../Softmax_output" next to the ONNX tensor
".../Softmax_output_0"), which have no counterpart in the ONNX graph and are ignored. Placement, groups and
weights are calibrate's own (pipeline.py); this module only matches names and turns scales into ranges, calibrating
on data only the tensors the cache lacks.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import onnx

from qdqtool.calibrate.cache_usage import cache_usage, shown
from qdqtool.calibrate.collect import collect_ranges
from qdqtool.calibrate.observers import AUTO
from qdqtool.calibrate.pipeline import CalibrationConfig, CalibrationOutputs, CalibrationResult, calibrate_file
from qdqtool.calibrate.ranges import TensorRange
from qdqtool.calibrate.trtcache import CalibrationCache, read_cache
from qdqtool.errors import RangeError
from qdqtool.fileio import check_output_path
from qdqtool.onnxgraph.graph import GraphView
from qdqtool.placement.plan import PlacementPlan
from qdqtool.samples.sets import SampleSet
from qdqtool.trt.scales import amax_from_scale

LAYER_OUTPUT = "_output"   # the suffix TensorRT's parser appends to a node's or constant's name for a layer of its own
# names TensorRT's parser gives the tensors it creates itself: (label, test on the name and the model's view), for
# names that are not tensors of the ONNX graph
INTERNAL_NAMES: Tuple[Tuple[str, Callable[[str, GraphView], bool]], ...] = (
    ("ONNXTRT_*", lambda name, view: name.startswith("ONNXTRT_")),
    ("(Unnamed Layer* N)", lambda name, view: re.match(r"\(Unnamed Layer\* \d+\)", name) is not None),
    ("bare numbers", lambda name, view: name.isdigit()),
    (f"<ONNX name>{LAYER_OUTPUT}",
     lambda name, view: name.endswith(LAYER_OUTPUT) and _known(view, name[: -len(LAYER_OUTPUT)])),
)
# the method qdqtool uses for tensors the cache lacks, per calibrator, when none is chosen (method auto)
CALIBRATOR_METHOD = {
    "EntropyCalibration2": "entropy",
    "EntropyCalibration": "entropy",
    "MinMaxCalibration": "max",
    "LegacyCalibration": "percentile",   # quantile-based: the nearest of qdqtool's methods
}
MIN_MATCHED_SHARE = 0.5   # "mostly another model's names": fewer than half of the non-internal names are the model's


@dataclass(frozen=True)
class CacheMatch:
    """The cache's entries sorted against one model: matched (tensor -> scale), internal, and unknown names."""

    matched: Dict[str, float]
    internal: Dict[str, List[str]]    # INTERNAL_NAMES label -> cache names (in the cache, not in the model)
    unknown: List[str]                # neither the model's tensors nor internal names

    @property
    def internal_count(self) -> int:
        return sum(len(names) for names in self.internal.values())


def _known(view: GraphView, name: str) -> bool:
    """A node, an activation or a constant of the model by this name."""
    return name in view.by_name or name in view.initializers or view.producer(name) is not None


def internal_label(name: str, view: GraphView) -> Optional[str]:
    return next((label for label, test in INTERNAL_NAMES if test(name, view)), None)


def match_cache(view: GraphView, cache: CalibrationCache) -> CacheMatch:
    """Sort the cache's names: the model's activations (its inputs and node outputs) first, then internal names."""
    activations = set(view.input_names)
    matched: Dict[str, float] = {}
    internal: Dict[str, List[str]] = {}
    unknown: List[str] = []
    for name, scale in cache.scales.items():
        if name in activations or view.producer(name) is not None:
            matched[name] = scale
        elif internal_label(name, view) is not None:
            internal.setdefault(internal_label(name, view), []).append(name)
        else:
            unknown.append(name)
    return CacheMatch(matched, internal, unknown)


def refuse_other_model(match: CacheMatch, source: str) -> None:
    """A cache whose names are mostly not this model's (another model, another export of it) is refused."""
    named = len(match.matched) + len(match.unknown)
    if named == 0 or len(match.matched) < MIN_MATCHED_SHARE * named:
        raise RangeError(f"{source}: only {len(match.matched)} of its {named} tensor names are tensors of this model "
                         f"(e.g. {shown(match.unknown[:3])} are not); it is the cache of another model or another "
                         "export of this one: give the cache TensorRT wrote for this ONNX file",
                         settings=("from_cache",))


@dataclass(frozen=True)
class CacheRanges:
    """A RangeSource (calibrate/pipeline.py): the cache's scales, and for tensors it lacks, ranges collected on the
    samples with `method` (refused without samples)."""

    cache: CalibrationCache
    source: str              # how messages and the ranges file name the cache, e.g. "yolo.cache"
    method: str
    batch_size: int = 8
    percentile: float = 99.99

    @property
    def label(self) -> str:
        """Each cache range's method in the ranges file: the cache is its source."""
        return f"cache {self.source} ({self.cache.header})"

    def ranges(self, model: onnx.ModelProto, view: GraphView, plan: PlacementPlan, samples: Optional[SampleSet],
               progress: Optional[Callable[[int], None]]) -> Dict[str, TensorRange]:
        match = match_cache(view, self.cache)
        refuse_other_model(match, f"calibration cache {self.source}")
        missing = sorted(t for t in plan.observe if t not in match.matched)
        if missing and samples is None:
            raise RangeError(f"calibration cache {self.source} has no scale for {len(missing)} tensors the placement "
                             f"needs ({shown(missing)}); give calibration data (only those are calibrated on it) or "
                             "the cache TensorRT wrote for this model", settings=("data",))
        ranges = {}
        for tensor, scale in match.matched.items():
            amax = amax_from_scale(scale)
            ranges[tensor] = TensorRange(tensor, amax, self.label, observed_max=amax)
        if missing:
            ranges.update(collect_ranges(model, missing, samples.batches(self.batch_size), self.method,
                                         percentile=self.percentile, progress=progress))
        return ranges

    def report(self, view: GraphView, plan: PlacementPlan, ranges: Dict[str, TensorRange],
               tensor_amax: Dict[str, float]) -> Dict[str, object]:
        match = match_cache(view, self.cache)
        calibrated = sorted(t for t, r in ranges.items() if r.method != self.label)
        return {"from_cache": cache_usage(view, plan, self.cache, match.matched, tensor_amax, self.source,
                                     {label: len(names) for label, names in match.internal.items()},
                                     match.unknown, calibrated)}


def calibrate_from_cache(model_path, cache_path, data_dir, outputs: CalibrationOutputs,
                         config: Optional[CalibrationConfig] = None,
                         progress: Optional[Callable[[int], None]] = None,
                         on_samples: Optional[Callable[[int], None]] = None) -> CalibrationResult:
    """Calibrate from a cache: a Q/DQ model whose activation scales are the cache's. data_dir (optional) calibrates
    only the tensors the cache lacks, with config.method (method auto: the cache calibrator's nearest method)."""
    config = config or CalibrationConfig()
    for path in (outputs.model, outputs.ranges, outputs.cache):
        if path is not None:
            check_output_path(cache_path, path)
    cache = read_cache(cache_path)   # before the model: a bad cache costs nothing
    method = CALIBRATOR_METHOD[cache.calibrator] if config.method == AUTO else config.method
    config = replace(config, method=method)
    source = CacheRanges(cache, Path(cache_path).name, method, config.batch_size, config.percentile)
    return calibrate_file(model_path, data_dir, outputs, config, progress, on_samples, source)
