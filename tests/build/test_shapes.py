"""--shapes parsing: name:min/opt/max, one shape for all three, validation messages."""

from __future__ import annotations

import pytest

from qdqtool.build.shapes import parse_shapes
from qdqtool.errors import QdqError


def test_min_opt_max_and_single_shape():
    profiles = parse_shapes(["images:1x3x320x320/1x3x640x640/4x3x640x640", "mask:1x1x8x8"])
    assert profiles["images"].min == (1, 3, 320, 320)
    assert profiles["images"].opt == (1, 3, 640, 640)
    assert profiles["images"].max == (4, 3, 640, 640)
    assert profiles["mask"].min == profiles["mask"].opt == profiles["mask"].max == (1, 1, 8, 8)


def test_comma_list_and_names_with_colons():
    profiles = parse_shapes("a:1x2,onnx::x:3x4")
    assert set(profiles) == {"a", "onnx::x"} and profiles["onnx::x"].opt == (3, 4)


@pytest.mark.parametrize("text, message", [
    ("1x3x320x320", "name:"),
    ("images:1x3xAx320", "not a shape"),
    ("images:1x3x0x320", "positive"),
    ("images:1x3/1x3", "min/opt/max"),
    ("images:1x3x4/1x3/1x3", "ranks"),
    ("images:2x3/1x3/4x3", "min <= opt <= max"),
])
def test_bad_shapes(text, message):
    with pytest.raises(QdqError, match=message):
        parse_shapes(text)


def test_input_named_twice():
    with pytest.raises(QdqError, match="twice"):
        parse_shapes(["a:1x2", "a:1x3"])
