"""Loop-tree mappings (issue 20, item 2): the IR (tree.py: nodes, YAML + pydantic, validation) and the
DRAM traffic a tree implies (traffic.py). The scheduler (mappings/scheduler.py) does not read them yet."""
from mappings.looptree.traffic import Traffic, dram_traffic
from mappings.looptree.tree import LoopTree, LoopTreeError, Node, load_looptree, parse_looptree, tree_names, validate

__all__ = ["LoopTree", "LoopTreeError", "Node", "Traffic", "dram_traffic", "load_looptree", "parse_looptree",
           "tree_names", "validate"]
