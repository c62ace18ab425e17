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


def _check_out(args: argparse.Namespace, argv: list[str]) -> None:
    """An `--out` folder that is an existing file (or empty) is a usage error, before any work."""
    if any(a == "--out=" or (a == "--out" and i + 1 < len(argv) and argv[i + 1].strip() == "")
           for i, a in enumerate(argv)):  # Path("") would silently be the current folder
        raise UsageError("--out: empty; give an output folder")
    out = getattr(args, "out", None)
    if out is None or getattr(args, "command", None) == "gpu":  # gpu bench --out is a JSON file
        return
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out}: exists and is not a folder")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    try:
        _check_out(args, argv)
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
    except OSError as err:  # an output folder that is a file, a read-only folder, a full disk, ...
        where = f"{err.filename}: " if err.filename else ""
        print(f"cascadesim: error: {where}{err.strerror or err}", file=sys.stderr)
        return 2
    except RecursionError:
        print("cascadesim: error: input nested too deeply to process", file=sys.stderr)
        return 2
    except MemoryError:
        print("cascadesim: error: out of memory; try smaller sizes (`analyze` counts without evaluating)",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("cascadesim: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
