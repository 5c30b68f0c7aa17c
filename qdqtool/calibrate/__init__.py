"""Post-training calibration: observers, activation collection, ranges, caches, sensitivity, pipeline."""
