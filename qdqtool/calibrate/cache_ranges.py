"""Ranges from a TensorRT calibration cache (calibrate from a cache): each tensor's amax is its scale x 127.

Placement, groups and weights are calibrate's own (pipeline.py, through its RangeSource hook); this module turns the
matched entries (cache_names.py) into ranges, calibrating on data only the tensors the cache lacks, and reports
what the plan made of them (cache_usage.py).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Dict, Optional

import onnx

from qdqtool.calibrate.cache_names import match_cache, refuse_other_model, shown
from qdqtool.calibrate.cache_usage import cache_usage
from qdqtool.calibrate.collect import collect_ranges
from qdqtool.calibrate.observers import AUTO, DEFAULT_PERCENTILE
from qdqtool.calibrate.pipeline import CalibrationConfig, CalibrationOutputs, CalibrationResult, calibrate_file
from qdqtool.calibrate.ranges import TensorRange
from qdqtool.calibrate.trtcache import CalibrationCache, read_cache
from qdqtool.errors import RangeError
from qdqtool.fileio import check_output_path
from qdqtool.onnxgraph.graph import GraphView
from qdqtool.placement.plan import PlacementPlan
from qdqtool.samples.sets import SampleSet
from qdqtool.trt.scales import amax_from_scale

# the method qdqtool uses for tensors the cache lacks, per calibrator, when none is chosen (method auto)
CALIBRATOR_METHOD = {
    "EntropyCalibration2": "entropy",
    "EntropyCalibration": "entropy",
    "MinMaxCalibration": "max",
    "LegacyCalibration": "percentile",   # quantile-based: the nearest of qdqtool's methods
}


@dataclass(frozen=True)
class CacheRanges:
    """A RangeSource (calibrate/pipeline.py): the cache's scales, and for tensors it lacks, ranges collected on the
    samples with `method` (refused without samples)."""

    cache: CalibrationCache
    source: str              # how messages and the ranges file name the cache, e.g. "yolo.cache"
    method: str
    batch_size: int = 8
    percentile: float = DEFAULT_PERCENTILE

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
        return {"from_cache": cache_usage(view, plan, self.cache, match, tensor_amax, self.source, calibrated)}


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
