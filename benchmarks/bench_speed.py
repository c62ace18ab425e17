"""Speed benchmarks of issue 15, printed as measured ratios against their targets (`make bench`).

1. the cold FuseMax-vs-FLAT study (a fresh process, an empty output folder) with 1 and 2
   workers: wall and CPU seconds against the 10 s target, the load average, and the ratio;
2. one point at 1K and at 1M (FuseMax, and the other configurations for reference): best of 3
   in a warm process with the simulation memo emptied first, against 50 ms;
3. exact mode (every tile simulated, a fresh process each): one head at 64K and 256K, and all
   heads of BERT at 64K with `--full` (minutes); seconds, microseconds per op instance and peak
   resident memory, against the simpy reference engine on the one-head 64K schedule;
4. `Cascade.evaluate` of attention_1pass at M = P = 4096, E = F = 64, M0 = 256 against a plain
   numpy softmax attention and torch's scaled_dot_product_attention (fp64, CPU);
5. the systolic mode against SCALE-Sim on one GEMM, when `make validate` has installed SCALE-Sim
   into benchmarks/peers/.venv (otherwise a line says it was skipped).

On a shared machine wall times vary with the load: CPU times are printed beside them.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

STUDY_TARGET_S = 10.0
POINT_TARGET_S = 0.050
EVAL_TARGET_RATIO = 2.0
REPEATS = 3

EXACT_CHILD = """
import dataclasses, json, resource, sys, time
from archsim.config import load_architecture
from archsim.engine import simulate, simulate_exact_simpy
from mappings import get_mapping
from mappings.workload import make_workload
length, heads, engine = int(sys.argv[1]), sys.argv[2], sys.argv[3]
w = make_workload("BERT", length)
if heads == "one":
    w = dataclasses.replace(w, B=1, H=1)
