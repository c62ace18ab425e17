"""A lower bound on the DRAM traffic of any mapping of a cascade, for a buffer of B bytes.

In the spirit of Orojenesis (Huang et al., ISCA 2024): the least traffic between DRAM and one
on-chip buffer of S = floor(B / word_bytes) words that ANY mapping of the cascade can reach,
whatever its tiling, loop order, fusion or binding. The mapspace assumed: every point of every
Einsum is computed once (no recomputation), inputs start in DRAM and outputs end there, every
word that is used on chip is in the buffer (register files count as part of it), and every
element of an input is read by some point. Three terms, each counting traffic the others do not:

1. Compulsory: every input element read once, every output element written once (words).

2. Straddling tensors (the pass analysis, `einsum_cascade.passes`, over each rank R). A tensor T
   live across passes (or an input read again in a later pass) is read by an Einsum C together
   with a global result G (reduced over R, complete at the end of T's pass) that depends on T.
   For one element x of G (a "row", e.g. GM[p]), every element of T in row x is produced (read,
   for an input) before G[x] is complete and is still needed after it: at that instant each is
   in the buffer or off chip, and one that is off chip costs a write and a read back (2 words;
   1 when T is an output, whose write is compulsory, or an input, whose first read is). At most
   S words are on chip, so row x costs at least f(a1, a2) = (a1 + a2 - S)+ + (a2 - S)+, a1 and
   a2 the row's words of cost 1 and 2 (the cheap ones spilled first). f is convex and positively
   homogeneous, so the sum over the rows is at least f(A1, A2) at capacity rows * S, A1 and A2
   the totals (the visible points of T's producer, masks honoured). Each tensor is counted at
   its first barrier only; the largest total over the ranks is kept.

3. GEMM-like Einsums (the classic sqrt(S) reuse bound): Z[i,j] (+)= sum_k X[i,k] * Y[k,j] with X
   and Y inputs and Z an output, each of the index groups I, J, K non-empty (ranks in all three
   are batch ranks). Cut the run into segments of S words of traffic: in one segment the X and
   Y elements used were on chip at its start or loaded in it, the Z partial sums touched are on
   chip at its end or stored in it, so |X_s| + |Y_s| + |Z_s| <= 3S, and by Loomis-Whitney the
   segment performs at most sqrt(|X_s| |Y_s| |Z_s|) <= S^1.5 multiply-adds. With V
   multiply-adds (visible points) the traffic of X, Y and Z is at least V / sqrt(S) - S words;
   the excess over their compulsory words is added (Einsums sharing an operand counted once).

The bound of the cascade's fused form (`einsum_cascade.fuse`: fewer passes, so fewer
straddling tensors) is reported beside it: a mapping of the fused cascade computes the same
outputs, so min(as written, fused) bounds every implementation of either. Where the bound is
loose: a fused contraction whose operand is made on chip (QK of attention) has no reuse term
(its producer can make the operand without traffic), so for 1-pass attention the bound is the
compulsory traffic even when K and V cannot both stay in the buffer. Units: words and bytes.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import networkx as nx

import einsum_cascade as ec
from einsum_cascade.ast import Access, Binary, Reduce, walk
from einsum_cascade.points import numeric_points
from mappings.scheduler import tensor_words
from mappings.work import MappingError


@dataclass(frozen=True)
class Straddle:
    """Tensors that straddle the completion of one global result `barrier` (term 2); words."""
    rank: str
    barrier: str
    tensors: tuple[str, ...]
    rows: float
    words_cost1: float
    words_cost2: float
    extra_words: float


@dataclass(frozen=True)
class Reuse:
    """The sqrt(S) reuse term of one GEMM-like Einsum (term 3); words."""
    einsum: str
    operands: tuple[str, str, str]  # X, Y, Z
    macs: float
    traffic_words: float  # V / sqrt(S) - S
    extra_words: float  # over the operands' compulsory words


@dataclass
class Bound:
    """The DRAM-traffic lower bound of one cascade at one buffer capacity (bytes unless named)."""
    cascade: str
    form: str  # "as written" or "fused"
    buffer_bytes: int
    word_bytes: int
    passes: dict[str, int | None]
    compulsory_bytes: float
    straddle_bytes: float
    reuse_bytes: float
    straddles: list[Straddle] = field(default_factory=list)
    reuses: list[Reuse] = field(default_factory=list)

    @property
    def total_bytes(self) -> float:
        return self.compulsory_bytes + self.straddle_bytes + self.reuse_bytes

    def to_json(self) -> dict:
        d = asdict(self)
        d["total_bytes"] = self.total_bytes
        return d


def bound_sizes(c: ec.Cascade, sizes: dict[str, float]) -> dict[str, float]:
    """`sizes` with a split rank's missing parts set to one tile of the whole rank (R1 = 1, R0 = R):
    the bound does not depend on the tile, which is a choice of the mapping."""
    out = dict(sizes)
    for r in c.ranks.values():
        if len(r.parts) == 2 and r.name in out and r.parts[-1] not in out:
            out[r.parts[-1]] = out[r.name]
            out[r.parts[0]] = 1
        elif len(r.parts) == 2 and r.name in out and r.parts[0] not in out:
            out[r.parts[0]] = out[r.name] // out[r.parts[-1]]
    return out


def _produced_words(c: ec.Cascade, t: str, sizes: dict, points) -> float:
    """Elements of tensor `t` that exist: all of an input, the visible points of a defined tensor."""
    if t in c.inputs:
        return tensor_words(c, t, sizes)
    e = c.einsum(t)
    return float(points(frozenset(e.output_vars - {e.iterative_var}), e.space_where))


def _plain_vars(access: Access, c: ec.Cascade) -> tuple[str, ...] | None:
    """The index variables of a read whose every index is one rank variable, else None."""
    out = []
    for x in access.indices:
        if not getattr(x, "is_Symbol", False) or str(x) not in c.var_rank:
            return None
        out.append(str(x))
    return tuple(out)


def _straddles(c: ec.Cascade, rank: str, sizes: dict, points, S: float) -> list[Straddle]:
    """Term 2 over `rank` (module docstring)."""
    rep = ec.passes(c, rank)
    if rep.unbounded:
        return []
    rvars = c.rank_vars(rank)
    complete = {p.name: p.complete for p in rep.einsums}
    run_pass = {p.name: p.pass_ for p in rep.einsums}
    kind = {p.name: p.kind for p in rep.einsums}
    for name, decl in c.inputs.items():
        streamed = bool(set(decl.indices) & rvars)
        complete[name], kind[name] = (1 if streamed else 0), ("streamed" if streamed else "global")
    groups: dict[str, list[str]] = {}
    rows_of: dict[str, float] = {}
    for t in [*rep.live_across_passes, *rep.restreamed_inputs]:
        below = nx.descendants(c.graph, t)
        found = None
        for e in c.einsums:
            if e.is_initial or run_pass.get(e.name) is None or run_pass[e.name] <= complete[t]:
                continue
            t_reads = [a for a in e.reads if a.tensor == t]
            if not t_reads:
                continue
            t_vars = set(_plain_vars(t_reads[0], c) or ())
            for a in e.reads:
                g = a.tensor
                g_vars = _plain_vars(a, c)
                if (g == t or g not in below or kind.get(g) != "global" or complete.get(g, 0) < complete[t]
                        or g_vars is None or not set(g_vars) <= t_vars):
                    continue
                found = (g, g_vars)
                break
            if found:
                break
        if found is None:
            continue
        g, g_vars = found
        groups.setdefault(g, []).append(t)
        rows_of[g] = float(math.prod(sizes[c.var_rank[v]] for v in set(g_vars)))
    out = []
    for g, tensors in groups.items():
        a1 = sum(_produced_words(c, t, sizes, points) for t in tensors if t in c.inputs or t in c.outputs)
        a2 = sum(_produced_words(c, t, sizes, points) for t in tensors if t not in c.inputs and t not in c.outputs)
        cap = rows_of[g] * S
        extra = max(0.0, a1 + a2 - cap) + max(0.0, a2 - cap)
        out.append(Straddle(rank, g, tuple(tensors), rows_of[g], a1, a2, extra))
    return out


def _contraction(c: ec.Cascade, e) -> tuple[Access, Access, frozenset] | None:
    """(X, Y, reduced variables) of a GEMM-like Einsum: a sum over products of two input reads."""
    if isinstance(e.expr, Binary) and e.expr.op == "*" and e.implicit_vars:
        body, reduced = e.expr, frozenset(e.implicit_vars)
    else:
        sums = [n for n in walk(e.expr) if isinstance(n, Reduce) and n.op == "sum"
                and isinstance(n.body, Binary) and n.body.op == "*"]
        if len(sums) != 1 or e.implicit_vars:
            return None
        body, reduced = sums[0].body, frozenset(sums[0].vars)
    x, y = body.left, body.right
    if not (isinstance(x, Access) and isinstance(y, Access)) or x.tensor == y.tensor:
        return None
    if x.tensor not in c.inputs or y.tensor not in c.inputs:
        return None
    return x, y, reduced


def _reuses(c: ec.Cascade, sizes: dict, points, S: float) -> list[Reuse]:
    """Term 3 (module docstring): GEMM-like Einsums with operands from DRAM, disjoint operands."""
    out, used = [], set()
    for e in c.einsums:
        if e.is_initial or e.name not in c.outputs or e.iterative_var:
            continue
        found = _contraction(c, e)
        if found is None:
            continue
        x, y, reduced = found
        xv, yv = _plain_vars(x, c), _plain_vars(y, c)
        if xv is None or yv is None:
            continue
        zv = set(e.output_vars)
        xs, ys = set(xv), set(yv)
        i, j, k = (xs & zv) - ys, (ys & zv) - xs, (xs & ys) - zv
        if not i or not j or not k or k != set(reduced) or not zv <= xs | ys:
            continue
        if {x.tensor, y.tensor, e.name} & used:
            continue
        where = tuple(e.space_where)
        for n in walk(e.expr):
            if isinstance(n, Reduce) and n.vars and set(n.vars) == set(reduced):
                where += tuple(n.where)
        macs = float(points(frozenset(zv | k), where))
        traffic = macs / math.sqrt(S) - S
        compulsory = tensor_words(c, x.tensor, sizes) + tensor_words(c, y.tensor, sizes) + tensor_words(c, e.name, sizes)
        extra = max(0.0, traffic - compulsory)
        used |= {x.tensor, y.tensor, e.name}
        out.append(Reuse(e.name, (x.tensor, y.tensor, e.name), macs, traffic, extra))
    return out


def lower_bound(c: ec.Cascade, sizes: dict[str, float], buffer_bytes: int, word_bytes: int = 2,
                form: str = "as written") -> Bound:
    """The DRAM-traffic lower bound of `c` at `sizes` (every rank size and param bound) with a buffer
    of `buffer_bytes` and words of `word_bytes` (module docstring)."""
    if buffer_bytes < word_bytes:
        raise MappingError(f"--buffer: {buffer_bytes} B holds no {word_bytes}-byte word")
    sizes = bound_sizes(c, sizes)
    bound = c.bind_sizes({}, {k: v for k, v in sizes.items() if k in set(c.size_names) | set(c.params)})
    points = numeric_points(c, bound)
    S = float(buffer_bytes // word_bytes)
    used_inputs = {a.tensor for e in c.einsums for a in e.reads if a.tensor in c.inputs}
    compulsory = sum(tensor_words(c, t, bound) for t in c.inputs if t in used_inputs) + \
        sum(tensor_words(c, t, bound) for t in c.outputs)
    best: list[Straddle] = []
    passes = {}
    for r in c.ranks:
        rep = ec.passes(c, r)
        passes[r] = rep.passes
        found = _straddles(c, r, bound, points, S)
        if sum(s.extra_words for s in found) > sum(s.extra_words for s in best):
            best = found
    reuses = _reuses(c, bound, points, S)
    result = Bound(c.name, form, int(buffer_bytes), int(word_bytes), passes, compulsory * word_bytes,
                   sum(s.extra_words for s in best) * word_bytes, sum(r.extra_words for r in reuses) * word_bytes,
                   best, reuses)
    for value in (result.compulsory_bytes, result.straddle_bytes, result.reuse_bytes):
        if not math.isfinite(value) or value < 0:
            raise MappingError(f"bound of {c.name}: a term is {value!r} (sizes {sizes})")
    return result


def fused_form(c: ec.Cascade, rank: str = "M") -> ec.Cascade | None:
    """The certified fewer-pass form of `c` over `rank` (`einsum_cascade.fuse`), or None."""
    if rank not in c.ranks or (ec.passes(c, rank).passes or 0) <= 1:
        return None
    from einsum_cascade.fuse import fuse
    result = fuse(c, rank)
    return result.cascade if result.status == "reduced" else None


def bounds(c: ec.Cascade, sizes: dict[str, float], buffers: list[int], word_bytes: int = 2,
           fuse: bool = True) -> list[Bound]:
    """`lower_bound` of `c` (and of its fused form, when `fuse` finds one) at each buffer size."""
    out = [lower_bound(c, sizes, b, word_bytes) for b in buffers]
    fused = fused_form(c) if fuse else None
    if fused is not None:
        fsizes = {k: v for k, v in sizes.items() if k in set(fused.size_names) | set(fused.params)}
        out += [lower_bound(fused, fsizes, b, word_bytes, form="fused") for b in buffers]
    return out


def plot_curve(results: list[Bound], path, title: str | None = None) -> None:
    """A PNG of traffic (bytes, log) against buffer capacity (bytes, log), one line per form."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for form in dict.fromkeys(b.form for b in results):
        pts = sorted((b.buffer_bytes, b.total_bytes) for b in results if b.form == form)
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=f"bound ({form})")
    first = results[0]
    ax.axhline(first.compulsory_bytes, color="grey", linestyle=":", label="compulsory")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("buffer capacity (bytes)")
    ax.set_ylabel("DRAM traffic lower bound (bytes)")
    ax.set_title(title or f"{first.cascade}: least DRAM traffic of any mapping")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


__all__ = ["Bound", "Reuse", "Straddle", "bound_sizes", "bounds", "fused_form", "lower_bound", "plot_curve"]
