"""`cascadesim study NAME ...`: the studies of the project.

STUDIES maps a study name to ("module:function" adding its arguments to a parser,
"module:function" running it with the parsed args and returning the exit status).
Add an entry to register a new study.
"""
from __future__ import annotations

import argparse
import importlib

STUDIES = {
    "fusemax-vs-flat": ("studies.fusemax_vs_flat:register_args", "studies.fusemax_vs_flat:main"),
    "pareto": ("studies.pareto:register_args", "studies.pareto:main"),
    "private-inference": ("studies.private_inference:register_args", "studies.private_inference:main"),
    "gpu-crossval": ("studies.gpu_crossval:register_args", "studies.gpu_crossval:main"),
    "cascades": ("studies.cascades_study:register_args", "studies.cascades_study:main"),
}


def _resolve(target: str):
    module, func = target.split(":")
    return getattr(importlib.import_module(module), func)


def _runner(target: str):
    def run(args) -> int:
        return int(_resolve(target)(args) or 0)
    return run


class _LazyStudyParser(argparse.ArgumentParser):
    """A study's parser whose arguments are added (its module imported) only when that study is
    parsed or its help printed, so that the command line starts without importing every study."""

    register_target: str | None = None

    def _ensure(self) -> None:
        target, self.register_target = self.register_target, None
        if target is not None:
            _resolve(target)(self)

    def parse_known_args(self, args=None, namespace=None):
        self._ensure()
        return super().parse_known_args(args, namespace)

    def format_help(self) -> str:
        self._ensure()
        return super().format_help()


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("study", help="run a study and write its report")
    studies = parser.add_subparsers(dest="study", required=True, parser_class=_LazyStudyParser)
    for name, (args_target, run_target) in STUDIES.items():
        sub = studies.add_parser(name, help=f"the {name} study")
        sub.register_target = args_target
        sub.set_defaults(func=_runner(run_target))
