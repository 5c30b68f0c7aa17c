"""User-facing errors. Each message says what is wrong and what to do; the CLI prints it as one line."""


class QdqError(Exception):
    """Base of every error caused by the user's input or environment (not a bug in qdqtool)."""


class ModelError(QdqError):
    """The ONNX model cannot be used as given."""


class DataError(QdqError):
    """The calibration or evaluation data cannot be used as given."""


class OutputError(QdqError):
    """The output path is unusable (equal to the input, unwritable folder, ...)."""


class BackendUnavailable(QdqError):
    """An optional backend (TensorRT, a GPU provider) is missing."""


class RangeError(QdqError):
    """A quantizer needs a range that no source (existing scale, ranges file, data) provides."""
