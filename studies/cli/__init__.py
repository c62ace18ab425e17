"""The `cascadesim` command line: one subcommand module per concept.

Each module in COMMAND_MODULES exposes `register(subparsers)`, which adds its subcommand(s) and
sets `func` on its parser(s): `func(args) -> int` returns the exit status.
"""
from __future__ import annotations

import argparse
import importlib
import sys

from studies.errors import UsageError

# Errors of bad input (files, fields, options), as (defining module, class name): printed as one
# line, exit status 2. They are resolved when an error is caught, and only in modules already
# imported (an error of a module not imported cannot have been raised), so that building the
# parser imports none of the packages (sympy, numpy, ...).
CASCADE_ERROR = ("einsum_cascade.errors", "CascadeError")
INVARIANT_VIOLATION = ("mappings.certify", "InvariantViolation")  # a result that breaks physics: exit 1
INPUT_ERROR_NAMES = (
    ("studies.errors", "UsageError"), ("archsim.errors", "ArchError"), ("archsim.errors", "ScheduleError"),
    ("archsim.gpu_specs", "GPUConfigError"), ("archsim.secure_backend", "ProfileError"),
    ("mappings.secure_transformer", "DecoderConfigError"), ("mappings.work", "MappingError"),
    ("mappings.workload", "WorkloadError"), ("archsim.yamlio", "YamlFileError"),
    ("studies.sweep.spec", "SweepSpecError"),
)


def _loaded(names) -> tuple[type, ...]:
    """The classes of `names` ((module, class) pairs) whose modules are imported."""
    classes = (getattr(sys.modules.get(module), name, None) for module, name in names)
    return tuple(c for c in classes if isinstance(c, type))


def __getattr__(name: str):
    """`INPUT_ERRORS`: every input-error class (imports their modules; for tests and tools)."""
    if name == "INPUT_ERRORS":
        return tuple(getattr(importlib.import_module(m), c) for m, c in INPUT_ERROR_NAMES)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

COMMAND_MODULES = [
    "studies.cli.analyze",
    "studies.cli.eval",
    "studies.cli.report",
    "studies.cli.pi",
    "studies.cli.study",
    "studies.cli.gpu",
    "studies.cli.sweep",
    "studies.cli.fuse",
    "studies.cli.simulate",
    "studies.cli.bound",
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
    except KeyboardInterrupt:
        print("cascadesim: interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # noqa: BLE001 - bad input is one line; anything else is re-raised
        if isinstance(err, _loaded([INVARIANT_VIOLATION])):  # a simulator bug caught: one line, exit 1
            print(f"cascadesim: {err}", file=sys.stderr)
            return 1
        message = one_line(err)
        if message is None:
            raise
        print(message, file=sys.stderr)
        return 2


def one_line(err: BaseException) -> str | None:
    """The one-line message of an input error (exit status 2), None for anything else (a bug)."""
    if isinstance(err, _loaded([CASCADE_ERROR])):
        return f"cascadesim: {err}"
    if isinstance(err, _loaded(INPUT_ERROR_NAMES)):
        return f"cascadesim: error: {err}"
    if isinstance(err, FileNotFoundError):
        return f"cascadesim: error: no such file: {err.filename}"
    if isinstance(err, OSError):  # an output folder that is a file, a read-only folder, a full disk, ...
        where = f"{err.filename}: " if err.filename else ""
        return f"cascadesim: error: {where}{err.strerror or err}"
    if isinstance(err, RecursionError):
        return "cascadesim: error: input nested too deeply to process"
    if isinstance(err, MemoryError):
        return "cascadesim: error: out of memory; try smaller sizes (`analyze` counts without evaluating)"
    return None


if __name__ == "__main__":
    sys.exit(main())
