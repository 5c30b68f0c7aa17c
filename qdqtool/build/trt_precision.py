"""Layers whose precision the engine inspector's JSON did not let us read, and the datatype names it used for them.

TensorRT 11's inspector JSON ("I/O Tensors" schema, "DataType" split from "Format") is not confirmed by any file we
have; a name we do not know must show up in the report, never silently pass (or fail) a gate."""

from __future__ import annotations

import json
from collections.abc import Mapping

from qdqtool.report.layers import PrecisionReport

_TENSOR_TYPE_KEYS = ("DataType", "Datatype", "Format/Datatype", "Format/DataType", "Format")
MAX_NAMES = 8


def _raw_type_names(entry: Mapping) -> list[str]:
    names = []
    for tensor in entry.get("Outputs", []):
        if isinstance(tensor, Mapping):
            names.extend(str(tensor[key]) for key in _TENSOR_TYPE_KEYS if isinstance(tensor.get(key), str))
    return names


def unknown_precision_note(information: str, report: PrecisionReport) -> str:
    """'precision unknown: N layers, names seen: ...' for the non-reformat layers of unknown output precision;
    '' when every layer's precision is known (or the report has layer names only, which has its own note)."""
    unknown = {layer.name for layer in report.layers if not layer.is_reformat and not layer.precision_known}
    if not unknown or not report.precision_known:
        return ""
    try:
        payload = json.loads(information)
    except json.JSONDecodeError:
        payload = {}
    entries = payload.get("Layers", []) if isinstance(payload, Mapping) else payload
    seen: dict[str, None] = {}
    for entry in entries if isinstance(entries, list) else []:
        if isinstance(entry, Mapping) and entry.get("Name") in unknown:
            seen.update(dict.fromkeys(_raw_type_names(entry)))
    names = list(seen)
    listed = ", ".join(repr(n) for n in names[:MAX_NAMES]) + (", ..." if len(names) > MAX_NAMES else "")
    return (f"precision unknown: {len(unknown)} layers, names seen: {listed or 'none'}; these layers count neither "
            "as int8 nor as float in the summary and the gates")
