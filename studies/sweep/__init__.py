"""Design-space sweeps: `run(spec, out, executor=...)` -> the results table (a pandas DataFrame).

A sweep expands its spec (studies.sweep.spec) into points, evaluates the points not yet in the
journal `out/journal.jsonl` on an executor (studies.sweep.exec), appends each finished point to
the journal (fsync'd) as it arrives, and finally writes results.parquet, results.csv, pareto.png
and report.md (studies.sweep.output). A sweep interrupted at any moment and run again computes
only the points missing from the journal; the final files depend only on the spec and the rows,
never on the executor, the number of workers or the order in which points finished.
"""
from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from studies.sweep.exec import default_executor, iter_rows
from studies.sweep.journal import Journal, exclusive
from studies.sweep.point import check_row, point_key, sweep_fingerprint
from studies.sweep.output import build_table, write_outputs
from studies.sweep.spec import Sweep, SweepSpec, load_sweep

JOURNAL = "journal.jsonl"


class _LineStream:
    """A text stream for tqdm in a log (not a terminal): each update on a line of its own."""

    def __init__(self, stream):
        self.stream = stream

    def write(self, text: str) -> None:
        text = text.replace("\r", "").strip("\n")
        if text.strip():
            self.stream.write(text + "\n")

    def flush(self) -> None:
        self.stream.flush()


def _bar(total: int, done: int, name: str, progress: bool) -> tqdm:
    stream = sys.stderr
    tty = hasattr(stream, "isatty") and stream.isatty()
    return tqdm(total=total, initial=done, desc=f"sweep {name}", unit="pt", disable=not progress,
                file=stream if tty else _LineStream(stream), mininterval=0.5 if tty else 10.0,
                dynamic_ncols=tty, ascii=not tty)


def run(spec: str | Path | dict | SweepSpec, out: str | Path, executor: str | None = None,
        workers: int | None = None, scheduler: str | None = None, progress: bool = True,
        on_point: Callable[[dict, dict], None] | None = None) -> pd.DataFrame:
    """Run (or resume) the sweep `spec` (a YAML path, a dict or a SweepSpec) into folder `out`.

    `executor`: "serial", "processes" or "dask" (default: processes when more than one worker,
    else serial); `workers`: processes or Dask workers (default: the free cores, the cores less
    the load average);
    `scheduler`: a Dask scheduler address for an existing cluster. `on_point(point, row)` is
    called after each newly computed point is in the journal. Returns the results table
    (studies.sweep.output).
    """
    sweep = load_sweep(spec)
    return run_sweep(sweep, Path(out), executor, workers, scheduler, progress, on_point)


def run_sweep(sweep: Sweep, out: Path, executor: str | None = None, workers: int | None = None,
              scheduler: str | None = None, progress: bool = True,
              on_point: Callable[[dict, dict], None] | None = None) -> pd.DataFrame:
    """`run` on an expanded spec."""
    if workers is None:
        workers = 1 if executor == "serial" else default_executor()[1]
    if executor is None:
        executor = "processes" if workers > 1 else "serial"
    with exclusive(out, "sweep"):
        return _run_locked(sweep, out, executor, workers, scheduler, progress, on_point)


def _run_locked(sweep: Sweep, out: Path, executor: str, workers: int, scheduler: str | None, progress: bool,
                on_point: Callable[[dict, dict], None] | None) -> pd.DataFrame:
    journal = Journal(out / JOURNAL, check_row)
    done = journal.load()
    fingerprint = sweep_fingerprint()
    keys = [point_key(p, fingerprint) for p in sweep.points]
    rows = {p["index"]: done[k] for p, k in zip(sweep.points, keys) if k in done}
    todo = [p for p in sweep.points if p["index"] not in rows]
    finished = iter_rows(todo, sweep.context, executor, workers, scheduler)  # checks the arguments
    bar = _bar(len(sweep.points), len(rows), sweep.spec.name, progress)
    try:
        for point, row in finished:
            journal.append(keys[point["index"]], row)
            rows[point["index"]] = row
            bar.update(1)
            if on_point is not None:
                on_point(point, row)
    finally:
        journal.close()
        bar.close()
    table = build_table(sweep, rows)
    write_outputs(out, sweep, table)
    return table
