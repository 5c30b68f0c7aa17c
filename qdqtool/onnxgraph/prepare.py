"""Loading and preparing models: refusals for unusable input, opset >= 13, Constant weights as initializers, names."""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path
from typing import List, Tuple

import onnx
from google.protobuf.message import DecodeError
from onnx import numpy_helper

from qdqtool.errors import ModelError, first_line
from qdqtool.trt.rules import INTEGER_KERNEL_OPS, MIN_QDQ_OPSET, QDQ_OPS
from qdqtool.weightstore import (
    detach,
    external_data_files,
    external_length,
    fill_weights,
    is_detached,
    is_on_file,
    refer_to_files,
    short_file,
    skeleton_copy,
)

log = logging.getLogger("qdqtool")

SMALL_TENSOR_BYTES = 1 << 20   # external tensors up to this size are read when only the graph is loaded


def load_model(path) -> onnx.ModelProto:
    """Load an ONNX file (external data included) or raise ModelError saying why it is not one."""
    return load_model_with_data_files(path)[0]


def load_model_with_data_files(path, with_weights: bool = True) -> Tuple[onnx.ModelProto, Tuple[Path, ...]]:
    """The model with its weights, and the external data files they came from (empty for a one-file model).
    with_weights=False leaves external weights unread: `load_external_weights` reads them later, into the copy
    that needs them (calibrating a model over 2 GB then holds its weights once).

    Refuses (ModelError, one line) a missing path, a folder, anything that is not an ONNX model, external data
    outside the model's folder or missing, and a graph that fails onnx's checker."""
    source = Path(path)
    if source.is_dir():
        raise ModelError(f"model path {source} is a folder; pass the path of an .onnx file")
    if not source.is_file():
        raise ModelError(f"model file {source} does not exist; pass the path of an .onnx file")
    try:
        model = onnx.load(str(source), load_external_data=False)
    except (DecodeError, ValueError, OSError, RuntimeError) as exc:
        raise ModelError(f"{source} is not an ONNX model ({exc.__class__.__name__}); pass an .onnx file exported "
                         "by torch.onnx / paddle2onnx / tf2onnx") from None
    if not model.graph.node:
        raise ModelError(f"{source} is not an ONNX model (no graph nodes); pass an .onnx file")
    data_files = external_data_files(model, source.parent)
    _check_data_files(source, data_files)
    check_graph(source, model)
    if data_files and with_weights:
        load_external_weights(model, source)
    return model, data_files


def load_model_graph(path) -> onnx.ModelProto:
    """The model with its small tensors (scales, zero points, shapes, biases) and without its large external
    weights, which are left DETACHED (never read): what reading the graph and its Q/DQ scales needs (check)."""
    source = Path(path)
    model, data_files = load_model_with_data_files(source, with_weights=False)
    if not data_files:
        return model
    from onnx.external_data_helper import _get_all_tensors

    for tensor in _get_all_tensors(model):
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        if external_length(tensor) > SMALL_TENSOR_BYTES:
            detach(tensor)
            continue
        _read_into(tensor, source)
    return model


UNREADABLE = (onnx.checker.ValidationError, OSError, ValueError)   # what onnx raises on a bad external-data entry


KEEP_BESIDE = "keep the model's data files beside it, inside its folder"


def unreadable_weights(source: Path, reason: object) -> ModelError:
    """The one-line error for external weights that cannot be read (`reason`: onnx's exception or what is wrong)."""
    text = first_line(reason, 300) if isinstance(reason, BaseException) else str(reason)
    return ModelError(f"{source}: its external weights cannot be read ({text}); {KEEP_BESIDE}")


def _read_into(tensor: onnx.TensorProto, source: Path) -> None:
    """One external tensor's data read into the tensor itself; ModelError when it cannot be read."""
    from onnx.external_data_helper import load_external_data_for_tensor

    try:
        load_external_data_for_tensor(tensor, str(source.parent))
    except UNREADABLE as exc:
        raise unreadable_weights(source, exc) from None
    tensor.data_location = onnx.TensorProto.DEFAULT
    del tensor.external_data[:]


def _check_data_files(source: Path, data_files: Tuple[Path, ...]) -> None:
    folder = source.parent.resolve()
    for path in data_files:
        if folder not in path.parents:
            raise ModelError(f"{source}: its external weights point outside the model's folder ({path}); {KEEP_BESIDE}")
        if not path.is_file():
            raise unreadable_weights(source, f"{path} is missing")


def load_external_weights(model: onnx.ModelProto, source: Path) -> None:
    """Read the external data of model (loaded from source) into it; ModelError when it is outside or missing."""
    from onnx.external_data_helper import load_external_data_for_model

    try:
        load_external_data_for_model(model, str(source.parent))
    except UNREADABLE as exc:
        raise unreadable_weights(source, exc) from None


