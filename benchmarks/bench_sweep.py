"""Sweep speed: a 200-point sweep with 1 and 2 process workers (printed ratio), and the per-point
overhead of the Dask executor (a LocalCluster of 2 processes) against the process pool.

The points are attention_1pass on fusemax-template, each mapped by the mapper (`mapping: auto`, tens
to hundreds of ms a point, as in a real design-space sweep): 4 array sizes d x 5 DRAM bandwidths x
5 sequence lengths x 2 head counts. Each run writes into a fresh folder (no journal to resume from).
"""
from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from studies.sweep import run

SPEC = {
    "name": "bench",
    "arch": "fusemax-template",
    "cascades": ["attention_1pass"],
    "mapping": "auto",
    "sizes": {"M": [1024, 2048, 4096, 8192, 16384], "P": "same-as-M", "E": 64, "F": 64},
    "heads": [1, 12],
    "vary": {"d": {"from": 32, "to": 256, "times": 2},
             "dram.bandwidth_bytes_per_s": {"from": 1.0e11, "to": 1.6e12, "times": 2}},
}


def timed(executor: str, workers: int) -> float:
    with tempfile.TemporaryDirectory() as d:
        t = time.perf_counter()
        table = run(SPEC, Path(d), executor=executor, workers=workers, progress=False)
        elapsed = time.perf_counter() - t
    assert len(table) == 200, len(table)
    return elapsed


def cluster_start_s() -> float:
    """Wall time to start and stop a 2-process LocalCluster with a client (no work)."""
    from dask.distributed import Client, LocalCluster
    t = time.perf_counter()
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        with Client(cluster):
            pass
    return time.perf_counter() - t


def main() -> None:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"{cores} cores, load average {os.getloadavg()[0]:.1f} at the start (a busy machine cannot scale)")
    serial = timed("serial", 1)
    one = timed("processes", 1)
    two = timed("processes", 2)
    print(f"200-point sweep: serial {serial:.1f} s, processes x1 {one:.1f} s, x2 {two:.1f} s; "
          f"speed-up of 2 workers over 1: {one / two:.2f}x (ideal 2 on 2 free cores)")
    try:
        start = cluster_start_s()
    except ImportError:
        print("dask.distributed is not installed (pip install 'cascadesim[dask]'): Dask overhead not measured")
        return
    dask = timed("dask", 2)
    per_point_ms = 1000 * (dask - start - two) / 200
    print(f"dask x2: {dask:.1f} s including {start:.1f} s to start and stop the LocalCluster; "
          f"per-point overhead over processes x2: {per_point_ms:.1f} ms "
          f"({per_point_ms / (1000 * two / 200):.2f}x the pool's wall time per point)")


if __name__ == "__main__":
    main()
