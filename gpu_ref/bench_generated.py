"""Generated kernels against the hand-written one, torch SDPA and FlexAttention:
`python -m gpu_ref.bench_generated --out FILE`.

For each case (a library cascade, or the ALiBi cascade below, with its mask) and shape, times
the module `gpu_ref.codegen.generate` writes for the cascade, gpu_ref's hand-written 1-pass
kernel (dense and causal only), torch's scaled_dot_product_attention (flash backend when
unmasked or causal; an explicit mask or bias otherwise, up to --sdpa-mask-max keys) and
FlexAttention (torch.compile'd, a mask_mod / score_mod for the case; not for cascades it cannot
express, such as softmax-one). Every record has its max abs difference from a float32 torch
reference on the first (batch, head). Writes the JSON (GPU name, date, versions, records) after
each measurement. Needs torch, triton and a CUDA GPU (`--device cpu` with TRITON_INTERPRET=1 is
a small smoke run for the tests: wall-clock times, no meaning).
"""
from __future__ import annotations

import argparse
import importlib.util
import math
import sys
import tempfile
import time
from pathlib import Path

from gpu_ref.bench import do_bench_timer, environment, write_json

SCHEMA = "cascadesim-gpu-generated/1"
ALIBI = """cascade alibi_causal
rank E, F, M, P
param SLOPE
input Q[e,p], K[e,m], V[f,m]
output AV
S[m,p]  = Q[e,p] * K[e,m] where m <= p
QK[m,p] = S[m,p] + SLOPE * (m - p) where m <= p
GM[p]   = max(m: QK[m,p]) where m <= p
SN[m,p] = exp(QK[m,p] - GM[p]) where m <= p
SD[p]   = sum(m: SN[m,p]) where m <= p
A[m,p]  = SN[m,p] / SD[p] where m <= p
AV[f,p] = A[m,p] * V[f,m] where m <= p
"""
WINDOW, SINKS, SLOPE = 256, 4, 0.0625
# case -> (library cascade or cascade text, params)
CASES = {
    "dense": ("attention_3pass", {}),
    "causal": ("attention_3pass_causal", {}),
    "sliding_window": ("attention_sliding_window", {"W": WINDOW}),
    "sinks": ("attention_sinks", {"S": SINKS, "W": WINDOW}),
    "alibi_causal": (ALIBI, {"SLOPE": SLOPE}),
    "softmax_one": ("softmax_one_3pass", {}),
}


def visible(case: str, p, m):
    """Whether query p sees key m (torch index tensors) in `case`."""
    if case in ("dense", "softmax_one"):
        return m == m
    causal = m <= p
    if case in ("causal", "alibi_causal"):
        return causal
    if case == "sliding_window":
        return causal & (p - WINDOW < m)
    return causal & ((m < SINKS) | (p - WINDOW < m))


def bias(case: str, p, m):
    return SLOPE * (m - p).float() if case == "alibi_causal" else None


def visible_pairs(case: str, n: int) -> int:
    """Query-key pairs a query sees, summed over the queries (exact counts)."""
    if case in ("dense", "softmax_one"):
        return n * n
    if case in ("causal", "alibi_causal"):
        return n * (n + 1) // 2
    pairs = 0
    for p in range(n):
        window = min(p + 1, WINDOW)
        sinks = min(SINKS, p + 1 - window) if case == "sinks" else 0
        pairs += window + max(sinks, 0)
    return pairs


def reference(case: str, q, k, v):
    """softmax(q k^T + bias, masked) v in float32 on (N, D) tensors; softmax-one adds 1 to the sum."""
    import torch

    n = q.shape[0]
    idx = torch.arange(n, device=q.device)
    p, m = idx[:, None], idx[None, :]
    s = q.float() @ k.float().T
    if case == "alibi_causal":
        s = s + bias(case, p, m)
    s = s.masked_fill(~visible(case, p, m), float("-inf"))
    if case == "softmax_one":
        top = torch.clamp(s.max(-1, keepdim=True).values, min=0.0)
        e = torch.exp(s - top)
        return (e / (torch.exp(-top) + e.sum(-1, keepdim=True))) @ v.float()
    return torch.softmax(s, -1) @ v.float()


# The modules are the generator's output, never committed: each run generates them afresh into a
# temporary folder. Where the generator does not import (it needs the core install: numpy, sympy,
# networkx, pyyaml, pydantic), `--write-modules` on a machine where it does writes them into this
# ignored build folder, to be carried to the GPU machine.
MODULES = Path(__file__).resolve().parents[1] / "build" / "gpu-kernels"
TILES = {"cuda": (128, 64), "cpu": (16, 16)}  # BLOCK_M, BLOCK_N of the modules per device


def case_cascade(case: str):
    import einsum_cascade as ec

    source, _ = CASES[case]
    return ec.parse(source, f"<{case}>") if "\n" in source else ec.load_library(source)