def refer_to_external_weights(model: onnx.ModelProto, source: Path) -> None:
    """Leave model's external initializers (loaded without its weights from source) on file, pointed at by absolute
    path (weightstore.refer_to_files): read one at a time when quantized, copied into each session's files and the
    output's data file, never held whole. Other external tensors (Constant values, subgraphs) are read now."""
    from onnx.external_data_helper import _get_all_tensors

    refer_to_files(model, source.parent)
    for tensor in model.graph.initializer:
        problem = short_file(tensor) if is_on_file(tensor) else None
        if problem:
            raise unreadable_weights(source, problem)
    for tensor in _get_all_tensors(model):
        if tensor.data_location != onnx.TensorProto.EXTERNAL or is_on_file(tensor) or is_detached(tensor):
            continue
        _read_into(tensor, source)


def check_graph(source: Path, model: onnx.ModelProto) -> None:
    """onnx's checker on the model file (read from the path: models over 2 GB are checked too). One failure is
    accepted: per-channel Q/DQ (an `axis`) below opset 13, as ONNX Runtime's quantizer writes for older models; the
    stages that read Q/DQ convert such a model to opset 13 first."""
    try:
        onnx.checker.check_model(str(source), full_check=False)
    except onnx.checker.ValidationError as exc:
        if _per_channel_qdq_below_opset_13(model) and "attribute: axis" in str(exc):
            return
        raise ModelError(f"{source} fails onnx's checker ({first_line(exc, 300)}); re-export the model or "
                         "repair the graph") from None


def _per_channel_qdq_below_opset_13(model: onnx.ModelProto) -> bool:
    return default_opset(model) < MIN_QDQ_OPSET and any(
        node.op_type in QDQ_OPS and any(a.name == "axis" for a in node.attribute) for node in model.graph.node)


def default_opset(model: onnx.ModelProto) -> int:
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)


def op_counts(model: onnx.ModelProto) -> Counter:
    return Counter(node.op_type for node in model.graph.node)


def refuse_integer_kernels(model: onnx.ModelProto, source: str = "the model") -> None:
    """TensorRT's parser rejects QLinear*/ConvInteger/DynamicQuantizeLinear: such a model must not go further."""
    found = {op: n for op, n in op_counts(model).items() if op in INTEGER_KERNEL_OPS}
    if found:
        listed = ", ".join(f"{op} x{n}" for op, n in sorted(found.items()))
        raise ModelError(f"{source} is already quantized for ONNX Runtime's integer kernels ({listed}), which TensorRT "
                         "rejects; start from the FP32 model instead")


def refuse_existing_qdq(model: onnx.ModelProto, source: str = "the model") -> None:
    count = sum(n for op, n in op_counts(model).items() if op in QDQ_OPS)
    if count:
        raise ModelError(f"{source} already contains {count} QuantizeLinear/DequantizeLinear nodes; calibrate takes an "
                         "FP32 model: use `qdqtool fix-residuals` to repair an existing Q/DQ placement")


def needs_node_names(graph: onnx.GraphProto) -> bool:
    """Whether name_nodes would rename anything (a node without a name, or a name used twice)."""
    names = [node.name for node in graph.node]
    return not all(names) or len(set(names)) != len(names)


def name_nodes(graph: onnx.GraphProto) -> int:
    """Give every node a unique name (edits and reports refer to nodes by name). Returns how many were renamed."""
    seen = set()
    renamed = 0
    for index, node in enumerate(graph.node):
        if not node.name or node.name in seen:
            base = node.name or f"{node.op_type}_{index}"
            candidate, suffix = base, 1
            while candidate in seen:
                candidate, suffix = f"{base}_{suffix}", suffix + 1
            node.name = candidate
            renamed += 1
        seen.add(node.name)
    return renamed


def constants_to_initializers(graph: onnx.GraphProto) -> int:
    """Turn tensor-valued Constant nodes (PaddlePaddle exports keep weights this way) into initializers."""
    kept: List[onnx.NodeProto] = []
    moved = 0
    for node in graph.node:
        value = next((a for a in node.attribute if a.name == "value"), None) if node.op_type == "Constant" else None
        if value is not None and len(node.attribute) == 1 and node.output[0] not in {o.name for o in graph.output}:
            tensor = numpy_helper.from_array(numpy_helper.to_array(value.t), node.output[0])
            graph.initializer.append(tensor)
            moved += 1
        else:
            kept.append(node)
    if moved:
        del graph.node[:]
        graph.node.extend(kept)
    return moved


