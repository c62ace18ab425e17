"""The `cascadesim` command line: one subcommand module per concept.

Each module in COMMANDS exposes `register(subparsers)`, which adds its subcommand(s) and sets
`func` on its parser(s): `func(args) -> int` returns the exit status. The command modules import
only the standard library at the top; what a command needs is imported when it runs.
"""
from __future__ import annotations

import argparse
import sys

from cascadesim_errors import InputError
from studies.errors import UsageError

from studies.cli import analyze, bound, eval, fuse, gpu, kernel, pi, report, simulate, study, sweep  # noqa: A004

COMMANDS = [analyze, eval, report, pi, study, gpu, sweep, fuse, kernel, simulate, bound]  # in the order of --help


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cascadesim", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.register(subparsers)
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
        certify = sys.modules.get("mappings.certify")  # imported wherever a result was certified
        if certify is not None and isinstance(err, certify.InvariantViolation):  # a simulator bug caught: exit 1
            print(f"cascadesim: {err}", file=sys.stderr)
            return 1
        message = one_line(err)
        if message is None:
            raise
        print(message, file=sys.stderr)
        return 2


def one_line(err: BaseException) -> str | None:
    """The one-line message of an input error (exit status 2), None for anything else (a bug)."""
    if isinstance(err, InputError):
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