def module_path(case: str, dtype: str, folder: Path | None = None) -> Path:
    """The file of the module of `case` for `dtype` in `folder` (default MODULES)."""
    return (folder or MODULES) / f"{case}_{dtype}.py"


def write_module(case: str, dtype: str, device: str = "cuda", folder: Path | None = None) -> Path:
    """Generate the module of `case` for `dtype` with `device`'s tiles into `folder`; its path."""
    from gpu_ref.codegen import generate

    block_m, block_n = TILES[device]
    path = module_path(case, dtype, folder)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(generate(case_cascade(case), block_m=block_m, block_n=block_n, dtype=dtype).source)
    return path


def write_modules(folder: Path | None = None, dtypes=("bf16", "fp16")) -> list[Path]:
    """Generate the GPU modules of every case into `folder` (for a GPU machine without the generator)."""
    return [write_module(case, dtype, "cuda", folder) for case in CASES for dtype in dtypes]


def load_generated(case: str, dtype: str, device: str, folder: Path):
    """The module of `case` generated now into `folder` with `device`'s tiles; on a GPU machine where
    the generator does not import, the one `--write-modules` wrote into MODULES before."""
    try:
        path = write_module(case, dtype, device, folder)
    except ImportError as err:
        path = module_path(case, dtype)
        if device != "cuda" or not path.exists():
            raise FileNotFoundError(f"{path}: the generator does not import here ({err}): run "
                                    "`python -m gpu_ref.bench_generated --write-modules` where it does and "
                                    f"bring {path.parent} along") from err
        print(f"gpu_ref.bench_generated: {path}: written before by --write-modules", file=sys.stderr)
    spec = importlib.util.spec_from_file_location(f"generated_{case}_{dtype}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def contenders(case: str, module, dtype, n: int, sdpa_mask_max: int, device: str) -> dict:
    """name -> fn(q, k, v) on (B, H, N, D) tensors with q already scaled; or a reason string."""
    import torch

    from gpu_ref.attention_1pass import attention_1pass

    params = CASES[case][1]

    bound = {}

    def generated(q, k, v):  # the cascade's Q[e,p], K[e,m], V[f,m]: transposed views, no copies
        key = (q.data_ptr(), k.data_ptr(), v.data_ptr())
        if key not in bound:  # bind once per inputs: the timing is the kernels' launches only
            bound.clear()
            bound[key] = module.prepare(Q=q.transpose(-1, -2), K=k.transpose(-1, -2), V=v.transpose(-1, -2),
                                        **params)
        return bound[key]()["AV"].transpose(-1, -2)

    out = {"generated": generated}
    if case in ("dense", "causal"):
        out["attention_1pass"] = lambda q, k, v: attention_1pass(q, k, v, causal=case == "causal", sm_scale=1.0)
    if case in ("dense", "causal") and device == "cuda":
        out["torch_sdpa_flash"] = lambda q, k, v: sdpa_flash(q, k, v, case == "causal")
    elif case == "softmax_one":
        out["torch_sdpa"] = "softmax-one (1 + sum in the denominator) is not expressible"
    elif n > sdpa_mask_max:
        out["torch_sdpa"] = f"an explicit {n}x{n} mask: only up to --sdpa-mask-max {sdpa_mask_max} keys"
    else:
        idx = torch.arange(n, device=device)
        keep = visible(case, idx[:, None], idx[None, :])
        extra = bias(case, idx[:, None], idx[None, :])
        mask = keep if extra is None else extra.masked_fill(~keep, float("-inf")).to(dtype)
        out["torch_sdpa"] = lambda q, k, v: torch.nn.functional.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, scale=1.0)
    out["flex_attention"] = flex(case, n, device)
    return out


def sdpa_flash(q, k, v, causal: bool):
    """torch's SDPA, flash backend only, unscaled (q is already scaled)."""
    import torch
    from torch.nn.attention import SDPBackend, sdpa_kernel

    with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
        return torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=causal, scale=1.0)


def flex(case: str, n: int, device: str):
    """FlexAttention for `case` (compiled), or why not."""
    if case == "softmax_one":
        return "FlexAttention's softmax has no extra 1 in its denominator"
    try:
        import torch
        from torch.nn.attention.flex_attention import create_block_mask, flex_attention
    except ImportError as err:
        return f"FlexAttention not available ({err})"

    def mask_mod(b, h, q_idx, kv_idx):
        return visible(case, q_idx, kv_idx)

    def score_mod(score, b, h, q_idx, kv_idx):
        return score + SLOPE * (kv_idx - q_idx)

    block_mask = None if case == "dense" else create_block_mask(mask_mod, None, None, n, n, device=device)
    compiled = torch.compile(flex_attention) if device == "cuda" else flex_attention
    mod = score_mod if case == "alibi_causal" else None
    return lambda q, k, v: compiled(q, k, v, score_mod=mod, block_mask=block_mask, scale=1.0)


