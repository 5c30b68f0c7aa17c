import json

import pytest

from qdqtool.calibrate.ranges import TensorRange, amax_map, load_ranges, save_ranges
from qdqtool.errors import QdqError


def test_round_trip(tmp_path):
    path = tmp_path / "r.json"
    save_ranges(path, [TensorRange("b", 2.5, "max", 2.5), TensorRange("a", 1.0, "percentile", 3.0)], "m.onnx")
    loaded = load_ranges(path)
    assert list(loaded) == ["a", "b"] and loaded["a"] == TensorRange("a", 1.0, "percentile", 3.0)
    assert amax_map(loaded) == {"a": 1.0, "b": 2.5}
    assert json.loads(path.read_text())["model"] == "m.onnx"


@pytest.mark.parametrize("content,phrase", [
    ("{not json", "not readable JSON"),
    ('{"ranges": 3}', "no 'ranges' list"),
    ('{"ranges": [{"tensor": "a"}]}', "without tensor/amax"),
    ('{"ranges": [{"tensor": "a", "amax": -1}]}', "amax -1"),
])
def test_bad_files_say_what_is_wrong_and_how_to_get_a_good_one(tmp_path, content, phrase):
    path = tmp_path / "r.json"
    path.write_text(content)
    with pytest.raises(QdqError, match=phrase) as error:
        load_ranges(path)
    assert "qdqtool's calibrate writes" in str(error.value) and error.value.settings == ("ranges",)


def test_missing_file(tmp_path):
    with pytest.raises(QdqError, match="does not exist"):
        load_ranges(tmp_path / "none.json")
