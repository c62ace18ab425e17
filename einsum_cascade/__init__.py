"""Cascades of extended Einsums: parse, evaluate, count passes and operations, fuse passes."""
from __future__ import annotations

from einsum_cascade.cost import CascadeCost, cost, domain_points
from einsum_cascade.errors import CascadeError
from einsum_cascade.fuse import FuseResult, fuse  # the function shadows the subpackage name
from einsum_cascade.ir import Cascade, Einsum, Rank, Tensor, TensorDecl
from einsum_cascade.catalog import block_names, library_names, library_path, load_cached, load_library
from einsum_cascade.parser import load, parse
from einsum_cascade.passes import PassReport, all_passes, passes

__all__ = [
    "Cascade",
    "CascadeCost",
    "CascadeError",
    "FuseResult",
    "fuse",
    "PassReport",
    "all_passes",
    "cost",
    "domain_points",
    "passes",
    "Einsum",
    "Rank",
    "Tensor",
    "TensorDecl",
    "block_names",
    "library_names",
    "library_path",
    "load",
    "load_cached",
    "load_library",
    "parse",
]