def fold_weight_aliases(graph: onnx.GraphProto) -> int:
    """Read an Identity (or a Cast to the type it already has) on an initializer as the initializer: the PyTorch
    exporter writes `W2 = Identity(W1)` when two layers share a weight, and TensorRT folds it. Its readers then read
    the initializer, so the layers behind it are quantized like any other; the alias nodes are dropped."""
    types = {t.name: t.data_type for t in graph.initializer}
    outputs = {o.name for o in graph.output}
    alias: dict = {}
    kept: List[onnx.NodeProto] = []
    for node in graph.node:
        source = alias.get(node.input[0], node.input[0]) if len(node.input) == 1 else None
        to = next((a.i for a in node.attribute if a.name == "to"), None)
        is_alias = source in types and len(node.output) == 1 and node.output[0] not in outputs and (
            node.op_type == "Identity" or (node.op_type == "Cast" and to == types[source]))
        if is_alias:
            alias[node.output[0]] = source
        else:
            kept.append(node)
    if not alias:
        return 0
    for node in kept:
        for i, name in enumerate(node.input):
            if name in alias:
                node.input[i] = alias[name]
    del graph.node[:]
    graph.node.extend(kept)
    return len(alias)


def upgrade_opset(model: onnx.ModelProto, target: int = MIN_QDQ_OPSET) -> onnx.ModelProto:
    """Convert the default domain to opset `target` when it is lower (per-channel DequantizeLinear needs 13)."""
    current = default_opset(model)
    if current >= target:
        return model
    try:
        from onnx import version_converter

        converted = version_converter.convert_version(skeleton_copy(model), target)
        fill_weights(converted, model)
    except Exception as exc:  # noqa: BLE001 - onnx's converter raises assorted errors (RuntimeError, ValueError, ...)
        raise ModelError(f"the model's opset {current} is below {target} and onnx's version converter failed "
                         f"({first_line(exc, 200)}); re-export the model with opset >= {target}") from None
    log.info("converted opset %d -> %d (per-channel DequantizeLinear needs opset %d)", current, target, target)
    return converted


def infer_shapes(model: onnx.ModelProto, with_weights: bool = True) -> onnx.ModelProto:
    """The model with inferred value_info (the model itself when inference fails). with_weights=False returns a
    skeleton (large weights detached): enough to read types and shapes, and no copy of the weights."""
    try:
        inferred = onnx.shape_inference.infer_shapes(skeleton_copy(model))
        if with_weights:
            fill_weights(inferred, model)
        return inferred
    except Exception as exc:  # noqa: BLE001 - shape inference is a help, not a requirement; any failure skips it
        log.debug("shape inference skipped: %s", exc)
        return model


def subgraph_node_count(graph: onnx.GraphProto) -> int:
    """Nodes inside If/Loop/Scan bodies (at any depth): placement and checks do not enter them."""
    count = 0
    for node in graph.node:
        for attribute in node.attribute:
            bodies = [attribute.g] if attribute.HasField("g") else list(attribute.graphs)
            count += sum(len(body.node) + subgraph_node_count(body) for body in bodies)
    return count


def prepare_float_model(model: onnx.ModelProto, source: str = "the model") -> Tuple[onnx.ModelProto, List[str]]:
    """A copy ready for placement and calibration, plus notes on what preparation changed.

    Preparation runs on a skeleton (no weight bytes); the weights are copied in once, at the end. External weights
    not loaded yet stay external (see load_model_with_data_files(with_weights=False))."""
    refuse_integer_kernels(model, source)
    prepared, notes = _prepare_in_place(skeleton_copy(model))
    fill_weights(prepared, model)
    subgraph_nodes = subgraph_node_count(prepared.graph)
    if subgraph_nodes:
        notes.append(f"{subgraph_nodes} nodes inside If/Loop/Scan subgraphs stay float (placement does not enter "
                     "subgraphs)")
    return prepared, notes


def _prepare_in_place(prepared: onnx.ModelProto) -> Tuple[onnx.ModelProto, List[str]]:
    notes: List[str] = []
    opset = default_opset(prepared)
    prepared = upgrade_opset(prepared, MIN_QDQ_OPSET)  # first: the converter itself may add Constant nodes
    if default_opset(prepared) != opset:
        notes.append(f"opset {opset} converted to {default_opset(prepared)}")
    moved = constants_to_initializers(prepared.graph)
    if moved:
        notes.append(f"{moved} Constant nodes treated as weights (initializers)")
    folded = fold_weight_aliases(prepared.graph)
    if folded:
        notes.append(f"{folded} Identity/no-op Cast nodes on weights read as the weight itself (a shared weight)")
    renamed = name_nodes(prepared.graph)
    if renamed:
        notes.append(f"{renamed} unnamed nodes given names")
    return infer_shapes(prepared), notes
