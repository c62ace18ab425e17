"""`cascadesim report`: every report of the project, the job `make report` runs.

REPORT_JOBS lists (title, "module:function"); each function takes the output root folder
(a pathlib.Path) and writes its report under a subfolder of it.
"""
from __future__ import annotations

import argparse
import importlib
from pathlib import Path

REPORT_JOBS = [
    ("taxonomy of the attention library", "studies.taxonomy:write_report"),
    ("FuseMax vs FLAT", "studies.fusemax_vs_flat:write_report"),
    ("FuseMax Pareto sweep", "studies.pareto:write_report"),
    ("private inference (2PC cost model)", "studies.private_inference:write_report"),
    ("every library cascade on both accelerators (auto mapping)", "studies.cascades_study:write_report"),
    ("GPU cross-validation (simulator vs measured kernels)", "studies.gpu_crossval:write_report"),
]


def run_reports(out: Path) -> None:
    for title, target in REPORT_JOBS:
        module_name, func_name = target.split(":")
        print(f"== {title}")
        getattr(importlib.import_module(module_name), func_name)(out)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("report", help="write every report (the main job of `make report`)")
    parser.add_argument("--out", type=Path, default=Path("reports"), help="output root folder")
    parser.set_defaults(func=lambda args: run_reports(args.out) or 0)
