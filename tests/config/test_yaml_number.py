"""One rule for numbers YAML 1.1 leaves as strings, used by --set overrides and search spaces."""
from __future__ import annotations

import pytest
import yaml

from raygan.config.load import parse_override, yaml_number
from raygan.distributed.sweep import space


@pytest.mark.parametrize("text, number", [
    ("1e-4", 1e-4), ("1.0e10", 1e10), ("5.0e-5", 5e-5), ("1e5", 1e5), ("-.5", -0.5), ("+2.5E3", 2500.0),
    (" 3e2 ", 300.0), ("1.", 1.0),
])
def test_decimal_strings_become_floats(text, number):
    got = yaml_number(text)
    assert type(got) is float and got == number


@pytest.mark.parametrize("value", [
    "ns", "e", "1e", "E5", ".", "none", "inf", "-inf", "nan", "1_000.5", "0x10", "42", "1.2.3", "2e-4x", "",
    3, 2.5, None, True, [1, 2],
])
def test_anything_else_is_unchanged(value):
    assert yaml_number(value) is value


def test_yaml_reads_these_as_strings_and_both_users_agree():
    assert yaml.safe_load("[1e-4, 1.0e10, 5.0e-5]") == ["1e-4", "1.0e10", 5e-5]  # why the rule exists
    assert parse_override("optim.g_lr=1e-4") == {"optim": {"g_lr": 1e-4}}
    assert parse_override("loss.name=ns") == {"loss": {"name": "ns"}}
    assert parse_override("x=1.0e10")["x"] == 1e10 and parse_override("x=inf")["x"] == "inf"
    assert space.yaml_number is yaml_number  # the search space uses the same function
    assert not hasattr(space, "_maybe_number")
