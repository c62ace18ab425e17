"""Loop-tree mappings (mappings/looptree/): hand-derived DRAM traffic of small trees, FuseMax's and
FLAT's trees against the scheduler's DRAM bytes for the same mappings, and validation errors."""
import copy

import pytest

import einsum_cascade as ec
from archsim.config import load_architecture
from archsim.hierarchy import load_hierarchy
from archsim.yamlio import load_yaml_file
from mappings.looptree import LoopTreeError, dram_traffic, load_looptree, parse_looptree, tree_names
from mappings.looptree.tree import TREES_DIR
from mappings.spec import load_spec
from mappings.targets.accelerator import evaluate

LINEAR = {"D": 512, "N": 512, "T": 512}


def _gemm_tree(chain):
    return parse_looptree({"name": "g", "cascade": "linear", "arch": "fusemax-local-buffers",
                           "tree": [{"storage": {"level": "DRAM", "tensors": ["X", "W", "B", "Y"]}}, *chain]}, "g.yaml")


def test_gemm_two_buffer_levels():
    """linear (Y[n,t] = sum(d: X[d,t] W[d,n]) + B[n]) at D = N = T = 512 on fusemax-local-buffers:
    T in steps of 128 -> buffer keeps X (512 x 128) and Y (512 x 128): each read / written once;
    N in steps of 256 -> local2d keeps W (512 x 256) and B (256): the T loop outside the N loop changes
    their tile 4 x 2 = 8 times: W 8 x 131,072 = 1,048,576 words (4 |W|), B 8 x 256 = 2,048."""
    tree = _gemm_tree([{"temporal": {"rank": "T", "tile": 128}},
                       {"storage": {"level": "buffer", "tensors": ["X", "Y"]}},
                       {"temporal": {"rank": "N", "tile": 256}},
                       {"storage": {"level": "local2d", "tensors": ["W", "B"]}},
                       {"compute": {"einsum": "Y", "unit": "array2d"}}])
    t = dram_traffic(tree, ec.load(ec.library_path("linear")), load_hierarchy("fusemax-local-buffers"), LINEAR)
    assert t.reads == {"X": 512 * 512, "W": 8 * 512 * 256, "B": 8 * 256}
    assert t.writes == {"Y": 512 * 512}
    assert t.total_bytes == 2 * (2 * 512 * 512 + 4 * 512 * 512 + 2048)


def test_gemm_partial_sums_through_dram():
    """D (the reduced rank) in steps of 256 outside N in steps of 256: Y's tile (256 x 512) is written
    (512/256) x (512/256) = 4 times and read back 4 - 2 = 2 times (its first visit reads nothing); with
    the D loop inside the N loop the partial sums stay on chip: Y written once, never read."""
    c, h = ec.load(ec.library_path("linear")), load_hierarchy("fusemax-local-buffers")
    outside = _gemm_tree([{"temporal": {"rank": "D", "tile": 256}}, {"temporal": {"rank": "N", "tile": 256}},
                          {"storage": {"level": "buffer", "tensors": ["X", "W", "B", "Y"]}},
                          {"compute": {"einsum": "Y", "unit": "array2d"}}])
    t = dram_traffic(outside, c, h, LINEAR)
    assert t.writes["Y"] == 4 * 256 * 512 and t.reads["Y"] == 2 * 256 * 512
    inside = _gemm_tree([{"temporal": {"rank": "N", "tile": 256}}, {"temporal": {"rank": "D", "tile": 256}},
                         {"storage": {"level": "buffer", "tensors": ["X", "W", "B", "Y"]}},
                         {"compute": {"einsum": "Y", "unit": "array2d"}}])
    t = dram_traffic(inside, c, h, LINEAR)
    assert t.writes["Y"] == 512 * 512 and "Y" not in t.reads
    assert t.reads["X"] == 2 * 512 * 512  # X (no N) re-read once per N step: the D loop inside does index it


# FuseMax: query groups G as the spec's `query_group: auto` sizes them: a row holds Q, AV, RNV (E, F, F
# words) and RM, RD; up to 32K rows fit the 16 MiB buffer, 64K rows (64K x 130 words x 2 B = 17 MB) do not.
FUSEMAX_POINTS = [(1024, 1024), (4096, 4096), (65536, 32768)]


