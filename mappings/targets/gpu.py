"""The GPU target: any cascade as a well-tuned GPU kernel of its family, timed by archsim/gpu/.

`GPUTarget.simulate(cascade, sizes, options)`:

1. **Structure.** A recurrence over the key rank M whose state has no query index (S[e,f,m+1]
   = ..., read by the queries at S[e,f,p+1]) makes the cascade a linear recurrence: prefill runs
   as a chunked kernel with a state scan, a single query (P = 1) as one recurrent decode step.
   Everything else is attention-like: the cascade's fused form (`einsum_cascade.fuse` over M)
   gives its passes; one pass runs as a flash-style kernel (online softmax; split-KV flash-decoding
   when the query rows of a KV head fit one tile), two or three as the 2-/3-pass kernels with the
   scores or row statistics through HBM.
2. **Work.** Attention-like cascades: the operation counts of the (fused) cascade at the call's
   sizes (`einsum_cascade.numeric_cost`) by kind: implicitly summed products of tensors on tensor
   cores (2 FLOPs per multiply-accumulate), `exp` on the special-function units, every other
   operator on the FP32 lanes, per score point; the kernel computes every point of each tile it
   visits, so its work is that rate times the visited tile area. The mask comes from the cascade:
   the fraction of the score space it keeps is read as causal (when it is the causal fraction), a
   window (when the cascade has a window parameter W), else a block-sparse density. Linear
   recurrences: the chunked kernel's work (archsim/configs/gpu-kernels/fla-chunk-*.yaml), with the
   profile picked from the recurrence's form (delta rule: the state read by a product with K
   before its update; a gate per key dim, per token, or a constant decay; Mamba2's exp-derived
   decay).
3. **Sizes.** P (queries) and M (keys) independent (P = 1 is decode); E the key head dim, F the
   value head dim; other ranks of the cascade (heads inside it, MLA's latent ranks) are folded
   into the grid; `heads`, `kv_heads` (K/V read once per KV head), `batch`, `dtype` (bf16).
4. **Time** (archsim/gpu/model.py): tensor issue rate of the kernel's instruction family, exp and
   FP32 rates, HBM bandwidth at the kernel's achievable fraction, occupancy, waves and tails,
   launch time, split-KV combine. The result is checked finite and at or above the roofline
   (HBM bytes / bandwidth, tensor FLOPs / peak) before it is returned.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import einsum_cascade as ec
from einsum_cascade import ast as cascade_ast

from mappings.matrix_product import gemm_shape
from mappings.size_completion import complete_sizes
from mappings.targets.result import SimulationResult
from mappings.work import MappingError

DEFAULT_DTYPE = "bf16"
# A KV head's query rows at most this many: flash-decoding (split KV) rather than a prefill kernel.
DECODE_ROWS = 64
DECODE_QUERIES = 16  # ... or a few query tokens per sequence (speculative decoding)
# Default kernel of each family by GPU architecture (the best-tuned public kernel there).
SOFTMAX_DEFAULT = {"blackwell": "flash4", "hopper": "flash3", "cdna3": "triton-tutorial"}
DECODE_DEFAULT = {"blackwell": "trtllm-gen-decode", "hopper": "fa3-decode", "cdna3": "triton-splitk"}
MLA_DEFAULT = {"blackwell": "trtllm-gen-mla"}
MULTIPASS_DEFAULT = {2: "attention_2pass", 3: "standard"}
KEY_RANKS = ("E", "F", "M", "P")


@dataclass(frozen=True)
class Structure:
    """What the GPU target read from a cascade: its family, passes over M, and (attention-like)
    per-score-point work by kind, the mask, and the head-like ranks folded into the grid."""

    family: str                  # "attention" | "linear"
    passes: int
    linear_profile: str | None   # chunked profile of a linear recurrence
    step_profile: str | None     # decode-step profile of a linear recurrence
    tensor_per_point: float      # tensor FLOPs per kept score point
    exps_per_point: float
    alu_per_point: float
    kept_fraction: float         # kept score points / dense score points
    inner_heads: int             # product of the cascade's other ranks (heads inside it)
    inner_kv_heads: int          # ... of those that index the key-indexed inputs
    key_dim: int
    value_dim: int
    shared_kv: bool
    notes: tuple[str, ...]


def _vars_of_rank(c: ec.Cascade, rank: str) -> set[str]:
    return {v for v, r in c.var_rank.items() if r == rank or (r in (c.ranks[rank].parts or ()) if rank in c.ranks else False)}


def _rank_of(c: ec.Cascade, var: str) -> str:
    """The top-level rank of variable `var` (a part's parent rank)."""
    r = c.var_rank[var]
    for name, rank in c.ranks.items():
        if r == name or r in (rank.parts or ()):
            return name
    return r


def _accesses(node) -> list:
    return [n for n in cascade_ast.walk(node) if isinstance(n, cascade_ast.Access)]


def _is_tensor_product(e) -> bool:
    """A product of tensors summed over a contracted variable (implicitly or by `sum(v: A * B)`):
    a matrix product, run on tensor cores."""
    if bool(e.implicit_vars) and isinstance(e.expr, cascade_ast.Binary) and e.expr.op == "*":
        return True
    body = getattr(e.expr, "body", None) if isinstance(e.expr, cascade_ast.Reduce) else None
    return getattr(e.expr, "op", None) == "sum" and isinstance(body, cascade_ast.Binary) and body.op == "*" \
        and len(_accesses(body)) >= 2


def _running_extremum(c: ec.Cascade) -> bool:
    """Whether a recurrence over M keeps a running max or min (an online softmax's statistic, e.g.
    `RM[m1+1,w] = max(RM[m1,w], LM[m1,w])` of a `fuse` output): such a cascade is attention whose
    statistics are carried from tile to tile, not a linear state recurrence."""
    return any(not e.is_initial and e.iterative_var and _rank_of(c, e.iterative_var) == "M"
               and any(isinstance(n, cascade_ast.Call) and n.func in ("max", "min") for n in cascade_ast.walk(e.expr))
               for e in c.einsums)


def _linear_recurrence(c: ec.Cascade):
    """The Einsum of a state recurrence over M (no query index), or None."""
    if _running_extremum(c):
        return None
    for e in c.einsums:
        if e.is_initial or not e.iterative_var or "M" not in c.ranks:
            continue
        if _rank_of(c, e.iterative_var) == "M" \
                and not any(_rank_of(c, v) == "P" for v in e.output_vars if v in c.var_rank):
            return e
    return None


def _state_gates(rec, state: str) -> list:
    """The factors that multiply the state in its own update (`A[m] * S[e,f,m] + ...`): their reads."""
    gates = []

    def contains_state(node) -> bool:
        return any(isinstance(n, cascade_ast.Access) and n.tensor == state for n in cascade_ast.walk(node))

    def visit(node) -> None:
        if isinstance(node, cascade_ast.Binary) and node.op == "*":
            left, right = contains_state(node.left), contains_state(node.right)
            if left != right:
                gates.extend(_accesses(node.right if left else node.left))
        for child in cascade_ast.children(node):
            visit(child)
    visit(rec.expr)
    return gates


def _linear_profiles(c: ec.Cascade, rec) -> tuple[str, str, list[str]]:
    """(chunked profile, decode-step profile, notes) of a linear recurrence, from its form: the
    delta rule (the state read by another Einsum before its update, as S k), the gate that
    multiplies the state (per key dim, per token, exp-derived as Mamba2's, or none)."""
    state = rec.name
    by_name = {e.name: e for e in c.einsums if not e.is_initial}
    feeding, todo = set(), [a.tensor for a in _accesses(rec.expr) if a.tensor != state]
    while todo:  # the Einsums the update depends on
        name = todo.pop()
        if name in by_name and name not in feeding:
            feeding.add(name)
            todo += [a.tensor for a in _accesses(by_name[name].expr) if a.tensor != state]
    delta = any(a.tensor == state for name in feeding for a in _accesses(by_name[name].expr))
    gates = _state_gates(rec, state)
    gate_ranks = {_rank_of(c, str(sym)) for a in gates for idx in a.indices
                  for sym in getattr(idx, "free_symbols", set()) if str(sym) in c.var_rank}
    derived_exp = any(isinstance(n, cascade_ast.Call) and n.func == "exp"
                      for a in gates if a.tensor in by_name for n in cascade_ast.walk(by_name[a.tensor].expr))
    if delta:
        chunked, step = ("fla-chunk-kda" if "E" in gate_ranks else "fla-chunk-gdn" if gates else
                         "fla-chunk-delta-rule"), "flashinfer-gdn-decode"
    elif gates and ("E" in gate_ranks or "N" in gate_ranks) and not derived_exp:
        chunked, step = "fla-chunk-gla", "fla-recurrent-kda"
    elif derived_exp:
        chunked, step = "mamba2-ssd-triton", "flashinfer-gdn-decode"
    elif gates:
        chunked, step = "fla-chunk-simple-gla", "flashinfer-gdn-decode"
    else:
        chunked, step = "fla-chunk-linear", "flashinfer-gdn-decode"
    return chunked, step, [f"linear recurrence {state}[...] over M: chunked kernel {chunked} (decode step {step})"]


def _score_einsum(c: ec.Cascade, sizes: dict):
    """The scores: of the Einsums over both a key and a query variable, one that is not a product
    of tensors (an element-wise map of the scores, e.g. exp) with the most iteration points; else
    the product with the most points."""
    def over_keys_and_queries(e) -> bool:
        ranks = {_rank_of(c, v) for v in e.space_vars if v in c.var_rank}
        return "M" in ranks and ("P" in ranks or "P" not in c.ranks)
    candidates = [e for e in c.einsums if not e.is_initial and over_keys_and_queries(e)]
    heads = _head_ranks(c)
    maps = [e for e in candidates if not _is_tensor_product(e) and not e.implicit_vars
            and not isinstance(e.expr, cascade_ast.Reduce)
            and all(_rank_of(c, v) in ("M", "P") or _rank_of(c, v) in heads for v in e.space_vars if v in c.var_rank)]
    pool = maps or candidates
    return max(pool, key=lambda e: ec.domain_points(c, e, sizes)) if pool else None


def structure(c: ec.Cascade, sizes: dict[str, float]) -> Structure:
    """Read the GPU-relevant structure of `c` at complete `sizes` (module docstring)."""
    from einsum_cascade.numeric_cost import numeric_cost
    notes: list[str] = []
    inner = _head_ranks(c)
    inner_heads = math.prod(int(sizes[r]) for r in inner if r in sizes) if inner else 1
    rec = _linear_recurrence(c)
    e_dim, f_dim = int(sizes.get("E", 64)), int(sizes.get("F", sizes.get("E", 64)))
    if rec is not None:
        chunked, step, more = _linear_profiles(c, rec)
        lhs_vars = [str(sym) for idx in rec.lhs for sym in sorted(getattr(idx, "free_symbols", set()), key=str)]
        state_ranks = [_rank_of(c, v) for v in lhs_vars if v in c.var_rank and _rank_of(c, v) != "M"]
        if "E" not in state_ranks and len(state_ranks) >= 2:  # e.g. selective_scan's H[n,d]: N keys, D values
            e_dim, f_dim = int(sizes[state_ranks[0]]), int(sizes[state_ranks[1]])
        inner = [r for r in c.ranks if r not in KEY_RANKS and r not in state_ranks]
        inner_heads = math.prod(int(sizes[r]) for r in inner if r in sizes) if inner else 1
        return Structure("linear", 1, chunked, step, 0.0, 0.0, 0.0, 1.0, inner_heads, inner_heads, e_dim, f_dim,
                         False, tuple(more))
    fused = c
    sizes = _with_partitions(c, sizes)
    passes = ec.passes(c, "M").passes if "M" in c.ranks else 1
    if passes > 1:
        try:
            result = ec.fuse(c, "M")
            if result.status == "reduced" and result.cascade is not None:
                fused, passes = result.cascade, result.passes_after
                notes.append(f"fused form: {result.passes_before} -> {passes} pass(es) over M ({', '.join(result.rules)})")
        except ec.CascadeError as err:
            notes.append(f"fuse refused: {err}")
    sizes = _with_partitions(fused, sizes)
    counts = numeric_cost(fused, sizes).per_einsum
    tensor = exps = alu = 0.0
    for e in fused.einsums:
        if e.is_initial:
            continue
        ops = counts.get(e.name, {})
        if _is_tensor_product(e):
            tensor += 2.0 * ops.get("multiply", 0)
            alu += sum(v for k, v in ops.items() if k not in ("multiply", "add"))
        else:
            exps += ops.get("exp", 0)
            alu += sum(v for k, v in ops.items() if k != "exp")
    score = _score_einsum(fused, sizes)
    if score is None:
        if "P" not in c.ranks or "M" not in c.ranks:
            raise MappingError(f"cascade {c.name}: the GPU target needs a key rank M and a query rank P "
                               "(or a recurrence over M)")
        # no score tensor (e.g. non-causal linear attention): its work spread over the P x M tiles
        kept = dense = int(sizes["P"]) * int(sizes["M"]) * inner_heads
        notes.append("no score tensor over (M, P): the cascade's work spread over a one-pass kernel's P x M tiles")
    else:
        kept = ec.domain_points(fused, score, sizes)
        dense = math.prod(int(sizes[_part_size(fused, v)]) for v in score.space_vars if v in fused.var_rank
                          and _rank_of(fused, v) in ("M", "P"))
        # head-like ranks inside the cascade multiply the score points: per score point over them too
        dense *= math.prod(int(sizes[_rank_of(fused, v)]) for v in score.space_vars
                           if v in fused.var_rank and _rank_of(fused, v) not in KEY_RANKS)
    kept = max(kept, 1)
    key_dim, value_dim, shared = _head_dims(fused, sizes, e_dim, f_dim)
    inner_kv = _inner_kv_heads(fused, sizes)
    return Structure("attention", max(1, passes), None, None, tensor / kept, exps / kept, alu / kept,
                     min(1.0, kept / dense) if dense else 1.0, inner_heads, inner_kv, key_dim, value_dim, shared,
                     tuple(notes))


def _with_partitions(c: ec.Cascade, sizes: dict) -> dict:
    """`sizes` with the partitions a fused form introduced (M = M1 * M0: tiles of 64 keys)."""
    out = dict(sizes)
    for name, rank in c.ranks.items():
        parts = rank.parts or ()
        if len(parts) == 2 and name in out and not all(p in out for p in parts):
            inner = min(64, int(out[name]))
            out.setdefault(parts[1], inner)
            out.setdefault(parts[0], math.ceil(int(out[name]) / out[parts[1]]))
            out[name] = out[parts[0]] * out[parts[1]]
    return out


def _part_size(c: ec.Cascade, var: str) -> str:
    return c.var_rank[var]


def _m_inputs(c: ec.Cascade) -> list[str]:
    """Inputs indexed by a key variable."""
    out = []
    for e in c.einsums:
        for a in _accesses(e.expr):
            if a.tensor in c.inputs and any(_rank_of(c, str(s)) == "M" for idx in a.indices
                                          for s in getattr(idx, "free_symbols", set()) if str(s) in c.var_rank):
                if a.tensor not in out:
                    out.append(a.tensor)
    return out


def _head_ranks(c: ec.Cascade) -> list[str]:
    """Ranks besides E, F, M, P that index the cascade's outputs (heads inside the cascade; MLA's
    latent ranks are contracted away and are not heads)."""
    out = []
    for e in c.einsums:
        if e.name in c.outputs and not e.is_initial:
            for v in e.output_vars:
                r = _rank_of(c, v) if v in c.var_rank else None
                if r is not None and r not in KEY_RANKS and r not in out:
                    out.append(r)
    return out


def _inner_kv_heads(c: ec.Cascade, sizes: dict) -> int:
    """Product of the cascade's head-like ranks that index its key-indexed inputs (GQA's KV groups)."""
    ranks = set()
    for name in _m_inputs(c):
        for v in c.inputs[name].indices:
            r = _rank_of(c, v) if v in c.var_rank else None
            if r is not None and r in _head_ranks(c):
                ranks.add(r)
    return math.prod(int(sizes[r]) for r in ranks) if ranks else 1


def _head_dims(c: ec.Cascade, sizes: dict, e_dim: int, f_dim: int) -> tuple[int, int, bool]:
    """(key head dim, value head dim, K and V one tensor): the contracted sizes of the key-indexed
    inputs in the products that read them (MLA: latent + rope dims, V the latent)."""
    m_inputs = _m_inputs(c)
    products = [e for e in c.einsums if not e.is_initial and _is_tensor_product(e)]
    key_dim = value_dim = 0
    readers: dict[str, list[str]] = {}
    for e in products:
        for a in _accesses(e.expr):
            if a.tensor in m_inputs:
                readers.setdefault(a.tensor, []).append(e.name)
                contracted = [v for v in e.implicit_vars if v in c.var_rank and _rank_of(c, v) not in ("M", "P")]
                width = math.prod(int(sizes[_rank_of(c, v)]) for v in contracted) if contracted else 1
                reduces_m = any(_rank_of(c, v) == "M" for v in e.implicit_vars if v in c.var_rank)
                if reduces_m:
                    value_dim = max(value_dim, _out_width(c, e, sizes))
                elif contracted:
                    key_dim += width
    shared = any(len(v) > 1 for v in readers.values())
    return key_dim or e_dim, value_dim or f_dim, shared


def _out_width(c: ec.Cascade, e, sizes: dict) -> int:
    """Size of the non-head, non-query output ranks of a product (the value width it produces)."""
    outs = [v for v in e.output_vars if v in c.var_rank and _rank_of(c, v) not in ("M", "P")
            and _rank_of(c, v) not in [r for r in c.ranks if r not in KEY_RANKS and r not in ("C", "R")]]
    widths = [int(sizes[_rank_of(c, v)]) for v in outs if _rank_of(c, v) in ("F", "C")]
    return math.prod(widths) if widths else 0


def _dtype(options) -> str:
    from archsim.gpu.specs import normalise_dtype
    return normalise_dtype(options.dtype or DEFAULT_DTYPE)


def _mask(st: Structure, p: int, m: int, sizes: dict, c: ec.Cascade) -> dict:
    """causal / window / density of the kernel's tile visits from the kept fraction of the scores."""
    if st.kept_fraction >= 0.999:
        return {"causal": False}
    if "W" in c.params and "W" in sizes:
        return {"causal": True, "window": int(sizes["W"])}
    causal_fraction = (p + 1) / (2.0 * p) if p == m else (m - (p - 1) / 2.0) / m
    if abs(st.kept_fraction - causal_fraction) <= 0.02 * causal_fraction:
        return {"causal": True}
    return {"causal": False, "density": st.kept_fraction}


class GPUTarget:
    """A GPU description (archsim/configs/gpus/ name or YAML path); no mapping choice, no energy model."""
    kind = "gpu"

    def __init__(self, name_or_path: str):
        self.name = name_or_path

    def simulate(self, c: ec.Cascade, sizes: dict[str, float] | None, options) -> SimulationResult:
        """The predicted time of a well-tuned GPU kernel of `c`'s family (module docstring)."""
        from dataclasses import replace

        from archsim.gpu.profiles import load_profile
        from archsim.gpu.specs import GPUConfigError, load_gpu
        from mappings.gpu_kernels import AttentionShape, Work
        from mappings.gpu_predict import predict
        from mappings.targets import passes_over_keys
        arch = self.name
        gpu = load_gpu(arch)
        dtype = _dtype(options)
        full, how = complete_sizes(c, sizes)
        gemm = gemm_shape(c) if "M" not in c.ranks else None
        if gemm is not None:
            return self._gemm(c, gpu, full, how, gemm, dtype, options)
        st = structure(c, full)
        heads = options.heads * st.inner_heads
        kv = options.kv_heads if options.kv_heads is not None else options.heads
        if options.heads % kv:
            raise MappingError(f"--kv-heads {kv}: must divide --heads {options.heads}")
        kv_heads = kv * st.inner_kv_heads
        m = int(full.get("M", 1))
        p = int(full["P"]) if "P" in full else m
        notes = list(st.notes)
        per_point = None
        if st.family == "linear":
            decode = p == 1 and m > 1
            name = options.kernel or (st.step_profile if decode else st.linear_profile)
            shape = AttentionShape(options.batch, heads, 1 if decode else max(p, m), st.key_dim, True,
                                   kv_heads=kv_heads, head_dim_v=st.value_dim)
            profile = load_profile(name)
        else:
            mask = _mask(st, p, m, full, c)
            shape = AttentionShape(options.batch, heads, p, st.key_dim, mask.get("causal", False), kv_heads=kv_heads,
                                   seq_len_kv=m, head_dim_v=st.value_dim, window=mask.get("window"),
                                   density=mask.get("density", 1.0), shared_kv=st.shared_kv)
            profile = load_profile(options.kernel) if options.kernel else load_profile(self._default(gpu, st, shape))
            if profile.family in ("softmax", "split-kv") and profile.passes == 1:
                per_point = Work(st.tensor_per_point, st.exps_per_point, st.alu_per_point)
            else:
                notes.append(f"work of the {profile.passes}-pass kernel {profile.name}'s own structure "
                             f"(the cascade has {st.passes} pass(es) over M)")
        try:
            pred = predict(gpu, profile, shape, dtype, per_point=per_point)
        except GPUConfigError as err:
            raise MappingError(f"--arch {arch}: {err}") from None
        _check_roofline(pred, gpu, shape)
        notes.append(f"kernel {pred.kernel} ({profile.family}, {pred.instruction}, {pred.dtype}); "
                     f"grid: batch {shape.batch} x heads {shape.heads} (KV heads {shape.hkv}), P={shape.q_len}, "
                     f"M={shape.kv_len}, head dims {shape.head_dim}/{shape.dv}")
        result = SimulationResult(target="gpu", cascade=c.name, arch=str(arch), sizes=full, batch=options.batch,
                                  heads=options.heads, latency_s=pred.time_s, bounding_unit=pred.bound,
                                  dram_bytes=pred.hbm_bytes, passes=passes_over_keys(c), sizes_defaulted=how,
                                  notes=notes, bound=pred.bound, kernel=pred.kernel)
        if options.check:  # finite, >= 0, latency >= HBM bytes / bandwidth and >= FLOPs / peak
            from mappings.certify import check_gpu
            check_gpu(result, c, arch)
        return result

    def _gemm(self, c: ec.Cascade, gpu, full: dict, how: dict, gemm, dtype: str, options) -> SimulationResult:
        """A one-matrix-product cascade as a tiled tensor-core GEMM (mappings/gpu_gemm.py)."""
        from mappings.gpu_gemm import predict_gemm
        rows, cols, red = (int(full[r]) for r in (gemm.rows, gemm.cols, gemm.reduction))
        seconds, bound, hbm, instruction = predict_gemm(gpu, rows, cols, red, dtype, options.batch * options.heads)
        flops = 2.0 * rows * cols * red * options.batch * options.heads
        if not (math.isfinite(seconds) and seconds >= max(hbm / gpu.hbm_bytes_per_s,
                                                           flops / gpu.peak_tensor_flops_per_s(dtype))):
            raise MappingError(f"--arch {self.name}: the GEMM model gave {seconds!r} s, below its roofline")
        result = SimulationResult(target="gpu", cascade=c.name, arch=self.name, sizes=full, batch=options.batch,
                                  heads=options.heads, latency_s=seconds, bounding_unit=bound, dram_bytes=hbm,
                                  passes=None, sizes_defaulted=how, bound=bound, kernel="gemm",
                                  notes=[f"GEMM {rows} x {red} x {cols} ({instruction}, {dtype}; efficiencies "
                                         "assumed, mappings/gpu_gemm.py)"])
        if options.check:
            from mappings.certify import check_gpu
            check_gpu(result, c, self.name)
        return result

    @staticmethod
    def _default(gpu, st: Structure, shape) -> str:
        """The default kernel profile of an attention-like cascade on `gpu`."""
        if st.passes > 1:
            return MULTIPASS_DEFAULT.get(st.passes, "standard")
        rows = shape.q_len * shape.group
        if (rows <= DECODE_ROWS or shape.q_len <= DECODE_QUERIES) and shape.kv_len > shape.q_len:
            if shape.shared_kv:
                return MLA_DEFAULT.get(gpu.architecture, "flashinfer-mla")
            return DECODE_DEFAULT.get(gpu.architecture, "flash-decoding")
        return SOFTMAX_DEFAULT.get(gpu.architecture, "flash2")


def _check_roofline(pred, gpu, shape) -> None:
    """The prediction is finite and at or above the roofline: HBM bytes / bandwidth and tensor
    FLOPs / the best tensor peak (MappingError otherwise: a model defect, never printed)."""
    floor = max(pred.hbm_bytes / gpu.hbm_bytes_per_s, pred.flops_model / gpu.peak_tensor_flops_per_s(pred.dtype)
                if gpu.peak_tensor_flops_per_s(pred.dtype) else 0.0)
    if not (math.isfinite(pred.time_s) and pred.time_s > 0 and pred.time_s >= floor * (1 - 1e-9)):
        raise MappingError(f"GPU model defect: time {pred.time_s!r} s below the roofline {floor!r} s "
                           f"({pred.kernel} on {gpu.name})")
