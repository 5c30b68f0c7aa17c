"""Per-layer precision: one report format for every source.

Sources: a TensorRT engine, a trtexec layer-info file, an ONNX Runtime build.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, fields, replace

from qdqtool.trt.kinds import Gate

UNKNOWN = "unknown"
INT8 = "int8"
FLOAT_PRECISIONS = frozenset({"fp32", "fp16", "bf16", "fp64"})

# Which layers carry which kind of work, judged from the layer type (TensorRT or ONNX Runtime op type).
# Myelin engines (TensorRT 10/11) print lower-case kernel kinds: "gemm" for matrix multiplies and 1x1 convolutions,
# "kgen" for generated pointwise/reduction kernels, "correlation" for convolutions.
WEIGHTED_TYPE_WORDS = ("conv", "gemm", "matmul", "matrixmultiply", "fullyconnected", "correlation")
REFORMAT_LAYER_TYPES = frozenset({"Reformat", "MyelinReformat", "QuantizeLinear", "DequantizeLinear"})
REFORMAT_NAME_PREFIXES = ("Reformatting CopyNode",)
QDQ_LAYER_TYPES = {"QuantizeLinear": "quantize", "DequantizeLinear": "dequantize"}   # ONNX Runtime's Q/DQ nodes
QDQ_NAME = re.compile(r"^(?:.*/)?(Quantize|Dequantize)Linear(?:_\d+)?$")


class ReformatKind:
    """What a Reformat layer is (LayerRole values of trt/engine_model.py): a standalone Q/DQ (Origin "QDQ"), the
    graph input's quantizer, a same-type layout copy or a type conversion (Origin "REFORMAT")."""

    QUANTIZE = "quantize"
    DEQUANTIZE = "dequantize"
    INPUT_QUANTIZE = "input-quantize"
    LAYOUT = "layout"
    CONVERT = "convert"
    DEFECTS = frozenset({QUANTIZE, DEQUANTIZE})   # what the `reformat` gate counts


def _op_token(op: str) -> re.Pattern:
    """An ONNX op mentioned in a layer or node name.

    'Add_144', '/blocks.1/Add', 'PWN(..., Add_21)' mention Add; 'Add_output_0' does not.
    """
    return re.compile(rf"(?:^|[^A-Za-z0-9]){op}(?:_\d+)?(?:$|[^A-Za-z0-9_])")


ADD_TOKEN = _op_token("Add")
CONCAT_TOKEN = _op_token("Concat")
CONV_TOKEN = _op_token("Conv")


@dataclass(frozen=True)
class LayerPrecision:
    """One engine layer (or one node of an ONNX Runtime optimised graph) and the precisions it runs in."""

    name: str
    layer_type: str = ""
    onnx_nodes: tuple[str, ...] = ()
    input_precisions: tuple[str, ...] = ()
    output_precisions: tuple[str, ...] = ()
    tactic: str = ""
    is_reformat: bool = False
    fused_residual_add: bool = False
    is_fallback: bool = False      # a float node between INT8 nodes (ONNX Runtime backend)
    requantizes: bool = False      # its inputs arrive at another scale than its output (ONNX Runtime QLinearConcat)
    origin: str = ""               # TensorRT's "Origin" field: "QDQ" (a Q/DQ node run alone), "REFORMAT" (inserted)
    input_tensors: tuple[str, ...] = ()
    output_tensors: tuple[str, ...] = ()

    def reformat_kind(self, graph_inputs: Iterable[str] = ()) -> str:
        """The ReformatKind of a Reformat layer ("" for other layers): Origin "QDQ" (else a Q/DQ op type or a
        layer named after a Q/DQ node) is a Q/DQ run alone, the graph input's quantizer when it reads a graph
        input; the rest are layout copies (same type in and out, or types unknown) or conversions."""
        if not self.is_reformat:
            return ""
        src = next((p for p in self.input_precisions if p != UNKNOWN), UNKNOWN)
        dst = next((p for p in self.output_precisions if p != UNKNOWN), UNKNOWN)
        named = QDQ_NAME.match(self.name)
        if self.origin.upper() == "QDQ" or self.layer_type in QDQ_LAYER_TYPES or (not self.origin and named):
            if set(self.input_tensors) & set(graph_inputs):
                return ReformatKind.INPUT_QUANTIZE
            if dst != UNKNOWN:
                return ReformatKind.QUANTIZE if dst == INT8 else ReformatKind.DEQUANTIZE
            kind = QDQ_LAYER_TYPES.get(self.layer_type) or (named.group(1).lower() if named else "quantize")
            return ReformatKind.DEQUANTIZE if kind == "dequantize" else ReformatKind.QUANTIZE
        return ReformatKind.LAYOUT if src == dst or UNKNOWN in (src, dst) else ReformatKind.CONVERT

    @property
    def precision(self) -> str:
        """The output precision ('fp16+int8' when outputs differ, 'unknown' when the source does not say)."""
        known = sorted({p for p in self.output_precisions if p != UNKNOWN})
        return "+".join(known) if known else UNKNOWN

    @property
    def precision_known(self) -> bool:
        return self.precision != UNKNOWN

    @property
    def outputs_int8(self) -> bool:
        return self.precision == INT8

    @property
    def outputs_float(self) -> bool:
        return any(p in FLOAT_PRECISIONS for p in self.output_precisions)

    @property
    def is_weighted(self) -> bool:
        kind = self.layer_type.lower()
        return not self.is_reformat and any(word in kind for word in WEIGHTED_TYPE_WORDS)

    @property
    def computes_int8(self) -> bool:
        """A weighted layer computes in INT8 when its data input is int8 (the output may still be float)."""
        return bool(self.input_precisions) and self.input_precisions[0] == INT8

    def mentions(self, token: re.Pattern, op_type: str) -> tuple[str, ...]:
        """The fused ONNX node names that are `op_type` nodes.

        By op type for ONNX Runtime nodes, by name for TensorRT layers.
        """
        if self.is_reformat:
            return ()
        if self.layer_type.endswith(op_type):  # ONNX Runtime node types: Add, QLinearAdd, QLinearConcat, ...
            return self.onnx_nodes or (self.name,)
        return tuple(n for n in self.onnx_nodes if token.search(n))


