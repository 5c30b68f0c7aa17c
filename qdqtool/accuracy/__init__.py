"""How far a quantized model is from FP32: the output error measure, task metrics and the compare pipeline."""
