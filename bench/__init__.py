"""Benchmarks run by `make bench` (bench/run.py)."""
