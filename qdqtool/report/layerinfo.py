"""Parse TensorRT layer information (engine inspector / `trtexec --exportLayerInfo`, TensorRT 8.x to 11) into a report.

Accepted shapes: {"Layers": [...], "Bindings": [...]} (TensorRT <= 10), {"Layers": [...], "I/O Tensors": [...]}
(TensorRT 11, tensor "Format" and "DataType" split), "Layers" as names only (verbosity not DETAILED), a bare list of
layers, and the text of per-layer `get_layer_information` calls separated by "--- Layer N ---" lines.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Union

from qdqtool.errors import QdqError
from qdqtool.fileio import read_text_file
from qdqtool.report.layers import (
    ADD_TOKEN,
    CONV_TOKEN,
    QDQ_NAME,
    REFORMAT_LAYER_TYPES,
    REFORMAT_NAME_PREFIXES,
    UNKNOWN,
    LayerPrecision,
    PrecisionReport,
    make_report,
    report_from_json,
)

BACKEND = "tensorrt"
_HINT = ("pass a file written by `trtexec --profilingVerbosity=detailed --exportLayerInfo=FILE` or by the engine "
         "inspector (get_engine_information(LayerInformationFormat.JSON))")
_LAYER_BLOCK = re.compile(r"^--- Layer \d+ ---[ \t]*$", re.MULTILINE)
_ONNX_LAYER = re.compile(r"\[ONNX Layer: (.*?)\]\s*$")
_METADATA_SEPARATORS = re.compile("[\x1e\x1f]")
_PWN_PARTS = re.compile(r"PWN\(|\)|, ")

# Datatype words as TensorRT prints them ("... row major Int8 format", "Row major linear FP32", "Half");
# first match wins.
_DATATYPES = tuple((re.compile(pattern, re.IGNORECASE), precision) for pattern, precision in (
    (r"\bInt8\b", "int8"),
    (r"\bUInt8\b", "uint8"),
    (r"\b(?:FP16|Half)\b", "fp16"),
    (r"\b(?:BF16|BFloat16)\b", "bf16"),
    (r"\b(?:FP8|FP8E4M3|E4M3)\b", "fp8"),
    (r"\b(?:FP4|FP4E2M1|E2M1)\b", "fp4"),
    (r"\bInt4\b", "int4"),
    (r"\b(?:FP32|Float)\b", "fp32"),
    (r"\bInt32\b", "int32"),
    (r"\bInt64\b", "int64"),
    (r"\bBool\b", "bool"),
))
_DATATYPE_KEYS = ("DataType", "Datatype", "Format/Datatype", "Format/DataType", "Format")

Payload = Union[Mapping, Sequence]


def precision_of_format(text: str) -> str:
    """'Thirty-two wide channel vectorized row major Int8 format' -> 'int8';
    'N/A due to dynamic shapes' -> 'unknown'."""
    for pattern, precision in _DATATYPES:
        if pattern.search(text or ""):
            return precision
    return UNKNOWN


def tensor_precision(tensor: Mapping) -> str:
    """A tensor's precision: the TensorRT 11 'DataType' field when present, else the 'Format/Datatype' string."""
    for key in _DATATYPE_KEYS:
        value = tensor.get(key)
        if isinstance(value, str):
            found = precision_of_format(value)
            if found != UNKNOWN:
                return found
    return UNKNOWN


def onnx_nodes_of(name: str, metadata: str = "") -> tuple[str, ...]:
    """ONNX node names fused into a layer: from '[ONNX Layer: X]' metadata entries, else from the layer name."""
    from_metadata = []
    for entry in _METADATA_SEPARATORS.split(metadata or ""):
        match = _ONNX_LAYER.search(entry.strip())
        if match:
            from_metadata.append(match.group(1))
    if from_metadata:
        return tuple(dict.fromkeys(from_metadata))
    if name.startswith(REFORMAT_NAME_PREFIXES):
        return ()
    parts = []
    for part in name.split(" + "):
        parts.extend(p.strip() for p in _PWN_PARTS.split(part))
    return tuple(dict.fromkeys(p for p in parts if p))


def _has_fused_add(name: str) -> bool:
    """A '+ ...Add...' token after the first part of a fused layer's name ('Conv_142 + Add_144', 'Conv + /Add')."""
    return any(ADD_TOKEN.search(part) for part in name.split(" + ")[1:])


def layer_from_name(name: str) -> LayerPrecision:
    """A names-only layer: no type, no precision; reformats and fused residuals judged from the name alone."""
    nodes = onnx_nodes_of(name)
    parts = name.split(" + ")
    conv_then_add = any(CONV_TOKEN.search(p) for p in parts[:-1]) and _has_fused_add(name)
    return LayerPrecision(
        name=name,
        onnx_nodes=nodes,
        is_reformat=name.startswith(REFORMAT_NAME_PREFIXES) or bool(QDQ_NAME.match(name)),
        fused_residual_add=conv_then_add,
    )


