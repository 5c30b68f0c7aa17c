"""How shapes are written in messages: 1x3x320x320, '?' for a dynamic dimension (the shape-profile syntax)."""

from __future__ import annotations

from collections.abc import Sequence


def format_shape(shape: Sequence[int | None]) -> str:
    """(1, 3, None, None) -> '1x3x?x?'; a rank-0 shape -> 'scalar'."""
    if not shape:
        return "scalar"
    return "x".join("?" if d is None or d < 0 else str(d) for d in shape)
