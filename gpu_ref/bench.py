"""GPU benchmark of the attention kernels: `python -m gpu_ref.bench --out FILE`.

Times every kernel of `gpu_ref.kernels` and torch's flash-backend scaled_dot_product_attention
with `triton.testing.do_bench` (warm-up and repetition budgets in ms, L2 flushed before each
call) over sequence lengths, head dims and causal / non-causal. Shapes follow the
FlashAttention benchmarks: batch * seq_len = `--tokens` (at least one sequence) and
heads * head_dim = `--d-model`. Writes one JSON file after every measurement, so an
interrupted run resumes where it stopped. Needs torch, triton and a CUDA GPU; imports
nothing from the simulator.

Per record: median and quartile times (ms), TFLOP/s (4 B H N^2 D forward FLOPs, halved when
causal; linear attention: its own count, see `flop_count`) and achieved bandwidth
(compulsory bytes of the kernel / median time, GB/s).
"""
from __future__ import annotations

import argparse
import datetime
import functools
import json
import os
import platform
import subprocess
import sys
import time
import zlib
from pathlib import Path
from typing import Callable

from cascadesim_errors import InputError

SCHEMA = "cascadesim-gpu-bench/1"
DEFAULT_SEQ_LENS = (1024, 2048, 4096, 8192, 16384, 32768)
DTYPE_BYTES = {"bfloat16": 2, "float16": 2, "float32": 4}
# Linear attention's accuracy check builds an N x N reference: only up to this length.
LINEAR_CHECK_MAX_SEQ = 2048

Timer = Callable[[Callable[[], object]], tuple[float, float, float]]


def bench_shapes(seq_lens: list[int], head_dims: list[int], tokens: int, d_model: int) -> list[dict]:
    """(batch, heads, seq_len, head_dim) for every seq_len x head_dim: batch = tokens // seq_len (>= 1)."""
    shapes = []
    for head_dim in head_dims:
        if d_model % head_dim:
            raise ValueError(f"--d-model {d_model} is not a multiple of head dim {head_dim}")
        for seq_len in seq_lens:
            shapes.append({"batch": max(1, tokens // seq_len), "heads": d_model // head_dim,
                           "seq_len": seq_len, "head_dim": head_dim})
    return shapes


def flop_count(kernel: str, batch: int, heads: int, seq_len: int, head_dim: int, causal: bool,
               linear_block: int = 64) -> float:
    """Useful forward FLOPs: softmax attention 4 B H N^2 D (halved when causal).

    Causal linear attention: 4 B H N D^2 for the running state (q . state and its update)
    plus 2 B H N b D for the causal quadratic part inside blocks of b tokens.
    """
    if kernel == "linear_attention_causal":
        return batch * heads * (4.0 * seq_len * head_dim ** 2 + 2.0 * seq_len * linear_block * head_dim)
    flops = 4.0 * batch * heads * seq_len ** 2 * head_dim
    return flops / 2 if causal else flops


def compulsory_bytes(kernel: str, batch: int, heads: int, seq_len: int, head_dim: int, causal: bool,
                     element_bytes: int) -> float:
    """Bytes the kernel must move to and from GPU memory: q, k, v read and the output written once;
    the 3-pass kernel also writes the scores, reads them and writes probabilities over them, and
    reads the probabilities again (half the matrix when causal)."""
    qkvo = 4.0 * batch * heads * seq_len * head_dim * element_bytes
    if kernel != "attention_3pass":
        return qkvo
    scores = batch * heads * seq_len * seq_len * element_bytes * (0.5 if causal else 1.0)
    return qkvo + 4.0 * scores


def do_bench_timer(warmup_ms: float, rep_ms: float) -> Timer:
    """A timer: (q25, median, q75) in ms from triton.testing.do_bench."""
    import triton.testing

    def timer(fn: Callable[[], object]) -> tuple[float, float, float]:
        q50, q25, q75 = triton.testing.do_bench(fn, warmup=warmup_ms, rep=rep_ms, quantiles=[0.5, 0.25, 0.75])
        return float(q25), float(q50), float(q75)

    return timer


def environment() -> dict:
    """GPU name, driver, CUDA, torch, triton and Python versions, date (UTC)."""
    import torch
    import triton

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    driver = "unknown"
    try:
        driver = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                capture_output=True, text=True, timeout=20).stdout.strip().splitlines()[0]
    except (OSError, subprocess.SubprocessError, IndexError):
        pass
    return {"gpu": gpu, "driver": driver, "cuda": torch.version.cuda, "torch": torch.__version__,
            "triton": triton.__version__, "python": platform.python_version(),
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}


def record_key(rec: dict) -> tuple:
    """What identifies a measurement: kernel, batch, heads, seq_len, head_dim, causal, dtype."""
    return (rec["kernel"], rec["batch"], rec["heads"], rec["seq_len"], rec["head_dim"], rec["causal"], rec["dtype"])


class BenchFileError(InputError, ValueError):
    """An output file that cannot be resumed: not a benchmark file, or one of other settings."""


