"""Loop-tree mappings (issue 20, item 2): the IR (tree.py: nodes, YAML + pydantic, validation) and the
DRAM traffic a tree implies (traffic.py, with each level's fills and footprint). GEMMs are scheduled from
loop trees (mappings/gemm.py); the cascade scheduler (mappings/scheduler.py) does not read them yet."""
from mappings.looptree.traffic import Traffic, check_capacity, dram_traffic, footprints
from mappings.looptree.tree import LoopTree, LoopTreeError, Node, load_looptree, parse_looptree, tree_names, validate

__all__ = ["LoopTree", "LoopTreeError", "Node", "Traffic", "check_capacity", "dram_traffic", "footprints", "load_looptree", "parse_looptree",
           "tree_names", "validate"]
