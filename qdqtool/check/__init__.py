"""Predicting, from the graph alone, how TensorRT will fuse and type each Add and Concat."""
