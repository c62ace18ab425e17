"""The text of a generated module: its docstring, the kernels and the launcher `run`."""
from __future__ import annotations

from einsum_cascade.printer import format_einsum

_RUN = '''

def _pow2(n: int) -> int:
    """The smallest power of two >= max(n, 16) (tl.dot needs tiles of at least 16)."""
    p = 16
    while p < n:
        p *= 2
    return p


def run(**arguments):
    """Evaluate the cascade on torch tensors: run(Q=..., K=..., ..., W=3) -> {output: tensor}.

    The same as `prepare(**arguments)()`; see prepare for the arguments.
    """
    return prepare(**arguments)()


def prepare(**arguments):
    """Check and bind the arguments, allocate the outputs; returns launch() -> {output: tensor},
    which runs the kernels (again on every call, into the same outputs).

    Each input has the shape of its declaration (one head), or (batch, heads, ...) before it;
    inputs indexed by the row rank carry the query heads, the others the key/value heads
    (grouped-query attention when there are fewer, each shared by heads // kv_heads query
    heads). Params (and, optionally, rank sizes) are keyword numbers. Outputs have the inputs'
    dtype and leading dimensions; points a `where` leaves absent read 0.
    """
    import torch

    inputs, sizes = {}, {}
    for name, value in arguments.items():
        if name in INPUTS:
            inputs[name] = value
        elif name in PARAMS or name in RANKS:
            sizes[name] = value
        else:
            raise TypeError(f"run: unknown argument {name!r} (inputs {', '.join(INPUTS)}; sizes {', '.join(PARAMS + RANKS)})")
    for p, value in DEFAULTS.items():
        sizes.setdefault(p, value)
    missing = [n for n in INPUTS if n not in inputs] + [p for p in PARAMS if p not in sizes]
    if missing:
        raise TypeError(f"run: missing {', '.join(missing)}")
    bound, lead, device = {}, {}, None
    for name, t in inputs.items():
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"run: {name} must be a torch tensor")
        if t.dtype != DTYPE:
            raise ValueError(f"run: {name} has dtype {t.dtype}; this module was generated for {DTYPE}")
        extra = t.dim() - len(INPUTS[name])
        if extra not in (0, 2):
            raise ValueError(f"run: {name} has shape {tuple(t.shape)}: expected {len(INPUTS[name])} dims "
                             f"({', '.join(INPUTS[name])}), or 2 more (batch, heads) before them")
        lead[name] = tuple(t.shape[:extra])
        device = t.device if device is None else device
        for rank, n in zip(INPUTS[name], t.shape[extra:]):
            if bound.setdefault(rank, int(n)) != n:
                raise ValueError(f"run: {name} gives {rank} = {n} but another input gives {bound[rank]}")
    if len({len(v) for v in lead.values()}) > 1:
        raise ValueError("run: give every input the (batch, heads) dimensions, or none")
    for rank in RANKS:
        if rank in sizes:
            if rank in bound and bound[rank] != sizes[rank]:
                raise ValueError(f"run: {rank} = {sizes[rank]} but the inputs give {bound[rank]}")
            bound[rank] = int(sizes[rank])
    if KEY_PARTS:
        tiles, inside = KEY_PARTS
        if sizes.get(inside, BLOCK_N) != BLOCK_N:
            raise ValueError(f"run: {inside} is the tile of {KEY}: {BLOCK_N} in this module")
        bound[inside] = BLOCK_N
        bound[tiles] = -(-bound[KEY] // BLOCK_N)
    absent = [r for r in RANKS if r not in bound]
    if absent:
        raise ValueError(f"run: give the size of {', '.join(absent)} (no input has it)")
    queries = [lead[n] for n in QUERY_SIDE if n in lead and lead[n]]
    keys = [lead[n] for n in INPUTS if n not in QUERY_SIDE and lead[n]]
    batch, heads = queries[0] if queries else keys[0] if keys else (1, 1)
    kv = keys[0][1] if keys else heads
    if any(q != (batch, heads) for q in queries) or any(k != (batch, kv) for k in keys):
        raise ValueError("run: the query-side inputs must share (batch, heads), the others (batch, kv heads)")
    if heads % kv or (KV_HEADS is not None and kv != KV_HEADS):
        raise ValueError(f"run: {kv} key/value heads for {heads} query heads"
                         + (f" (this module was generated for {KV_HEADS})" if KV_HEADS is not None else ""))
    args = {"heads": heads, "group": heads // kv, "BLOCK_M": BLOCK_M, "BLOCK_N": BLOCK_N,
            "INTERPRET": os.environ.get("TRITON_INTERPRET") == "1"}
    for rank in WHOLE:
        args[f"DIM_{rank}"] = _pow2(bound[rank])
        args[f"EVEN_{rank}"] = args[f"DIM_{rank}"] == bound[rank]
    for rank in RANKS:
        args[f"size_{rank}"] = bound[rank]
    for p in PARAMS:
        value = float(sizes[p])
        if p in INTEGER_PARAMS and not value.is_integer():
            raise ValueError(f"run: {p} = {sizes[p]} bounds the keys of the tile loops: it must be a whole number")
        args[f"param_{p}"] = int(value) if value.is_integer() else value

    def bind(name, t, extra):
        args[f"ptr_{name}"] = t
        args[f"s_{name}_b"], args[f"s_{name}_h"] = (t.stride(0), t.stride(1)) if extra else (0, 0)
        for d in range(t.dim() - extra):
            args[f"s_{name}_{d}"] = t.stride(extra + d)

    for name, t in inputs.items():
        bind(name, t, len(lead[name]))
    results = {}
    for name, ranks in STORED.items():
        shape = (batch, heads) + tuple(bound[r] for r in ranks)
        t = torch.zeros(shape, dtype=DTYPE if name in OUTPUTS else torch.float32, device=device)
        bind(name, t, 2)
        if name in OUTPUTS:
            results[name] = t if any(lead.values()) else t[0, 0]
    extent = {ROW: BLOCK_M, KEY: BLOCK_N, **{r: args[f"DIM_{r}"] for r in WHOLE}}
    for axes in BLOCKS:
        numel = 1
        for axis in axes:
            numel *= extent[axis]
        if numel > MAX_BLOCK:
            raise ValueError(f"run: a block over {' x '.join(axes)} has {numel} elements at these sizes, over "
                             f"Triton's {MAX_BLOCK}; generate with smaller --block-m/--block-n")
    grid = (-(-bound[ROW] // BLOCK_M), batch * heads)
    widest = max([args[f"DIM_{r}"] for r in WHOLE], default=16)
    warps = 8 if BLOCK_M * widest >= 128 * 128 else 4  # the running output block, in registers
    launches = [(kernel, [args[p] for p in params]) for kernel, params in KERNELS]

    def launch():
        for kernel, values in launches:
            kernel[grid](*values, num_warps=warps)
        return results

    return launch
'''


