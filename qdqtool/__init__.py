"""qdqtool: calibrated, TensorRT-placed Q/DQ ONNX models and proof of which layers run INT8."""

__version__ = "0.1.0"
