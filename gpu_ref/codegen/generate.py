"""`generate(cascade)`: a standalone Python module of Triton kernels that evaluates a cascade.

The cascade is first brought to its fewest passes over the streamed rank (`einsum_cascade.fuse`;
one already at one pass is used as written, one fuse refuses keeps its passes: one kernel per
pass, the tensors live across passes in global memory). Nothing here imports torch or triton:
the generated module does.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from einsum_cascade.ir import Cascade
from einsum_cascade.passes import passes
from gpu_ref.codegen.chunked import ChunkedWriter, chunked_plan, key_recurrences
from gpu_ref.codegen.emit import Global
from gpu_ref.codegen.kernel import TOPK_HELPERS, PassWriter
from gpu_ref.codegen.module import module_source
from gpu_ref.codegen.plan import Plan, make_plan
from gpu_ref.codegen.refusal import KernelRefusal

DTYPES = {"fp32": ("torch.float32", "tl.float32"), "fp16": ("torch.float16", "tl.float16"),
          "bf16": ("torch.bfloat16", "tl.bfloat16")}


# Triton 3.6's CPU interpreter multiplies bf16 blocks in tl.dot as integers (their bit patterns);
# there, operands are rounded to bf16 and multiplied in fp32, the same products (exact in fp32)
# and fp32 sums as the GPU's bf16 tensor cores.
BF16_HELPER = '''@triton.jit
def _bf16(x, INTERPRET: tl.constexpr):
    """x rounded to bf16 for tl.dot (kept in fp32 under the CPU interpreter, whose bf16 dot is wrong)."""
    if INTERPRET:
        return x.to(tl.bfloat16).to(tl.float32)
    return x.to(tl.bfloat16)
'''


@dataclass
class KernelInfo:
    """One generated kernel: its name, the Einsums it evaluates, its launch grid."""

    name: str
    einsums: list[str]
    grid: str
    params: list[str] = field(default_factory=list)


@dataclass
class GeneratedKernel:
    """The generated module's source and what it holds."""

    cascade: str
    form: str  # "as written", "fused (k passes)" or "not fused: ..."
    rank: str
    row: str
    source: str
    kernels: list[KernelInfo]
    block_m: int
    block_n: int
    dtype: str

    @property
    def grid(self) -> str:
        return self.kernels[0].grid if self.kernels else ""


def default_rank(cascade: Cascade) -> str:
    """The rank a kernel streams by default: M when the cascade has it, else the rank of its
    first reduction (the contracted dim of a layer block)."""
    if "M" in cascade.ranks:
        return "M"
    from einsum_cascade.ast import Reduce, walk

    for e in cascade.einsums:
        for v in sorted(e.implicit_vars):
            return cascade.var_rank[v]
        for node in walk(e.expr):
            if isinstance(node, Reduce):
                return cascade.var_rank[node.vars[0]]
    return next(iter(cascade.ranks))


def fused_form(cascade: Cascade, rank: str) -> tuple[Cascade, str]:
    """The form a kernel is generated from: the fused cascade when `fuse` reduces the passes,
    else the cascade as written (with a note why)."""
    from einsum_cascade.fuse import fuse

    before = passes(cascade, rank)
    if before.unbounded or (before.passes or 0) <= 1:
        return cascade, "as written"
    result = fuse(cascade, rank)
    if result.status == "reduced" and result.cascade is not None:
        return result.cascade, f"fused: {result.passes_before} -> {result.passes_after} passes"
    return cascade, f"not fused: {before.passes} kernels (`cascadesim fuse` says why)"


def _largest(axes_sets: set[tuple[str, ...]]) -> list[tuple[str, ...]]:
    """The blocks' axes that are not contained in another's (the ones whose size can bind)."""
    return sorted(a for a in axes_sets if a and not any(set(a) < set(b) for b in axes_sets))


def _stored(plan: Plan) -> set[str]:
    """Tensors written to global memory: the outputs and every tensor another kernel reads."""
    c = plan.cascade
    out = set(c.outputs)
    for e in c.einsums:
        if e.name in plan.views:
            continue
        here = plan.kernel_of[e.name]
        for access in e.reads:
            t = access.tensor
            if t in plan.kernel_of and plan.kernel_of[t] != here:
                out.add(t)
    return out


def _globals(plan: Plan, stored: set[str]) -> dict[str, Global]:
    c = plan.cascade
    row_var = c.ranks[plan.row].var
    out = {}
    for name, decl in c.inputs.items():
        out[name] = Global(name, tuple(c.var_rank[v] for v in decl.indices), row_var in decl.indices)
    for name in sorted(stored):
        e = c.einsum(name)
        slot = c.iterative_slot.get(name)
        lhs = [ix for d, ix in enumerate(e.lhs) if d != slot]
        if plan.derived:  # a split pair (or X0 * x1 + x0) of a rank run flat: stored over the flat rank
            lhs = plan.collapse(lhs) or lhs
        names = [str(ix) for ix in lhs]
        if not all(ix.is_Symbol for ix in lhs) or len(set(names)) != len(names):
            raise KernelRefusal(c.name, name, f"stored for a later pass or as an output, but its left-hand side "
                                f"{name}[{', '.join(map(str, e.lhs))}] is not distinct plain indices")
        if plan.tile_var in names or plan.in_tile_var in names:
            raise KernelRefusal(c.name, name, "a per-tile tensor needed outside its pass")
        if name in c.outputs and slot is not None:
            raise KernelRefusal(c.name, name, "an output that is running state (write its final value as an Einsum)")
        ranks = tuple(plan.axis_of(v) for v in names)
        out[name] = Global(name, ranks, True, tuple(names))
    return out