def layer_from_dict(entry: Mapping) -> LayerPrecision:
    """A detailed layer: precisions from its tensors, tactic from TacticName (or TacticValue)."""
    name = str(entry.get("Name", ""))
    layer_type = str(entry.get("LayerType", ""))
    inputs = [t for t in entry.get("Inputs", []) if isinstance(t, Mapping)]
    outputs = [t for t in entry.get("Outputs", []) if isinstance(t, Mapping)]
    nodes = onnx_nodes_of(name, str(entry.get("Metadata", "")))
    is_conv = "convolution" in layer_type.lower()
    return LayerPrecision(
        name=name,
        layer_type=layer_type,
        onnx_nodes=nodes,
        input_precisions=tuple(tensor_precision(t) for t in inputs),
        output_precisions=tuple(tensor_precision(t) for t in outputs),
        tactic=str(entry.get("TacticName") or entry.get("TacticValue") or ""),
        is_reformat=layer_type in REFORMAT_LAYER_TYPES,  # a NoOp named "Reformatting CopyNode ..." costs nothing
        fused_residual_add=is_conv and (_has_fused_add(name) or len(inputs) >= 2),
        origin=str(entry.get("Origin") or ""),
        input_tensors=tuple(str(t.get("Name", "")) for t in inputs),
        output_tensors=tuple(str(t.get("Name", "")) for t in outputs),
    )


def _schema_note(payload: Mapping) -> tuple[str, tuple[str, ...]]:
    if "I/O Tensors" in payload:
        tensors = payload.get("I/O Tensors") or []
        names = tuple(str(t.get("Name", "")) if isinstance(t, Mapping) else str(t) for t in tensors)
        return "'I/O Tensors' schema (TensorRT 11)", names
    if "Bindings" in payload:
        return "'Bindings' schema (TensorRT <= 10)", tuple(str(b) for b in payload.get("Bindings") or [])
    return "", ()


def parse_layer_info(payload: Payload, source: str = "layer information") -> PrecisionReport:
    """A report from decoded layer-information JSON (a dict with "Layers", or a bare list of layers)."""
    if isinstance(payload, Mapping) and payload.get("format") == "qdqtool-layers":
        try:
            return report_from_json(dict(payload))
        except (KeyError, TypeError) as exc:
            raise QdqError(f"{source} is a damaged qdqtool layer report ({exc.__class__.__name__}); "
                           "write it again with qdqtool's build", settings=("report",)) from None
    if isinstance(payload, Mapping):
        layers_field = payload.get("Layers")
        schema, io_tensors = _schema_note(payload)
    else:
        layers_field, schema, io_tensors = payload, "", ()
    if not isinstance(layers_field, list) or not layers_field:
        raise QdqError(f"{source} has no 'Layers' list; {_HINT}")
    layers = []
    for entry in layers_field:
        if isinstance(entry, str):
            layers.append(layer_from_name(entry))
        elif isinstance(entry, Mapping) and "Name" in entry:
            layers.append(layer_from_dict(entry))
        else:
            raise QdqError(f"{source} has a layer that is neither a name nor an object with 'Name' "
                           f"({str(entry)[:80]}); {_HINT}")
    notes = [f"layer information in the {schema}"] if schema else []
    report = make_report(BACKEND, source, layers, notes, io_tensors)
    if not report.precision_known:
        report = report.with_notes("precision unknown: the file has layer names only (profiling verbosity was not "
                                   "DETAILED); rebuild with `trtexec --profilingVerbosity=detailed` to see precisions")
    return report


def parse_layer_info_text(text: str, source: str = "layer information") -> PrecisionReport:
    """A report from file text: one JSON document, or per-layer JSON blocks after '--- Layer N ---' lines."""
    if _LAYER_BLOCK.search(text):
        blocks = [b for b in _LAYER_BLOCK.split(text) if b.strip()]
        try:
            layers = [json.loads(block) for block in blocks]
        except json.JSONDecodeError as exc:
            raise QdqError(f"{source}: a '--- Layer N ---' block is not JSON "
                           f"({exc.msg} at line {exc.lineno}); {_HINT}") from None
        return parse_layer_info(layers, source)
    try:
        payload = json.loads(text)
    except json.JSONDecodeError as exc:
        raise QdqError(f"{source} is not JSON ({exc.msg} at line {exc.lineno}); {_HINT}") from None
    return parse_layer_info(payload, source)


def read_layer_info(path) -> PrecisionReport:
    text = read_text_file(path, "layer information file", _HINT)
    return parse_layer_info_text(text, str(Path(path)))