def wall_timer(fn) -> tuple[float, float, float]:
    """(q25, median, q75) ms of three calls (the CPU smoke run only)."""
    times = []
    for _ in range(3):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    times.sort()
    return times[0], times[1], times[2]


def run(out: Path, cases: list[str], seq_lens: list[int], head_dims: list[int], dtype_name: str, tokens: int,
        d_model: int, timer, device: str, sdpa_mask_max: int, time_limit_s: float | None,
        progress=print) -> dict:
    import torch

    data = {"schema": SCHEMA, **environment(), "device": device, "records": [], "skipped": [],
            "settings": {"tokens": tokens, "d_model": d_model, "dtype": dtype_name,
                         "window": WINDOW, "sinks": SINKS, "alibi_slope": SLOPE}}
    dtype = getattr(torch, dtype_name)
    short = {"bfloat16": "bf16", "float16": "fp16", "float32": "fp32"}[dtype_name]
    start = time.monotonic()
    with tempfile.TemporaryDirectory() as folder:
        for case in cases:
            for d in head_dims:
                block_m, block_n = TILES.get(device, (16, 16))
                module = load_generated(case, short, device, Path(folder))
                for n in seq_lens:
                    if time_limit_s is not None and time.monotonic() - start > time_limit_s:
                        progress(f"time limit of {time_limit_s:.0f} s reached; stopping")
                        data["complete"] = False
                        write_json(out, data)
                        return data
                    b, h = max(1, tokens // n), max(1, d_model // d)
                    g = torch.Generator(device=device).manual_seed(n * 1000 + d)
                    q, k, v = (torch.randn(b, h, n, d, device=device, generator=g).to(dtype) for _ in range(3))
                    q = (q.float() / math.sqrt(d)).to(dtype)  # the cascades are unscaled: fold 1/sqrt(D) into q
                    ref = reference(case, q[0, 0], k[0, 0], v[0, 0])
                    pairs = visible_pairs(case, n)
                    for name, fn in contenders(case, module, dtype, n, sdpa_mask_max, device).items():
                        rec = dict(case=case, kernel=name, batch=b, heads=h, seq_len=n, head_dim=d, dtype=dtype_name)
                        if isinstance(fn, str):
                            data["skipped"].append(dict(rec, reason=fn))
                            continue
                        result = fn(q, k, v)
                        rec["max_abs_err"] = float((result[0, 0].float() - ref).abs().max())
                        del result
                        q25, q50, q75 = timer(lambda: fn(q, k, v))
                        flops = 4.0 * b * h * d * pairs
                        rec.update(median_ms=q50, q25_ms=q25, q75_ms=q75, flops=flops,
                                   tflops=flops / (q50 * 1e-3) / 1e12)
                        if name == "generated":
                            rec["tiles"] = {"BLOCK_M": block_m, "BLOCK_N": block_n}
                        data["records"].append(rec)
                        write_json(out, data)
                        progress(f"{case:15s} {name:17s} N={n:6d} D={d:3d}: {q50:9.3f} ms "
                                 f"{rec['tflops']:7.1f} TFLOP/s err={rec['max_abs_err']:.2e}")
                    del q, k, v
    data["complete"] = True
    write_json(out, data)
    return data


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m gpu_ref.bench_generated", description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("gpu_ref/results/generated.json"))
    p.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    p.add_argument("--seq-lens", type=int, nargs="+", default=[4096, 8192, 16384])
    p.add_argument("--head-dims", type=int, nargs="+", default=[64, 128])
    p.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16", "float32"])
    p.add_argument("--tokens", type=int, default=16384, help="batch * seq_len (batch at least 1)")
    p.add_argument("--d-model", type=int, default=2048, help="heads * head_dim")
    p.add_argument("--sdpa-mask-max", type=int, default=8192, help="longest sequence given to SDPA as a mask")
    p.add_argument("--time-limit-s", type=float, default=None)
    p.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    p.add_argument("--write-modules", action="store_true",
                   help=f"write the GPU modules into {MODULES} (for a GPU machine where the generator does "
                        "not import) and exit")
    args = p.parse_args(argv)
    if args.write_modules:
        for path in write_modules():
            print(f"wrote {path}")
        return 0
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        print("gpu_ref.bench_generated: no CUDA GPU visible to torch", file=sys.stderr)
        return 2
    timer = do_bench_timer(25.0, 100.0) if args.device == "cuda" else wall_timer
    run(args.out, args.cases, args.seq_lens, args.head_dims, args.dtype, args.tokens, args.d_model, timer,
        args.device, args.sdpa_mask_max, args.time_limit_s)
    return 0


if __name__ == "__main__":
    sys.exit(main())
