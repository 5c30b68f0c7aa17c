"""TensorRT's rules for Q/DQ graphs as tables, and the fusion patterns derived from them."""
