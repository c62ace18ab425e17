"""GPU mappings of the attention cascades: a kernel implementation as launches of tile programs.

A kernel profile (archsim/gpu_specs.py) names the algorithm and passes of an implementation
(FlashAttention-2, the Triton tutorial, Lightning-2, gpu_ref's own kernels, ...) and its tile
sizes; the mapping of that structure names, for each kernel launch, which Einsums of the library
cascade it evaluates, over what grid of programs, with which tile sizes, and what it moves to
and from GPU memory. The work of every program comes from the cascade itself: the cascade's
operation counts (`ec.cost(...).at(sizes)`) with the ranks bound to one program's tile (query
rows P = BLOCK_M, keys M = the keys that program visits, key tile M0 = BLOCK_N). Per Einsum:

- an implicitly summed product (QK, SLNV, AV, ...) runs on tensor cores: 2 FLOPs per point of
  its dense iteration space (a tile computes its diagonal tile whole, then masks it);
- every other operator counts per point as the cascade's counting convention says: `exp` on
  the special-function units, the rest (add, max, multiply, divide, ...) on the fp32 ALUs;
- sub-expressions that read no tensor (the decay factors exp(log(G) * ...) of
  lightning_attention) are folded: the kernel implements G = 1 and computes none of them.

Known simplifications: the 2-pass kernel computes the softmax denominator in its first pass
(with a running rescale, as the issue specifies) where the cascade computes it in the second;
the mapping assigns SN and SD to both launches accordingly and ignores the per-row rescale.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import lru_cache

import numpy as np

import einsum_cascade as ec
from einsum_cascade import ast as cascade_ast
from archsim.gpu_model import KernelLaunch
from archsim.gpu_specs import GPUSpec, KernelProfile
from gpu_ref.tiles import softmax_warps

STATS_BYTES_PER_ROW = 8  # the 2-pass kernel's row max and row sum, fp32 each
MAX_PROGRAMS = 50_000_000  # programs of one launch the model lists one by one (memory: ~2 GB of arrays)

# (algorithm, passes) of a kernel profile -> the library cascade whose work its programs do.
STRUCTURE_CASCADES = {
    ("softmax", 1): "attention_1pass",
    ("softmax", 2): "attention_2pass",
    ("softmax", 3): "attention_3pass",
    ("linear", 1): "lightning_attention",
}


@dataclass(frozen=True)
class AttentionShape:
    """One benchmark shape: q, k, v of (batch, heads, seq_len, head_dim), element size in bytes."""

    batch: int
    heads: int
    seq_len: int
    head_dim: int
    causal: bool
    element_bytes: int = 2

    @property
    def heads_total(self) -> int:
        """batch * heads: the (batch, head) pairs, one grid row of programs each."""
        return self.batch * self.heads


@dataclass(frozen=True)
class Work:
    """Operations of one program: tensor-core FLOPs, exps, other fp32 ops."""

    tensor_flops: float
    exps: float
    alu_ops: float


def _ops_of(node: cascade_ast.Node) -> int:
    """Operators inside a sub-expression (binary operators and function calls)."""
    own = 1 if isinstance(node, (cascade_ast.Binary, cascade_ast.Call)) else 0
    return own + sum(_ops_of(child) for child in cascade_ast.children(node))


def _reads_tensor(node: cascade_ast.Node) -> bool:
    """Whether the sub-expression reads any tensor."""
    return isinstance(node, cascade_ast.Access) or any(_reads_tensor(c) for c in cascade_ast.children(node))


def _folded_ops(node: cascade_ast.Node) -> tuple[int, int]:
    """(exp calls, other operators) in tensor-free sub-expressions, which a kernel folds away."""
    if isinstance(node, (cascade_ast.Binary, cascade_ast.Call)) and not _reads_tensor(node):
        # einsum_cascade.cost counts a constant (rank-variable-free) part once, not per point:
        # only the rest is folded per point
        per_point = [n for n in _varying(node) if isinstance(n, (cascade_ast.Binary, cascade_ast.Call))]
        exps = sum(1 for n in per_point if isinstance(n, cascade_ast.Call) and n.func == "exp")
        return exps, len(per_point) - exps
    exps = other = 0
    for child in cascade_ast.children(node):
        e, o = _folded_ops(child)
        exps, other = exps + e, other + o
    return exps, other


def _varying(node: cascade_ast.Node) -> list:
    """The nodes of a sub-expression outside its constant (rank-variable-free) parts."""
    if not any(isinstance(n, cascade_ast.Var) for n in cascade_ast.walk(node)):
        return []
    return [node] + [n for c in cascade_ast.children(node) for n in _varying(c)]


def _constant_ops(node: cascade_ast.Node) -> tuple[int, int]:
    """(exp calls, other operators) in constant sub-expressions (no tensor, no rank variable)."""
    if isinstance(node, (cascade_ast.Binary, cascade_ast.Call)) and not _reads_tensor(node) \
            and not any(isinstance(n, cascade_ast.Var) for n in cascade_ast.walk(node)):
        exps = _count_exp(node)
        return exps, _ops_of(node) - exps
    parts = [_constant_ops(c) for c in cascade_ast.children(node)]
    return sum(p[0] for p in parts), sum(p[1] for p in parts)


def _count_exp(node: cascade_ast.Node) -> int:
    """`exp` calls inside a sub-expression."""
    own = 1 if isinstance(node, cascade_ast.Call) and node.func == "exp" else 0
    return own + sum(_count_exp(c) for c in cascade_ast.children(node))


def _is_tensor_product(e) -> bool:
    """An implicitly summed product of tensors (a matrix product): runs on tensor cores."""
    return bool(e.implicit_vars) and isinstance(e.expr, cascade_ast.Binary) and e.expr.op == "*"


class CascadeWork:
    """Per-program operation counts of groups of a cascade's Einsums at bound sizes."""

    def __init__(self, cascade_name: str):
        self.cascade = ec.load_library(cascade_name)
        cost = ec.cost  # the contract's function
        self.cost = cost(self.cascade)
        self.einsums = {e.name: e for e in self.cascade.einsums if not e.is_initial}
        self._cache: dict[tuple, Work] = {}

    def check_names(self, names: tuple[str, ...]) -> None:
        """Raise ValueError naming the first of `names` that is not an Einsum of the cascade."""
        missing = [n for n in names if n not in self.einsums]
        if missing:
            raise ValueError(f"cascade {self.cascade.name}: no Einsum named {missing[0]!r} "
                             f"(has {sorted(self.einsums)})")

    def work(self, names: tuple[str, ...], sizes: dict[str, int]) -> Work:
        """Tensor FLOPs, exps and ALU ops of Einsums `names` at `sizes` (one program's tile)."""
        key = (names, tuple(sorted(sizes.items())))
        if key not in self._cache:
            self._cache[key] = self._work(names, sizes)
        return self._cache[key]

    def _work(self, names: tuple[str, ...], sizes: dict[str, int]) -> Work:
        self.check_names(names)
        counts = self.cost.at(sizes).per_einsum
        bound = self.cascade.bind_sizes({}, {k: v for k, v in sizes.items()
                                             if k in self.cascade.size_names or k in self.cascade.params})
        tensor = exps = alu = 0.0
        for name in names:
            e = self.einsums[name]
            if _is_tensor_product(e):
                dense = math.prod(int(bound[self.cascade.var_rank[v]]) for v in e.space_vars)
                tensor += 2.0 * dense
                continue
            ops = counts[name]
            folded_exp, folded_other = _folded_ops(e.expr)
            points = ec.domain_points(self.cascade, e, sizes) if (folded_exp or folded_other) else 0
            const_exp, const_other = _constant_ops(e.expr)  # counted once by einsum_cascade.cost
            exps += ops.get("exp", 0) - folded_exp * points - const_exp
            alu += sum(v for k, v in ops.items() if k != "exp") - folded_other * points - const_other
        return Work(tensor, exps, alu)


