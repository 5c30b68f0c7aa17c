"""Reading and editing ONNX graphs: the read-only view, model preparation, existing Q/DQ."""