@pytest.mark.parametrize("n,G", FUSEMAX_POINTS)
def test_fusemax_tree_equals_the_scheduler(n, G):
    """Tree traffic = Q + AV + (K + V) x P / G words (hand-derived), and = the scheduler's DRAM bytes."""
    c, a = ec.load_library("attention_1pass"), load_architecture("fusemax-cloud")
    sizes = {"M": n, "P": n, "E": 64, "F": 64}
    t = dram_traffic(load_looptree("fusemax"), c, load_hierarchy("fusemax-cloud"), sizes, {"G": G})
    words = 64 * n
    assert t.total_words == 2 * words + 2 * words * (n // G)
    res = evaluate(c, load_spec("fusemax"), a, {**sizes, "M0": 256, "M1": n // 256})
    assert t.total_bytes == res.dram_bytes


@pytest.mark.parametrize("n", [1024, 4096, 16384])
def test_flat_tree_against_the_scheduler(n):
    """FLAT's tree with the spec's group size G and spilled fraction f at each length. Hand-derived:
    Q re-read per 256-key block (M / 256 times), K read P / G times (kept for the group), V re-read per
    256-row block (P / 256), AV written once, f of QK and SN written and read back once each.
    Named difference: the scheduler's output stationarity re-reads K once per 256 query rows as well
    (P / 256 times): K is re-read in both loop orders at once, which no single loop order does; the
    scheduler's DRAM bytes exceed the tree's by exactly |K| x (P / 256 - P / G) words."""
    c, a = ec.load_library("attention_3pass"), load_architecture("flat-cloud")
    sizes = {"M": n, "P": n, "E": 64, "F": 64}
    spec = load_spec("flat").resolved(sizes)
    G = n if spec.query_group == "all" else spec.query_group
    f = spec.spill.get("QK", 0.0)
    t = dram_traffic(load_looptree("flat"), c, load_hierarchy("flat-cloud"), sizes, {"G": G, "f": f})
    words = 64 * n
    assert t.total_words == pytest.approx(words * (n // 256) + words * (n // G) + words * (n // 256) + words
                                          + 4 * f * n * n, rel=1e-12)
    res = evaluate(c, load_spec("flat"), a, sizes)
    assert res.dram_bytes - t.total_bytes == pytest.approx(2 * words * (n // 256 - n // G), rel=1e-12)


def test_shipped_trees_validate():
    assert {"fusemax", "flat"} <= set(tree_names())
    for name in tree_names():
        tree = load_looptree(name)
        c = ec.load_library(tree.cascade)
        from mappings.looptree import validate
        validate(tree, c, load_hierarchy(tree.arch))


def _fusemax_doc():
    return load_yaml_file(TREES_DIR / "fusemax.yaml", "loop-tree file")


def _edit(path, value):
    def apply(doc):
        node = doc
        for key in path[:-1]:
            node = node[key]
        if value is None:
            del node[path[-1]]
        else:
            node[path[-1]] = value
    return apply


INNER = ["tree", 3, "sequential", 0, 2, "pipelined", 0, 3, "sequential", 0, 0, "compute"]


@pytest.mark.parametrize("edit,where", [
    (_edit(INNER + ["unit"], "array3d"), "tree[3].sequential[0][2].pipelined[0][3].sequential[0][0].compute.unit"),
    (_edit(INNER + ["einsum"], "BK"), "tree[3].sequential[0][2].pipelined[0][3].sequential[0][0].compute.einsum"),
    (_edit(INNER + ["einsum"], "LM"), "tree[3].sequential[0][2].pipelined[0][3].sequential[1][0].compute.einsum"),
    (_edit(["tree", 1, "temporal", "rank"], "Z"), "tree[1].temporal.rank"),
    (_edit(["tree", 1, "temporal", "tile"], "H"), "tree[1].temporal.tile"),
    (_edit(["tree", 2, "storage", "level"], "L3"), "tree[2].storage.level"),
    (_edit(["tree", 2, "storage", "tensors"], ["Q", "X"]), "tree[2].storage.tensors[1]"),
    (_edit(["tree", 2, "storage", "colour"], "red"), "tree[2].storage.colour"),
    (_edit(["tree", 0, "storage", "tensors"], ["Q", "K", "V"]), "tree[0]"),
    (_edit(["tree", 3, "sequential", 1, 2], {"loop": {}}), "tree[3].sequential[1][2]"),
    (_edit(["tree", 3, "sequential", 1, 1, "spatial", "over"], "array2d.depth"), "tree[3].sequential[1][1].spatial.over"),
    (_edit(["tree", 3, "sequential", 1, 2], None), "tree[3].sequential[1][1].spatial"),
])
def test_bad_trees_name_file_and_node(edit, where):
    doc = copy.deepcopy(_fusemax_doc())
    edit(doc)
    with pytest.raises(LoopTreeError) as err:
        tree = parse_looptree(doc, "fm.yaml")
        dram_traffic(tree, ec.load_library("attention_1pass"), load_hierarchy("fusemax-cloud"),
                     {"M": 1024, "P": 1024, "E": 64, "F": 64}, {"G": 1024})
    assert str(err.value).startswith(f"fm.yaml: {where}: "), str(err.value)


def test_bad_tile_at_evaluation_names_the_node():
    with pytest.raises(LoopTreeError, match=r"tree\[1\]\.temporal\.tile: 1000 does not divide"):
        dram_traffic(load_looptree("fusemax"), ec.load_library("attention_1pass"), load_hierarchy("fusemax-cloud"),
                     {"M": 1024, "P": 1024, "E": 64, "F": 64}, {"G": 1000})
    with pytest.raises(LoopTreeError, match="params: G not given"):
        dram_traffic(load_looptree("fusemax"), ec.load_library("attention_1pass"), load_hierarchy("fusemax-cloud"),
                     {"M": 1024, "P": 1024, "E": 64, "F": 64})
