"""fix-residuals: plan repairs of an existing Q/DQ model, apply them, and the whole pipeline."""