@dataclass(frozen=True)
class PrecisionSummary:
    """Counts over the layers; the lists hold ONNX node names (or layer names when none are known)."""

    layer_count: int
    precision_counts: dict = field(default_factory=dict)   # precision -> layers with at least one output of it
    layer_type_counts: dict = field(default_factory=dict)
    reformat_count: int = 0        # standalone Q/DQ layers other than graph-input quantizers (the `reformat` gate)
    reformat_conversions: dict = field(default_factory=dict)  # 'fp16->int8' -> count, over every Reformat layer
    reformat_kinds: dict = field(default_factory=dict)        # ReformatKind -> count
    standalone_qdq: tuple[str, ...] = ()                      # the layers the `reformat` gate counts
    input_quantizers: tuple[str, ...] = ()
    layout_copies: tuple[str, ...] = ()
    fused_residual_convs: tuple[str, ...] = ()
    fused_int8_residuals: tuple[str, ...] = ()
    float_adds: tuple[str, ...] = ()
    float_concats: tuple[str, ...] = ()
    requant_concats: tuple[str, ...] = ()
    float_convs: tuple[str, ...] = ()
    fallbacks: tuple[str, ...] = ()

    def gate_counts(self) -> dict[str, int]:
        """Counts under the names of qdqtool.report.gates.GATES."""
        return {
            Gate.FLOAT_ADD: len(self.float_adds),
            Gate.FLOAT_CONCAT: len(self.float_concats),
            Gate.REQUANT_CONCAT: len(self.requant_concats),
            Gate.REFORMAT: self.reformat_count,
            Gate.FLOAT_CONV: len(self.float_convs),
        }


@dataclass(frozen=True)
class Latency:
    """Latency of one model over `runs` timed runs (after warm-up), in milliseconds."""

    runs: int
    median_ms: float
    p90_ms: float
    p99_ms: float


@dataclass(frozen=True)
class LatencyComparison:
    engine: Latency
    reference: Latency | None = None
    reference_name: str = ""

    @property
    def ratio(self) -> float | None:
        """Engine median / reference median (below 1: the INT8 build is faster)."""
        if self.reference is None or self.reference.median_ms <= 0:
            return None
        return self.engine.median_ms / self.reference.median_ms


@dataclass(frozen=True)
class PrecisionReport:
    backend: str
    source: str
    layers: tuple[LayerPrecision, ...]
    summary: PrecisionSummary
    precision_known: bool
    notes: tuple[str, ...] = ()
    io_tensors: tuple[str, ...] = ()
    latency: LatencyComparison | None = None

    def with_latency(self, latency: LatencyComparison) -> PrecisionReport:
        return replace(self, latency=latency)

    def with_notes(self, *notes: str) -> PrecisionReport:
        return replace(self, notes=self.notes + tuple(n for n in notes if n))

    def to_json(self) -> dict:
        payload = {
            "format": "qdqtool-layers",
            "version": 1,
            "backend": self.backend,
            "source": self.source,
            "precision_known": self.precision_known,
            "notes": list(self.notes),
            "io_tensors": list(self.io_tensors),
            "summary": {**asdict(self.summary), "gate_counts": self.summary.gate_counts()},
            "layers": [{**asdict(layer), "precision": layer.precision} for layer in self.layers],
        }
        if self.latency is not None:
            payload["latency"] = {**asdict(self.latency), "ratio": self.latency.ratio}
        return payload


