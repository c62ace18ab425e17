"""The one local process pool of the project (the sweep's `processes` executor and every study).

`pool_map(fn, items, workers, ...)` yields `(item, fn(item))` as points finish, a few in flight
per worker (bounded memory for 10^5 points), or in the order of `items` with `ordered=True`.

Workers start from a forkserver (a clean process that imported `preload`, not a copy of the
parent) and never outlive the command:

- a worker ignores Ctrl-C (SIGINT): the parent handles it, terminates the workers and stops, so
  Ctrl-C prints one line, not a traceback per worker;
- a watchdog thread in each worker ends it (os._exit) within `WATCHDOG_S` seconds once the
  command's process is gone (kill -9 included); the forkserver and multiprocessing's resource
  tracker then see their last client go and exit too. On Linux a worker also asks the kernel
  (prctl PR_SET_PDEATHSIG) for SIGKILL when its parent process dies.
"""
from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")
IN_FLIGHT_PER_WORKER = 4
WATCHDOG_S = 1.0
_PR_SET_PDEATHSIG = 1


def free_cores() -> int:
    """Cores this process may use less the load average (at least 1)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    return max(1, cores - int(load + 0.5))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else (the pid was reused): gone for us
        return False
    return True


def _watch(owner: int) -> None:
    while True:
        time.sleep(WATCHDOG_S)
        if not _alive(owner):
            os._exit(1)


def _start_worker(owner: int, initializer: Callable[..., None] | None, initargs: tuple) -> None:
    """Initializer of every worker: ignore SIGINT, die with the owner, then the caller's initializer."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):
            pass
    threading.Thread(target=_watch, args=(owner,), daemon=True, name="cascadesim-watchdog").start()
    if initializer is not None:
        initializer(*initargs)


def _context(preload: list[str]) -> multiprocessing.context.BaseContext:
    method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
    ctx = multiprocessing.get_context(method)
    if method == "forkserver" and preload:
        ctx.set_forkserver_preload(preload)
    return ctx


def _stop(pool: ProcessPoolExecutor, interrupted: bool) -> None:
    if interrupted:  # Ctrl-C or an error in the parent: do not wait for running points
        for process in list((getattr(pool, "_processes", None) or {}).values()):
            process.terminate()
    pool.shutdown(wait=True, cancel_futures=True)


def pool_map(fn: Callable[[T], R], items: Iterable[T], workers: int, initializer: Callable[..., None] | None = None,
             initargs: tuple = (), preload: list[str] | None = None, ordered: bool = False) -> Iterator[tuple[T, R]]:
    """(item, fn(item)) for every item on `workers` processes, in completion order (or in the order
    of `items` with `ordered`). `fn` and `initializer` must be importable module-level functions."""
    items = list(items)
    if not items:
        return
    pool = ProcessPoolExecutor(min(workers, len(items)), mp_context=_context(preload or []),
                               initializer=_start_worker, initargs=(os.getpid(), initializer, initargs))
    interrupted = True
    try:
        todo = iter(enumerate(items))
        running: dict[Any, int] = {}
        for i, item in todo:
            running[pool.submit(fn, item)] = i
            if len(running) >= workers * IN_FLIGHT_PER_WORKER:
                break
        finished: dict[int, R] = {}
        next_out = 0
        while running:
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for f in sorted(done, key=running.__getitem__):
                i = running.pop(f)
                nxt = next(todo, None)
                if nxt is not None:
                    running[pool.submit(fn, nxt[1])] = nxt[0]
                if not ordered:
                    yield items[i], f.result()
                    continue
                finished[i] = f.result()
                while next_out in finished:
                    yield items[next_out], finished.pop(next_out)
                    next_out += 1
        interrupted = False
    finally:
        _stop(pool, interrupted)
