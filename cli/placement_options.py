"""Placement options shared by calibrate and fix-residuals."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import click

from qdqtool.placement.plan import RESIDUAL_MODES, PlacementConfig
from qdqtool.trt.rules import WEIGHTED_OPS


class OpTypesType(click.ParamType):
    """A comma list of weighted op types (Conv,Gemm); returns a frozenset, validated against the rules table."""

    name = "LIST"

    def convert(self, value: Any, param, ctx) -> frozenset[str]:
        if isinstance(value, frozenset):
            return value
        chosen = frozenset(t.strip() for t in str(value).split(",") if t.strip())
        unknown = sorted(chosen - set(WEIGHTED_OPS))
        if unknown or not chosen:
            self.fail(f"unknown op types {unknown or [value]}; choose from {sorted(WEIGHTED_OPS)}", param, ctx)
        return chosen


_OPTIONS = (
    click.option("--residual-mode", type=click.Choice(RESIDUAL_MODES), default="skip", show_default=True,
                 help="Residual Adds: Q/DQ on the skip input only (TensorRT fuses the conv side), or both inputs "
                      "with one shared scale."),
    click.option("--concat-ratio", type=click.FloatRange(min=1.0), default=8.0, show_default=True,
                 help="A Concat whose input ranges differ by more than this factor stays float."),
    click.option("--exclude", multiple=True, metavar="PATTERN",
                 help="Leave nodes whose name matches this glob float (repeatable)."),
    click.option("--op-types", type=OpTypesType(), default=None,
                 help=f"Comma list of weighted op types to quantize (default: {','.join(WEIGHTED_OPS)})."),
)
PLACEMENT_KEYS = ("residual_mode", "concat_ratio", "exclude", "op_types")


def placement_options(func: Callable) -> Callable:
    """Decorator adding the placement options to a click command; they arrive as one `placement: PlacementConfig`
    keyword argument."""

    @functools.wraps(func)
    def command(*args, **kwargs):
        values = {key: kwargs.pop(key) for key in PLACEMENT_KEYS}
        placement = PlacementConfig(residual_mode=values["residual_mode"], concat_ratio=values["concat_ratio"],
                                    op_types=values["op_types"], exclude=tuple(values["exclude"] or ()))
        return func(*args, placement=placement, **kwargs)

    for option in reversed(_OPTIONS):
        command = option(command)
    return command
