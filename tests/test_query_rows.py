"""mappings.query_rows_per_group: the public report of a mapping's query groups (pareto's P1)."""
import einsum_cascade as ec
from archsim.config import load_architecture
from mappings import load_spec, query_rows_per_group

SIZES = {"E": 64, "F": 64, "M": 16384, "P": 16384}


def _arch(buffer_bytes: int):
    return load_architecture("fusemax-template", {"d": 256, "buffer_bytes": buffer_bytes})


def test_a_fixed_query_group_is_the_specs():
    spec = load_spec("fusemax").model_copy(update={"query_group": 1024})
    assert query_rows_per_group(ec.load_library(spec.cascade), spec, _arch(16 << 20), SIZES) == 1024


def test_auto_groups_grow_with_the_buffer_up_to_every_query():
    spec = load_spec("fusemax")  # query_group auto, blocks of array2d.cols = 256 rows
    cascade = ec.load_library(spec.cascade)
    rows = [query_rows_per_group(cascade, spec, _arch(cap), SIZES) for cap in (1 << 20, 4 << 20, 1 << 32)]
    assert all(r % 256 == 0 and SIZES["P"] % r == 0 for r in rows)
    assert rows == sorted(rows)
    # 4 GiB holds Q and the running state of all 16K rows (16384 x (64 + 64 + 2) words x 2 bytes = 4.3 MB)
    assert rows[-1] == SIZES["P"]
    assert rows[0] < SIZES["P"]  # 1 MiB does not