@lru_cache(maxsize=None)
def cascade_work(cascade_name: str) -> CascadeWork:
    """The (cached) operation counter of library cascade `cascade_name`."""
    return CascadeWork(cascade_name)


def _work_by_keys(cw: CascadeWork, names: tuple[str, ...], sizes: dict[str, int], keys: np.ndarray,
                  key_rank: str = "M") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Work arrays for programs that visit `keys` keys each.

    The counts are evaluated from the cascade at the smallest, largest and a middle key count;
    when those three lie on a line (work affine in the keys, as for every mapped kernel) the
    rest are interpolated, otherwise each distinct key count is evaluated.
    """
    def at(k: int) -> np.ndarray:
        w = cw.work(names, {**sizes, key_rank: int(k)})
        return np.array([w.tensor_flops, w.exps, w.alu_ops], dtype=float)

    distinct, inverse = np.unique(keys, return_inverse=True)
    lo, hi = int(distinct[0]), int(distinct[-1])
    mid = int(distinct[len(distinct) // 2])
    w_lo, w_hi, w_mid = at(lo), at(hi), at(mid)
    if lo == hi:
        table = w_lo[None, :]
    else:
        slope = (w_hi - w_lo) / (hi - lo)
        if np.allclose(w_lo + slope * (mid - lo), w_mid, rtol=1e-9, atol=1e-6):
            table = w_lo[None, :] + slope[None, :] * (distinct[:, None] - lo)
        else:
            table = np.array([at(k) for k in distinct])
    rows = table[inverse.reshape(-1)]
    return rows[:, 0], rows[:, 1], rows[:, 2]


def _visited_keys(shape: AttentionShape, block_m: int, block_n: int, order: str = "forward") -> np.ndarray:
    """Keys each query-tile program visits (whole key tiles), in launch order over all heads
    (a head's query tiles one after another; `reverse`: the last, longest causal tile first)."""
    n, tiles_m = shape.seq_len, math.ceil(shape.seq_len / block_m)
    if shape.causal:
        ends = np.minimum((np.arange(tiles_m) + 1) * block_m, n)
    else:
        ends = np.full(tiles_m, n)
    per_head = np.ceil(ends / block_n).astype(int) * block_n
    if order == "reverse":
        per_head = per_head[::-1]
    return np.tile(per_head, shape.heads_total)


def kv_reread_bytes(gpu: GPUSpec, shape: AttentionShape, block_m: int, resident: int, tensors: int) -> float:
    """HBM bytes of key/value re-reads beyond the first read of each head.

    The programs of one head that run at the same time sweep its keys together, so L2 needs to
    hold only the few key tiles they are reading: each head's K/V is read once per wave of
    programs it spans. A later wave finds it in L2 while the K/V of the heads in flight fit in L2;
    otherwise each extra wave of a head reads its K/V again (`tensors` of seq_len x head_dim each).
    """
    per_head = tensors * shape.seq_len * shape.head_dim * shape.element_bytes
    tiles_m = math.ceil(shape.seq_len / block_m)
    slots = gpu.sms * resident
    heads_in_flight = math.ceil(min(slots, tiles_m * shape.heads_total) / tiles_m)
    if heads_in_flight * per_head <= gpu.l2_bytes:
        return 0.0
    waves_per_head = math.ceil(tiles_m / slots)
    return float((waves_per_head - 1) * per_head * shape.heads_total)


def _resident(gpu: GPUSpec, smem: int, warps: int) -> int:
    """Programs that fit on one SM at once (shared memory and warp limits)."""
    by_smem = gpu.smem_bytes_per_sm // max(smem, 1)
    return max(1, min(by_smem, gpu.max_warps_per_sm // warps))


def launches_1pass(gpu: GPUSpec, shape: AttentionShape, t: dict[str, int], order: str = "forward"
                   ) -> list[KernelLaunch]:
    """One launch: a program per query tile streams its keys; q, k, v read and out written once (bytes)."""
    cw = cascade_work(STRUCTURE_CASCADES[("softmax", 1)])
    bm, bn, d, e = t["BLOCK_M"], t["BLOCK_N"], shape.head_dim, shape.element_bytes
    keys = _visited_keys(shape, bm, bn, order)
    names = tuple(cw.einsums)
    tf, ex, alu = _work_by_keys(cw, names, {"E": d, "F": d, "P": bm, "M0": bn}, keys)
    smem = (bm * d + 2 * bn * d * t["num_stages"]) * e
    compulsory = 4.0 * shape.heads_total * shape.seq_len * d * e
    resident = _resident(gpu, smem, t["num_warps"])
    hbm = compulsory + kv_reread_bytes(gpu, shape, bm, resident, 2)
    return [KernelLaunch("attention_1pass", tf, ex, alu, hbm, keys / bn, smem, t["num_warps"], resident)]


def launches_2pass(gpu: GPUSpec, shape: AttentionShape, t: dict[str, int], order: str = "forward"
                   ) -> list[KernelLaunch]:
    """Two launches over the same query-tile grid: row max and sum (8 bytes per row out), then P V."""
    cw = cascade_work(STRUCTURE_CASCADES[("softmax", 2)])
    bm, bn, d, e = t["BLOCK_M"], t["BLOCK_N"], shape.head_dim, shape.element_bytes
    keys = _visited_keys(shape, bm, bn, order)
    sizes = {"E": d, "F": d, "P": bm}
    rows = shape.heads_total * shape.seq_len
    qk_bytes = 2.0 * rows * d * e
    out = []
    for name, einsums, tensors, extra in (
            ("row_stats", ("QK", "GM", "SN", "SD"), 1, rows * STATS_BYTES_PER_ROW),
            ("normalised_av", ("QK", "SN", "SNV", "AV"), 2, rows * (STATS_BYTES_PER_ROW + d * e) + rows * d * e)):
        tf, ex, alu = _work_by_keys(cw, einsums, sizes, keys)
        smem = (bm * d + tensors * bn * d * t["num_stages"]) * e
        resident = _resident(gpu, smem, t["num_warps"])
        hbm = qk_bytes + extra + kv_reread_bytes(gpu, shape, bm, resident, tensors)
        out.append(KernelLaunch(name, tf, ex, alu, hbm, keys / bn, smem, t["num_warps"], resident))
    return out


def launches_3pass(gpu: GPUSpec, shape: AttentionShape, t: dict[str, int], order: str = "forward"
                   ) -> list[KernelLaunch]:
    """Three launches: scores to GPU memory, a row softmax over them in place, probabilities times V."""
    cw = cascade_work(STRUCTURE_CASCADES[("softmax", 3)])
    bm, bn, d, e, n = t["BLOCK_M"], t["BLOCK_N"], shape.head_dim, shape.element_bytes, shape.seq_len
    heads = shape.heads_total
    tiles_m, tiles_n = math.ceil(n / bm), math.ceil(n / bn)
    # Scores: one program per (query tile, key tile); causal tiles above the diagonal do nothing.
    m_idx, n_idx = np.meshgrid(np.arange(tiles_m), np.arange(tiles_n), indexing="xy")
    active = (n_idx * bn <= m_idx * bm + bm - 1) if shape.causal else np.ones_like(m_idx, dtype=bool)
    active = np.tile(active.reshape(-1), heads)
    tile = cw.work(("QK",), {"E": d, "F": d, "P": bm, "M": bn})
    rows_in = np.minimum(bm, n - m_idx * bm).reshape(-1)
    cols_in = np.minimum(bn, n - n_idx * bn).reshape(-1)
    stored = float((rows_in * cols_in)[active[:m_idx.size]].sum())  # score elements written per head
    scores_hbm = heads * (stored * e + 2.0 * n * d * e)
    scores = KernelLaunch("scores", active * tile.tensor_flops, active * tile.exps, active * tile.alu_ops,
                          scores_hbm, None, (bm + bn) * d * e, t["num_warps"])
    # Row softmax: one program per row, the visible part of the row loaded once, P written over S.
    row_len = (np.arange(n) + 1) if shape.causal else np.full(n, n)
    valid = float(row_len.sum()) * heads
    tf, ex, alu = _work_by_keys(cw, ("GM", "SN", "SD", "A"), {"E": d, "F": d, "P": 1}, np.tile(row_len, heads))
    softmax = KernelLaunch("row_softmax", tf, ex, alu, 2.0 * valid * e, None, 0, softmax_warps(n))
    # Probabilities times V: one program per query tile over the keys it may see.
    keys = _visited_keys(shape, bm, bn, order)
    tf, ex, alu = _work_by_keys(cw, ("AV",), {"E": d, "F": d, "P": bm}, keys)
    pv_hbm = valid * e + 2.0 * heads * n * d * e
    pv_smem = (bm * bn + bn * d) * e * t["num_stages"]
    probs_v = KernelLaunch("probs_v", tf, ex, alu, pv_hbm, keys / bn, pv_smem, t["num_warps"],
                           _resident(gpu, pv_smem, t["num_warps"]))
    return [scores, softmax, probs_v]


def launches_linear(gpu: GPUSpec, shape: AttentionShape, t: dict[str, int], order: str = "forward"
                    ) -> list[KernelLaunch]:
    """One launch: a program per (batch, head, BLOCK_E value columns) walks the sequence blocks in order."""
    if not shape.causal:
        raise ValueError("linear attention is causal only")
    cw = cascade_work(STRUCTURE_CASCADES[("linear", 1)])
    bn, d, e, n = t["BLOCK_N"], shape.head_dim, shape.element_bytes, shape.seq_len
    be = min(t["BLOCK_E"], d)
    chunks = math.ceil(d / be)
    blocks = math.ceil(n / bn)
    work = cw.work(tuple(cw.einsums), {"E": d, "F": be, "M": blocks * bn, "P": blocks * bn,
                                       "M0": bn, "P0": bn, "G": 1})
    programs = shape.heads_total * chunks
    smem = (2 * bn * d + bn * be) * e * t["num_stages"]
    resident = _resident(gpu, smem, t["num_warps"])
    # q and k are read by each of a head's `chunks` programs; programs in flight together sweep the
    # blocks in step and share them through L2, so a head's q, k are read once per wave (v, out once).
    waves = math.ceil(programs / (gpu.sms * resident))
    hbm = shape.heads_total * n * d * e * (2.0 * min(chunks, waves) + 2.0)
    return [KernelLaunch("linear_attention", np.full(programs, work.tensor_flops),
                         np.full(programs, work.exps), np.full(programs, work.alu_ops), hbm,
                         np.full(programs, float(blocks)), smem, t["num_warps"], resident)]


BUILDERS = {
    ("softmax", 1): launches_1pass,
    ("softmax", 2): launches_2pass,
    ("softmax", 3): launches_3pass,
    ("linear", 1): launches_linear,
}


def kernel_launches(gpu: GPUSpec, profile: KernelProfile, shape: AttentionShape,
                    tiles: dict[str, int] | None = None) -> list[KernelLaunch]:
    """The launches of the kernel `profile` describes at `shape`, with its tile settings (or `tiles`,
    e.g. those a measurement file recorded)."""
    if profile.causal_only and not shape.causal:
        raise ValueError(f"kernel {profile.name} is causal only")
    if shape.causal and not profile.causal_skip:  # masked tiles computed in full
        shape = replace(shape, causal=False)
    t = dict(tiles) if tiles else profile.tiles_for(shape.head_dim)
    programs = largest_launch(profile, shape, t)
    if programs > MAX_PROGRAMS:
        raise ValueError(f"{programs:,} programs in one launch at this shape; the model lists programs one by "
                         f"one and its limit is {MAX_PROGRAMS:,} (use a smaller batch x heads or sequence length)")
    return BUILDERS[(profile.algorithm, profile.passes)](gpu, shape, t, profile.causal_order)


def largest_launch(profile: KernelProfile, shape: AttentionShape, t: dict[str, int]) -> int:
    """Programs of the kernel's largest launch (before building any array)."""
    heads, n = shape.heads_total, shape.seq_len
    if profile.algorithm == "linear":
        return heads * math.ceil(shape.head_dim / min(t["BLOCK_E"], shape.head_dim))
    tiles_m = math.ceil(n / t["BLOCK_M"])
    if profile.passes == 3:
        return heads * max(tiles_m * math.ceil(n / t["BLOCK_N"]), n)
    return heads * tiles_m
