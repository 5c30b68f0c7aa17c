"""The --fail-on vocabulary shared by check, build and report."""

from __future__ import annotations

import pytest

from qdqtool.errors import QdqError
from qdqtool.report.gates import GATES, describe_violations, parse_gates, violated_gates


def test_parse_gates_keeps_order_and_drops_duplicates():
    assert parse_gates(" float-add, Reformat ,float-add") == ("float-add", "reformat")
    assert parse_gates("") == ()


def test_unknown_gate_lists_valid_ones():
    with pytest.raises(QdqError) as info:
        parse_gates("float-add,float-mul")
    assert "float-mul" in str(info.value)
    assert all(name in str(info.value) for name in GATES)


def test_violated_gates_only_counts_above_zero():
    counts = {"float-add": 2, "reformat": 0, "float-conv": 1}
    gates = ("reformat", "float-conv", "float-add", "float-concat")
    assert violated_gates(counts, gates) == ["float-conv", "float-add"]
    assert describe_violations(counts, ("float-add",)) == [f"float-add: 2 ({GATES['float-add']})"]


def test_every_gate_has_a_count_in_precision_summaries():
    from qdqtool.report.layers import summarize

    assert set(summarize(()).gate_counts()) == set(GATES)