def _names(layer: LayerPrecision, found: Sequence[str]) -> tuple[str, ...]:
    return tuple(found) if found else (layer.name,)


def _reformat_conversion(layer: LayerPrecision) -> str | None:
    src = next((p for p in layer.input_precisions if p != UNKNOWN), None)
    dst = next((p for p in layer.output_precisions if p != UNKNOWN), None)
    return f"{src}->{dst}" if src and dst else None


def summarize(layers: Iterable[LayerPrecision], graph_inputs: Iterable[str] = ()) -> PrecisionSummary:
    """Counts and name lists over layers; layers of unknown precision are never counted as float. graph_inputs:
    the engine's input tensors (a Q/DQ reading one is the graph input's quantizer, not a defect)."""
    layers, graph_inputs = tuple(layers), frozenset(graph_inputs)
    precision_counts: Counter = Counter()
    for layer in layers:
        known = {p for p in layer.output_precisions if p != UNKNOWN}
        precision_counts.update(known or {UNKNOWN})
    reformats = [layer for layer in layers if layer.is_reformat]
    kinds = {layer.name: layer.reformat_kind(graph_inputs) for layer in reformats}
    conversions = Counter(c for c in map(_reformat_conversion, reformats) if c)
    fused = [layer for layer in layers if layer.fused_residual_add]
    float_adds, float_concats, requant_concats = [], [], []
    for layer in layers:
        adds = layer.mentions(ADD_TOKEN, "Add")
        concats = layer.mentions(CONCAT_TOKEN, "Concat")
        if layer.outputs_float:
            float_adds.extend(adds)
            float_concats.extend(concats)
        if concats and layer.requantizes:
            requant_concats.extend(concats)
    # a Reformat about a Concat requantizes only when it changes the type or is a Q/DQ; a layout copy does not
    requant_concats.extend(r.name for r in reformats
                           if CONCAT_TOKEN.search(r.name) and kinds[r.name] != ReformatKind.LAYOUT)
    return PrecisionSummary(
        layer_count=len(layers),
        precision_counts=dict(precision_counts.most_common()),
        layer_type_counts=dict(Counter(layer.layer_type or UNKNOWN for layer in layers).most_common()),
        reformat_count=sum(kind in ReformatKind.DEFECTS for kind in kinds.values()),
        reformat_conversions=dict(conversions.most_common()),
        reformat_kinds=dict(Counter(kinds.values()).most_common()),
        standalone_qdq=tuple(name for name, kind in kinds.items() if kind in ReformatKind.DEFECTS),
        input_quantizers=tuple(name for name, kind in kinds.items() if kind == ReformatKind.INPUT_QUANTIZE),
        layout_copies=tuple(name for name, kind in kinds.items() if kind == ReformatKind.LAYOUT),
        fused_residual_convs=tuple(layer.name for layer in fused),
        fused_int8_residuals=tuple(layer.name for layer in fused if layer.outputs_int8),
        float_adds=tuple(float_adds),
        float_concats=tuple(float_concats),
        requant_concats=tuple(requant_concats),
        float_convs=tuple(layer.name for layer in layers
                          if layer.is_weighted and layer.precision_known and not layer.computes_int8),
        fallbacks=tuple(layer.name for layer in layers if layer.is_fallback),
    )


def make_report(
    backend: str,
    source: str,
    layers: Iterable[LayerPrecision],
    notes: Iterable[str] = (),
    io_tensors: Iterable[str] = (),
    latency: LatencyComparison | None = None,
) -> PrecisionReport:
    """A report whose summary is computed from the layers; precision is known when any layer has a known output."""
    layers, io_tensors = tuple(layers), tuple(io_tensors)
    return PrecisionReport(
        backend=backend,
        source=source,
        layers=layers,
        summary=summarize(layers, io_tensors),
        precision_known=any(layer.precision_known for layer in layers),
        notes=tuple(notes),
        io_tensors=io_tensors,
        latency=latency,
    )


def report_from_json(payload: dict) -> PrecisionReport:
    """Read back a report written by to_json() (qdqtool's build report); the summary is recomputed."""
    names = {f.name for f in fields(LayerPrecision)}
    layers = [LayerPrecision(**{key: tuple(value) if isinstance(value, list) else value
                                for key, value in entry.items() if key in names}) for entry in payload["layers"]]
    latency = payload.get("latency")
    comparison = None
    if latency:
        reference = latency.get("reference")
        comparison = LatencyComparison(Latency(**latency["engine"]), Latency(**reference) if reference else None,
                                       latency.get("reference_name", ""))
    return make_report(payload.get("backend", ""), payload.get("source", ""), layers, payload.get("notes", ()),
                       payload.get("io_tensors", ()), comparison)