def generate(cascade: Cascade, rank: str = "M", block_m: int = 64, block_n: int = 64, dtype: str = "fp32",
             kv_heads: int | None = None) -> GeneratedKernel:
    """The Triton module of `cascade` streaming `rank`; KernelRefusal names the Einsum it cannot
    compile, ValueError a bad argument."""
    if rank not in cascade.ranks:
        raise ValueError(f"rank {rank!r} is not a rank of {cascade.name} (ranks: {', '.join(cascade.ranks)})")
    for name, value in (("block_m", block_m), ("block_n", block_n)):
        if value < 16 or value & (value - 1):
            raise ValueError(f"{name} must be a power of two >= 16 (tl.dot's smallest tile), got {value}")
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    if kv_heads is not None and kv_heads < 1:
        raise ValueError(f"kv_heads must be a positive number of key/value heads, got {kv_heads}")
    try:
        return _generate(cascade, rank, block_m, block_n, dtype, kv_heads)
    except KernelRefusal as refusal:  # named after the cascade asked for, not its fused form
        raise KernelRefusal(cascade.name, refusal.einsum, refusal.reason) from None


def _generate(cascade: Cascade, rank: str, block_m: int, block_n: int, dtype: str,
              kv_heads: int | None) -> GeneratedKernel:
    form, note = fused_form(cascade, rank)
    if key_recurrences(form, rank):
        return _generate_chunked(form, note, cascade.name, rank, block_n, dtype, kv_heads)
    plan = make_plan(form, rank)
    stored = _stored(plan)
    globals_ = _globals(plan, stored)
    torch_dtype, tl_dtype = DTYPES[dtype]
    sources, infos = [], []
    grid = f"(cdiv({plan.row}, {block_m}), batch * query heads)"
    integer_params: set[str] = set()
    block_axes: set[tuple[str, ...]] = set()
    kth_params: set[str] = set()
    for k in plan.kernels:
        writer = PassWriter(plan, k, globals_, {s: s for s in stored}, tl_dtype, dtype == "fp32")
        name = f"_pass{k.index}"
        text, params = writer.write_kernel(name)
        integer_params |= writer.integer_params
        block_axes |= writer.block_axes
        if writer.uses_prod and "_mul" not in "".join(sources):
            text = "@triton.jit\ndef _mul(a, b):\n    return a * b\n\n\n" + text
        if writer.kth and "def _topk_merge" not in "".join(sources):
            text = TOPK_HELPERS + "\n\n" + text
        kth_params |= writer.kth_params
        sources.append(text)
        infos.append(KernelInfo(name, k.einsums, grid, params))
    if dtype == "bf16":
        sources.insert(0, BF16_HELPER)
    source = module_source(plan, form, note, infos, sources, globals_, stored, block_m, block_n,
                           torch_dtype, kv_heads, cascade.name, sorted(integer_params),
                           dict(getattr(cascade, "defaults", {}) or {}), _largest(block_axes),
                           kth_params=sorted(kth_params))
    return GeneratedKernel(cascade.name, note, rank, plan.row, source, infos, block_m, block_n, dtype)


def _generate_chunked(form: Cascade, note: str, original: str, rank: str, block_n: int, dtype: str,
                      kv_heads: int | None) -> GeneratedKernel:
    """A cascade with recurrences over the keys: one kernel in the chunked form (chunks of
    block_n keys, their rows the same positions: BLOCK_M = BLOCK_N)."""
    plan = chunked_plan(form, rank)
    stored = set(form.outputs)
    globals_ = _globals(plan, stored)
    torch_dtype, tl_dtype = DTYPES[dtype]
    writer = ChunkedWriter(plan, globals_, {s: s for s in stored}, tl_dtype, dtype == "fp32", dtype)
    text, params = writer.write_chunked("_chunked")
    info = KernelInfo("_chunked", [e.name for e in form.einsums if not e.is_initial], "(1, batch * query heads)",
                      params)
    sources = ([BF16_HELPER] if dtype == "bf16" else []) + [text]
    note = f"{note}; recurrences in chunks of {block_n} keys"
    source = module_source(plan, form, note, [info], sources, globals_, stored, block_n, block_n, torch_dtype,
                           kv_heads, original, [], dict(getattr(form, "defaults", {}) or {}),
                           _largest(writer.block_axes), chunked=True)
    return GeneratedKernel(original, note, rank, plan.row, source, [info], block_n, block_n, dtype)
