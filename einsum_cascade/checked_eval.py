"""Evaluating a cascade as a check: random inputs, the memory and the recurrence steps evaluation
needs, and evaluation that names the Einsum where non-finite values first appear (used by
`cascadesim eval`)."""
from __future__ import annotations

import math

import networkx as nx
import numpy as np

from einsum_cascade.errors import InputError
from einsum_cascade.evaluate import evaluate, evaluation_order
from einsum_cascade.ir import Cascade


def known_sizes(cascade: Cascade, sizes: dict[str, float]) -> dict[str, float]:
    """The entries of `sizes` that name a size or param of `cascade`."""
    names = set(cascade.size_names) | set(cascade.params)
    return {k: v for k, v in sizes.items() if k in names}


def random_inputs(cascades: list[Cascade], sizes: dict[str, float], seed: int) -> dict[str, np.ndarray]:
    """Standard-normal inputs for every input of every cascade (shared by name), in a fixed order."""
    rng = np.random.default_rng(seed)
    inputs: dict[str, np.ndarray] = {}
    for cascade in cascades:
        bound = cascade.bind_sizes({}, known_sizes(cascade, sizes))
        for name in cascade.inputs:
            shape = cascade.tensor_shape(name, bound)
            if name in inputs:
                if inputs[name].shape != shape:
                    raise InputError(f"input {name} has shape {shape} in {cascade.file} but "
                                     f"{inputs[name].shape} in the other cascade")
                continue
            inputs[name] = rng.standard_normal(shape)
    return inputs


def memory_needed(cascade: Cascade, sizes: dict[str, float]) -> tuple[int, str, int]:
    """Bytes (float64) of every tensor of `cascade` at `sizes`, and the largest tensor with its bytes.

    The evaluator holds every tensor at once; a temporary of an Einsum is at most the size of
    its largest operand or result, so the peak is about the total plus the largest tensor."""
    bound = cascade.bind_sizes({}, known_sizes(cascade, sizes))
    per = {name: 8 * math.prod(cascade.tensor_shape(name, bound))
           for name in list(cascade.inputs) + cascade.defined}
    largest = max(per, key=per.get)
    return sum(per.values()) + per[largest], largest, per[largest]


def recurrence_steps(cascade: Cascade, sizes: dict[str, float]) -> int:
    """Steps the evaluator runs one by one in Python: the extent of the iterative rank of every
    recurrence (a group of Einsums in a cycle), summed."""
    bound = cascade.bind_sizes({}, known_sizes(cascade, sizes))
    steps = 0
    for group in evaluation_order(cascade):
        if len(group) > 1 or cascade.graph.has_edge(group[0], group[0]):
            var = next((cascade.einsum(n).iterative_var for n in group if cascade.einsum(n).iterative_var), None)
            if var is not None:
                steps += int(bound[cascade.var_rank[var]])
    return steps


def first_nonfinite(cascade: Cascade, tensors: dict[str, np.ndarray], output: str) -> str:
    """The Einsum (in evaluation order) among `output` and its ancestors where non-finite values
    first appear; tensors of recurrences (which may start at -inf) only if no other has them."""
    wanted = nx.ancestors(cascade.graph, output) | {output}
    plain, recurrent = [], []
    for group in evaluation_order(cascade):
        is_recurrence = len(group) > 1 or cascade.graph.has_edge(group[0], group[0])
        for name in group:
            if name in wanted and not np.isfinite(tensors[name]).all():
                (recurrent if is_recurrence else plain).append(name)
    return (plain or recurrent or [output])[0]


def evaluate_checked(cascade: Cascade, inputs: dict[str, np.ndarray],
                     sizes: dict[str, float]) -> dict[str, np.ndarray]:
    """Evaluate; NonFiniteOutput naming the Einsum where non-finite values of an output first appear."""
    tensors: dict[str, np.ndarray] = {}
    with np.errstate(all="ignore"):
        results = evaluate(cascade, inputs, sizes, trace=tensors.__setitem__)
    for name, value in results.items():
        bad = int(np.size(value) - np.isfinite(value).sum())
        if bad:
            origin = cascade.einsum(first_nonfinite(cascade, tensors, name))
            raise NonFiniteOutput(
                f"{cascade.file}:{origin.line}:1: output {name} has {bad} non-finite value(s) of "
                f"{np.size(value)}; they first appear in Einsum {origin.name}")
    return results


class NonFiniteOutput(Exception):
    """An output of `eval` holds NaN or infinity (exit status 1)."""
