"""Predicting, from the graph alone, the engine TensorRT will build: fused groups, standalone Q/DQ, precisions."""

from qdqtool.check.engine import predict_engine

__all__ = ["predict_engine"]