_SPLIT_SIZES = """    for rank, (outer, inner) in SPLIT.items():  # a split rank run flat: the sizes of its parts
        if inner not in sizes and outer not in sizes:
            raise ValueError(f"run: give {inner} (or {outer}): {rank} = {outer} * {inner}")
        n_inner = int(sizes[inner]) if inner in sizes else bound[rank] // max(int(sizes[outer]), 1)
        n_outer = int(sizes[outer]) if outer in sizes else bound[rank] // max(n_inner, 1)
        if n_inner < 1 or n_outer * n_inner != bound[rank]:
            raise ValueError(f"run: {rank} = {bound[rank]} is not {outer} * {inner} = {n_outer} * {n_inner}")
        args[f"size_{outer}"], args[f"size_{inner}"] = n_outer, n_inner
"""


def module_source(plan, form, note: str, infos, sources, globals_, stored, block_m: int, block_n: int,
                  torch_dtype: str, kv_heads, original_name: str, integer_params: list[str],
                  defaults: dict | None = None, block_axes: list | None = None, chunked: bool = False,
                  kth_params: list[str] | None = None) -> str:
    """The whole module as text (deterministic: every table is written in a fixed order); `chunked`:
    one program per (batch, head) walks the chunks (rows p of a chunk are its keys, P <= M)."""
    c = form if hasattr(form, "einsums") else plan.cascade
    lines = [f'"""Triton kernels of the cascade {original_name} ({note}), generated by `cascadesim kernel`.',
             ""]
    if chunked:
        lines += [f"Programs: one per (batch, query head); each walks {plan.key} in chunks of {block_n} keys (the rows",
                  f"{plan.row} of a chunk are its keys) and carries the recurrences' states from chunk to chunk:"]
    else:
        lines += [f"Programs: one per block of {block_m} rows of {plan.row} and per (batch, query head); each",
                  f"streams {plan.key} in tiles of {block_n}. Kernels (one per pass over {plan.key}):"]
    for info in infos:
        lines.append(f"  {info.name}: {', '.join(info.einsums)}")
    lines += ["", f"The cascade these kernels evaluate ({c.name}):"]
    for e in c.einsums:
        lines.append("  " + format_einsum(e, c.variables))
    lines += ["", "Usage: `run(**inputs, **sizes) -> dict of output tensors` (see run); `prepare(...)` binds",
              "the arguments once and returns launch(), which runs the kernels again on each call.", '"""',
              "import os", "", "import torch", "import triton", "import triton.language as tl", "", ""]
    body = "\n\n".join(sources)
    key_parts = tuple(c.ranks[plan.key].parts) if plan.tile_var else ()
    split = {r: tuple(c.ranks[r].parts) for r in c.ranks if plan.split_of(r)} if plan.derived else {}
    query_side = tuple(n for n, g in globals_.items() if g.query_side and n in c.inputs)
    tables = [
        f"INPUTS = {dict((n, globals_[n].slot_ranks) for n in c.inputs)!r}  # input -> the rank of each index",
        f"QUERY_SIDE = {query_side!r}  # inputs indexed by the row rank (per query head)",
        f"OUTPUTS = {tuple(c.outputs)!r}",
        f"STORED = {dict((n, globals_[n].slot_ranks) for n in sorted(stored))!r}  # in global memory",
        f"PARAMS = {tuple(c.params)!r}",
        f"DEFAULTS = {dict((k, v) for k, v in sorted((defaults or {}).items()) if k in c.params)!r}"
        "  # the cascade's `size` defaults of params",
        f"INTEGER_PARAMS = {tuple(integer_params)!r}  # params that bound the keys of the tile loops",
        f"RANKS = {tuple(r for r in c.ranks)!r}",
        f"ROW, KEY, WHOLE = {plan.row!r}, {plan.key!r}, {tuple(plan.whole)!r}",
        f"KEY_PARTS = {key_parts!r}  # (tiles, keys per tile) when the cascade splits {plan.key}",
        f"BLOCK_M, BLOCK_N = {block_m}, {block_n}  # rows per program, keys per tile",
        f"DTYPE = {torch_dtype}",
        f"KV_HEADS = {kv_heads!r}",
        f"BLOCKS = {tuple(tuple(a) for a in block_axes or ())!r}  # the axes of the largest blocks (registers)",
        "MAX_BLOCK = 2 ** 20  # Triton's largest block (elements)",
        "KERNELS = (" + "".join(f"\n    ({i.name}, {tuple(i.params)!r})," for i in infos) + "\n)",
    ]
    run = _RUN
    if chunked:
        grid = "    grid = (-(-bound[ROW] // BLOCK_M), batch * heads)\n"
        assert grid in run
        run = run.replace(grid, (
            "    if bound[ROW] > bound[KEY]:\n"
            "        raise ValueError(f\"run: {ROW} = {bound[ROW]} rows read the state after their own key: \"\n"
            "                         f\"at most {KEY} = {bound[KEY]} (self-attention)\")\n"
            "    grid = (1, batch * heads)  # one program per (batch, head) walks the chunks\n"))
    if split:  # split ranks run flat: their parts' sizes are arguments
        tables.append(f"SPLIT = {split!r}  # split ranks run flat -> (outer, inner) parts")
        tables.append("PARTS = tuple(part for parts in SPLIT.values() for part in parts)")
        accept = "        elif name in PARAMS or name in RANKS:\n"
        sizes_done = "    for rank in RANKS:\n        args[f\"size_{rank}\"] = bound[rank]\n"
        assert accept in run and sizes_done in run
        run = run.replace(accept, "        elif name in PARAMS or name in RANKS or name in PARTS:\n", 1)
        run = run.replace(sizes_done, sizes_done + _SPLIT_SIZES, 1)
    if kth_params:  # the k of a running k-th value: a whole number; the width of its buffer
        tables.append(f"KTH_PARAMS = {tuple(kth_params)!r}  # params that are the k of a k-th value")
        bind = "\n    def bind(name, t, extra):\n"
        assert bind in run
        run = run.replace(bind, (
            "    for p in KTH_PARAMS:\n"
            "        if not (isinstance(args[f\"param_{p}\"], int) and args[f\"param_{p}\"] >= 1):\n"
            "            raise ValueError(f\"run: {p} = {sizes[p]} is the k of a k-th value: a whole number >= 1\")\n"
            "        args[f\"KPAD_{p}\"] = _pow2(args[f\"param_{p}\"])\n" + bind), 1)
    return "\n".join(lines) + body + "\n\n" + "\n".join(tables) + "\n" + run
