"""Shape profiles `name:min/opt/max` for dynamic inputs (TensorRT optimisation profiles; ONNX Runtime uses opt)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from qdqtool.errors import ConfigError


class ShapeSpecError(ConfigError):
    """A shape profile text cannot be read; the message says how to write it."""

    def __init__(self, message: str) -> None:
        super().__init__(message, settings=("shapes",))


Shape = tuple[int, ...]
_EXAMPLE = "images:1x3x320x320/1x3x640x640/4x3x640x640 (or one shape for min=opt=max)"


@dataclass(frozen=True)
class ShapeProfile:
    name: str
    min: Shape
    opt: Shape
    max: Shape


def _parse_dims(text: str, item: str) -> Shape:
    try:
        dims = tuple(int(part) for part in text.strip().lower().split("x"))
    except ValueError:
        raise ShapeSpecError(f"shape profile {item!r}: {text!r} is not a shape like 1x3x320x320; "
                             f"write {_EXAMPLE}") from None
    if not dims or min(dims) < 1:
        raise ShapeSpecError(f"shape profile {item!r}: dimensions must be positive integers; write {_EXAMPLE}")
    return dims


def parse_shape_profile(item: str) -> ShapeProfile:
    """'images:1x3x320x320/1x3x640x640/4x3x640x640' -> ShapeProfile; one shape means min = opt = max."""
    name, sep, spec = item.strip().rpartition(":")
    if not sep or not name or not spec:
        raise ShapeSpecError(f"shape profile {item!r} has no 'name:' prefix; write {_EXAMPLE}")
    parts = [_parse_dims(part, item) for part in spec.split("/")]
    if len(parts) == 1:
        parts *= 3
    if len(parts) != 3:
        raise ShapeSpecError(f"shape profile {item!r} has {len(parts)} shapes; give min/opt/max or one shape; "
                             f"write {_EXAMPLE}")
    low, opt, high = parts
    if not len(low) == len(opt) == len(high):
        raise ShapeSpecError(f"shape profile {item!r}: min, opt and max have different ranks; write {_EXAMPLE}")
    if not all(a <= b <= c for a, b, c in zip(low, opt, high)):
        raise ShapeSpecError(f"shape profile {item!r}: every dimension needs min <= opt <= max")
    return ShapeProfile(name, low, opt, high)


def parse_shapes(items: Iterable[str] | str) -> dict[str, ShapeProfile]:
    """Profiles by input name from repeated options and/or comma lists; an input named twice is an error."""
    texts = [items] if isinstance(items, str) else list(items)
    profiles: dict[str, ShapeProfile] = {}
    for text in texts:
        for item in (part for part in text.split(",") if part.strip()):
            profile = parse_shape_profile(item)
            if profile.name in profiles:
                raise ShapeSpecError(f"shape profiles name input {profile.name!r} twice; "
                                     "give one min/opt/max per input")
            profiles[profile.name] = profile
    return profiles