def load_previous(path: Path, settings: dict) -> dict:
    """Records of an earlier run of the same settings at `path` (for resuming), else an empty result.

    A file of another schema or other settings is never overwritten: BenchFileError names it."""
    if not path.exists():
        return {"schema": SCHEMA, "settings": settings, "records": [], "skipped": []}
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise BenchFileError(f"{path}: not a JSON benchmark file ({err})") from err
    if not isinstance(data, dict) or data.get("schema") != SCHEMA or data.get("settings") != settings:
        raise BenchFileError(f"{path}: holds measurements of another schema or other settings; "
                             "choose another --out (it is not overwritten)")
    return data


def input_seed(rec: dict) -> int:
    """Seed of a measurement's random q, k, v: fixed by its key, so a resumed run draws the same inputs."""
    return zlib.crc32(json.dumps(record_key(rec)).encode())


def write_json(path: Path, data: dict) -> None:
    """Write atomically (a temporary file, then rename), so an interrupt leaves a valid file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n")
    os.replace(tmp, path)


def _max_error(kernel: str, out, q, k, v, causal: bool, seq_len: int) -> float | None:
    """Max abs difference from the baseline (softmax) or a float32 reference (linear, short sequences)."""
    from gpu_ref import kernels, reference

    if kernel == kernels.BASELINE:
        return None
    if kernel == kernels.LINEAR_KERNEL:
        if seq_len > LINEAR_CHECK_MAX_SEQ:
            return None
        ref = reference.linear_attention_causal(q[:1], k[:1], v[:1])
        return float((out[:1].float() - ref).abs().max())
    ref = kernels.torch_sdpa_flash(q, k, v, causal)
    return float((out.float() - ref.float()).abs().max())


def run_bench(out: Path, seq_lens: list[int], head_dims: list[int], causal_modes: list[bool],
              dtypes: list[str], kernel_names: list[str], tokens: int, d_model: int,
              timer: Timer, settings: dict, device: str = "cuda", time_limit_s: float | None = None,
              progress: Callable[[str], None] = print) -> dict:
    """Measure every kernel x shape x causal x dtype not already in `out`; write `out` after each."""
    import torch

    from gpu_ref import kernels, tiles
    from gpu_ref.attention_3pass import scores_bytes

    data = load_previous(out, settings)
    data.update(environment())
    done = {record_key(r) for r in data["records"]} | {record_key(r) for r in data["skipped"]}
    start = time.monotonic()
    data["complete"] = False
    jobs = [(s, c, dt, name) for dt in dtypes for s in bench_shapes(seq_lens, head_dims, tokens, d_model)
            for c in causal_modes for name in kernel_names if kernels.supports(name, c)]
    for index, (shape, causal, dtype_name, name) in enumerate(jobs, 1):
        rec = dict(kernel=name, causal=causal, dtype=dtype_name, **shape)
        if record_key(rec) in done:
            continue
        if time_limit_s is not None and time.monotonic() - start > time_limit_s:
            progress(f"time limit of {time_limit_s:.0f} s reached; stopping (rerun to resume)")
            write_json(out, data)
            return data
        b, h, n, d = shape["batch"], shape["heads"], shape["seq_len"], shape["head_dim"]
        elem = DTYPE_BYTES[dtype_name]
        if name == "attention_3pass" and device == "cuda":
            free, _ = torch.cuda.mem_get_info()
            need = scores_bytes(b, h, n, elem)
            if need > 0.5 * free:
                rec["reason"] = f"score matrix needs {need / 2**30:.1f} GiB, over half the free {free / 2**30:.1f} GiB"
                data["skipped"].append(rec)
                write_json(out, data)
                progress(f"[{index}/{len(jobs)}] skip {name} N={n} D={d} causal={causal}: {rec['reason']}")
                continue
        dtype = getattr(torch, dtype_name)
        generator = torch.Generator(device=device).manual_seed(input_seed(rec))
        q, k, v = (torch.randn(b, h, n, d, dtype=dtype, device=device, generator=generator) for _ in range(3))
        fn = kernels.KERNELS[name]
        result = fn(q, k, v, causal)  # compiles, and gives the output for the accuracy check
        rec["max_abs_err"] = _max_error(name, result, q, k, v, causal, n)
        del result
        q25, q50, q75 = timer(functools.partial(fn, q, k, v, causal))
        if name != kernels.BASELINE:
            rec["tiles"] = tiles.tiles_for(name, d)
        flops = flop_count(name, b, h, n, d, causal, tiles.tiles_for(kernels.LINEAR_KERNEL, d)["BLOCK_N"])
        nbytes = compulsory_bytes(name, b, h, n, d, causal, elem)
        rec.update(median_ms=q50, q25_ms=q25, q75_ms=q75, flops=flops, bytes=nbytes,
                   tflops=flops / (q50 * 1e-3) / 1e12, bandwidth_gbs=nbytes / (q50 * 1e-3) / 1e9)
        data["records"].append(rec)
        write_json(out, data)
        progress(f"[{index}/{len(jobs)}] {name:24s} N={n:6d} D={d:3d} causal={causal!s:5s} {dtype_name}: "
                 f"{q50:9.3f} ms  {rec['tflops']:7.1f} TFLOP/s  err={rec['max_abs_err']}")
        del q, k, v
        if device == "cuda":
            torch.cuda.empty_cache()
    data["complete"] = True
    write_json(out, data)
    return data


def summary(data: dict) -> str:
    """A text table: median ms and TFLOP/s per shape and kernel, and the 1-pass / flash speed ratio."""
    from collections import defaultdict

    rows = defaultdict(dict)
    for r in data["records"]:
        rows[(r["dtype"], r["head_dim"], r["causal"], r["seq_len"])][r["kernel"]] = r
    names = sorted({r["kernel"] for r in data["records"]})
    lines = [f"# {data.get('gpu')} driver {data.get('driver')} torch {data.get('torch')} triton {data.get('triton')}",
             "dtype     D  causal      N  " + "  ".join(f"{n[:22]:>22s}" for n in names) + "  1pass/flash speed"]
    for key in sorted(rows):
        cells = []
        for n in names:
            r = rows[key].get(n)
            cells.append(f"{r['median_ms']:9.3f}ms {r['tflops']:6.1f}TF" if r else f"{'-':>22s}")
        one, flash = rows[key].get("attention_1pass"), rows[key].get("torch_sdpa_flash")
        ratio = f"{flash['median_ms'] / one['median_ms']:.2f}x" if one and flash else "-"
        lines.append(f"{key[0]:8s} {key[1]:3d} {key[2]!s:6s} {key[3]:6d}  " + "  ".join(f"{c:>22s}" for c in cells)
                     + f"  {ratio:>8s}")
    for s in data.get("skipped", []):
        lines.append(f"skipped {s['kernel']} N={s['seq_len']} D={s['head_dim']} causal={s['causal']}: {s['reason']}")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Options of `python -m gpu_ref.bench` (argparse exits 2 with a message on a bad option)."""
    from gpu_ref.kernels import ALL_KERNELS

    p = argparse.ArgumentParser(prog="python -m gpu_ref.bench", description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("gpu_ref/results/bench.json"), help="JSON output file")
    p.add_argument("--seq-lens", type=int, nargs="+", default=list(DEFAULT_SEQ_LENS), help="sequence lengths")
    p.add_argument("--head-dims", type=int, nargs="+", default=[64, 128], choices=[64, 128], help="head dims")
    p.add_argument("--causal", choices=["both", "yes", "no"], default="both", help="causal settings to run")
    p.add_argument("--dtypes", nargs="+", default=["bfloat16"], choices=["bfloat16", "float16"], help="dtypes")
    p.add_argument("--kernels", nargs="+", default=list(ALL_KERNELS), choices=list(ALL_KERNELS), help="kernels")
    p.add_argument("--tokens", type=int, default=16384, help="batch * seq_len (batch at least 1)")
    p.add_argument("--d-model", type=int, default=2048, help="heads * head_dim")
    p.add_argument("--warmup-ms", type=float, default=25.0, help="do_bench warm-up budget (ms)")
    p.add_argument("--rep-ms", type=float, default=100.0, help="do_bench repetition budget (ms)")
    p.add_argument("--time-limit-s", type=float, default=None, help="stop starting measurements after this")
    p.add_argument("--summary", type=Path, default=None, help="print the summary of an existing JSON file and exit")
    args = p.parse_args(argv)
    for n in args.seq_lens:
        if n < 16:
            p.error(f"--seq-lens: {n} is below 16")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark (or print a file's summary); the exit status."""
    args = parse_args(argv)
    if args.summary is not None:
        try:
            data = json.loads(args.summary.read_text())
        except (OSError, json.JSONDecodeError) as err:
            print(f"gpu_ref.bench: --summary {args.summary}: cannot read a benchmark file ({err})", file=sys.stderr)
            return 2
        print(summary(data))
        return 0
    import torch

    if not torch.cuda.is_available():
        print("gpu_ref.bench: no CUDA GPU visible to torch (torch.cuda.is_available() is False)", file=sys.stderr)
        return 2
    causal_modes = {"both": [False, True], "yes": [True], "no": [False]}[args.causal]
    settings = {"tokens": args.tokens, "d_model": args.d_model, "warmup_ms": args.warmup_ms, "rep_ms": args.rep_ms,
                "timer": "triton.testing.do_bench"}
    try:
        data = run_bench(args.out, args.seq_lens, args.head_dims, causal_modes, args.dtypes, args.kernels,
                         args.tokens, args.d_model, do_bench_timer(args.warmup_ms, args.rep_ms), settings,
                         time_limit_s=args.time_limit_s)
    except BenchFileError as err:
        print(f"gpu_ref.bench: --out {err}", file=sys.stderr)
        return 2
    print(summary(data))
    return 0


if __name__ == "__main__":
    sys.exit(main())
