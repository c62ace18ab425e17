#!/usr/bin/env bash
# The whole GPU benchmark in one run on the lent H200 (device tool), well under 10 minutes.
# Runs from the repository root without installing the project (needs only torch, triton,
# numpy-free stdlib); writes JSON into $OUT (the device tool's output folder; default
# gpu_ref/results) and prints a summary. Copy the JSON into gpu_ref/results/ and commit it.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-gpu_ref/results}"
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv || true
python -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__, torch.cuda.get_device_name(0))"
# Main grid: bf16, N = 1K..32K, head dims 64 and 128, causal and not, all kernels (about 4-6 min).
python -m gpu_ref.bench --out "$OUT/h200_bf16.json" --dtypes bfloat16 --time-limit-s 330
# fp16 spot check of the same kernels at two lengths (about 1 min).
python -m gpu_ref.bench --out "$OUT/h200_fp16.json" --dtypes float16 --seq-lens 4096 16384 --time-limit-s 90
