"""The typed vocabulary of plans, predictions and repairs: rules, outcomes, finding kinds, causes and edit kinds.

Every value is a text enum, so it prints, compares and serialises as its text ("fused-add" == Kind.FUSED_ADD); code
and tests branch on these members and on structured fields, never on the text of a reason.
"""

from __future__ import annotations

from enum import Enum


class StrEnum(str, Enum):
    """enum.StrEnum of Python 3.11, written out for 3.10: members are their text."""

    def __str__(self) -> str:
        return str(self.value)

    def __format__(self, spec: str) -> str:
        return str(self.value).__format__(spec)


class Gate(StrEnum):
    """The gate names (the fail_on setting): a gate fails when its count is above zero."""

    FLOAT_ADD = "float-add"
    FLOAT_CONCAT = "float-concat"
    REQUANT_CONCAT = "requant-concat"
    REFORMAT = "reformat"
    FLOAT_CONV = "float-conv"
    MISMATCH = "mismatch"            # report --compare only: a node whose predicted layer differs from the engine's


class Rule(StrEnum):
    """Which placement rule decided a node (Decision.rule)."""

    WEIGHTED = "weighted"
    RESIDUAL_ADD = "residual-add"
    STANDALONE_ADD = "standalone-add"
    CONCAT = "concat"


class EdgeRule(StrEnum):
    """Why one edge receives a Q/DQ pair (QuantizedInput.rule)."""

    WEIGHTED_INPUT = "weighted-input"
    RESIDUAL_SKIP = "residual-skip"
    RESIDUAL_BOTH = "residual-both"
    STANDALONE_ADD = "standalone-add"
    POOL_INPUT = "pool-input"             # a pooling layer between INT8 layers runs INT8 with a Q on its input
    COMMUTING_INPUT = "commuting-input"   # fix-residuals --scope all keeps a model's Q/DQ on a commuting op's input


class Outcome(StrEnum):
    """How a decided node runs (Decision.outcome)."""

    INT8 = "int8"
    FLOAT = "float"
    FUSED_INT8 = "fused-int8"


class Kind(StrEnum):
    """What TensorRT does with one node or one Q/DQ pair (Finding.kind)."""

    INT8_CONV = "int8-conv"
    FUSED_ADD = "fused-add"
    INT8_ADD = "int8-add"
    INT8_CONCAT = "int8-concat"
    FLOAT_REGION = "float-region"    # no Q/DQ on any input or the output: float by design (a detection-head decode)
    FLOAT_CONV = "float-conv"
    FLOAT_ADD = "float-add"
    FLOAT_CONCAT = "float-concat"
    REQUANT_CONCAT = "requant-concat"
    SCALE_MISMATCH = "scale-mismatch"
    TWO_SCALES = "two-scales"        # one float tensor read by quantizers of different scales
    REFORMAT = "reformat"            # a standalone Q/DQ layer (other than a graph input's quantizer)
    INPUT_QUANTIZE = "input-quantize"   # a graph input's quantizer: always its own layer, unavoidable, not a defect


# finding kind -> the gate it counts toward (None: fine for TensorRT)
KIND_GATES: dict[Kind, Gate | None] = {
    Kind.INT8_CONV: None,
    Kind.FUSED_ADD: None,
    Kind.INT8_ADD: None,
    Kind.INT8_CONCAT: None,
    Kind.FLOAT_REGION: None,
    Kind.FLOAT_CONV: Gate.FLOAT_CONV,
    Kind.FLOAT_ADD: Gate.FLOAT_ADD,
    Kind.FLOAT_CONCAT: Gate.FLOAT_CONCAT,
    Kind.REQUANT_CONCAT: Gate.REQUANT_CONCAT,
    Kind.SCALE_MISMATCH: Gate.REFORMAT,
    Kind.TWO_SCALES: Gate.REFORMAT,
    Kind.REFORMAT: Gate.REFORMAT,
    Kind.INPUT_QUANTIZE: None,
}


