"""Executors of a sweep: run `simulate_point` on many points and yield rows as they finish.

- `serial`: one after the other in this process;
- `processes`: a local process pool of `workers` (the default when more than one core is free);
- `dask`: tasks on a dask.distributed cluster, a LocalCluster of `workers` processes or, with
  `scheduler` ("tcp://host:port"), an existing one whose workers have cascadesim installed.

Points are submitted a few per worker at a time (bounded memory for 10^5 points). The files of
the sweep (architecture and cascade texts) go to each worker once. Rows arrive in completion
order; the caller orders them.
"""
from __future__ import annotations

import logging
import multiprocessing
import os
import re
import signal
import socket
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

from studies.errors import UsageError
from studies.sweep.point import install_context, simulate_point

EXECUTORS = ("serial", "processes", "dask")
IN_FLIGHT_PER_WORKER = 4


def free_cores() -> int:
    """Cores this process may use less the load average (at least 1)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    return max(1, cores - int(load + 0.5))


def default_executor() -> tuple[str, int]:
    """("processes", free cores) when more than one core is free, else ("serial", 1)."""
    free = free_cores()
    return ("processes", free) if free > 1 else ("serial", 1)


def _init_worker(context: dict) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and stops the pool
    install_context(context)


def _serial(points: list[dict], context: dict) -> Iterator[tuple[dict, dict]]:
    for p in points:
        yield p, simulate_point(p, context)


def _processes(points: list[dict], context: dict, workers: int) -> Iterator[tuple[dict, dict]]:
    method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
    ctx = multiprocessing.get_context(method)
    if method == "forkserver":
        ctx.set_forkserver_preload(["studies.sweep.point"])
    pool = ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker, initargs=(context,))
    try:
        todo = iter(points)
        running = {}
        for p in todo:
            running[pool.submit(simulate_point, p)] = p
            if len(running) >= workers * IN_FLIGHT_PER_WORKER:
                break
        while running:
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for f in sorted(done, key=lambda f: running[f]["index"]):
                p = running.pop(f)
                nxt = next(todo, None)
                if nxt is not None:
                    running[pool.submit(simulate_point, nxt)] = nxt
                yield p, f.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _check_reachable(address: str) -> None:
    """Fail fast (UsageError) when nothing listens at a tcp://host:port scheduler address."""
    match = re.fullmatch(r"(?:tcp://)?\[?([^\]/]+?)\]?:(\d+)", address.strip())
    if match is None:
        if not re.fullmatch(r"\w+://.+", address.strip()):
            raise UsageError(f"--scheduler: expected an address like tcp://host:8786, got {address!r}")
        return  # another protocol (tls://, ucx://): left to dask
    try:
        socket.create_connection((match.group(1), int(match.group(2))), timeout=10).close()
    except OSError as err:
        raise UsageError(f"--scheduler: cannot connect to {address}: {err.strerror or err}") from None


def _check_same_model(client) -> None:
    """Refuse a cluster whose workers run another version of the model (their rows would be
    journalled as this version's)."""
    from studies.sweep.journal import sweep_fingerprint
    mine = sweep_fingerprint()
    for worker, theirs in sorted(client.run(sweep_fingerprint).items()):
        if theirs != mine:
            raise UsageError(f"--scheduler: worker {worker} runs a different cascadesim model (fingerprint "
                             f"{theirs}, here {mine}): install the same version on every worker")


def _dask(points: list[dict], context: dict, workers: int, scheduler: str | None) -> Iterator[tuple[dict, dict]]:
    try:
        from dask.distributed import Client, LocalCluster, as_completed
    except ImportError:
        raise UsageError("--executor dask: dask.distributed is not installed "
                         "(pip install 'cascadesim[dse]')") from None
    cluster = None
    try:
        if scheduler:
            try:
                client = Client(scheduler, timeout="20s")
            except (OSError, TimeoutError, ValueError) as err:
                raise UsageError(f"--scheduler: cannot connect to {scheduler}: {err}") from None
        else:
            cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                   dashboard_address=None, silence_logs=logging.ERROR)
            client = Client(cluster)
        with client:
            _check_same_model(client)
            shared = client.scatter(context, broadcast=True, hash=False)
            slots = max(1, sum(client.nthreads().values())) * IN_FLIGHT_PER_WORKER
            todo = iter(points)
            of = {}

            def submit(p: dict):
                f = client.submit(simulate_point, p, shared, pure=False)
                of[f.key] = p
                return f
            queue = as_completed([submit(p) for _, p in zip(range(slots), todo)])
            for f in queue:
                p = of.pop(f.key)
                nxt = next(todo, None)
                if nxt is not None:
                    queue.add(submit(nxt))
                row = f.result()
                f.release()
                yield p, row
    finally:
        if cluster is not None:
            try:
                cluster.close()
            except Exception:  # noqa: BLE001 - closing a cluster interrupted while it started
                pass


def iter_rows(points: list[dict], context: dict, executor: str = "serial", workers: int = 1,
              scheduler: str | None = None) -> Iterator[tuple[dict, dict]]:
    """(point, row) of every point, in completion order, on `executor` with `workers` workers."""
    if executor not in EXECUTORS:
        raise UsageError(f"--executor: unknown executor {executor!r} (one of {', '.join(EXECUTORS)})")
    if workers < 1:
        raise UsageError(f"--workers: must be at least 1, got {workers}")
    if scheduler and executor != "dask":
        raise UsageError("--scheduler: only with --executor dask")
    if not points:
        return iter(())
    if scheduler:
        _check_reachable(scheduler)
    if executor == "serial":
        return _serial(points, context)
    if executor == "processes":
        return _processes(points, context, workers)
    return _dask(points, context, workers, scheduler)
