"""GPU kernels of attention and its variants as launches of tile programs.

A kernel profile (archsim/gpu/profiles.py) names an implementation's family, its tiles and the
instruction family it uses; this module turns one call of it at an `AttentionShape` into
`KernelLaunch`es (archsim/gpu/model.py): for each launch, the grid of programs, each program's
tensor-core FLOPs, exps, other FP32 operations and serial loop steps, its shared memory and
warps, and the launch's HBM bytes. Families:

- `softmax` (flash-style prefill, 1/2/3 passes over HBM): a program per query tile of BLOCK_M
  rows visits the key tiles its mask allows (causal aligned to the last query, a sliding window,
  a block-sparse density); its work is the library cascade's (`attention_1pass`, `_2pass`,
  `_3pass`) operation counts with the ranks bound to one tile (`CascadeWork`): products of
  tensors on tensor cores, 2 FLOPs per point of the dense tile, `exp` on the special-function
  units, the rest on the FP32 lanes;
- `split-kv` (flash-decoding): the query rows of one KV head (its query heads times the query
  length: GQA packing) padded to BLOCK_M, the keys split over programs so that the grid fills
  the GPU, partial results combined by a second launch;
- `chunked-linear`: per head, chunks of C tokens; intra-chunk products in parallel, the state
  (D x Dv per head) carried over chunks by a serial scan, either stored per chunk to HBM and
  read back (two launches, as flash-linear-attention) or kept on chip (one fused launch; with
  context parallelism the sequence is cut into segments so that the grid fills the GPU, and a
  second launch corrects each later segment's output by the state entering it);
- `recurrent-step`: one decode step of a linear recurrence: the state read, updated on the FP32
  lanes and written.

HBM traffic is what each launch must move (inputs read once, outputs written once, the state
and partial results of the families that store them), plus the K/V re-reads L2 cannot hold.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import lru_cache

import numpy as np

import einsum_cascade as ec
from einsum_cascade.numeric_cost import numeric_cost
from einsum_cascade import ast as cascade_ast
from archsim.gpu.model import KernelLaunch
from archsim.gpu.profiles import KernelProfile
from archsim.gpu.specs import GPUSpec

STATS_BYTES_PER_ROW = 8  # the 2-pass kernel's row max and row sum, fp32 each
PARTIAL_BYTES = 4        # split-kv partial outputs and row statistics are fp32
MAX_PROGRAMS = 50_000_000  # programs of one launch the model lists one by one (memory: ~2 GB of arrays)
MAX_SPLITS = 128           # flash-decoding splits of one KV head's keys at most
STATE_TILE = 64            # key-dim rows of the state per program of a chunked state scan
SEGMENT_CHOICES = (1, 2, 4, 8, 16, 32, 64, 128)  # context-parallel segment counts a kernel may pick

# (family, passes) of a kernel profile -> the library cascade whose work its programs do.
STRUCTURE_CASCADES = {
    ("softmax", 1): "attention_1pass",
    ("softmax", 2): "attention_2pass",
    ("softmax", 3): "attention_3pass",
    ("split-kv", 1): "attention_1pass",
}


@dataclass(frozen=True)
class AttentionShape:
    """One call: batch, heads, query length `seq_len`, head dim, causal mask, element bytes.

    Optional: kv_heads (GQA/MQA; for linear recurrences: the q/k heads, or Mamba2's groups),
    seq_len_kv (default seq_len; decode: seq_len = 1), head_dim_v (default head_dim), window
    (keys visible left of each query), density (fraction of key tiles a block-sparse mask
    visits), page_size (paged KV cache), shared_kv (MLA: V is part of the latent K, read once),
    state_writes (recurrent steps: states written, default 1).
    """

    batch: int
    heads: int
    seq_len: int
    head_dim: int
    causal: bool
    element_bytes: int = 2
    kv_heads: int | None = None
    seq_len_kv: int | None = None
    head_dim_v: int | None = None
    window: int | None = None
    density: float = 1.0
    page_size: int | None = None
    shared_kv: bool = False
    state_writes: int | None = None

    @property
    def heads_total(self) -> int:
        """batch * heads: the (batch, head) pairs."""
        return self.batch * self.heads

    @property
    def q_len(self) -> int:
        """Query length P."""
        return self.seq_len

    @property
    def kv_len(self) -> int:
        """Key length M."""
        return self.seq_len if self.seq_len_kv is None else self.seq_len_kv

    @property
    def hkv(self) -> int:
        """KV heads (GQA/MQA), default the heads."""
        return self.heads if self.kv_heads is None else self.kv_heads

    @property
    def dv(self) -> int:
        """Value head dim."""
        return self.head_dim if self.head_dim_v is None else self.head_dim_v

    @property
    def group(self) -> int:
        """Query heads per KV head."""
        return max(1, self.heads // self.hkv)


@dataclass(frozen=True)
class Work:
    """Operations of one program: tensor-core FLOPs, exps, other fp32 ops."""

    tensor_flops: float
    exps: float
    alu_ops: float


def _is_tensor_product(e) -> bool:
    """An implicitly summed product of tensors (a matrix product): runs on tensor cores."""
    return bool(e.implicit_vars) and isinstance(e.expr, cascade_ast.Binary) and e.expr.op == "*"


class CascadeWork:
    """Per-program operation counts of groups of a cascade's Einsums at bound sizes."""

    def __init__(self, cascade_name: str):
        self.cascade = ec.load_library(cascade_name)
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
        counts = numeric_cost(self.cascade, sizes).per_einsum
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
            exps += ops.get("exp", 0)
            alu += sum(v for k, v in ops.items() if k != "exp")
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


def visited_keys(shape: AttentionShape, block_m: int, block_n: int, order: str = "forward") -> np.ndarray:
    """Keys each query-tile program of one head visits (whole key tiles), in launch order.

    Query p (0-based, of P) sees keys m < M - P + p + 1 under a causal mask (aligned to the last
    key, so decode sees all), keys m >= M - P + p - window with a window, and a block-sparse
    density visits that fraction of the key tiles (at least one)."""
    p_len, m_len = shape.q_len, shape.kv_len
    tiles_m = math.ceil(p_len / block_m)
    start = np.arange(tiles_m) * block_m
    end = np.minimum(start + block_m, p_len)
    offset = m_len - p_len
    hi = np.minimum(offset + end, m_len) if shape.causal else np.full(tiles_m, m_len)
    lo = np.maximum(offset + start - shape.window, 0) if shape.window is not None else np.zeros(tiles_m, int)
    tiles = np.maximum(np.ceil(hi / block_n) - np.floor(lo / block_n), 1)
    if shape.density < 1.0:
        tiles = np.maximum(np.round(tiles * shape.density), 1)
    per_head = tiles.astype(int) * block_n
    return per_head[::-1] if order == "reverse" else per_head


def kv_bytes(shape: AttentionShape) -> float:
    """Bytes of K and V of one call (each KV head's keys once; MLA's shared latent once)."""
    width = shape.head_dim if shape.shared_kv else shape.head_dim + shape.dv
    keys = shape.kv_len
    if shape.window is not None:
        keys = min(keys, shape.q_len + shape.window)
    return float(shape.batch * shape.hkv * keys * width * shape.element_bytes * min(1.0, shape.density))


def qo_bytes(shape: AttentionShape) -> float:
    """Bytes of the queries read and the output written."""
    return float(shape.batch * shape.heads * shape.q_len * (shape.head_dim + shape.dv) * shape.element_bytes)


def kv_reread_bytes(gpu: GPUSpec, shape: AttentionShape, block_m: int, resident: int) -> float:
    """HBM bytes of key/value re-reads beyond the first read of each KV head.

    The programs of one KV head that run at the same time sweep its keys together, so L2 needs to
    hold only the few key tiles they are reading: each KV head's K/V is read once per wave of
    programs it spans. A later wave finds it in L2 while the K/V of the heads in flight fit in L2;
    otherwise each extra wave of a KV head reads its K/V again.
    """
    per_head = kv_bytes(shape) / (shape.batch * shape.hkv)
    programs_per_kv_head = math.ceil(shape.q_len / block_m) * shape.group
    slots = gpu.sms * resident
    kv_heads_total = shape.batch * shape.hkv
    in_flight = math.ceil(min(slots, programs_per_kv_head * kv_heads_total) / programs_per_kv_head)
    if in_flight * per_head <= gpu.l2_bytes:
        return 0.0
    waves_per_head = math.ceil(programs_per_kv_head / slots)
    return float((waves_per_head - 1) * per_head * kv_heads_total)


def resident_programs(gpu: GPUSpec, smem: int, warps: int) -> int:
    """Programs that fit on one SM at once (shared memory and warp limits)."""
    by_smem = gpu.smem_bytes_per_sm // max(smem, 1)
    return max(1, min(by_smem, gpu.max_warps_per_sm // warps))


def launches_1pass(gpu: GPUSpec, shape: AttentionShape, t: dict[str, int], profile: KernelProfile,
                   per_point: Work | None = None) -> list[KernelLaunch]:
    """One launch: a program per query tile streams its keys; q, k, v read and out written once.
    `per_point`: the work per score point of another cascade (default: attention_1pass's counts)."""
    bm, bn, d, e = t["BLOCK_M"], t["BLOCK_N"], shape.head_dim, shape.element_bytes
    keys = np.tile(visited_keys(shape, bm, bn, profile.causal_order), shape.heads_total)
    if per_point is None:
        cw = cascade_work(STRUCTURE_CASCADES[("softmax", 1)])
        tf, ex, alu = _work_by_keys(cw, tuple(cw.einsums), {"E": d, "F": shape.dv, "P": bm, "M0": bn}, keys)
    else:
        points = bm * keys.astype(float)
        tf, ex, alu = per_point.tensor_flops * points, per_point.exps * points, per_point.alu_ops * points
    smem = (bm * d + (bn * (d + shape.dv)) * t["num_stages"]) * e
    resident = resident_programs(gpu, smem, t["num_warps"])
    hbm = qo_bytes(shape) + kv_bytes(shape) + kv_reread_bytes(gpu, shape, bm, resident)
    return [KernelLaunch("attention_1pass", tf, ex, alu, hbm, keys / bn, smem, t["num_warps"], resident)]


def _self_attention_only(shape: AttentionShape, what: str) -> None:
    if shape.q_len != shape.kv_len or shape.window is not None or shape.density < 1.0:
        raise ValueError(f"{what} kernels are modelled for self-attention (P = M) without window or block mask")


def launches_2pass(gpu: GPUSpec, shape: AttentionShape, t: dict[str, int], profile: KernelProfile,
                  per_point: Work | None = None) -> list[KernelLaunch]:
    """Two launches over the same query-tile grid: row max and sum (8 bytes per row out), then P V."""
    cw = cascade_work(STRUCTURE_CASCADES[("softmax", 2)])
    bm, bn, d, e = t["BLOCK_M"], t["BLOCK_N"], shape.head_dim, shape.element_bytes
    keys = np.tile(visited_keys(shape, bm, bn, profile.causal_order), shape.heads_total)
    sizes = {"E": d, "F": shape.dv, "P": bm}
    rows = shape.heads_total * shape.q_len
    k_bytes = kv_bytes(replace(shape, head_dim_v=0)) if not shape.shared_kv else kv_bytes(shape)
    out = []
    for name, einsums, tensors, extra in (
            ("row_stats", ("QK", "GM", "SN", "SD"), 1, rows * (d * e + STATS_BYTES_PER_ROW)),
            ("normalised_av", ("QK", "SN", "SNV", "AV"), 2, rows * (STATS_BYTES_PER_ROW + d * e + shape.dv * e))):
        tf, ex, alu = _work_by_keys(cw, einsums, sizes, keys)
        smem = (bm * d + tensors * bn * d * t["num_stages"]) * e
        resident = resident_programs(gpu, smem, t["num_warps"])
        kv = k_bytes if tensors == 1 else kv_bytes(shape)
        hbm = kv + extra + kv_reread_bytes(gpu, shape, bm, resident) * tensors / 2
        out.append(KernelLaunch(name, tf, ex, alu, hbm, keys / bn, smem, t["num_warps"], resident))
    return out


def launches_3pass(gpu: GPUSpec, shape: AttentionShape, t: dict[str, int], profile: KernelProfile,
                  per_point: Work | None = None) -> list[KernelLaunch]:
    """Three launches: scores to GPU memory, a row softmax over them in place, probabilities times V."""
    _self_attention_only(shape, "3-pass")
    cw = cascade_work(STRUCTURE_CASCADES[("softmax", 3)])
    bm, bn, d, e, n = t["BLOCK_M"], t["BLOCK_N"], shape.head_dim, shape.element_bytes, shape.q_len
    heads = shape.heads_total
    tiles_m, tiles_n = math.ceil(n / bm), math.ceil(n / bn)
    # Scores: one program per (query tile, key tile); causal tiles above the diagonal do nothing.
    m_idx, n_idx = np.meshgrid(np.arange(tiles_m), np.arange(tiles_n), indexing="xy")
    active = (n_idx * bn <= m_idx * bm + bm - 1) if shape.causal else np.ones_like(m_idx, dtype=bool)
    active = np.tile(active.reshape(-1), heads)
    tile = cw.work(("QK",), {"E": d, "F": shape.dv, "P": bm, "M": bn})
    rows_in = np.minimum(bm, n - m_idx * bm).reshape(-1)
    cols_in = np.minimum(bn, n - n_idx * bn).reshape(-1)
    stored = float((rows_in * cols_in)[active[:m_idx.size]].sum())  # score elements written per head
    scores_hbm = heads * stored * e + qo_bytes(replace(shape, head_dim_v=0)) + kv_bytes(replace(shape, head_dim_v=0))
    scores = KernelLaunch("scores", active * tile.tensor_flops, active * tile.exps, active * tile.alu_ops,
                          scores_hbm, None, (bm + bn) * d * e, t["num_warps"])
    # Row softmax: one program per row, the visible part of the row loaded once, P written over S.
    row_len = (np.arange(n) + 1) if shape.causal else np.full(n, n)
    valid = float(row_len.sum()) * heads
    tf, ex, alu = _work_by_keys(cw, ("GM", "SN", "SD", "A"), {"E": d, "F": shape.dv, "P": 1}, np.tile(row_len, heads))
    softmax = KernelLaunch("row_softmax", tf, ex, alu, 2.0 * valid * e, None, 0, softmax_warps(n))
    # Probabilities times V: one program per query tile over the keys it may see.
    keys = np.tile(visited_keys(shape, bm, bn, profile.causal_order), heads)
    tf, ex, alu = _work_by_keys(cw, ("AV",), {"E": d, "F": shape.dv, "P": bm}, keys)
    pv_hbm = valid * e + heads * n * shape.dv * e * 2
    pv_smem = (bm * bn + bn * shape.dv) * e * t["num_stages"]
    probs_v = KernelLaunch("probs_v", tf, ex, alu, pv_hbm, keys / bn, pv_smem, t["num_warps"],
                           resident_programs(gpu, pv_smem, t["num_warps"]))
    return [scores, softmax, probs_v]


def softmax_warps(seq_len: int) -> int:
    """Warps of a row-softmax launch: enough threads that a row of seq_len fits in registers."""
    return 4 if seq_len <= 2048 else 8 if seq_len <= 8192 else 16


def splits_for(gpu: GPUSpec, base_programs: int, key_tiles: int) -> int:
    """Flash-decoding splits of the keys: enough programs for one wave over the SMs (at most
    MAX_SPLITS, at most one split per key tile)."""
    return int(max(1, min(key_tiles, MAX_SPLITS, math.ceil(gpu.sms / base_programs))))


def launches_split_kv(gpu: GPUSpec, shape: AttentionShape, t: dict[str, int], profile: KernelProfile,
                      per_point: Work | None = None) -> list[KernelLaunch]:
    """Flash-decoding: programs over (KV head, row tile, key split); a combine launch when split."""
    cw = cascade_work(STRUCTURE_CASCADES[("split-kv", 1)])
    bm, bn, d, dv, e = t["BLOCK_M"], t["BLOCK_N"], shape.head_dim, shape.dv, shape.element_bytes
    packed = profile.gqa_packing
    rows = shape.q_len * (shape.group if packed else 1)
    heads = shape.batch * (shape.hkv if packed else shape.heads)
    row_tiles = math.ceil(rows / bm)
    key_tiles = math.ceil(shape.kv_len / bn)
    splits = splits_for(gpu, heads * row_tiles, key_tiles)
    keys = math.ceil(key_tiles / splits) * bn
    programs = heads * row_tiles * splits
    if programs > MAX_PROGRAMS:
        raise ValueError(f"{programs:,} programs in one launch; the model's limit is {MAX_PROGRAMS:,}")
    if per_point is None:
        w = cw.work(tuple(cw.einsums), {"E": d, "F": dv, "P": bm, "M0": bn, "M": keys})
    else:
        w = Work(per_point.tensor_flops * bm * keys, per_point.exps * bm * keys, per_point.alu_ops * bm * keys)
    tensor, alu = w.tensor_flops, w.alu_ops * min(rows, bm) / bm
    exps = w.exps * min(rows, bm) / bm
    if profile.tensor_on_alu:  # CUDA-core kernel: one FMA per multiply-accumulate, rows not padded
        tensor, alu = 0.0, alu + w.tensor_flops / 2.0 * min(rows, bm) / bm
    smem = (bm * d + bn * (d + (0 if shape.shared_kv else dv)) * t["num_stages"]) * e
    resident = resident_programs(gpu, smem, t["num_warps"])
    partials = float(shape.batch * shape.heads * shape.q_len * splits * (dv + 2) * PARTIAL_BYTES) if splits > 1 else 0.0
    hbm = kv_bytes(shape) + qo_bytes(shape) + partials
    main = KernelLaunch("split_kv", np.full(programs, tensor), np.full(programs, exps), np.full(programs, alu),
                        hbm, np.full(programs, keys / bn), smem, t["num_warps"], resident)
    if splits == 1:
        return [main]
    out_rows = shape.batch * shape.heads * shape.q_len
    combine_programs = max(1, math.ceil(out_rows / 4))
    per_row = splits * (3.0 * dv + 4.0)
    combine = KernelLaunch("combine", np.zeros(combine_programs), np.full(combine_programs, 4.0 * splits),
                           np.full(combine_programs, 4.0 * per_row), partials + out_rows * dv * e, None, 0, 4, 8)
    return [main, combine]


def launches_chunked_linear(gpu: GPUSpec, shape: AttentionShape, t: dict[str, int], profile: KernelProfile,
                  per_point: Work | None = None) -> list[KernelLaunch]:
    """Chunked linear recurrence: the parallel intra-chunk work and the serial state scan."""
    w, c = profile.chunk_work, profile.chunk
    if shape.q_len != shape.kv_len:
        raise ValueError("a chunked linear recurrence runs over its own sequence (P = M)")
    n, d, dv, e = shape.q_len, shape.head_dim, shape.dv, shape.element_bytes
    chunks = math.ceil(n / c)
    bh = shape.batch * shape.heads
    gate = d if w.vector_gate else 1
    tensor_chunk = 2.0 * (w.cc_d * c * c * d + w.cc_dv * c * c * dv + w.c_d_dv * c * d * dv)
    state_chunk = 2.0 * w.state_c_d_dv * c * d * dv
    exps_chunk = w.exps_per_token * c * gate + w.exps_per_chunk_cc * c * c
    alu_chunk = 2.0 * c * c + 2.0 * c * gate + (c ** 3 / 3.0 if w.solve else 0.0)
    io = float(shape.batch * n * (2 * shape.hkv * d + 2 * shape.heads * dv) * e + bh * n * w.gate_bytes_per_token)
    state_io = float(bh * chunks * d * dv * w.state_bytes)
    bv = min(t.get("BLOCK_E", dv), dv)
    dv_tiles = math.ceil(dv / bv)
    warps, stages = t["num_warps"], t["num_stages"]
    if w.state_materialised:
        dk_tiles = math.ceil(d / STATE_TILE)
        scan_programs = bh * dk_tiles * dv_tiles
        smem = (c * (STATE_TILE + bv) * e) * stages + STATE_TILE * bv * 4
        scan = KernelLaunch("state_scan", np.full(scan_programs, chunks * state_chunk / (dk_tiles * dv_tiles)),
                            np.zeros(scan_programs), np.full(scan_programs, chunks * c * STATE_TILE * bv / 8.0),
                            float(shape.batch * n * (shape.hkv * d + shape.heads * dv) * e) + state_io,
                            np.full(scan_programs, float(chunks)), smem, warps, resident_programs(gpu, smem, warps))
        out_programs = bh * chunks * dv_tiles
        smem_out = (c * d + c * bv + d * bv) * e * stages
        output = KernelLaunch("chunk_output",
                              np.full(out_programs, (2.0 * w.cc_d * c * c * d + (tensor_chunk - 2.0 * w.cc_d * c * c * d)
                                                     / dv_tiles)),
                              np.full(out_programs, exps_chunk / dv_tiles), np.full(out_programs, alu_chunk / dv_tiles),
                              io + state_io, None, smem_out, warps, resident_programs(gpu, smem_out, warps))
        return [scan, output]
    # Context parallel: the chunks of a sequence split into SEGMENTS segments (the launch setting an
    # autotuner picks: gpu_predict tries SEGMENT_CHOICES and keeps the fastest); without it, enough
    # programs for one wave.
    segments = 1
    if w.context_parallel:
        segments = min(int(t["SEGMENTS"]), chunks) if "SEGMENTS" in t else splits_for(gpu, bh * dv_tiles, chunks)
    seg_chunks = math.ceil(chunks / segments)
    programs = bh * dv_tiles * segments
    per_chunk = 2.0 * w.cc_d * c * c * d + (tensor_chunk - 2.0 * w.cc_d * c * c * d + state_chunk) / dv_tiles
    smem = (2 * c * d + c * bv) * e * stages + d * bv * 4
    state_io = float(bh * (segments - 1) * d * dv * w.state_bytes)
    fused = KernelLaunch("fused_chunks", np.full(programs, seg_chunks * per_chunk),
                         np.full(programs, seg_chunks * exps_chunk / dv_tiles),
                         np.full(programs, seg_chunks * alu_chunk / dv_tiles), io + state_io,
                         np.full(programs, float(seg_chunks)), smem, warps, resident_programs(gpu, smem, warps))
    if segments == 1:
        return [fused]
    # Each later segment's output corrected by the state entering it (q S: a C x D x Dv product per
    # chunk), the segment states passed on by a short scan: q and out read, out written once more.
    fix_programs = bh * dv_tiles * (segments - 1)
    fix_io = float(shape.batch * n * (shape.hkv * d + 2 * shape.heads * dv) * e * (segments - 1) / segments) + state_io
    fix = KernelLaunch("segment_fixup", np.full(fix_programs, seg_chunks * 2.0 * c * d * dv / dv_tiles),
                       np.zeros(fix_programs), np.full(fix_programs, seg_chunks * c * bv), fix_io,
                       np.full(fix_programs, float(segments)), smem, warps, resident_programs(gpu, smem, warps))
    return [fused, fix]


def launches_recurrent_step(gpu: GPUSpec, shape: AttentionShape, t: dict[str, int], profile: KernelProfile,
                  per_point: Work | None = None) -> list[KernelLaunch]:
    """Decode of a linear recurrence: per (batch, head, BLOCK_E value columns) the state is read,
    updated once per query token on the FP32 lanes, and written `state_writes` times."""
    sw = profile.step_work
    steps, d, dv, e = shape.q_len, shape.head_dim, shape.dv, shape.element_bytes
    bv = min(t.get("BLOCK_E", dv), dv)
    programs = shape.batch * shape.heads * math.ceil(dv / bv)
    writes = 1 if shape.state_writes is None else shape.state_writes
    state = float(shape.batch * shape.heads * d * dv * sw.state_bytes)
    io = float(shape.batch * steps * (2 * shape.hkv * d + 2 * shape.heads * dv) * e)
    alu = steps * sw.ops_per_state_element * d * bv
    smem = d * bv * sw.state_bytes
    return [KernelLaunch("recurrent_step", np.zeros(programs), np.full(programs, float(steps * 2)),
                         np.full(programs, float(alu)), state * (1 + writes) + io, np.full(programs, float(steps)),
                         smem, t["num_warps"], resident_programs(gpu, smem, t["num_warps"]))]


BUILDERS = {
    ("softmax", 1): launches_1pass,
    ("softmax", 2): launches_2pass,
    ("softmax", 3): launches_3pass,
    ("split-kv", 1): launches_split_kv,
    ("chunked-linear", 1): launches_chunked_linear,
    ("recurrent-step", 1): launches_recurrent_step,
}


def launch_settings(profile: KernelProfile, shape: AttentionShape,
                    tiles: dict[str, int] | None = None) -> list[dict[str, int] | None]:
    """The launch settings a call may run with: `tiles` (default the profile's) and, for a
    context-parallel kernel whose `tiles` do not fix SEGMENTS, each of SEGMENT_CHOICES segment
    counts; an autotuned kernel runs the fastest. A fixed set of choices, each no faster with more
    batch, heads or tokens, keeps the fastest monotone in all three."""
    w = profile.chunk_work
    if profile.family != "chunked-linear" or w is None or not w.context_parallel or (tiles and "SEGMENTS" in tiles):
        return [tiles]
    base = dict(tiles) if tiles else profile.tiles_for(shape.head_dim)
    return [{**base, "SEGMENTS": s} for s in SEGMENT_CHOICES]


def kernel_launches(gpu: GPUSpec, profile: KernelProfile, shape: AttentionShape,
                    tiles: dict[str, int] | None = None, per_point: Work | None = None) -> list[KernelLaunch]:
    """The launches of the kernel `profile` describes at `shape`, with its tile settings (or `tiles`,
    e.g. those a measurement file recorded); `per_point`: a cascade's own work per score point for
    the one-pass families. ValueError (one line) for a shape it cannot run."""
    if profile.causal_only and not shape.causal:
        raise ValueError(f"kernel {profile.name} is causal only")
    if profile.max_head_dim is not None and shape.head_dim > profile.max_head_dim:
        raise ValueError(f"kernel {profile.name} supports head dims up to {profile.max_head_dim}, got {shape.head_dim}")
    if shape.causal and not profile.causal_skip:  # masked tiles computed in full
        shape = replace(shape, causal=False)
    t = dict(tiles) if tiles else profile.tiles_for(shape.head_dim)
    smem_block = (t.get("BLOCK_M", 1) * shape.head_dim + t["BLOCK_N"] * shape.head_dim) * shape.element_bytes
    if profile.family in ("softmax", "split-kv") and smem_block > gpu.smem_bytes_per_block:
        raise ValueError(f"kernel {profile.name}: tiles {t.get('BLOCK_M')}x{t['BLOCK_N']} at head dim {shape.head_dim} "
                         f"need {smem_block} bytes of shared memory; {gpu.name} allows {gpu.smem_bytes_per_block} per block")
    if t["num_warps"] > gpu.max_warps_per_sm:
        raise ValueError(f"kernel {profile.name}: {t['num_warps']} warps per program; {gpu.name} holds "
                         f"{gpu.max_warps_per_sm} per SM")
    if profile.family == "softmax":
        programs = shape.heads_total * math.ceil(shape.q_len / t["BLOCK_M"])
        if profile.passes == 3:
            programs = max(programs * math.ceil(shape.kv_len / t["BLOCK_N"]), shape.heads_total * shape.q_len)
        if programs > MAX_PROGRAMS:
            raise ValueError(f"{programs:,} programs in one launch at this shape; the model lists programs one by "
                             f"one and its limit is {MAX_PROGRAMS:,} (use a smaller batch x heads or sequence length)")
    return BUILDERS[(profile.family, profile.passes)](gpu, shape, t, profile, per_point)
