"""Per-layer precision: the layer model, TensorRT layer-info parsing, gates, comparison with check."""
