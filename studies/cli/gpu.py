"""`cascadesim gpu predict` (the GPU model) and `cascadesim gpu bench` (gpu_ref's benchmark).

`gpu predict` prints the model's forward time of one attention call (mappings/gpu_predict.py).
`gpu bench` imports torch and the kernels lazily (gpu_ref.bench itself needs only the standard library): the
rest of the command line works without torch or triton, and this command says clearly what is
missing (torch, triton or a CUDA GPU).
"""
from __future__ import annotations

import argparse
import importlib.util
import json
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


def _positive_int(text: str) -> int:
    """argparse type: a positive integer (suffixes K = 1024, M = 1024^2, G = 1024^3 accepted)."""
    from einsum_cascade.size_text import SizeTextError, parse_size
    try:
        return parse_size(text)
    except SizeTextError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None


def run_predict(args: argparse.Namespace) -> int:
    """`cascadesim gpu predict`: the model's forward time, TFLOP/s and bound of one call."""
    from mappings.gpu_kernels import AttentionShape
    from mappings.gpu_predict import predict

    q = args.seq_len_q or args.seq_len
    kv = args.seq_len_kv or args.seq_len
    if q is None or kv is None:
        raise UsageError("gpu predict: give --seq-len (both lengths) or --seq-len-q and --seq-len-kv")
    shape = AttentionShape(args.batch, args.heads, q, args.head_dim, args.causal, kv_heads=args.kv_heads,
                           seq_len_kv=kv, head_dim_v=args.head_dim_v, window=args.window, page_size=args.page_size,
                           shared_kv=args.shared_kv)
    p = predict(args.gpu, args.kernel, shape, args.dtype, clock_hz=args.clock_mhz * 1e6 if args.clock_mhz else None)
    if args.json:
        print(json.dumps(p.as_dict(), indent=1))
        return 0
    kvh = f"/{shape.hkv}" if shape.hkv != shape.heads else ""
    print(f"{p.kernel} on {p.gpu} ({p.instruction}), {p.dtype}, B={shape.batch} H={shape.heads}{kvh} P={shape.q_len} "
          f"M={shape.kv_len} D={shape.head_dim}{'/' + str(shape.dv) if shape.dv != shape.head_dim else ''}"
          f"{' causal' if shape.causal else ''}{f' window={shape.window}' if shape.window is not None else ''}")
    print(f"time_s  {p.time_s:.6g}")
    print(f"TFLOP/s {p.tflops:.4g}  ({p.flops:.4g} FLOPs)")
    print(f"bound   {p.bound}")
    for t in p.launches:
        print(f"  launch {t.name}: {t.total_s:.6g} s (compute {t.compute_s:.3g}, memory {t.memory_s:.3g}, "
              f"fixed {t.launch_s:.3g}; {t.bound})")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `cascadesim gpu predict` and `cascadesim gpu bench`."""
    parser = subparsers.add_parser("gpu", help="GPU model predictions; GPU reference kernels' benchmark")
    commands = parser.add_subparsers(dest="gpu_command", required=True)
    pred = commands.add_parser("predict", help="predicted forward time of one attention call on a GPU")
    pred.add_argument("--gpu", required=True, help="GPU: a name in archsim/configs/gpus/ (a100, h100-sxm, h200, b200, "
                      "rtx-4090, l40s, mi300x, ...) or a YAML file")
    pred.add_argument("--kernel", required=True,
                      help="kernel profile: a name in archsim/configs/gpu-kernels/ (flash2, flash3, flash4, "
                           "flash-decoding, trtllm-gen-mla, fla-chunk-gdn, mamba2-ssd-triton, flex-attention, ...) "
                           "or a YAML file")
    pred.add_argument("--batch", type=_positive_int, required=True, help="batch size B")
    pred.add_argument("--heads", type=_positive_int, required=True, help="query heads H")
    pred.add_argument("--kv-heads", type=_positive_int, default=None, help="K/V heads (GQA/MQA; default: --heads)")
    pred.add_argument("--seq-len", type=_positive_int, default=None, help="query and key length N (4K = 4096)")
    pred.add_argument("--seq-len-q", type=_positive_int, default=None, help="query length P (1: decode)")
    pred.add_argument("--seq-len-kv", type=_positive_int, default=None, help="key length M")
    pred.add_argument("--head-dim", type=_positive_int, required=True, help="head dim D")
    pred.add_argument("--head-dim-v", type=_positive_int, default=None, help="value head dim (default: --head-dim)")
    pred.add_argument("--window", type=_positive_int, default=None, help="sliding window: keys visible left of a query")
    pred.add_argument("--page-size", type=_positive_int, default=None, help="paged KV cache: tokens per page")
    pred.add_argument("--shared-kv", action="store_true", help="MLA: V is part of the latent K (read once)")
    pred.add_argument("--causal", action="store_true", help="causal mask (FLOPs halved)")
    pred.add_argument("--dtype", default="bf16", help="bf16 (default), fp16 or fp8")
    pred.add_argument("--clock-mhz", type=float, default=None, help="SM clock if not the GPU file's (MHz)")
    pred.add_argument("--json", action="store_true", help="print a JSON object")
    pred.set_defaults(func=run_predict)
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
