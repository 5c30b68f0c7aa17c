"""Atomic writes: a temp file in the target folder, validated, then renamed. Never a partial output file.

Also the one reader of users' text files (calibration caches, layer information) with one-line errors.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Optional

import onnx

from qdqtool.errors import OutputError, QdqError

Validator = Callable[[Path], None]
PROTOBUF_LIMIT = 2**31 - 2**24   # protobuf cannot serialise one message of 2 GiB or more (margin for the graph)


def check_output_path(input_path: os.PathLike | str, output_path: os.PathLike | str) -> None:
    """Before any heavy work: the output's folder must exist, and the output must not be the input file
    (qdqtool never modifies user input in place)."""
    src, dst = Path(input_path), Path(output_path)
    same = src.resolve() == dst.resolve() or (dst.exists() and src.exists() and os.path.samefile(src, dst))
    if same:
        raise OutputError(f"output path {dst} is the input file; "
                          "choose another output path (qdqtool never overwrites its input)", settings=("output",))
    _check_folder(dst)


def _check_folder(path: Path) -> None:
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise OutputError(f"output folder {folder} does not exist; create it or choose another path")
    if path.is_dir():
        raise OutputError(f"output path {path} is a folder; give a file name")


@contextmanager
def atomic_output(path: os.PathLike | str, suffix: str = ".tmp") -> Iterator[Path]:
    """An empty temp file beside path to fill in the block; renamed onto path if the block succeeds, else removed."""
    target = Path(path)
    _check_folder(target)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix, dir=target.parent or ".")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_bytes_atomically(path: os.PathLike | str, data: bytes, validate: Optional[Validator] = None) -> Path:
    """Write data to path via a temp file in the same folder; validate(temp_path) may raise to abort."""
    with atomic_output(path) as tmp:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if validate is not None:
            validate(tmp)
    return Path(path)


def write_text_atomically(path: os.PathLike | str, text: str) -> Path:
    return write_bytes_atomically(path, text.encode("utf-8"))


def write_json_atomically(path: os.PathLike | str, payload: object) -> Path:
    return write_text_atomically(path, json.dumps(payload, indent=2, sort_keys=False) + "\n")


def save_model_atomically(
    model: onnx.ModelProto, path: os.PathLike | str, validate: Optional[Validator] = None,
    external_data_above: int = PROTOBUF_LIMIT,
) -> Path:
    """Serialise model, check it with onnx.checker, run validate (e.g. open an ONNX Runtime session), rename.
    A model of external_data_above bytes or more keeps its weights in PATH.data beside PATH (onnx's external data)."""

    def check(tmp: Path) -> None:
        onnx.checker.check_model(str(tmp), full_check=False)
        if validate is not None:
            validate(tmp)

    if _serialised_size(model) < external_data_above:
        return write_bytes_atomically(path, model.SerializeToString(deterministic=True), check)
    return _save_with_external_data(model, Path(path), check)


def _serialised_size(model: onnx.ModelProto) -> int:
    """The model's size in bytes; at least the initializers' when protobuf cannot size the whole (>= 2 GiB)."""
    weights = sum(t.ByteSize() for t in model.graph.initializer)
    if weights >= PROTOBUF_LIMIT:
        return weights
    return model.ByteSize()


def _save_with_external_data(model: onnx.ModelProto, target: Path, check: Validator) -> Path:
    """Model and weight file written into a temp folder beside target, validated, then renamed (data first)."""
    _check_folder(target)
    data_name = f"{target.name}.data"
    with tempfile.TemporaryDirectory(prefix=f".{target.name}.", dir=target.parent or ".") as folder:
        staged = Path(folder) / target.name
        copy = onnx.ModelProto()
        copy.CopyFrom(model)   # onnx.save_model moves the tensors of the proto it is given out to the data file
        onnx.save_model(copy, str(staged), save_as_external_data=True, all_tensors_to_one_file=True,
                        location=data_name, size_threshold=0)
        check(staged)
        for name in (data_name, target.name):
            os.chmod(Path(folder) / name, 0o644)
        os.replace(Path(folder) / data_name, target.with_name(data_name))
        os.replace(staged, target)
    return target


def read_text_file(path: os.PathLike | str, what: str, hint: str) -> str:
    """A user's UTF-8 text file; QdqError '<what> <path> does not exist; <hint>' (or is not readable text)."""
    source = Path(path)
    try:
        return source.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise QdqError(f"{what} {source} does not exist; {hint}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise QdqError(f"{what} {source} is not readable text ({exc.__class__.__name__}); {hint}") from None
