"""Blocks of values inside a generated kernel, as Triton source text.

A `Val` is the code of a Triton block whose axes are kernel axes (rank names) in the kernel's
canonical order, with the conditions under which its points are present (`mask`: the cascade's
`where` semantics, absent points are skipped by reductions) and whether it is zero outside the
ranges of its axes (`zero`: loads pad with 0, so a sum needs no range mask).
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Term:
    """One presence condition: `kind` "key" (the key is inside the sequence: dropped in tiles
    known to be inside it), "cond" (a `where` condition: dropped in tiles where it holds
    everywhere) or "bounds" (a shifted read inside its tensor: always applied); `cond` is the
    condition over kernel variables (an ast Comparison / BoolOp / Not)."""

    kind: str
    cond: object


@dataclass(frozen=True)
class Val:
    code: str
    axes: tuple[str, ...] = ()
    mask: frozenset = frozenset()  # of Term
    zero: bool = False


def expand(code: str, have: tuple[str, ...], want: tuple[str, ...]) -> str:
    """`code` (a block over `have`, a subsequence of `want`) indexed to broadcast over `want`."""
    if have == want or not have:
        return code
    index = ", ".join(":" if a in have else "None" for a in want)
    return f"{_atom(code)}[{index}]"


def _atom(code: str) -> str:
    """`code` wrapped in parentheses unless it is a name or a call."""
    if code.replace("_", "").isalnum() or (code.endswith(")") and _balanced_call(code)):
        return code
    return f"({code})"


def _balanced_call(code: str) -> bool:
    """True when `code` is one call `f(...)` (its first "(" closes at the end)."""
    start = code.find("(")
    if start <= 0 or not code[:start].replace("_", "").replace(".", "").isalnum():
        return False
    depth = 0
    for i, ch in enumerate(code[start:], start):
        depth += ch == "("
        depth -= ch == ")"
        if depth == 0:
            return i == len(code) - 1
    return False


def atom(code: str) -> str:
    return _atom(code)


# Triton templates of the language's functions; {0} {1} {2} are the (fp32) arguments.
FUNCTIONS = {
    "exp": "tl.exp({0})",
    "log": "tl.log({0})",
    "sqrt": "tl.sqrt({0})",
    "rsqrt": "tl.rsqrt({0})",
    "recip": "(1.0 / {0})",
    "abs": "tl.abs({0})",
    "square": "({0} * {0})",
    "relu": "tl.maximum({0}, 0.0)",
    "gelu": "(0.5 * {0} * (1.0 + tl.erf({0} * 0.7071067811865476)))",
    "sigmoid": "tl.sigmoid({0})",
    # softplus(x) = max(x, 0) + log(1 + exp(-|x|)): no overflow for large |x|
    "softplus": "(tl.maximum({0}, 0.0) + tl.log(1.0 + tl.exp(-tl.abs({0}))))",
    "tanh": "(2.0 * tl.sigmoid(2.0 * {0}) - 1.0)",
    "elu": "tl.where({0} > 0.0, {0}, tl.exp(tl.minimum({0}, 0.0)) - 1.0)",
    "erf": "tl.erf({0})",
    "cos": "tl.cos({0})",
    "sin": "tl.sin({0})",
    "sign": "tl.where({0} > 0.0, 1.0, tl.where({0} < 0.0, -1.0, 0.0))",
    "max": "tl.maximum({0}, {1})",
    "min": "tl.minimum({0}, {1})",
}
# functions with f(0) == 0: a block that is zero outside its ranges stays so
ZERO_PRESERVING = frozenset("sqrt abs square relu gelu tanh elu erf sin sign".split())
IDENTITY = {"sum": "0.0", "max": "float('-inf')", "min": "float('inf')", "prod": "1.0"}
REDUCER = {"sum": "tl.sum", "max": "tl.max", "min": "tl.min"}
COMBINE = {"sum": "{0} + {1}", "max": "tl.maximum({0}, {1})", "min": "tl.minimum({0}, {1})", "prod": "{0} * {1}"}
