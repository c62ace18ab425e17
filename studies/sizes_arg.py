"""Parsing `--size NAME=VALUE` command-line values."""
from __future__ import annotations

import re

from studies.errors import UsageError

_SIZE = re.compile(r"^([A-Za-z_][A-Za-z_0-9]*)=([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)([KkMm]?)$")
_SUFFIX = {"": 1, "k": 1024, "K": 1024, "m": 1024**2, "M": 1024**2}


def parse_sizes(values: list[list[str]] | None) -> dict[str, float]:
    """`[["M=4096", "E=64,F=64"], ["M0=256"]]` -> {"M": 4096, "E": 64, "F": 64, "M0": 256};
    values may be separated by spaces or commas; `1K` = 1024, `1M` = 1048576."""
    sizes: dict[str, float] = {}
    for group in values or []:
        for text in (part for item in group for part in item.split(",") if part):
            match = _SIZE.match(text)
            if match is None:
                raise UsageError(f"--size: expected NAME=NUMBER (e.g. M=4096 or M=4K), got {text!r}")
            name, number, suffix = match.groups()
            value = float(number) * _SUFFIX[suffix]
            sizes[name] = int(value) if value == int(value) else value
    return sizes


def add_size_argument(parser) -> None:
    parser.add_argument("--size", action="append", nargs="+", metavar="NAME=N",
                        help="bind rank sizes or params, e.g. --size M=4096 E=64 M0=256 (or M=4K,E=64)")