class Cause(StrEnum):
    """The machine-readable why behind a decision, a finding or a repair edit."""

    NONE = ""
    # the walk from an Add input back to a convolution (EpilogueChain.cause)
    FUSIBLE = "fusible"
    GRAPH_INPUT = "graph-input"
    SHARED_OUTPUT = "shared-output"
    WEIGHT_NOT_CONSTANT = "weight-not-constant"
    NOT_EPILOGUE = "not-epilogue"
    TOO_FAR = "too-far"
    # weighted ops (rule 1)
    QUANTIZED = "quantized"
    OP_TYPE_NOT_SELECTED = "op-type-not-selected"
    EXCLUDED = "excluded"
    KEPT_FLOAT = "kept-float"
    ACTIVATION_NOT_FLOAT = "activation-not-float"
    DECODE = "decode"
    NOT_QUANTIZED = "not-quantized"
    # residual Adds (rule 2) and standalone Adds (rule 3)
    SKIP_QUANTIZED = "skip-quantized"
    SKIP_SHARES_QUANTIZER = "skip-shares-quantizer"
    BOTH_ONE_SCALE = "both-one-scale"
    FLOAT_SKIP = "float-skip"
    CONV_SIDE_QDQ = "conv-side-qdq"
    NO_FUSIBLE_CONV = "no-fusible-conv"
    ALL_QUANTIZED = "all-quantized"
    PARTLY_QUANTIZED = "partly-quantized"
    GRAPH_OUTPUT = "graph-output"
    # Concats (rule 4), commuting ops (rule 5), stray Q/DQ (rule 7)
    ONE_SCALE = "one-scale"
    RANGE_SPREAD = "range-spread"
    NO_INT8_CONSUMER = "no-int8-consumer"
    NO_QDQ = "no-qdq"
    NO_OUTPUT_Q = "no-output-q"
    OUTPUT_SCALES = "output-scales"
    INPUT_SCALE_DIFFERS = "input-scale-differs"
    INPUT_TWO_SCALES = "input-two-scales"
    COMMUTING_SCALES = "commuting-scales"
    TWO_SCALES = "two-scales"
    FLOAT_CONSUMER = "float-consumer"
    FLOAT_BOUNDARY = "float-boundary"    # a Q where a float region meets an INT8 one: its writer runs float, or a
    #                                      reader that cannot run INT8 needs the tensor in float: no placement fuses it
    FLOAT_READER = "float-reader"        # a float reader that could take a Q keeps its writer (or fused group) float
    HOISTED_ONTO_FLOAT_CONCAT = "hoisted-onto-float-concat"   # its Q would move in front of a float Concat's inputs
    # repairs
    MODE = "mode"                    # an explicit choice of the user (residual/standalone-add mode)
    GROUP_SCALE = "group-scale"
    OPSET = "opset"


class ProblemKind(StrEnum):
    """Something in a Q/DQ model TensorRT cannot take as it is (Problem.kind)."""

    ZERO_POINT = "zero-point"
    PER_CHANNEL_ACTIVATION = "per-channel-activation"
    DQ_WITHOUT_Q = "dq-without-q"
    Q_WITHOUT_DQ = "q-without-dq"
    OPSET = "opset"


class EditKind(StrEnum):
    """One planned change to an existing Q/DQ model (RepairEdit.kind), in the order they apply."""

    CONVERT_OPSET = "convert-opset"
    REMOVE = "remove"
    SET_SCALE = "set-scale"
    INSERT = "insert"


class ScaleSource(StrEnum):
    """Where the scale of an inserted quantizer came from (RepairEdit.source)."""

    GROUP = "group"                          # the shared scale of its Concat/commuting group
    REUSED = "reused"                        # a quantizer that already quantizes the same tensor
    MEASURED = "measured"                    # a ranges file or a quick calibration on data
    INFERRED_FROM_OUTPUT = "inferred-from-output"            # the quantizer reading the residual Add's output
    INFERRED_FROM_OTHER_INPUT = "inferred-from-other-input"  # the quantizer of the Add's other input
