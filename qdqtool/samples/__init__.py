"""Calibration and evaluation inputs: image pre-processing and sample sets from folders."""
