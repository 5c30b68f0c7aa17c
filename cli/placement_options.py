"""Placement options shared by calibrate and fix-residuals."""

from __future__ import annotations

from collections.abc import Callable

import click

from qdqtool.placement.plan import RESIDUAL_MODES, PlacementConfig
from qdqtool.trt.rules import WEIGHTED_OPS

_OPTIONS = (
    click.option("--residual-mode", type=click.Choice(RESIDUAL_MODES), default="skip", show_default=True,
                 help="Residual Adds: Q/DQ on the skip input only (TensorRT fuses the conv side), or both inputs "
                      "with one shared scale."),
    click.option("--concat-ratio", type=click.FloatRange(min=1.0), default=8.0, show_default=True,
                 help="A Concat whose input ranges differ by more than this factor stays float."),
    click.option("--exclude", multiple=True, metavar="PATTERN",
                 help="Leave nodes whose name matches this glob float (repeatable)."),
    click.option("--op-types", metavar="LIST",
                 help=f"Comma list of weighted op types to quantize (default: {','.join(WEIGHTED_OPS)})."),
)


def placement_options(func: Callable) -> Callable:
    """Decorator adding the placement options to a click command (they arrive as keyword arguments)."""
    for option in reversed(_OPTIONS):
        func = option(func)
    return func


def placement_from_options(options: dict, standalone_add: str = "float") -> PlacementConfig:
    op_types = options.pop("op_types", None)
    chosen = None
    if op_types:
        chosen = frozenset(t.strip() for t in op_types.split(",") if t.strip())
        unknown = sorted(chosen - set(WEIGHTED_OPS))
        if unknown:
            raise click.BadParameter(f"unknown op types {unknown}; choose from {sorted(WEIGHTED_OPS)}",
                                     param_hint="--op-types")
    return PlacementConfig(
        residual_mode=options.pop("residual_mode", "skip"),
        concat_ratio=options.pop("concat_ratio", 8.0),
        standalone_add=standalone_add,
        op_types=chosen,
        exclude=tuple(options.pop("exclude", ()) or ()),
    )
