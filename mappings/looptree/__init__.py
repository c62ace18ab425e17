"""Loop-tree mappings (issue 20, item 2): the IR (tree.py: nodes, YAML + pydantic, validation), the traffic
a tree implies (traffic.py: DRAM, each level's fills and drains, footprints and the capacity check) and its
cycles (cost.py: a roofline over the units and the levels). GEMMs are scheduled from loop trees
(mappings/gemm.py); the cascade scheduler (mappings/scheduler.py) does not read them yet."""
from mappings.looptree.traffic import Traffic, check_capacity, dram_traffic, footprints
from mappings.looptree.tree import LoopTree, LoopTreeError, Node, load_looptree, parse_looptree, tree_names, validate

__all__ = ["LoopTree", "LoopTreeError", "Node", "Traffic", "check_capacity", "dram_traffic", "footprints",
           "load_looptree", "parse_looptree", "tree_names", "validate"]
