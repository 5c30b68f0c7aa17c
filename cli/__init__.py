"""The click commands of qdqtool (installed as ``qdqtool.cli``)."""
