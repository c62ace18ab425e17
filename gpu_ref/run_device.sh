#!/usr/bin/env bash
# The GPU benchmark on the lent GPU (device tool), each part well under 10 minutes:
#   run_device.sh [attention|generated|all]   (default: attention)
# attention: gpu_ref's hand-written kernels and torch SDPA (gpu_ref.bench);
# generated: the kernels `cascadesim kernel` generates (gpu_ref.bench_generated) against the
#            hand-written 1-pass kernel, torch SDPA and FlexAttention on the same masks;
#            the modules are generated there and then (never committed); where the generator's
#            packages (the core install) are missing on that machine, run
#            `python -m gpu_ref.bench_generated --write-modules` here first and carry build/gpu-kernels;
# all: both (about 10 minutes: prefer two calls).
# Runs from the repository root without installing the project (needs torch, triton and the
# project's pure-Python packages on PYTHONPATH); writes JSON (GPU name, date, versions,
# records) into $OUT (the device tool's output folder; default gpu_ref/results) and prints a
# summary. Copy the JSON into gpu_ref/results/ and commit it.
set -euo pipefail
cd "$(dirname "$0")/.."
MODE="${1:-attention}"
case "$MODE" in attention|generated|all) ;; *) echo "usage: $0 [attention|generated|all]" >&2; exit 2;; esac
OUT="${OUT:-gpu_ref/results}"
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv || true
python -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__, torch.cuda.get_device_name(0))"
if [ "$MODE" != generated ]; then
  # Main grid: bf16, N = 1K..32K, head dims 64 and 128, causal and not, all kernels (about 4-6 min).
  python -m gpu_ref.bench --out "$OUT/h200_bf16.json" --dtypes bfloat16 --time-limit-s 330
  # fp16 spot check of the same kernels at two lengths (about 1 min).
  python -m gpu_ref.bench --out "$OUT/h200_fp16.json" --dtypes float16 --seq-lens 4096 16384 --time-limit-s 90
fi
if [ "$MODE" != attention ]; then
  # Generated kernels (the JSON names the GPU): dense, causal, sliding window, sinks, ALiBi, softmax-one at 4K-16K, head
  # dims 64 and 128, bf16 (the compiles of FlexAttention and the generated kernels included:
  # about 4-6 min).
  python -m gpu_ref.bench_generated --out "$OUT/generated_bf16.json" --dtype bfloat16 --time-limit-s 300
fi
