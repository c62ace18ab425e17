"""Parsing `--size NAME=VALUE` command-line values (and byte counts such as `--max-memory 8G`).

The numbers are read by the project's one size parser (einsum_cascade/size_text.py: exact
decimals, suffixes K, M, G), imported when a value is parsed so that building the parser imports
no package. A name given twice is an error.
"""
from __future__ import annotations

import argparse
import re

from studies.errors import UsageError

_NAME_VALUE = re.compile(r"([A-Za-z_][A-Za-z_0-9]*)=(.*)", re.ASCII)


def parse_sizes(values: list[list[str]] | None) -> dict[str, int | float]:
    """`[["M=4096", "E=64,F=64"], ["M0=256"]]` -> {"M": 4096, "E": 64, "F": 64, "M0": 256};
    values may be separated by spaces or commas; `1K` = 1024, `1M` = 1048576, `1G` = 2**30."""
    from einsum_cascade.size_text import NumberRangeError, SizeTextError, parse_number

    sizes: dict[str, int | float] = {}
    given: dict[str, str] = {}
    for group in values or []:
        for text in (part for item in group for part in item.split(",") if part):
            bad = UsageError(f"--size: expected NAME=NUMBER (e.g. M=4096 or M=4K), got {text!r}")
            match = _NAME_VALUE.fullmatch(text.strip())
            if match is None:
                raise bad
            name, number = match.groups()
            if name in sizes:
                raise UsageError(f"--size: {name} is given twice ({given[name]} and {text})")
            try:
                sizes[name] = parse_number(number)
            except NumberRangeError as err:
                raise UsageError(f"--size {name}: {err}") from None
            except SizeTextError:
                raise bad from None
            given[name] = text
    return sizes


def parse_byte_count(text: str) -> int:
    """`8G` -> 8 * 2**30, `512M`, `4096`: a positive number of bytes (argparse type)."""
    from einsum_cascade.size_text import SizeTextError, parse_size

    try:
        value = parse_size(text)
    except SizeTextError:
        raise argparse.ArgumentTypeError(f"expected a byte count such as 512M or 16G, got {text!r}") from None
    if value > 2**60:
        raise argparse.ArgumentTypeError(f"expected a byte count between 1 and 2**60, got {text!r}")
    return value


def add_size_argument(parser) -> None:
    parser.add_argument("--size", action="append", nargs="+", metavar="NAME=N",
                        help="bind rank sizes or params, e.g. --size M=4096 E=64 M0=256 (or M=4K,E=64); "
                             "each name once")
