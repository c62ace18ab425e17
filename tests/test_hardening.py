"""Hardening of the front end: exact sizes, memory limits, non-finite outputs, private-inference
point counts against brute force, and what the command line prints (one line, no warnings)."""
from __future__ import annotations

import itertools
import json
import operator
import warnings

import pytest
import sympy

import einsum_cascade as ec
from einsum_cascade.ast import size_symbol, var_symbol
from fuzz_harness import run_cli
from mappings.targets.private_inference.protocol import CascadeMapper
from mappings.targets.private_inference.profiles import load_profile
from studies.errors import UsageError
from studies.cli.sizes_arg import parse_byte_count, parse_sizes

# -- --size ---------------------------------------------------------------------------------------


def test_sizes_are_read_exactly():
    sizes = parse_sizes([["M=12345678901234567891", "E=1e6,S=0.125"], ["M0=4K", "G=1G"]])
    assert sizes == {"M": 12345678901234567891, "E": 1000000, "S": 0.125, "M0": 4096, "G": 2**30}
    assert isinstance(sizes["E"], int) and isinstance(sizes["M"], int)


@pytest.mark.parametrize("bad, message", [
    (["M=4", "M=8"], "M is given twice (M=4 and M=8)"),
    (["M=1e400"], "out of range"),
    (["M=inf"], "expected NAME=NUMBER"),
    (["M=0x10"], "expected NAME=NUMBER"),
])
def test_bad_sizes_name_the_argument(bad, message):
    with pytest.raises(UsageError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_sizes([bad])


def test_byte_counts():
    assert parse_byte_count("8G") == 8 * 2**30 and parse_byte_count("512M") == 512 * 2**20
    assert parse_byte_count("4096") == 4096


def test_analyze_json_keeps_every_digit(capsys):
    # A[m,p] has M * P elements: 12345678901234567891 * 3, every digit kept (a float keeps 17)
    from studies.cli import main

    assert main(["analyze", "attention_3pass", "--json", "--size", "M=12345678901234567891", "P=3", "E=1", "F=1"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["cost"]["at_sizes"]["tensor_sizes"]["A"] == 12345678901234567891 * 3


# -- eval -------------------------------------------------------------------------------------------


def test_eval_refuses_what_it_cannot_hold_and_says_what_it_needs():
    outcome = run_cli(["eval", "attention_3pass", "--size", "M=1M", "P=1M", "E=64", "F=64"])
    assert outcome.status == 2
    # QK[m,p]: 2^20 * 2^20 float64 = 8 TiB; the line names it and the limit
    assert "(8.0 TiB for QK); the limit is 8.0 GiB (--max-memory)" in outcome.stderr
    assert len(outcome.stderr.strip().splitlines()) == 1


def test_eval_below_the_limit_runs():
    outcome = run_cli(["eval", "attention_3pass", "--size", "M=64", "P=64", "E=4", "F=4", "--max-memory", "1M"])
    assert outcome.status == 0, outcome.stderr


DIV0 = "cascade div0\nrank E, P\ninput Q[e,p]\noutput D\nB[e,p] = Q[e,p] / 0\nC[p] = sum(e: B[e,p])\nD[p] = C[p] - C[p]\n"


def test_non_finite_output_is_an_error_naming_the_einsum_without_warnings(tmp_path):
    path = tmp_path / "div0.cascade"
    path.write_text(DIV0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        outcome = run_cli(["eval", str(path), "--size", "E=2", "P=3"])
    assert not [w for w in caught if issubclass(w.category, RuntimeWarning)]
    assert outcome.status == 1
    # B = Q / 0 is the first non-finite tensor (line 5); D = inf - inf is NaN
    assert outcome.stderr.strip() == (f"cascadesim: error: {path}:5:1: output D has 3 non-finite value(s) of 3; "
                                      "they first appear in Einsum B")


def test_running_max_starting_at_minus_infinity_is_not_blamed():
    # attention_1pass's running max starts at -inf: its outputs are finite, so eval succeeds
    outcome = run_cli(["eval", "attention_1pass", "--size", "M=16", "P=8", "E=2", "F=2", "M0=4"])
    assert outcome.status == 0, outcome.stderr


# -- private inference: point counts against brute force ---------------------------------------------

_OPS = {"<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge, "==": operator.eq, "!=": operator.ne}


def _brute_force_points(c: ec.Cascade, sizes: dict, variables: frozenset, where: tuple) -> int:
    """Enumerate every point of `variables` and keep those satisfying the comparisons whose variables
    all lie in them (the rule of the mapping), with Python integers."""
    subs = {size_symbol(n): v for n, v in sizes.items()}
    names = sorted(variables)
    tests = []
    for comp in where:
        expr = sympy.sympify(comp.left - comp.right).subs(subs)
        used = {str(s) for s in expr.free_symbols}
        if used <= set(names):
            tests.append((sympy.lambdify([var_symbol(v) for v in names], expr), _OPS[comp.op]))
    ranges = [range(int(sizes[c.var_rank[v]])) for v in names]
    return sum(all(op(f(*point), 0) for f, op in tests) for point in itertools.product(*ranges))


@pytest.mark.parametrize("name, sizes", [
    ("attention_1pass_causal", {"E": 2, "F": 2, "M": 12, "P": 12, "M0": 4, "M1": 3}),
    ("attention_3pass_causal", {"E": 2, "F": 2, "M": 9, "P": 9}),
    ("attention_sliding_window", {"E": 2, "F": 2, "M": 11, "P": 11, "W": 3}),
    ("lightning_attention", {"E": 2, "F": 2, "M": 8, "P": 8, "M0": 4, "M1": 2, "P0": 4, "P1": 2, "G": 1}),
])
def test_secure_point_counts_match_brute_force(name, sizes):
    c = ec.load_library(name)
    sizes = {k: v for k, v in sizes.items() if k in c.size_names or k in c.params}
    mapper = CascadeMapper(c, sizes, load_profile("spu-cheetah"))
    checked = 0
    for e in c.einsums:
        if e.is_initial:
            continue
        for variables in (frozenset(e.space_vars), frozenset(e.output_vars)):
            where = mapper.where[e.name]
            assert mapper.counter.points(variables, where) == _brute_force_points(c, mapper.sizes, variables, where)
            checked += 1
    assert checked


@pytest.mark.parametrize("argv", [
    ["pi", "cascade", "attention_1pass_causal", "--size", "M=64K", "P=64K", "E=64", "F=64", "M0=64", "--json",
     "--network", "lan"],
    ["pi", "cascade", "attention_sliding_window", "--size", "M=1M", "P=1M", "E=64", "F=64", "W=256", "--json",
     "--network", "lan"],
])
def test_private_inference_at_long_contexts_counts_without_a_mask(argv, capsys):
    from studies.cli import main

    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    # exp runs once per kept score: causal M(M+1)/2 at 64K; sliding window W per row but the first W-1 rows
    n = 65536 if "attention_1pass_causal" in argv else 1048576
    exp_bytes = load_profile("spu-cheetah").op("exp").bytes_per_element
    if "attention_sliding_window" in argv:
        kept = 256 * n - 256 * 255 // 2
        assert out["breakdown"]["by_einsum"]["SN"] == pytest.approx(kept * exp_bytes, rel=1e-12)
    else:
        assert out["breakdown"]["by_op"]["exp"] >= n * (n + 1) / 2 * exp_bytes


@pytest.mark.parametrize("value", ["-1", "0", "2.5"])
def test_private_inference_sizes_are_positive_integers(value):
    outcome = run_cli(["pi", "cascade", "attention_3pass", "--size", f"M={value}", "E=4", "F=4", "P=4"])
    assert outcome.status == 2
    assert f"--size M={value}: a size must be a positive integer" in outcome.stderr


# -- progress in a log ---------------------------------------------------------------------------


def test_progress_in_a_log_is_whole_lines(capsys, monkeypatch):
    import studies.progress as progress_module

    clock = iter(range(0, 1000, 4))  # 4 s per item: a line every third item (LOG_EVERY_S = 10)
    monkeypatch.setattr(progress_module.time, "monotonic", lambda: next(clock))
    assert list(progress_module.progress(range(7), desc="points")) == list(range(7))
    print("next message")
    err = capsys.readouterr().err
    assert "\r" not in err
    assert err.splitlines() == ["points: 0/7", "points: 3/7 (12 s)", "points: 6/7 (24 s)", "points: 7/7 done (32 s)"]
