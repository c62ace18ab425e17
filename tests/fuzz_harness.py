"""Running the command line on hostile input: in-process, with a time bound per input.

Shared by tests/test_fuzz.py (the reduced run of every `make test`) and tests/fuzz.py (`make fuzz`).
An input's outcome is "ok" (the command returned an exit status), "crash" (an exception other than
the project's own error classes escaped), or "hang" (it ran past the time bound; a SIGALRM timer
interrupts it, so a hang costs the bound, not forever).
"""
from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import signal
import traceback
from dataclasses import dataclass
from pathlib import Path

from cascadesim_errors import InputError
from studies.cli import main

CORPUS = Path(__file__).resolve().parent / "fuzz_corpus" / "cases.json"
PROJECT_ERRORS = (InputError,)  # every bad-input error derives from it
TIME_BOUND_S = float(os.environ.get("CASCADESIM_FUZZ_TIME_BOUND_S", "30"))


class Hang(Exception):
    """Raised by the SIGALRM timer inside an input that ran past the time bound."""


@contextlib.contextmanager
def time_bound(seconds: float = TIME_BOUND_S):
    """Raise Hang in the body if it runs longer than `seconds` (main thread only)."""
    def on_alarm(signum, frame):  # noqa: ANN001
        raise Hang(f"ran past {seconds} s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@dataclass
class Outcome:
    kind: str  # "ok", "crash" or "hang"
    status: int | None  # exit status when ok
    stderr: str
    detail: str = ""


def run_cli(argv: list[str], seconds: float = TIME_BOUND_S) -> Outcome:
    """`cascadesim ARGV` in this process: its exit status and stderr, or a crash or a hang."""
    err, out = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out), time_bound(seconds):
            try:
                status = main(argv)
            except SystemExit as exc:  # argparse's usage errors
                status = exc.code if isinstance(exc.code, int) else 2
        return Outcome("ok", status, err.getvalue())
    except Hang as exc:
        return Outcome("hang", None, err.getvalue(), str(exc))
    except Exception:  # noqa: BLE001 - a crash is what this records
        return Outcome("crash", None, err.getvalue(), traceback.format_exc(limit=-3))


def guarded(fn, *args, seconds: float = TIME_BOUND_S) -> Outcome:
    """Call fn(*args): "ok" if it returns or raises a project error, else a crash or a hang."""
    try:
        with time_bound(seconds):
            try:
                fn(*args)
            except PROJECT_ERRORS as exc:
                return Outcome("ok", 2, str(exc))
        return Outcome("ok", 0, "")
    except Hang as exc:
        return Outcome("hang", None, "", str(exc))
    except Exception:  # noqa: BLE001
        return Outcome("crash", None, "", traceback.format_exc(limit=-3))


def load_corpus() -> list[dict]:
    """The corpus cases: id, kind, argv (with {dir}), files, exit status, message fragment."""
    return json.loads(CORPUS.read_text())


def materialise(case: dict, folder: Path) -> list[str]:
    """Write the case's files under `folder`; its argv with {dir} replaced by the folder."""
    for name, spec in case.get("files", {}).items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if "text" in spec:
            path.write_text(spec["text"], encoding="utf-8")
        elif "bytes_b64" in spec:
            path.write_bytes(base64.b64decode(spec["bytes_b64"]))
        elif "symlink" in spec:
            if path.is_symlink() or path.exists():
                path.unlink()
            path.symlink_to(spec["symlink"].replace("{dir}", str(folder)))
        elif "dir" in spec:
            path.mkdir(exist_ok=True)
        elif "generate" in spec:  # a large file: head + unit * count + tail (kept small in the corpus)
            g = spec["generate"]
            path.write_text(g["head"] + g["unit"] * g["count"] + g["tail"], encoding="utf-8")
        elif "fifo" in spec:  # a named pipe: reading it would block until a writer comes
            if path.exists() or path.is_symlink():
                path.unlink()
            os.mkfifo(path)
    return [a.replace("{dir}", str(folder)) for a in case["argv"]]


def check_case(case: dict, folder: Path) -> str | None:
    """None if the case ends as the corpus expects, else what went wrong."""
    argv = materialise(case, folder)
    outcome = run_cli(argv)
    if outcome.kind != "ok":
        return f"{case['id']}: {outcome.kind}: {outcome.detail}"
    fragment = case["message"].replace("{dir}", str(folder))
    if outcome.status != case["exit"] or fragment not in outcome.stderr:
        return (f"{case['id']}: exit {outcome.status} (expected {case['exit']}), stderr {outcome.stderr.strip()!r} "
                f"(expected to contain {fragment!r})")
    if "Traceback" in outcome.stderr:
        return f"{case['id']}: traceback printed"
    return None
