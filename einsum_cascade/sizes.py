"""Binding rank sizes and params to numbers, and the extents of tensors."""
from __future__ import annotations

import math

import numpy as np
import sympy

from einsum_cascade.ast import size_symbol, var_symbol
from einsum_cascade.errors import CascadeError
from einsum_cascade.ir import Cascade


def bind_sizes(
    cascade: Cascade, inputs: dict[str, np.ndarray], sizes: dict[str, float]
) -> dict[str, float]:
    """Every rank size, part size and param of `cascade` as a number.

    Sizes come from `sizes`, from the shapes of `inputs` (an index variable's rank gets the
    extent of that dimension), from partitioned ranks (M = M1 * M0 gives any one of the
    three from the other two), and last from the cascade's defaults (`size M0 = 64`), each
    taken only where the others leave the size open. Raises CascadeError naming the size that is missing or
    inconsistent.
    """
    known_names = set(cascade.size_names) | set(cascade.params)
    bound: dict[str, float] = {}
    for name, value in sizes.items():
        if name not in known_names:
            raise CascadeError(
                f"unknown size or param {name!r} (known: {', '.join(sorted(known_names))})",
                cascade.file,
            )
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise CascadeError(f"size or param {name} = {value!r} must be a finite number", cascade.file)
        if name in cascade.size_names:
            if value != int(value) or value < 1:
                raise CascadeError(f"size {name} = {value} must be a positive integer", cascade.file)
            value = int(value)
        bound[name] = value
    for name, decl in cascade.inputs.items():
        if name not in inputs:
            continue
        shape = np.shape(inputs[name])
        if len(shape) != len(decl.indices):
            raise CascadeError(
                f"input {name!r} has {len(shape)} dimensions, the cascade declares "
                f"{len(decl.indices)} ({', '.join(decl.indices)})",
                cascade.file, decl.line, 1,
            )
        for var, extent in zip(decl.indices, shape):
            size = cascade.var_rank[var]
            if size in bound and bound[size] != extent:
                raise CascadeError(
                    f"input {name!r}: dimension {var} has extent {extent}, but {size} = {bound[size]}",
                    cascade.file, decl.line, 1,
                )
            bound[size] = extent
    _complete_partitions(cascade, bound)
    for name, value in getattr(cascade, "defaults", {}).items():
        if name not in bound:  # after the given sizes, the input shapes and what they derive
            bound[name] = value
            _complete_partitions(cascade, bound, default=name)
    missing = [name for name in cascade.size_names + cascade.params if name not in bound]
    if missing:
        raise CascadeError(missing_sizes_message(missing, sizes), cascade.file)
    for name in cascade.size_names:
        value = bound[name]
        if value != int(value) or value < 1:
            raise CascadeError(f"size {name} = {value} must be a positive integer", cascade.file)
        bound[name] = int(value)
    return bound


def missing_sizes_message(missing: list[str], given) -> str:
    """`size 'F' is not bound` (or `sizes 'F', 'P' are not bound`), with what was given and how to add them."""
    names = ", ".join(f"'{n}'" for n in missing)
    head = f"size {names} is not bound" if len(missing) == 1 else f"sizes {names} are not bound"
    return (f"{head} (given: {', '.join(sorted(given)) or 'none'}); numbers need every size: add "
            f"--size {' '.join(f'{n}=N' for n in missing)} (sizes={{'{missing[0]}': ...}} in Python), "
            "or give no sizes for the symbolic counts")


def with_defaults(cascade: Cascade, sizes: dict[str, float]) -> dict[str, float]:
    """`sizes` plus the cascade's `size` defaults that they do not give or determine (a part of
    a split rank follows from the whole and the other parts and is never taken from a default)."""
    out = dict(sizes)
    derived = dict(sizes)
    _complete_partitions(cascade, derived, strict=False)
    for name, value in getattr(cascade, "defaults", {}).items():
        if name not in derived:
            out[name] = derived[name] = value
            _complete_partitions(cascade, derived, strict=False)
    return out


def _complete_partitions(cascade: Cascade, bound: dict, default: str | None = None,
                         strict: bool = True) -> None:
    """Every size a split rank determines from the others (M = M1 * M0 gives any one of the three)."""
    for _ in range(len(cascade.ranks) + 1):
        for rank in cascade.ranks.values():
            if rank.parts:
                try:
                    _complete_partition(cascade, rank.name, rank.parts, bound)
                except CascadeError as err:
                    if not strict:
                        continue
                    if default is not None:
                        raise CascadeError(f"{err.message} (with the cascade's default "
                                           f"size {default} = {bound[default]:g})", cascade.file) from None
                    raise


def _complete_partition(cascade: Cascade, whole: str, parts: tuple[str, ...], bound: dict) -> None:
    names = (whole, *parts)
    missing = [n for n in names if n not in bound]
    if len(missing) > 1:
        return
    if not missing:
        product = math.prod(bound[p] for p in parts)
        if product != bound[whole]:
            raise CascadeError(
                f"{whole} = {bound[whole]} but {' * '.join(parts)} = {product}", cascade.file
            )
        return
    name = missing[0]
    if name == whole:
        bound[whole] = math.prod(bound[p] for p in parts)
        return
    others = math.prod(bound[p] for p in parts if p != name)
    if bound[whole] % others:
        raise CascadeError(
            f"{whole} = {bound[whole]} is not divisible by {others} (the other parts of {whole})",
            cascade.file,
        )
    bound[name] = bound[whole] // others


def affine_max(index: sympy.Expr, cascade: Cascade, sizes: dict[str, float]) -> int:
    """The largest value an affine index takes over the ranges of its variables."""
    subs = {size_symbol(n): v for n, v in sizes.items()}
    expr = sympy.expand(index)
    total = expr
    for var in cascade.variables:
        sym = var_symbol(var)
        coeff = expr.coeff(sym)
        if coeff == 0:
            continue
        upper = sizes[cascade.var_rank[var]] - 1
        value = upper if float(coeff.subs(subs)) > 0 else 0
        total = total.subs(sym, value)
    return int(total.subs(subs))


def tensor_shape(cascade: Cascade, name: str, sizes: dict[str, float]) -> tuple[int, ...]:
    """Extents of a tensor's dimensions: declared for inputs, the largest index written plus one
    for defined tensors."""
    if name in cascade.inputs:
        return tuple(int(sizes[cascade.var_rank[v]]) for v in cascade.inputs[name].indices)
    extents = [0] * cascade.arity[name]
    for e in cascade.einsums:
        if e.name == name:
            for d, index in enumerate(e.lhs):
                extents[d] = max(extents[d], affine_max(index, cascade, sizes) + 1)
    return tuple(extents)
