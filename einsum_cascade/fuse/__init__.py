"""Automatic pass reduction: the fewest-pass equivalent of a cascade, certified.

`fuse(cascade, rank="M", block=None)` rewrites the reductions over `rank` that run after a
first pass (`rewrite`, with the rules `deferred`, `online`, `correction`, `moments`, and the
`refusals`), prints the result as cascade text whose comments name the rule behind each Einsum,
parses it back, counts its passes and checks it numerically against the original (`certify`).
The result carries the new cascade only when it is certified.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import sympy

from einsum_cascade.cost import _partition_subs, einsum_ops, numeric_points, symbolic_points
from einsum_cascade.errors import CascadeError
from einsum_cascade.fuse.certify import certify, simulate_line
from einsum_cascade.fuse.rewrite import Rewriter
from einsum_cascade.ir import Cascade, Rank
from einsum_cascade.parser import parse
from einsum_cascade.passes import PassReport, passes
from einsum_cascade.printer import print_cascade

RTOL = 1e-9
DEFAULT_BLOCK_SIZE = 64  # keys per tile written into a fused cascade as `size M0 = 64`


@dataclass
class FuseResult:
    """What `fuse` found.

    status: "reduced" (fewer passes, certified), "minimal" (already at most 1 pass: nothing to
    do) or "refused" (no rule applies, or the rewrite could not be certified; `reasons` say why).
    `cascade`/`text` are the certified result (the input itself when minimal, None when refused).
    """

    status: str
    original: Cascade
    rank: str
    passes_before: int
    passes_after: int
    cascade: Cascade | None = None
    text: str | None = None
    rules: list[str] = field(default_factory=list)
    rewritten: dict[str, list[str]] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)
    chains_broken: list[list[str]] = field(default_factory=list)
    chains_left: dict[int, list[str]] = field(default_factory=dict)
    why_left: dict[int, str] = field(default_factory=dict)  # pass k -> why its chain is left
    identified: list[str] = field(default_factory=list)
    check_error: float | None = None
    check_lines: list[str] = field(default_factory=list)
    block: str | None = None
    block_size: int | None = None  # the tile's default in the fused cascade (None: not tiled by fuse)
    simulation: str = ""  # the certificate's line on simulating the fused cascade (fusemax-cloud)
    corrections: list[str] = field(default_factory=list)
    _overhead: dict | None = field(default=None, repr=False)

    @property
    def overhead(self) -> dict[str, sympy.Expr]:
        """Symbolic operation counts after minus before, per operator (computed on first use:
        masked cascades make sympy slow)."""
        if self.cascade is None or self.status != "reduced":
            return {}
        if self._overhead is None:
            self._overhead = _overhead(self.original, self.cascade)
        return self._overhead

    def correction_ops(self) -> dict[str, dict[str, sympy.Expr]]:
        """Operation counts of each correction term (running maximum, rescaling PRM, running sums
        rescaled by it, final correction factors): name -> {op: count}."""
        if self.cascade is None:
            return {}
        points = symbolic_points(self.cascade)
        subs = _partition_subs(self.cascade)
        return {e.name: {op: sympy.factor(sympy.sympify(n).subs(subs)) for op, n in
                         sorted(einsum_ops(e, points).items(), key=lambda kv: _order(kv[0]))}
                for e in self.cascade.einsums if e.name in self.corrections and not e.is_initial}

    def overhead_at(self, sizes: dict[str, float]) -> dict[str, int]:
        """Operation counts after minus before, for bound sizes (the tile size included)."""
        if self.cascade is None:
            return {}
        before = counts_at(self.original, sizes)
        after = counts_at(self.cascade, sizes)
        return {op: int(after.get(op, 0)) - int(before.get(op, 0))
                for op in sorted(set(before) | set(after), key=_order)
                if after.get(op, 0) != before.get(op, 0)}

    def to_json(self, sizes: dict[str, float] | None = None) -> dict:
        out = {
            "cascade": self.original.name, "rank": self.rank, "status": self.status,
            "passes_before": self.passes_before, "passes_after": self.passes_after,
            "rules": self.rules, "rewritten": self.rewritten, "reasons": self.reasons,
            "chains_broken": self.chains_broken,
            "chains_left": {str(k): v for k, v in self.chains_left.items()},
            "why_left": {str(k): v for k, v in self.why_left.items()},
            "identified": self.identified,
            "corrections": {n: {op: str(v) for op, v in ops.items()} for n, ops in self.correction_ops().items()},
            "overhead": {op: str(v) for op, v in self.overhead.items()},
            "check_error": self.check_error, "check": self.check_lines, "block": self.block, "block_size": self.block_size,
            "simulation": self.simulation,
        }
        if sizes:
            out["overhead_at"] = {"sizes": sizes, "ops": self.overhead_at(sizes)}
        return out


def _order(op: str) -> tuple[int, str]:
    from einsum_cascade.cost import OPERATORS
    return (OPERATORS.index(op) if op in OPERATORS else len(OPERATORS), op)


def _known(cascade: Cascade, sizes: dict[str, float]) -> dict[str, float]:
    names = set(cascade.size_names) | set(cascade.params)
    return {k: v for k, v in sizes.items() if k in names}


def _tile_names(cascade: Cascade, rank: str, block: str | None) -> tuple[str, str]:
    r = cascade.ranks[rank]
    if r.parts:
        if len(r.parts) != 2:
            raise CascadeError(f"rank {rank} has {len(r.parts)} parts; fuse tiles a rank of two "
                               "parts or an unpartitioned one", cascade.file)
        return r.parts[0], r.parts[1]
    m0 = block or f"{rank}0"
    m1 = f"{rank}1" if m0 != f"{rank}1" else f"{rank}2"
    taken = set(cascade.size_names) | set(cascade.params) | set(cascade.variables) | set(cascade.tensors)
    for name in (m0, m1):
        if (name in taken or name.lower() in taken or not name[:1].isupper()
                or not name.replace("_", "").isalnum()):
            raise CascadeError(f"block size name {name!r} is taken or not a rank name "
                               f"(an upper-case name not used by {cascade.name})", cascade.file)
    return m1, m0


def _with_ranks(cascade: Cascade, rank: str, tile: tuple[str, str], tiled: bool) -> dict[str, Rank]:
    ranks = dict(cascade.ranks)
    if tiled and not cascade.ranks[rank].parts:
        ranks[rank] = Rank(rank, tile)
    return ranks


def counts_at(cascade: Cascade, sizes: dict[str, float]) -> dict[str, int]:
    """Total operation counts of a cascade for bound sizes (as `cost(c).at(sizes).total`, without
    the symbolic step, which is slow for masked cascades)."""
    bound = cascade.bind_sizes({}, _known(cascade, sizes))
    points = numeric_points(cascade, bound)
    total: dict[str, int] = {}
    for e in cascade.einsums:
        if not e.is_initial:
            for op, n in einsum_ops(e, points).items():
                total[op] = total.get(op, 0) + int(n)
    return dict(sorted(total.items(), key=lambda kv: _order(kv[0])))


def _symbolic_counts(cascade: Cascade) -> dict[str, sympy.Expr]:
    points = symbolic_points(cascade)
    subs = _partition_subs(cascade)
    total: dict[str, sympy.Expr] = {}
    for e in cascade.einsums:
        if not e.is_initial:
            for op, n in einsum_ops(e, points).items():
                total[op] = total.get(op, 0) + sympy.sympify(n).subs(subs)
    return total


def _overhead(before: Cascade, after: Cascade) -> dict[str, sympy.Expr]:
    b, a = _symbolic_counts(before), _symbolic_counts(after)
    out = {}
    for op in sorted(set(b) | set(a), key=_order):
        diff = sympy.expand(a.get(op, 0) - b.get(op, 0))
        if not diff.has(sympy.Sum):
            diff = sympy.factor(diff)
        if diff != 0:
            out[op] = diff
    return out


def _chain_reasons(after: PassReport, refused: dict[str, str]) -> dict[int, str]:
    """For each chain the rewrite leaves (pass k), the reason of the first Einsum of the chain,
    or else of an Einsum running in pass k, that a rule refused."""
    out = {}
    for k, chain in after.chains.items():
        in_pass = [e.name for e in after.einsums if e.pass_ == k]
        for name in [*reversed(chain), *in_pass]:
            if name in refused:
                out[k] = f"{name}: {refused[name]}"
                break
    return out


def fuse(cascade: Cascade, rank: str = "M", block: str | None = None, check: bool = True,
         rtol: float = RTOL, block_size: int | None = None, simulate: bool | None = None) -> FuseResult:
    """The fewest-pass equivalent of `cascade` over `rank` that the rules find, certified.

    `block` names the tile size of the rank (default `M0` for rank `M`; a rank already split
    in two keeps its parts). With `check` the result is evaluated against the input (see
    `certify`) and refused if any output differs by more than `rtol` (relative to its largest
    magnitude); without it the result is marked unchecked (`check_error` None). With
    `simulate` (default: as `check`) the certificate also simulates the fused cascade on
    fusemax-cloud with the auto mapping (`certify.simulate_line`); a cascade the simulator cannot
    map gets a note with the mapper's reason, not a refusal. A cascade tiled by the rewrite
    carries its tile as a default, `size M0 = block_size` (default 64), so it evaluates at the
    original's sizes alone (M1 = M / M0 derived).
    """
    simulate = check if simulate is None else simulate
    block_size = DEFAULT_BLOCK_SIZE if block_size is None else block_size
    if isinstance(block_size, bool) or not isinstance(block_size, int) or block_size < 1:
        raise CascadeError(f"block size {block_size!r} must be a positive integer", cascade.file)
    if rank not in cascade.ranks:
        raise CascadeError(f"unknown rank {rank!r} (ranks: {', '.join(cascade.ranks)})", cascade.file)
    before = passes(cascade, rank)
    tile = _tile_names(cascade, rank, block)
    base = dict(original=cascade, rank=rank, passes_before=before.passes, block=tile[1])
    if before.passes <= 1:
        return FuseResult(status="minimal", passes_after=before.passes, cascade=cascade,
                          text=print_cascade(cascade), **base)
    result = Rewriter(cascade, rank, tile).run()
    header = [f"{cascade.name} fused over {rank} by cascadesim fuse: {before.passes} passes as written"]
    ranks = _with_ranks(cascade, rank, tile, result.tiled)
    defaults = dict(cascade.defaults)
    if result.tiled and not cascade.ranks[rank].parts:  # the tile fuse chose travels with the file
        defaults[tile[1]] = block_size
        base["block_size"] = block_size
    shell = Cascade(name=f"{cascade.name}_fused", ranks=ranks, params=list(cascade.params),
                    inputs=dict(cascade.inputs), outputs=list(cascade.outputs),
                    einsums=[item.einsum for item in result.einsums], file=cascade.file,
                    defaults=defaults)
    comments = {}
    for i, item in enumerate(result.einsums):
        if item.rule == "original":
            comments[i] = [f"as written{': ' + item.note if item.note else ''}"]
        else:
            comments[i] = [f"rule: {item.rule}" + (f": {item.note}" if item.note else "")]
    try:
        draft = print_cascade(shell, comments)
    except TypeError as err:  # a construct the printer does not know (a newer language)
        return FuseResult(status="refused", passes_after=before.passes,
                          reasons={"printer": f"cannot write the result as text: {err}"}, **base)
    try:
        fused = parse(draft, f"<fused {cascade.name}>")
    except CascadeError as err:  # a rule produced text the language rejects: refuse, say why
        return FuseResult(status="refused", passes_after=before.passes,
                          reasons={"printer": f"the rewrite is not a valid cascade: {err}"}, **base)
    after = passes(fused, rank)
    header.append(f"passes over {rank}: {before.passes} -> {after.passes}")
    if result.rules:
        header.append("rules: " + ", ".join(result.rules))
    for note in result.matches:
        header.append(f"identified: {note}")
    text = "".join(f"# {h}\n" for h in header) + draft  # comments only: the same cascade
    broken = [chain for k, chain in before.chains.items()
              if chain and all(c[-2:] != chain[-2:] for c in after.chains.values())]
    why_left = _chain_reasons(after, result.refused)
    res = FuseResult(status="refused", passes_after=after.passes, rules=result.rules, why_left=why_left,
                     rewritten=result.rewritten, reasons=dict(result.refused), chains_broken=broken,
                     chains_left=dict(after.chains), identified=result.matches,
                     corrections=[i.einsum.name for i in result.einsums if i.correction and not i.einsum.is_initial],
                     **base)
    if after.passes >= before.passes:
        if not res.reasons:
            res.reasons["passes"] = (f"the rewrite leaves {after.passes} passes: the chains "
                                     + "; ".join(" -> ".join(c) for c in after.chains.values() if c)
                                     + " remain")
        return res
    if after.passes > before.passes:  # pragma: no cover - guarded above
        return res
    if check:
        error, lines = certify(cascade, fused, rank, tile if result.tiled else None, rtol)
        res.check_error, res.check_lines = error, lines
        if not error <= rtol:
            res.reasons["certification"] = (f"the rewrite differs from the input by a relative "
                                            f"{error:.2e} > {rtol:g} on the check's inputs; not written")
            return res
    stamp = (f"# certified: equal to {cascade.name} within a relative {res.check_error:.1e} on "
             f"{len(res.check_lines)} random fp64 trials (inputs x1, x10, x100)\n" if check else
             "# NOT certified: written with --no-check\n")
    if simulate:
        res.simulation = simulate_line(cascade, fused, rank)
        stamp += f"# {res.simulation}\n"
    res.status, res.cascade, res.text = "reduced", fused, stamp + text
    return res


__all__ = ["FuseResult", "counts_at", "fuse"]
