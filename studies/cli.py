"""The `cascadesim` command line: one subcommand module per concept.

Each module in COMMAND_MODULES exposes `register(subparsers)`, which adds its subcommand(s) and
sets `func` on its parser(s): `func(args) -> int` returns the exit status.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from archsim.errors import ArchError, ScheduleError
from archsim.gpu_model import GPUConfigError
from archsim.secure_backend import ProfileError
from archsim.yamlio import YamlFileError
from einsum_cascade.errors import CascadeError
from mappings.secure_transformer import DecoderConfigError
from mappings.work import MappingError
from mappings.workload import WorkloadError
from studies.errors import UsageError
from studies.sweep_spec import SweepSpecError

# Errors of bad input (files, fields, options): printed as one line, exit status 2.
INPUT_ERRORS = (UsageError, ArchError, ScheduleError, GPUConfigError, ProfileError,
                DecoderConfigError, MappingError, WorkloadError, YamlFileError, SweepSpecError)

COMMAND_MODULES = [
    "studies.cmd_analyze",
    "studies.cmd_eval",
    "studies.cmd_report",
    "studies.cmd_pi",
    "studies.cmd_study",
    "studies.cmd_gpu",
    "studies.cmd_sweep",
    "studies.cmd_fuse",
    "studies.cmd_simulate",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cascadesim", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except CascadeError as err:
        print(f"cascadesim: {err}", file=sys.stderr)
        return 2
    except INPUT_ERRORS as err:
        print(f"cascadesim: error: {err}", file=sys.stderr)
        return 2
    except FileNotFoundError as err:
        print(f"cascadesim: error: no such file: {err.filename}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("cascadesim: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
