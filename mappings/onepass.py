"""Mappings of the 1-pass cascade (FuseMax's, M = M1 x M0): `fusemax`, `arch` and `cascade`.

Tiling: M0 = the 2D array's rows (256), one M1 tile per iteration; queries in groups of P1
blocks of 256 rows (the 2D array's columns), P1 the largest divisor of P/256 whose Q and
running state (E + F + 2 words per row) fit the buffer beside one 256-column block of K and
of V. A schedule block is one query group of one head; all B*H heads and all groups are
identical blocks. Traffic: Q read once, K and V once per group, AV written once.

Program order per tile follows the cascade; with in-order units the 2D array computes QK and
LM of tile i while the 1D array finishes RD and RNV of tile i-1 (FuseMax's software pipeline).
`pipelined=False` (the `arch` ablation) makes each tile wait for the previous tile's last
1D ops, and `stall` adds `factor` x an Einsum's cycles (the local-max reduction across the
2D array that stalls the pipeline).
"""
from __future__ import annotations

from collections.abc import Mapping as MappingOf

from archsim.config import Architecture
from archsim.schedule import Schedule, Segment, TileOp
from mappings.base import Mapping, plan_einsums
from mappings.work import MappingError
from mappings.workload import Workload

FUSEMAX_BINDING = {
    "QK": "array2d", "LM": "array2d", "SLN": "array2d", "SLD": "array2d", "SLNV": "array2d",
    "RM": "array1d", "PRM": "array1d", "SPD": "array1d", "SPNV": "array1d", "RD": "array1d",
    "RNV": "array1d", "AV": "array1d",
}
CASCADE_BINDING = {name: ("array2d" if name in ("QK", "SLNV") else "array1d") for name in FUSEMAX_BINDING}


