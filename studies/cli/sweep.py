"""`cascadesim sweep SPEC.yaml --out DIR [--executor serial|processes|dask] [--workers N] [--scheduler ADDR]`."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from studies.errors import UsageError

EXECUTORS = ("serial", "processes", "dask")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "sweep", help="run a design-space sweep (resumable) and write results, Pareto fronts and a report",
        description="Run the design points of SPEC (see docs/sweep.md) and write results.parquet, results.csv, "
                    "pareto.png and report.md under --out. Finished points are kept in DIR/journal.jsonl: run "
                    "the same command again after an interruption to resume. Exit status 1 if a point failed "
                    "with an unexpected error (infeasible points are not errors).")
    parser.add_argument("spec", help="the sweep spec (YAML)")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--executor", choices=EXECUTORS, default=None,
                        help="serial, processes (a local pool; the default when more than one core is free) "
                             "or dask (a LocalCluster, or the cluster at --scheduler)")
    parser.add_argument("--workers", type=int, default=None, help="worker processes (default: the free cores)")
    parser.add_argument("--scheduler", default=None, help="address of a running Dask scheduler (tcp://host:port)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--dry-run", action="store_true",
                        help="check the spec, print the number of points and how many the journal holds, and stop")
    parser.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from concurrent.futures.process import BrokenProcessPool

    from studies.sweep import run
    if args.workers is not None and args.workers < 1:
        raise UsageError(f"--workers: must be at least 1, got {args.workers}")
    if args.scheduler and args.executor not in (None, "dask"):
        raise UsageError("--scheduler: only with --executor dask")
    executor = "dask" if args.scheduler and args.executor is None else args.executor
    if args.dry_run:
        return _dry_run(args)
    try:
        table = run(args.spec, args.out, executor=executor, workers=args.workers, scheduler=args.scheduler,
                    progress=not args.quiet)
    except KeyboardInterrupt:
        print(f"cascadesim: sweep interrupted; the finished points are in {args.out}/journal.jsonl: run the "
              "same command again to resume", file=sys.stderr)
        return 130
    except BrokenProcessPool:
        print(f"cascadesim: error: a worker process died (out of memory?); the finished points are in "
              f"{args.out}/journal.jsonl: run the same command again to resume", file=sys.stderr)
        return 1
    counts = table["status"].value_counts()
    ok, infeasible, errors = (int(counts.get(s, 0)) for s in ("ok", "infeasible", "error"))
    print(f"{len(table)} points: {ok} feasible, {infeasible} infeasible, {errors} errors; "
          f"{int(table['front_latency_energy'].sum())} on latency-energy fronts; wrote {args.out}/report.md")
    if errors:
        first = table.loc[table["status"] == "error", "error"].iloc[0]
        print(f"cascadesim: {errors} points failed with an error, e.g. {first}", file=sys.stderr)
        return 1
    return 0


def _dry_run(args: argparse.Namespace) -> int:
    from studies.sweep import JOURNAL
    from studies.sweep.journal import Journal
    from studies.sweep.point import check_row, point_key, sweep_fingerprint
    from studies.sweep.spec import load_sweep
    sweep = load_sweep(args.spec)
    journal = args.out / JOURNAL
    done = Journal(journal, check_row).load(repair=False) if journal.exists() or journal.is_symlink() else {}
    fingerprint = sweep_fingerprint()
    cached = sum(point_key(p, fingerprint) in done for p in sweep.points)
    print(f"{sweep.spec.name}: {len(sweep.points)} points ({', '.join(sweep.vary_keys) or 'nothing'} varied); "
          f"{cached} already in {args.out / JOURNAL}, {len(sweep.points) - cached} to compute")
    return 0
