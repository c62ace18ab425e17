"""Executors of a sweep: run `simulate_point` on many points and yield rows as they finish.

- `serial`: one after the other in this process;
- `processes`: the project's local process pool (studies.sweep.pool) of `workers` (the default
  when more than one core is free);
- `dask`: tasks on a dask.distributed cluster, a LocalCluster of `workers` processes or, with
  `scheduler` ("tcp://host:port"), an existing one whose workers have cascadesim installed.

Points are submitted a few per worker at a time (bounded memory for 10^5 points). The files of
the sweep (architecture and cascade texts) go to each worker once. Rows arrive in completion
order; the caller orders them.
"""
from __future__ import annotations

import logging
import re
import signal
import socket
import warnings
from collections.abc import Iterator

from studies.errors import UsageError
from studies.sweep.point import install_context, simulate_point
from studies.sweep.pool import IN_FLIGHT_PER_WORKER, free_cores, pool_map

EXECUTORS = ("serial", "processes", "dask")
__all__ = ["EXECUTORS", "default_executor", "free_cores", "iter_rows"]


def default_executor() -> tuple[str, int]:
    """("processes", free cores) when more than one core is free, else ("serial", 1)."""
    free = free_cores()
    return ("processes", free) if free > 1 else ("serial", 1)


def _serial(points: list[dict], context: dict) -> Iterator[tuple[dict, dict]]:
    for p in points:
        yield p, simulate_point(p, context)


def _processes(points: list[dict], context: dict, workers: int) -> Iterator[tuple[dict, dict]]:
    return pool_map(simulate_point, points, workers, initializer=install_context, initargs=(context,),
                    preload=["studies.sweep.point"])


SCHEDULER = re.compile(r"(?:tcp://)?(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9][A-Za-z0-9.-]*):(\d{1,5})")


def check_scheduler_address(address: str) -> tuple[str, int]:
    """(host, port) of a `tcp://host:port` (or `host:port`) Dask scheduler address; UsageError
    naming --scheduler for anything else (tls:// and ucx:// need settings this command does not
    take: connect from Python with dask's own Security or UCX configuration)."""
    text = address.strip()
    scheme = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*)://", text)
    if scheme and scheme.group(1) != "tcp":
        raise UsageError(f"--scheduler: {scheme.group(1)}:// addresses are not supported (they need TLS "
                         "certificates or UCX settings); give tcp://host:port")
    match = SCHEDULER.fullmatch(text)
    if match is None or not 0 < int(match.group(2)) < 65536:
        raise UsageError(f"--scheduler: expected an address like tcp://host:8786, got {address!r}")
    return match.group(1).strip("[]"), int(match.group(2))


def _check_reachable(address: str) -> None:
    """Fail fast (UsageError) when nothing listens at a tcp://host:port scheduler address."""
    host, port = check_scheduler_address(address)
    try:
        socket.create_connection((host, port), timeout=10).close()
    except OSError as err:
        raise UsageError(f"--scheduler: cannot connect to {address}: {err.strerror or err}") from None


def _check_same_model(client) -> None:
    """Refuse a cluster whose workers run another version of the model (their rows would be
    journalled as this version's)."""
    from studies.sweep.point import sweep_fingerprint
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
            except Exception as err:  # noqa: BLE001 - anything but a Dask scheduler there (an HTTP server, ...)
                raise UsageError(f"--scheduler: no Dask scheduler answers at {scheduler} "
                                 f"({type(err).__name__}: {str(err).splitlines()[0] if str(err) else 'no reply'})") \
                    from None
        else:
            # the workers start with Ctrl-C ignored (inherited): the client stops them, they print nothing
            previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", UserWarning)  # "port 8787 is already in use" and the like
                    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                           dashboard_address=None, silence_logs=logging.CRITICAL)
            finally:
                signal.signal(signal.SIGINT, previous)
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
