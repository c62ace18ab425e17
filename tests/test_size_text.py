"""One size parser: the command line, sweep specs, model tables and `gpu predict` read sizes alike."""
import argparse

import pytest

from einsum_cascade.size_text import SizeTextError, parse_number, parse_size
from mappings.workload import WorkloadError, parse_length
from studies.cli.gpu import _positive_int
from studies.cli.sizes_arg import parse_byte_count, parse_sizes
from studies.sweep.spec import _FieldError, _size_value

# text -> the integer, by hand: K = 2**10, M = 2**20, G = 2**30, exact decimals
GOOD = {"4096": 4096, "4K": 4096, "64k": 65536, "1M": 1048576, "2G": 2147483648, "1e6": 1000000,
        "1.5K": 1536, " 8M ": 8388608, "12345678901234567891": 12345678901234567891}
BAD = ["0", "-4", "1.5", "4KB", "0x10", "inf", "nan", "1_000", "", "K", "\u0663"]  # the last: an Arabic-Indic 3


@pytest.mark.parametrize("text, value", GOOD.items())
def test_every_reader_gives_the_same_integer(text, value):
    assert parse_size(text) == value
    assert parse_length(text) == value
    assert _size_value(text, ("sizes", "M")) == value
    assert _positive_int(text) == value
    if value <= 2**60:  # a byte count is at most 2**60
        assert parse_byte_count(text) == value
    assert parse_sizes([[f"M={text.strip()}"]]) == {"M": value}


@pytest.mark.parametrize("text", BAD)
def test_every_reader_refuses_the_same_text(text):
    with pytest.raises(SizeTextError):
        parse_size(text)
    with pytest.raises(WorkloadError):
        parse_length(text)
    with pytest.raises(_FieldError):
        _size_value(text, ("sizes", "M"))
    with pytest.raises(argparse.ArgumentTypeError):
        _positive_int(text)


def test_numbers_are_exact_and_params_may_be_fractions():
    assert parse_number("0.125") == 0.125 and parse_number("-2") == -2 and parse_number("1e30") == 10**30
    assert isinstance(parse_number("1e6"), int)
    with pytest.raises(SizeTextError, match="out of range"):
        parse_number("1e31")
    assert parse_size(7) == 7
    for bad in (True, 0, 2.0):
        with pytest.raises(SizeTextError):
            parse_size(bad)
