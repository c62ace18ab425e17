"""Reading sizes and numbers written as text, the one parser of every input (command line, sweep
specs, model tables): `4096`, `4K` (= 4096), `1M` (= 2**20), `2G` (= 2**31), `1e6`, `0.125`.

Numbers are read exactly (decimal, never through a binary float): `12345678901234567891` keeps
every digit, `1e6` is the integer 1000000, `1.5K` is 1536; suffixes are binary and case-blind.
"""
from __future__ import annotations

import re
from decimal import Decimal, DecimalException

from einsum_cascade.errors import InputError

SUFFIXES = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30}
MAX_MAGNITUDE = Decimal(10) ** 30  # the largest |number| accepted
_NUMBER = re.compile(r"([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)([KkMmGg]?)", re.ASCII)
EXAMPLES = "4096, 4K, 1M or 2G"


class SizeTextError(InputError, ValueError):
    """Text that is not a number, or not a positive integer where a size is expected."""


class NumberRangeError(SizeTextError):
    """A well-written number too large for any size or param (|x| > 1e30)."""


def parse_number(text: str) -> int | float:
    """`text` (a decimal literal with an optional K/M/G suffix): an int when integral, else a float."""
    match = _NUMBER.fullmatch(text.strip())
    if match is None:
        raise SizeTextError(f"expected a number such as {EXAMPLES}, got {text!r}")
    try:
        value = Decimal(match.group(1)) * SUFFIXES[match.group(2).upper()]
    except DecimalException:
        raise NumberRangeError(f"{text.strip()} is out of range (sizes and params are at most 1e30)") from None
    if abs(value) > MAX_MAGNITUDE:
        raise NumberRangeError(f"{text.strip()} is out of range (sizes and params are at most 1e30)")
    if value == value.to_integral_value():
        return int(value)
    return float(value)


def parse_size(text: str | int) -> int:
    """A positive integer, given as an int or as text (`4096`, `4K`, `1M`, `2G`, `1e6`, `1.5K`)."""
    if isinstance(text, bool) or not isinstance(text, (int, str)):
        raise SizeTextError(f"expected a positive integer such as {EXAMPLES}, got {text!r}")
    value = text if isinstance(text, int) else parse_number(text)
    if not isinstance(value, int) or value < 1:
        raise SizeTextError(f"expected a positive integer such as {EXAMPLES}, got {text!r}")
    return value