def query_group_blocks(P: int, E: int, F: int, arch: Architecture) -> int:
    """P1: query blocks per group, a block being as many rows as the 2D array has columns (256):
    the largest divisor of P / columns whose rows (E + F + 2 words each) fit the buffer beside
    one M0-key block of K and of V (E + F words a key)."""
    rows = arch.units["array2d"].cols
    m0 = arch.units["array2d"].rows
    words = arch.buffer.capacity_bytes // arch.word_bytes
    fit = (words - m0 * (E + F)) // (rows * (E + F + 2))
    nblocks = max(1, P // rows)
    if fit < 1:
        raise MappingError(f"1-pass mapping: one {rows}-row query block (E+F+2 = {E + F + 2} words a row) "
                           f"does not fit the {arch.buffer.capacity_bytes} B buffer of {arch.name}")
    return max(d for d in range(1, nblocks + 1) if nblocks % d == 0 and d <= fit)


class OnePassMapping(Mapping):
    """The 1-pass cascade with a `binding` (Einsum -> unit); options as in the module docstring.

    `stall`: (Einsum, factor) adds factor x that Einsum's cycles to each tile; `array_resident`:
    tensors kept in the PEs' register files (no buffer reads or writes counted).
    """
    cascade_name = "attention_1pass"
    tiled_var = "m1"

    def __init__(self, name: str, default_arch: str, binding: dict[str, str], *, pipelined: bool = True,
                 stall: tuple[str, float] | None = None, fold_shift_into_exp: bool = True,
                 array_resident: tuple[str, ...] = (), description: str = ""):
        self.name, self.default_arch, self.binding = name, default_arch, dict(binding)
        self.pipelined, self.stall, self.fold_shift = pipelined, stall, fold_shift_into_exp
        self.array_resident = array_resident
        self.description = description

    def schedule(self, workload: Workload, arch: Architecture) -> Schedule:
        c = self.cascade()
        E, F, N = workload.E, workload.F, workload.seq_len
        m0 = arch.units["array2d"].rows
        if N % m0:
            raise MappingError(f"{self.name}: sequence length {N} is not a multiple of M0 = {m0}")
        p1 = query_group_blocks(N, E, F, arch)
        rows = min(N, p1 * arch.units["array2d"].cols)
        if N % rows:  # only when the array is not square: the query groups would miss rows
            raise MappingError(f"{self.name}: sequence length {N} is not a multiple of the "
                               f"{rows}-row query group of {arch.name}")
        groups = N // rows
        sizes = {"E": E, "F": F, "P": rows, "M0": m0, "M1": N // m0, "M": N}
        plans = plan_einsums(c, sizes, arch, self.binding, mapping=self.name, tiled_var=self.tiled_var,
                             fold_shift_into_exp=self.fold_shift,
                             locations={t: "array" for t in self.array_resident})
        wb = arch.word_bytes
        streamed = {name for name, decl in c.inputs.items() if c.rank_vars("M") & set(decl.indices)}
        tile_plans = [p for p in plans if p.tiled]
        sinks = [p.name for p in tile_plans
                 if not any(p.name in q.deps for q in tile_plans if q.name != p.name)]
        tile_ops, loaded = [], set()
        for p in tile_plans:
            cycles = p.cycles
            if self.stall and p.name == self.stall[0]:
                cycles += self.stall[1] * p.cycles
            load = 0.0
            for t in p.reads:
                if t in streamed and t not in loaded:
                    loaded.add(t)
                    load += m0 * _rows_of(c, t, sizes) * wb
            deps = list(p.deps)
            if any(t in c.inputs and t not in streamed for t in p.reads):
                deps.append("LOAD")
            if not self.pipelined and all(d.startswith("prev:") for d in p.deps):
                deps += [f"prev:{s}" for s in sinks]
            tile_ops.append(TileOp(p.name, p.unit, cycles, p.name, tuple(deps), load_bytes=load,
                                   buffer_bytes=load, actions=p.actions))
        block_plans = [p for p in plans if not p.tiled]
        last = block_plans[-1].name if block_plans else tile_ops[-1].name
        q_bytes = sum(_rows_of(c, t, sizes) * rows * wb for t in c.inputs if t not in streamed)
        state_bytes = rows * (E + F + 2) * wb
        load_op = TileOp("LOAD", None, 0.0, "", (), load_bytes=q_bytes, buffer_bytes=state_bytes,
                         hold_until=last)
        epilogue = []
        for p in block_plans:
            store = _rows_of(c, p.name, sizes) * rows * wb if p.name in c.outputs else 0.0
            epilogue.append(TileOp(p.name, p.unit, p.cycles, p.name, tuple(p.deps), store_bytes=store,
                                   actions=p.actions))
        segments = [Segment("load", 1, (load_op,)), Segment("tiles", sizes["M1"], tuple(tile_ops))]
        if epilogue:
            segments.append(Segment("finish", 1, tuple(epilogue)))
        return Schedule(
            name=f"{self.name}:{workload.model}:{N}",
            blocks=workload.heads * groups,
            segments=tuple(segments),
            notes=(f"{workload.heads} heads x {groups} query groups of {rows} rows (P1 = {p1}); "
                   f"{sizes['M1']} M1 tiles of {m0} keys each; all blocks identical",),
        )


def _rows_of(c, tensor: str, sizes: MappingOf[str, float]) -> int:
    """Words per sequence position of an input/output tensor (the product of its non-sequence ranks)."""
    decl = c.inputs.get(tensor)
    variables = decl.indices if decl else tuple(str(s) for x in c.einsum(tensor).lhs for s in x.free_symbols)
    seq = c.rank_vars("M") | c.rank_vars("P")
    n = 1
    for v in variables:
        if v not in seq and v in c.var_rank:
            n *= int(sizes[c.var_rank[v]])
    return n


def fusemax() -> OnePassMapping:
    """FuseMax: the 1-pass cascade on its own hardware, 2D and 1D arrays software-pipelined."""
    return OnePassMapping("fusemax", "fusemax-cloud", FUSEMAX_BINDING, array_resident=("QK", "SLN"),
                          description="1-pass cascade, FuseMax binding, 2D/1D software pipeline")


def arch_only() -> OnePassMapping:
    """The paper's "arch" ablation: FuseMax hardware, tiles not overlapped, LM stalling the 2D array."""
    return OnePassMapping("arch", "fusemax-cloud", FUSEMAX_BINDING, pipelined=False, stall=("LM", 256.0),
                          array_resident=("QK", "SLN"),
                          description="FuseMax hardware without the interleaved binding: tiles do not overlap "
                                      "and the local max stalls the pipeline 256 x LM cycles per tile")


def cascade_on_flat() -> OnePassMapping:
    """The paper's "cascade" ablation: the 1-pass cascade on FLAT's hardware."""
    return OnePassMapping("cascade", "flat-cloud", CASCADE_BINDING, fold_shift_into_exp=False,
                          description="1-pass cascade on FLAT's hardware: QK, SLNV on 2D, the rest on 1D")
