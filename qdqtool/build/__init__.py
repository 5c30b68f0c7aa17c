"""qdqtool build: configuration, backend choice, TensorRT and ONNX Runtime backends, latency."""
