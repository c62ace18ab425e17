"""`cascadesim study NAME ...`: the studies of the project.

STUDIES maps a study name to ("module:function" adding its arguments to a parser,
"module:function" running it with the parsed args and returning the exit status).
Add an entry to register a new study.
"""
from __future__ import annotations

import argparse

from studies.cli.lazy_parser import LazyParser, resolve

STUDIES = {
    "fusemax-vs-flat": ("studies.fusemax_vs_flat:register_args", "studies.fusemax_vs_flat:main"),
    "pareto": ("studies.pareto:register_args", "studies.pareto:main"),
    "private-inference": ("studies.private_inference:register_args", "studies.private_inference:main"),
    "gpu-crossval": ("studies.gpu_crossval:register_args", "studies.gpu_crossval:main"),
    "cascades": ("studies.cascades_study:register_args", "studies.cascades_study:main"),
}


def _runner(target: str):
    def run(args) -> int:
        return int(resolve(target)(args) or 0)
    return run


def _fusemax_vs_flat_accounting(args) -> int:
    """`study fusemax-vs-flat --accounting artifact`: the study, with its means printed under the paper
    artifact's energy accounting (the report always shows both accountings)."""
    from studies.fusemax_vs_flat import PAPER, run_study, summarize, workers_arg

    points = run_study(args.out, args.models, args.lengths, workers=workers_arg(args))
    print(f"energy accounting: {args.accounting}")
    for k, v in summarize(points, args.accounting).items():
        print(f"{k}: {v:.3f} (paper {PAPER.get(k, '-')})")
    print(f"wrote {args.out}/results.csv, results.json, report.md (both accountings)")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("study", help="run a study and write its report")
    studies = parser.add_subparsers(dest="study", required=True, parser_class=LazyParser)
    for name, (args_target, run_target) in STUDIES.items():
        sub = studies.add_parser(name, help=f"the {name} study")
        sub.register_target = args_target
        sub.set_defaults(func=_runner(run_target))
        if name == "fusemax-vs-flat":
            sub.add_argument("--accounting", choices=("correct", "artifact"), default="correct",
                             help="energy accounting of the printed means: correct (default; every PE's "
                                  "register file) or artifact (the paper artifact's bookkeeping); the report "
                                  "shows both")
            default = _runner(run_target)
            sub.set_defaults(func=lambda args, default=default: (
                _fusemax_vs_flat_accounting(args) if args.accounting == "artifact" else default(args)))
