"""argparse types for the command line's plain numbers (counts, seeds, tolerances), with one message
form: `argument --layers: expected a positive integer, got '0'`. Sizes and byte counts with
suffixes (`4K`, `8G`) are read by studies/cli/sizes_arg.py."""
from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from typing import TypeVar

N = TypeVar("N", int, float)


def _number(text: str, convert: Callable[[str], N], ok: Callable[[N], bool], want: str) -> N:
    """`convert(text)` if it reads and satisfies `ok`; else argparse's error naming `want`."""
    try:
        value = convert(text)
    except ValueError:
        value = None
    if value is None or not ok(value):
        raise argparse.ArgumentTypeError(f"expected {want}, got {text!r}")
    return value


def positive_int(text: str) -> int:
    """An integer >= 1 (argparse type)."""
    return _number(text, int, lambda v: v >= 1, "a positive integer")


def nonnegative_int(text: str) -> int:
    """An integer >= 0 (argparse type), e.g. a random seed."""
    return _number(text, int, lambda v: v >= 0, "an integer >= 0")


def nonnegative_float(text: str) -> float:
    """A finite number >= 0 (argparse type), e.g. a tolerance."""
    return _number(text, float, lambda v: math.isfinite(v) and v >= 0, "a finite number >= 0")
