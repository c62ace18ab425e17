"""The `size NAME = NUMBER` statement: defaults of rank sizes, rank parts and params
(`Cascade.defaults`), how they bind (after given sizes and input shapes; derived parts derived),
their errors at line:column, the printer's round trip, and the command line using them."""
from __future__ import annotations

import numpy as np
import pytest

import einsum_cascade as ec
from einsum_cascade.printer import print_cascade
from einsum_cascade.sizes import with_defaults
from studies.cli import main

TEXT = """rank P
rank M = M1 * M0
param W, T
size M0 = 4, W = 2.5
size T = -1
input X[m,p]
output Y
Y[p] = sum(m: X[m,p] * W * T)
"""


def test_defaults_are_parsed_in_order_with_their_types():
    c = ec.parse(TEXT)
    assert c.defaults == {"M0": 4, "W": 2.5, "T": -1}
    assert list(c.defaults) == ["M0", "W", "T"] and isinstance(c.defaults["M0"], int)


def test_given_sizes_and_shapes_come_first_and_a_derived_part_is_derived():
    c = ec.parse(TEXT)
    # M = 8 given, M0 = 4 from the default, M1 = 8 / 4 derived, params from their defaults
    assert c.bind_sizes({}, {"M": 8, "P": 3}) == {"M": 8, "P": 3, "M0": 4, "M1": 2, "W": 2.5, "T": -1}
    # a given M0 wins over the default
    assert c.bind_sizes({}, {"M": 8, "P": 3, "M0": 2, "W": 1})["M1"] == 4
    # shapes: M = 12 from X, M1 = 3
    bound = c.bind_sizes({"X": np.zeros((12, 2))})
    assert (bound["M"], bound["P"], bound["M0"], bound["M1"]) == (12, 2, 4, 3)
    # M1 and M0 given: M derived, never the default
    assert c.bind_sizes({}, {"M1": 2, "M0": 3, "P": 1})["M"] == 6


def test_a_default_that_does_not_fit_a_given_size_is_named():
    c = ec.parse(TEXT)
    with pytest.raises(ec.CascadeError, match="default size M0 = 4"):
        c.bind_sizes({}, {"M": 10, "P": 2})


def test_a_default_of_a_part_the_others_determine_is_not_used():
    c = ec.parse(TEXT.replace("size M0 = 4, W = 2.5", "size M1 = 5, M0 = 4, W = 2.5"))
    # M and M0 given: M1 = 3 derived (the default 5 would be inconsistent)
    assert c.bind_sizes({}, {"M": 12, "M0": 4, "P": 1})["M1"] == 3
    assert with_defaults(c, {"M": 12, "M0": 4}) == {"M": 12, "M0": 4, "W": 2.5, "T": -1}
    assert with_defaults(c, {})["M1"] == 5


def test_evaluation_uses_the_defaults():
    c = ec.parse(TEXT)
    x = np.arange(6.0).reshape(3, 2)
    out = c.evaluate({"X": x}, {"M0": 1})
    np.testing.assert_allclose(out["Y"], x.sum(axis=0) * 2.5 * -1)


@pytest.mark.parametrize("line,where,message", [
    ("size Z = 3", "4:6", "not a rank, rank part or param declared before"),
    ("size M0 = 0", "4:11", "must be a positive integer"),
    ("size M0 = 1.5", "4:11", "must be a positive integer"),
    ("size M0 = -3", "4:11", "expected a positive integer"),
    ("size W = inf", "4:10", "expected a finite number"),
    ("size W = x", "4:10", "expected a finite number"),
    ("size W 3", "4:8", "expected '='"),
    ("size M0 = 4, M0 = 5", "4:14", "has a default already (at 4:6)"),
    ("size M = 10, M0 = 3, M1 = 3", "4:6", "defaults of M1 * M0 give 9"),
])
def test_bad_defaults_are_errors_at_line_and_column(line, where, message):
    text = TEXT.replace("size M0 = 4, W = 2.5\nsize T = -1", line)
    with pytest.raises(ec.CascadeError) as err:
        ec.parse(text)
    assert f"<string>:{where}:" in str(err.value) and message in str(err.value)


def test_a_default_before_its_declaration_is_an_error():
    with pytest.raises(ec.CascadeError, match="<string>:2:6: size 'W'"):
        ec.parse("rank M\nsize W = 2\nparam W\ninput X[m]\noutput Y\nY = sum(m: X[m] * W)\n")


def test_the_printer_writes_the_defaults_back():
    c = ec.parse(TEXT)
    text = print_cascade(c)
    assert "size M0 = 4, W = 2.5, T = -1\n" in text
    assert ec.parse(text).defaults == c.defaults


def test_eval_and_analyze_take_the_defaults(tmp_path, capsys):
    path = tmp_path / "d.cascade"
    path.write_text(TEXT)
    assert main(["eval", str(path), "--size", "M=8", "P=3"]) == 0
    assert "Y: shape (3,)" in capsys.readouterr().out
    assert main(["analyze", str(path), "--size", "M=8", "P=3"]) == 0
    # 2 multiplies and 1 add per point, 8 * 3 points (hand count)
    assert "= multiply 48, add 24" in capsys.readouterr().out
    assert main(["eval", str(path), "--size", "M=10", "P=3"]) == 2
    assert "default size M0 = 4" in capsys.readouterr().err
