"""The standard operator set of the shipped accelerators (issue 19): each composed operator costs the
sum of its parts, and every Einsum of every library cascade and block has a unit that evaluates it.

The recipes below are written from the header comments of the YAML files (the stated compositions),
not read from the rows they check: each row must equal the sum of the primitive rows of its unit.
"""
from __future__ import annotations

from collections import Counter

import pytest

import einsum_cascade as ec
from archsim.config import load_architecture

NEWTON_RSQRT = ["add", "multiply"] + ["multiply", "mac", "multiply"] * 2  # seed, x/2, 2 iterations
REDUCE_2PI = ["multiply", "add", "add", "mac"]  # x / 2pi, round (2 adds), x - 2pi k
RECIPES = {
    "min": ["max"], "abs": ["max"], "square": ["multiply"], "compare": ["max"], "select": ["max"],
    "logic": ["max"], "rsqrt": NEWTON_RSQRT, "sqrt": NEWTON_RSQRT + ["multiply"],
    "cos": REDUCE_2PI + ["multiply"] + ["mac"] * 6, "sin": REDUCE_2PI + ["multiply"] + ["mac"] * 6 + ["multiply"],
    "kth": ["max", "add"] * 16, "recip": ["divide"], "silu": ["exp", "add", "divide"],
    "tanh": ["multiply", "exp", "add", "divide", "add"],
    "gelu": ["multiply", "mac", "multiply", "multiply", "exp", "add", "divide"],
}
LOG_EXP_ROOT = ["log", "multiply", "exp"]  # FLAT's 1D: sqrt = exp(log(x) / 2), rsqrt = exp(-log(x) / 2)
EXTRA_READS = {"select": 1}  # the mux reads its condition besides both operands
# (architecture, unit) -> the composed operators it must have, and recipes that differ there
EXPECTED = {
    ("fusemax-cloud", "array2d"): (["min", "abs", "square", "compare", "select", "logic", "rsqrt", "sqrt", "cos",
                                    "sin", "kth"], {}),
    ("fusemax-cloud", "array1d"): (list(RECIPES), {}),
    ("flat-cloud", "array2d"): (["square", "rsqrt", "sqrt", "cos", "sin"], {}),
    ("flat-cloud", "array1d"): (list(RECIPES), {"sqrt": LOG_EXP_ROOT, "rsqrt": LOG_EXP_ROOT}),
}
# rows of the paper's figures that the operator set must not change (reference-fusemax.md section 2)
PAPER_ROWS = {("fusemax-cloud", "array1d", "exp"): 7, ("fusemax-cloud", "array2d", "exp"): 7,
              ("flat-cloud", "array1d", "exp"): 1, ("fusemax-cloud", "array1d", "divide"): 1}


@pytest.mark.parametrize("arch, unit", sorted(EXPECTED))
def test_composed_operators_cost_the_sum_of_their_parts(arch, unit):
    pe = load_architecture(arch).units[unit]
    names, overrides = EXPECTED[arch, unit]
    for name in names:
        recipe = overrides.get(name, RECIPES[name])
        cycles, actions = 0.0, Counter()
        for part in recipe:
            cycles += pe.operators[part].cycles
            actions.update(pe.operators[part].actions)
        actions["rf_read"] += EXTRA_READS.get(name, 0)
        row = pe.operators[name]
        assert row.cycles == cycles, f"{arch}.{unit}.{name}: cycles"
        assert Counter(row.actions) == actions, f"{arch}.{unit}.{name}: actions"


def test_divider_operators_stay_off_fusemax_2d_array():
    # FuseMax's 2D PE has a MAC and a max, no divider (reference-fusemax.md section 2)
    ops = load_architecture("fusemax-cloud").units["array2d"].operators
    assert not {"divide", "sigmoid", "silu", "tanh", "gelu", "recip"} & set(ops)


def test_template_defaults_carry_the_same_operator_set():
    template, cloud = load_architecture("fusemax-template"), load_architecture("fusemax-cloud")
    for unit in cloud.units:
        assert template.units[unit].operators == cloud.units[unit].operators


@pytest.mark.parametrize("key, cycles", sorted(PAPER_ROWS.items()))
def test_paper_operator_figures_unchanged(key, cycles):
    arch, unit, op = key
    assert load_architecture(arch).units[unit].operators[op].cycles == cycles


def _needed(e) -> set[str]:
    """Operators an Einsum applies (a multiply with an add is a MAC every unit has)."""
    return {"add" if op == "subtract" else op for op in e}


@pytest.mark.parametrize("arch", ["fusemax-cloud", "flat-cloud"])
@pytest.mark.parametrize("stem", ec.library_names() + ec.block_names())
def test_every_library_einsum_has_a_unit(arch, stem):
    units = load_architecture(arch).units.values()
    for name, ops in ec.cost(ec.load_library(stem)).per_einsum.items():
        needed = _needed(ops)
        assert any(needed <= set(u.operators) for u in units), f"{stem}.{name} needs {sorted(needed)} on {arch}"
