"""Atomic writes: a temp file in the target folder, validated, then renamed. Never a partial output file.

Also the one reader of users' text files (calibration caches, layer information) with one-line errors.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Optional

import onnx

from qdqtool.errors import OutputError, QdqError
from qdqtool.weightstore import needs_external_data, write_with_external_data

Validator = Callable[[Path], None]


def check_output_path(input_path: os.PathLike | str, output_path: os.PathLike | str, setting: str = "output") -> None:
    """Before any heavy work: the output's folder must exist, and the output must not be the input file
    (qdqtool never modifies user input in place). setting: the option that names this output, for the message."""
    src, dst = Path(input_path), Path(output_path)
    same = src.resolve() == dst.resolve() or (dst.exists() and src.exists() and os.path.samefile(src, dst))
    if same:
        raise OutputError(f"output path {dst} is the input file; "
                          "choose another output path (qdqtool never overwrites its input)", settings=(setting,))
    _check_folder(dst)


def check_distinct_outputs(*paths: Optional[os.PathLike | str]) -> None:
    """Two outputs of one run (model, ranges, cache, report) must not be the same file: one would replace the other."""
    seen: dict[Path, Path] = {}
    for path in (Path(p) for p in paths if p is not None):
        key = path.resolve()
        if key in seen:
            raise OutputError(f"two outputs of this run are the same file {path}; give each output its own path")
        seen[key] = path


def check_not_data_file(output_path: os.PathLike | str, data_files: tuple[Path, ...]) -> None:
    """The data file written beside a model output must not be one the input model reads its weights from."""
    data = external_data_path(Path(output_path)).resolve()
    if data in data_files:
        raise OutputError(f"writing {output_path} would replace {data.name}, which holds the input model's weights; "
                          "choose another output name or folder")


def external_data_path(model_path: Path) -> Path:
    """Where the weights of a model written with external data go: beside it, named after it."""
    return model_path.with_name(model_path.name + ".data")


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
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix, dir=target.parent or ".")
    except OSError as exc:
        raise _unwritable(target, exc) from None
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _unwritable(target: Path, exc: OSError) -> OutputError:
    return OutputError(f"cannot write in {target.parent} ({exc.strerror or exc.__class__.__name__}); "
                       "choose a writable output folder")


@contextmanager
def atomic_output_folder(path: os.PathLike | str) -> Iterator[Path]:
    """A temp folder beside path for a set of files named as their targets (a model and its data file); when the
    block succeeds each file is renamed into path's folder, the model (path's name) last; else all is removed."""
    target = Path(path)
    _check_folder(target)
    try:
        folder = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent or "."))
    except OSError as exc:
        raise _unwritable(target, exc) from None
    try:
        yield folder
        files = sorted(folder.iterdir(), key=lambda p: p.name == target.name)
        for file in files:
            os.chmod(file, 0o644)
        for file in files:
            os.replace(file, target.parent / file.name)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


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
    external_data: bool = False,
) -> Path:
    """Serialise model, check it with onnx.checker, run validate (e.g. open an ONNX Runtime session), rename.

    With external_data (or weights too large for one protobuf) the weights go to PATH.data beside it: both files
    are written and validated in a temp folder, then renamed (data file first)."""

    def check(tmp: Path) -> None:
        onnx.checker.check_model(str(tmp), full_check=False)
        if validate is not None:
            validate(tmp)

    if not (external_data or needs_external_data(model)):
        return write_bytes_atomically(path, model.SerializeToString(deterministic=True), check)
    target = Path(path)
    with atomic_output_folder(target) as folder:
        write_with_external_data(model, folder / target.name, external_data_path(target).name)
        check(folder / target.name)
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
