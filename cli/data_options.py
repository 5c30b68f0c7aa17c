"""The calibration-data option group (--data, --preset, --size, ...), shared by calibrate, fix-residuals and build."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from qdqtool.errors import DataError
from qdqtool.samples.images import PRESETS, Preprocess

SAME_NAME_FIELDS = ("size", "resize", "pad_value", "scale", "mean", "std")  # option key == Preprocess field
PREPROCESS_KEYS = ("preset", *SAME_NAME_FIELDS, "bgr", "layout")


class ImageSizeType(click.ParamType):
    """'HxW' (e.g. 480x640) or one number for a square; returns (height, width)."""

    name = "HxW"

    def convert(self, value: Any, param, ctx) -> tuple[int, int]:
        if isinstance(value, tuple):
            return value
        parts = str(value).strip().lower().split("x")
        try:
            numbers = [int(part) for part in parts]
        except ValueError:
            self.fail(f"{value!r} is not a size; write HxW such as 480x640, or 640 for a square", param, ctx)
        if len(numbers) not in (1, 2) or min(numbers) < 1:
            self.fail(f"{value!r} is not a size; write HxW with positive numbers, e.g. 480x640 or 640", param, ctx)
        return (numbers[0], numbers[-1])


class ScaleType(click.ParamType):
    """A positive number, also written as a fraction such as 1/255."""

    name = "FLOAT"

    def convert(self, value: Any, param, ctx) -> float:
        if isinstance(value, float):
            return value
        text = str(value).strip()
        try:
            numerator, _, denominator = text.partition("/")
            scale = float(numerator) / float(denominator) if denominator else float(numerator)
        except (ValueError, ZeroDivisionError):
            self.fail(f"{value!r} is not a number; write e.g. 1/255 or 0.0039215", param, ctx)
        if not scale > 0 or scale == float("inf"):
            self.fail(f"{value!r} must be a positive number such as 1/255", param, ctx)
        return scale


class ChannelValuesType(click.ParamType):
    """One value or three comma-separated values, e.g. 0.485,0.456,0.406."""

    name = "A,B,C"

    def convert(self, value: Any, param, ctx) -> tuple[float, ...]:
        if isinstance(value, tuple):
            return value
        try:
            numbers = tuple(float(part) for part in str(value).split(","))
        except ValueError:
            self.fail(f"{value!r} is not a list of numbers; write e.g. 0.485,0.456,0.406", param, ctx)
        if len(numbers) not in (1, 3):
            self.fail(f"{value!r} has {len(numbers)} values; give 1 or 3 (one per channel)", param, ctx)
        return numbers


_OPTIONS = (
    click.option("--data", "data", type=click.Path(path_type=Path), default=None,
                 help="Folder of samples: images (jpg/png/bmp/webp) or .npy/.npz tensors (npz keyed by input name)."),
    click.option("--max-samples", type=click.IntRange(min=1), default=None,
                 help="Use only the first N files (sorted by name)."),
    click.option("--preset", type=click.Choice(sorted(PRESETS)), default=None,
                 help="Preprocessing of a model family; the options below override its fields. Default: raw."),
    click.option("--size", type=ImageSizeType(), default=None,
                 help="Image size HxW (or 640 for square). Default: the model's static input size."),
    click.option("--resize", type=click.Choice(["stretch", "letterbox"]), default=None,
                 help="Stretch to the size, or keep the aspect ratio and pad (letterbox)."),
    click.option("--pad-value", type=click.FloatRange(0, 255), default=None,
                 help="Letterbox padding in 0..255 pixel units (yolo: 114)."),
    click.option("--scale", type=ScaleType(), default=None, help="Pixel multiplier before mean/std, e.g. 1/255."),
    click.option("--mean", type=ChannelValuesType(), default=None,
                 help="Subtracted after scaling, per output channel: 'a,b,c' (or one value)."),
    click.option("--std", type=ChannelValuesType(), default=None,
                 help="Divides after the mean, per output channel: 'a,b,c' (or one value)."),
    click.option("--bgr/--rgb", "bgr", default=None, help="Channel order the model expects."),
    click.option("--layout", type=click.Choice(["NCHW", "NHWC"], case_sensitive=False), default=None,
                 help="Tensor layout of the image input."),
)


def data_options(func: Callable) -> Callable:
    """Decorator adding the data options to a click command; they arrive parsed, as one `data: DataOptions`
    keyword argument (no option is left for the command to pop, so none can be dropped)."""

    @functools.wraps(func)
    def command(*args, **kwargs):
        return func(*args, data=pop_data_options(kwargs), **kwargs)

    for option in reversed(_OPTIONS):
        command = option(command)
    return command


@dataclass(frozen=True)
class DataOptions:
    """The parsed data options of one command invocation."""

    folder: Path | None
    max_samples: int | None
    preprocess: Preprocess


def preprocess_from_options(options: dict) -> Preprocess:
    """Pop the preprocessing keys from the click kwargs; explicit options override the preset's fields."""
    values = {key: options.pop(key, None) for key in PREPROCESS_KEYS}
    base = PRESETS[values["preset"]] if values["preset"] else Preprocess()
    overrides: dict[str, Any] = {key: values[key] for key in SAME_NAME_FIELDS if values[key] is not None}
    if values["bgr"] is not None:
        overrides["channel_order"] = "BGR" if values["bgr"] else "RGB"
    if values["layout"] is not None:
        overrides["layout"] = values["layout"].upper()
    try:
        return dataclasses.replace(base, **overrides)
    except DataError as exc:
        raise click.BadParameter(str(exc)) from exc


def pop_data_options(options: dict) -> DataOptions:
    """Pop every data option (--data, --max-samples and the preprocessing ones) from the click kwargs."""
    preprocess = preprocess_from_options(options)
    return DataOptions(options.pop("data", None), options.pop("max_samples", None), preprocess)