m = get_mapping("fusemax"); arch = load_architecture(m.default_arch); s = m.schedule(w, arch)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t = time.perf_counter(); c = time.process_time()
cycles, _ = simulate_exact_simpy(s, arch) if engine == "simpy" else simulate(s, arch, "exact")
print(json.dumps({"wall": time.perf_counter() - t, "cpu": time.process_time() - c, "cycles": cycles,
                  "instances": sum(s.blocks * g.iterations * len(g.ops) for g in s.segments),
                  "rss_before_kb": before, "rss_peak_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


# The study in a fresh process. The pool's workers are children of the forkserver, which this process
# never waits for, so their CPU time is not in RUSAGE_CHILDREN: it is read from the forkserver's
# /proc entry (its own and its reaped children's ticks) before this process exits.
STUDY_CHILD = """
import json, os, sys
from studies.cli import main
rc = main(sys.argv[1:])
import multiprocessing.forkserver as fs
pid, ticks = getattr(fs._forkserver, "_forkserver_pid", None), 0
if pid:
    with open(f"/proc/{pid}/stat") as f:
        ticks = sum(int(x) for x in f.read().rsplit(")", 1)[1].split()[11:15])
print(json.dumps({"pool_cpu": ticks / os.sysconf("SC_CLK_TCK")}))
sys.exit(rc)
"""


def _child(args: list[str], code: str | None = None) -> tuple[float, float, str]:
    """(wall s, CPU s of the child, stdout) of a fresh Python process in the project root."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    cmd = [sys.executable, "-c", code, *args] if code else [sys.executable, *args]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, proc.stdout


def bench_cold_study() -> None:
    """The cold study with --workers 1 and 2 (CPU includes the workers'), and the load it ran under."""
    walls = {}
    for workers in (1, 2):
        load = os.getloadavg()[0]
        with tempfile.TemporaryDirectory() as d:
            wall, cpu, stdout = _child(["study", "fusemax-vs-flat", "--workers", str(workers), "--out", d],
                                       STUDY_CHILD)
        cpu += json.loads(stdout.splitlines()[-1])["pool_cpu"]
        walls[workers] = wall
        print(f"cold study fusemax-vs-flat, --workers {workers}: {wall:.2f} s wall, {cpu:.2f} s CPU, "
              f"load average {load:.1f} on {os.cpu_count()} cores (target {STUDY_TARGET_S:.0f} s: ratio "
              f"{wall / STUDY_TARGET_S:.2f} wall, {cpu / STUDY_TARGET_S:.2f} CPU)")
    print(f"cold study, 2 workers / 1 worker: {walls[2] / walls[1]:.2f} in wall time")


def bench_points() -> None:
    from archsim import engine
    from studies.fusemax_vs_flat import CONFIGS, attention_point

    attention_point("BERT", "1K", "fusemax")  # imports, parsed cascades, data files
    best, cpu = {}, {}
    for _ in range(REPEATS):
        for length in ("1K", "1M"):
            for config in CONFIGS:
                engine.clear_memo()
                t, c = time.perf_counter(), time.process_time()
                attention_point("BERT", length, config)
                key = (length, config)
                best[key] = min(best.get(key, float("inf")), time.perf_counter() - t)
                cpu[key] = min(cpu.get(key, float("inf")), time.process_time() - c)
    for length in ("1K", "1M"):
        fm, fm_cpu = best[(length, "fusemax")], cpu[(length, "fusemax")]
        others = ", ".join(f"{c} {1000 * best[(length, c)]:.1f}" for c in CONFIGS if c != "fusemax")
        print(f"one FuseMax point BERT {length}: {1000 * fm:.1f} ms wall, {1000 * fm_cpu:.1f} ms CPU "
              f"(target {1000 * POINT_TARGET_S:.0f} ms: ratio {fm / POINT_TARGET_S:.2f} wall, "
              f"{fm_cpu / POINT_TARGET_S:.2f} CPU; best of {REPEATS}, memo emptied; other configurations, "
              f"ms wall: {others})")
    print(f"simulation time 1M / 1K (FuseMax): {best[('1M', 'fusemax')] / best[('1K', 'fusemax')]:.2f} wall, "
          f"{cpu[('1M', 'fusemax')] / cpu[('1K', 'fusemax')]:.2f} CPU")


def bench_exact(full: bool) -> None:
    cases = [("65536", "one", "streamed"), ("65536", "one", "simpy"), ("262144", "one", "streamed")]
    if full:
        cases.append(("65536", "all", "streamed"))
    results = {}
    for length, heads, engine in cases:
        _, _, out = _child([length, heads, engine], EXACT_CHILD)
        r = json.loads(out)
        results[(length, heads, engine)] = r
        grown = (r["rss_peak_kb"] - r["rss_before_kb"]) / 1024
        print(f"exact mode FuseMax {int(length) // 1024}K, {'one head' if heads == 'one' else 'all heads of BERT'}, "
              f"{engine} engine: {r['wall']:.2f} s wall, {r['cpu']:.2f} s CPU, {r['instances']} op instances "
              f"({1e6 * r['cpu'] / r['instances']:.1f} us CPU each), peak RSS {r['rss_peak_kb'] / 1024:.0f} MB "
              f"(+{grown:.0f} MB during the run)")
    a, b = results[("65536", "one", "simpy")], results[("65536", "one", "streamed")]
    print(f"exact mode 64K one head: simpy reference / streamed engine CPU time = {a['cpu'] / b['cpu']:.2f}; "
          f"same cycles: {a['cycles'] == b['cycles']}")


def bench_evaluate() -> None:
    import numpy as np

    import einsum_cascade as ec

    rng = np.random.default_rng(0)
    e = f = 64
    n = 4096
    q, k, v = rng.standard_normal((e, n)), rng.standard_normal((e, n)), rng.standard_normal((f, n))
    cascade = ec.load_library("attention_1pass")

    def ours():
        return cascade.evaluate({"Q": q, "K": k, "V": v}, {"M0": 256})["AV"]

    def plain():
        s = k.T @ q
        w = np.exp(s - s.max(0))
        return v @ (w / w.sum(0))

    timings = {"evaluate": ours, "numpy": plain}
    try:
        import torch

        tq, tk, tv = (torch.from_numpy(x.T.copy())[None] for x in (q, k, v))  # (1, tokens, dim) fp64

        def sdpa():
            return torch.nn.functional.scaled_dot_product_attention(tq, tk, tv, scale=1.0)[0].T.numpy()
        timings["torch sdpa"] = sdpa
    except ImportError:
        print("evaluate vs torch: skipped (torch is not installed)")
    best, cpu, outs = {}, {}, {}
    for _ in range(REPEATS):
        for name, fn in timings.items():
            t, c = time.perf_counter(), time.process_time()
            outs[name] = fn()
            best[name] = min(best.get(name, float("inf")), time.perf_counter() - t)
            cpu[name] = min(cpu.get(name, float("inf")), time.process_time() - c)
    ref = outs["numpy"]
    errors = ", ".join(f"{name} {np.max(np.abs(o - ref)) / np.max(np.abs(ref)):.1e}" for name, o in outs.items()
                       if name != "numpy")
    line = (f"evaluate attention_1pass M=P=4096 E=F=64 M0=256 (fp64): {best['evaluate']:.3f} s wall "
            f"({cpu['evaluate']:.3f} s CPU); numpy {best['numpy']:.3f} s ({cpu['numpy']:.3f} s CPU): ratio "
            f"{best['evaluate'] / best['numpy']:.2f} wall, {cpu['evaluate'] / cpu['numpy']:.2f} CPU "
            f"(target <= {EVAL_TARGET_RATIO:.0f})")
    if "torch sdpa" in best:
        line += (f"; torch SDPA {best['torch sdpa']:.3f} s ({cpu['torch sdpa']:.3f} s CPU): ratio "
                 f"{best['evaluate'] / best['torch sdpa']:.2f} wall, {cpu['evaluate'] / cpu['torch sdpa']:.2f} CPU")
    print(line + f"; best of {REPEATS}; max rel difference from numpy: {errors}")


def bench_scalesim() -> None:
    from benchmarks.peers import scalesim_check as peer

    py = peer.VENV / "bin" / "python"
    ok = py.exists() and subprocess.run([str(py), "-c", "import scalesim.scale_sim"], capture_output=True,
                                        check=False).returncode == 0
    if not ok:
        print(f"systolic mode vs SCALE-Sim: skipped (no SCALE-Sim in {peer.VENV.relative_to(ROOT)}; "
              "`make validate` installs it)")
        return
    from archsim.config import load_architecture
    from archsim.result import run
    from mappings.gemm import gemm_schedule

    M, N, K, d, df = 4096, 64, 4096, 256, "os"
    start = time.perf_counter()
    (theirs, _), = peer.run_scalesim(py, d, df, [(M, N, K)])
    scalesim_s = time.perf_counter() - start
    arch = load_architecture("fusemax-template", {"d": d})
    start = time.perf_counter()
    ours = run(gemm_schedule("g", M, N, K, arch, timing="systolic", dataflow=df), arch, "exact")
    ours_s = time.perf_counter() - start
    print(f"systolic mode vs SCALE-Sim, GEMM {M}x{N}x{K} on {d}x{d} ({df}): SCALE-Sim {scalesim_s:.1f} s "
          f"(whole process), archsim {ours_s:.3f} s exact: {scalesim_s / ours_s:.0f}x; "
          f"compute cycles SCALE-Sim {theirs}, archsim run {ours.cycles:.0f} (with its DRAM traffic)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="also exact mode on all heads of BERT at 64K (minutes)")
    args = parser.parse_args()
    bench_cold_study()
    bench_points()
    bench_exact(args.full)
    bench_evaluate()
    bench_scalesim()


if __name__ == "__main__":
    main()
