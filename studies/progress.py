"""Progress display for long loops: a tqdm bar on a terminal, plain lines in a log.

On a terminal this is tqdm (cleared when done, so the next message starts on a clean line). When
stderr is not a terminal (a log file, CI, a pipe) tqdm's carriage-return updates would pile up
into one long line; instead one line `desc: i/n (elapsed s)` is written at the start, then at
most every `LOG_EVERY_S` seconds, and at the end, each ending in a newline.
"""
from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")
LOG_EVERY_S = 10.0


def progress(iterable: Iterable[T], desc: str = "", total: int | None = None, disable: bool = False,
             leave: bool = False) -> Iterator[T]:
    """Iterate over `iterable` showing progress on stderr (tqdm on a terminal, lines otherwise)."""
    if total is None:
        try:
            total = len(iterable)  # type: ignore[arg-type]
        except TypeError:
            total = None
    if disable:
        yield from iterable
        return
    if sys.stderr.isatty():
        from tqdm import tqdm

        yield from tqdm(iterable, desc=desc, total=total, leave=leave)
        return
    yield from _log_lines(iterable, desc, total)


def _log_lines(iterable: Iterable[T], desc: str, total: int | None) -> Iterator[T]:
    start = last = time.monotonic()
    of = f"/{total}" if total is not None else ""
    print(f"{desc}: 0{of}", file=sys.stderr, flush=True)
    done = 0
    for item in iterable:
        yield item
        done += 1
        now = time.monotonic()
        if now - last >= LOG_EVERY_S and (total is None or done < total):
            print(f"{desc}: {done}{of} ({now - start:.0f} s)", file=sys.stderr, flush=True)
            last = now
    print(f"{desc}: {done}{of} done ({time.monotonic() - start:.0f} s)", file=sys.stderr, flush=True)
