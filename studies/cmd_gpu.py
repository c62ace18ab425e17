"""`cascadesim gpu bench`: run the Triton kernels' GPU benchmark (gpu_ref.bench) from the CLI.

Imports torch and the kernels lazily (gpu_ref.bench itself needs only the standard library): the
rest of the command line works without torch or triton, and this command says clearly what is
missing (torch, triton or a CUDA GPU).
"""
from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

from gpu_ref.bench import DEFAULT_SEQ_LENS  # the harness module itself needs only the standard library
from studies.errors import UsageError


def _require_gpu_stack() -> None:
    """Raise UsageError naming what is missing: torch, triton or a CUDA GPU."""
    for module in ("torch", "triton"):
        if importlib.util.find_spec(module) is None:
            raise UsageError(f"gpu bench: {module} is not installed (install the project's `gpu` extra)")
    import torch

    if not torch.cuda.is_available():
        raise UsageError("gpu bench: no CUDA GPU is visible to torch (torch.cuda.is_available() is False); "
                         "the benchmark needs one. On a GPU machine run gpu_ref/run_device.sh.")


def run_bench(args: argparse.Namespace) -> int:
    """`cascadesim gpu bench`: gpu_ref.bench with these options; its exit status."""
    _require_gpu_stack()
    from gpu_ref import bench

    argv = ["--out", str(args.out), "--seq-lens", *map(str, args.seq_lens), "--head-dims", *map(str, args.head_dims),
            "--causal", args.causal, "--dtypes", *args.dtypes, "--warmup-ms", str(args.warmup_ms),
            "--rep-ms", str(args.rep_ms)]
    if args.kernels:
        argv += ["--kernels", *args.kernels]
    if args.time_limit_s is not None:
        argv += ["--time-limit-s", str(args.time_limit_s)]
    return bench.main(argv)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `cascadesim gpu bench`."""
    parser = subparsers.add_parser("gpu", help="GPU reference kernels: benchmark them")
    commands = parser.add_subparsers(dest="gpu_command", required=True)
    bench = commands.add_parser("bench", help="time every Triton kernel and torch flash attention on the GPU")
    bench.add_argument("--shapes", dest="seq_lens", type=int, nargs="+",
                       default=list(DEFAULT_SEQ_LENS), metavar="N", help="sequence lengths")
    bench.add_argument("--head-dims", type=int, nargs="+", default=[64, 128], choices=[64, 128], help="head dims")
    bench.add_argument("--causal", choices=["both", "yes", "no"], default="both", help="causal settings")
    bench.add_argument("--dtypes", nargs="+", default=["bfloat16"], choices=["bfloat16", "float16"], help="dtypes")
    bench.add_argument("--kernels", nargs="+", default=None, help="kernels (default: all)")
    bench.add_argument("--warmup-ms", type=float, default=25.0, help="do_bench warm-up budget (ms)")
    bench.add_argument("--rep-ms", type=float, default=100.0, help="do_bench repetition budget (ms)")
    bench.add_argument("--time-limit-s", type=float, default=None, help="stop starting measurements after this")
    bench.add_argument("--out", type=Path, default=Path("gpu_ref/results/bench.json"), help="JSON output file")
    bench.set_defaults(func=run_bench)
