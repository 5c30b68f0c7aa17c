"""Per-layer precision: the layer model, TensorRT layer-info parsing, gates, comparison with check."""

from qdqtool.report.engine import engine_from_layers

__all__ = ["engine_from_layers"]
