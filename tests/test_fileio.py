import onnx
import pytest
import tiny

from qdqtool.errors import OutputError
from qdqtool.fileio import check_output_path, save_model_atomically, write_bytes_atomically


def leftovers(folder):
    return [p.name for p in folder.iterdir() if p.name.startswith(".")]


def test_failed_validation_leaves_neither_output_nor_temp_file(tmp_path):
    target = tmp_path / "out.bin"

    def reject(path):
        assert path.read_bytes() == b"payload"  # the validator sees the complete file
        raise OutputError("rejected")

    with pytest.raises(OutputError):
        write_bytes_atomically(target, b"payload", validate=reject)
    assert not target.exists() and leftovers(tmp_path) == []


def test_an_existing_output_survives_a_failed_write(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        write_bytes_atomically(target, b"new", validate=lambda p: (_ for _ in ()).throw(RuntimeError("boom")))
    assert target.read_bytes() == b"old" and leftovers(tmp_path) == []


def test_invalid_model_is_not_written(tmp_path):
    model = tiny.resnet_block()
    model.graph.node[0].input[0] = "no_such_tensor"
    target = tmp_path / "bad.onnx"
    with pytest.raises(onnx.checker.ValidationError):
        save_model_atomically(model, target)
    assert not target.exists() and leftovers(tmp_path) == []


def test_check_output_path(tmp_path):
    source = tmp_path / "in.onnx"
    source.write_bytes(b"x")
    with pytest.raises(OutputError, match="is the input file"):
        check_output_path(source, tmp_path / "." / "in.onnx")
    with pytest.raises(OutputError, match="does not exist"):
        check_output_path(source, tmp_path / "nowhere" / "out.onnx")
    with pytest.raises(OutputError, match="is a folder"):
        check_output_path(source, tmp_path)
    check_output_path(source, tmp_path / "out.onnx")


def test_large_models_keep_their_weights_in_a_data_file_beside_the_model(tmp_path):
    """Models over protobuf's 2 GiB limit use onnx's external data; a low threshold exercises the same path."""
    from qdqtool.onnxgraph.prepare import load_model
    from qdqtool.runner import check_session_opens

    model = tiny.resnet_block()
    target = tmp_path / "big.onnx"
    save_model_atomically(model, target, validate=check_session_opens, external_data=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.onnx", "big.onnx.data"]
    loaded = load_model(target)
    assert [onnx.numpy_helper.to_array(t).tolist() for t in loaded.graph.initializer] == \
        [onnx.numpy_helper.to_array(t).tolist() for t in model.graph.initializer]
    assert all(t.HasField("raw_data") or t.float_data for t in model.graph.initializer)  # the input is untouched


def test_a_large_model_that_fails_validation_leaves_nothing(tmp_path):
    def reject(path):
        raise OutputError("rejected")

    with pytest.raises(OutputError):
        save_model_atomically(tiny.resnet_block(), tmp_path / "big.onnx", validate=reject, external_data=True)
    assert list(tmp_path.iterdir()) == []
