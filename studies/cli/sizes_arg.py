"""Parsing `--size NAME=VALUE` command-line values (and byte counts such as `--max-memory 8G`).

Numbers are read exactly (decimal, never through a binary float): `M=12345678901234567891` keeps
every digit, `M=1e6` is the integer 1000000, `S=0.125` is a float. A name given twice is an error.
"""
from __future__ import annotations

import argparse
import re
from decimal import Decimal, InvalidOperation

from studies.errors import UsageError

_SIZE = re.compile(r"^([A-Za-z_][A-Za-z_0-9]*)=([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)([KkMmGg]?)$")
_SUFFIX = {"": 1, "k": 1024, "K": 1024, "m": 1024**2, "M": 1024**2, "g": 1024**3, "G": 1024**3}
MAX_MAGNITUDE = Decimal(10) ** 30  # the largest size or |param| accepted


def parse_number(text: str, suffix: str, where: str) -> int | float:
    """`text` (a decimal literal) times the suffix's multiple: an int when integral, else a float."""
    try:
        value = Decimal(text) * _SUFFIX[suffix]
    except InvalidOperation:
        raise UsageError(f"{where}: {text!r} is not a number") from None
    if abs(value) > MAX_MAGNITUDE:
        raise UsageError(f"{where}: {text}{suffix} is out of range (sizes and params are at most 1e30)")
    if value == value.to_integral_value():
        return int(value)
    return float(value)


def parse_sizes(values: list[list[str]] | None) -> dict[str, int | float]:
    """`[["M=4096", "E=64,F=64"], ["M0=256"]]` -> {"M": 4096, "E": 64, "F": 64, "M0": 256};
    values may be separated by spaces or commas; `1K` = 1024, `1M` = 1048576, `1G` = 2**30."""
    sizes: dict[str, int | float] = {}
    given: dict[str, str] = {}
    for group in values or []:
        for text in (part for item in group for part in item.split(",") if part):
            match = _SIZE.match(text.strip())
            if match is None:
                raise UsageError(f"--size: expected NAME=NUMBER (e.g. M=4096 or M=4K), got {text!r}")
            name, number, suffix = match.groups()
            if name in sizes:
                raise UsageError(f"--size: {name} is given twice ({given[name]} and {text})")
            sizes[name] = parse_number(number, suffix, f"--size {name}")
            given[name] = text
    return sizes


def parse_byte_count(text: str) -> int:
    """`8G` -> 8 * 2**30, `512M`, `4096`: a positive number of bytes (argparse type)."""
    match = re.match(r"^(\d+\.?\d*|\.\d+)([KkMmGg]?)$", text.strip())
    if match is None:
        raise argparse.ArgumentTypeError(f"expected a byte count such as 512M or 16G, got {text!r}")
    value = Decimal(match.group(1)) * _SUFFIX[match.group(2)]
    if value < 1 or value > Decimal(2) ** 60:
        raise argparse.ArgumentTypeError(f"expected a byte count between 1 and 2**60, got {text!r}")
    return int(value)


def add_size_argument(parser) -> None:
    parser.add_argument("--size", action="append", nargs="+", metavar="NAME=N",
                        help="bind rank sizes or params, e.g. --size M=4096 E=64 M0=256 (or M=4K,E=64); "
                             "each name once")
