"""The picture `compare` draws on request: per-tensor error along the network depth, Adds and Concats marked,
worst labelled.

The one module that imports matplotlib (an optional extra: pip install 'qdqtool[plot]'), lazily.
"""

from __future__ import annotations

import io
from pathlib import Path

from qdqtool.accuracy.compare import CompareResult
from qdqtool.errors import BackendUnavailable, DataError
from qdqtool.fileio import write_bytes_atomically

LABELLED = 5          # the worst tensors named on the picture
MARKERS = {"Add": ("^", "tab:red"), "Concat": ("s", "tab:orange")}   # what a quantizer feeds -> marker, colour


def require_matplotlib():
    """matplotlib.pyplot with the file-only backend; a one-line error when the extra is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise BackendUnavailable("drawing a plot needs matplotlib: pip install 'qdqtool[plot]'") from exc
    return plt


def _kind(feeds: str) -> str:
    return next((kind for kind in MARKERS if feeds.startswith(kind)), "other")


def plot_tensor_errors(result: CompareResult, path, title: str = "") -> Path:
    """Write a PNG: relative error (and marginal output error when measured) of every quantized tensor vs depth."""
    if not result.tensors:
        raise DataError("there is no per-tensor error to draw: the quantized model has no activation quantizer "
                        "whose tensor the FP32 model also has")
    plt = require_matplotlib()
    figure, axes = plt.subplots(figsize=(11, 4.5))
    by_depth = sorted(result.tensors, key=lambda t: t.tensor.depth)
    axes.plot([t.tensor.depth for t in by_depth], [t.relative_error for t in by_depth], color="0.7", lw=0.8)
    for kind, (marker, colour) in [*MARKERS.items(), ("other", ("o", "tab:blue"))]:
        chosen = [t for t in by_depth if _kind(t.tensor.feeds) == kind]
        if chosen:
            label = "Conv and other inputs" if kind == "other" else f"{kind} inputs"
            axes.scatter([t.tensor.depth for t in chosen], [t.relative_error for t in chosen], marker=marker,
                         color=colour, label=label, zorder=3, s=22)
    marginal = [t for t in by_depth if t.marginal_error is not None]
    if marginal:
        axes.scatter([t.tensor.depth for t in marginal], [t.marginal_error for t in marginal], marker="x",
                     color="tab:purple", label="output error, only this quantizer", zorder=2, s=18)
    for rank, item in enumerate(result.tensors[:LABELLED]):   # staggered, so neighbouring labels do not overlap
        axes.annotate(f"{rank + 1}. {item.tensor.tensor}", (item.tensor.depth, item.relative_error), fontsize=7,
                      xytext=(6, -12 * rank), textcoords="offset points", arrowprops={"arrowstyle": "-", "lw": 0.5})
    axes.set_yscale("log")
    axes.set_xlabel("depth (position of the quantizer in the graph)")
    axes.set_ylabel("this tensor's relative RMS error vs FP32")
    axes.set_title(f"{title}  headline error {result.headline:.4f} (the worst output channel, all quantizers; "
                   "a tensor's own error is on another scale)".strip(), fontsize=9)
    axes.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)   # beside, not on, points
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")   # the legend beside the axes included
    plt.close(figure)
    return write_bytes_atomically(path, buffer.getvalue())
