"""The one resume journal of the project (the sweep and every study): an append-only JSON-lines
file of finished points, fsync'd per point, and the folder lock that one writer holds.

Each line is `{"key": ..., "row": {...}}`. The key is the SHA-256 of a fingerprint of what
computes a row (the model's code and data and the module that computes the points) and of the
point's identity, so a point is reused only while the same code would compute the same row.

A journal is data from outside (hand-edited, truncated, written by another version): every line
is checked when it is read: JSON without NaN/Infinity, a key and a row, and the row through the
caller's `check_row` (the fields, types and ranges of a row). A line that fails is reported on
stderr as `file:line: problem` and its point is computed again; a line cut short by a kill (the
last one, without a newline) is removed while holding the lock.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

from archsim.yamlio import YamlFileError, read_bytes_file
from studies.checked import nonfinite_fields
from studies.errors import UsageError
from studies.fingerprint import model_fingerprint

LOCK = ".lock"
MAX_JOURNAL_BYTES = 1024 ** 3  # 1 GiB: about two million points
MAX_REPORTED = 3  # bad lines reported one by one; the others are counted
RowCheck = Callable[[dict], "str | None"]


def code_fingerprint(*modules: Path) -> str:
    """What computes a row: the model's code and data and `modules` (16 hex digits)."""
    digest = hashlib.sha256(model_fingerprint().encode())
    for m in modules:
        digest.update(Path(m).read_bytes())
    return digest.hexdigest()[:16]


def journal_key(fingerprint: str, identity: str) -> str:
    """The journal key of a point of identity `identity` (canonical text) under `fingerprint`."""
    return hashlib.sha256((fingerprint + identity).encode()).hexdigest()[:32]


def _reject_constant(name: str) -> float:
    raise ValueError(f"non-finite number {name}")


class Journal:
    """Finished points in the JSON-lines file `path`; `check_row(row)` returns the problem of a
    row read back (None if it is sound)."""

    def __init__(self, path: Path, check_row: RowCheck | None = None):
        self.path = Path(path)
        self.check_row = check_row
        self._file = None
        self.bad_lines: list[tuple[int, str]] = []

    def load(self, repair: bool = True, report: bool = True) -> dict[str, dict]:
        """key -> row of every sound line (a later line of the same key wins). With `repair`, a
        trailing partial line is truncated away (only while holding the lock: another run may be
        writing it). Unsound lines are in `bad_lines` (line number, problem) and, with `report`,
        on stderr."""
        rows: dict[str, dict] = {}
        self.bad_lines = []
        if not self.path.exists() and not self.path.is_symlink():
            return rows
        try:
            data = read_bytes_file(self.path, "journal", MAX_JOURNAL_BYTES)
        except YamlFileError as err:
            raise UsageError(f"{err}; move it away to start afresh") from None
        end = data.rfind(b"\n") + 1
        if repair and end < len(data):
            os.truncate(self.path, end)  # a line cut short by a kill: its point is computed again
        for number, line in enumerate(data[:end].splitlines(), 1):
            if not line.strip():
                continue
            key, row, problem = self._parse(line)
            if problem is not None:
                self.bad_lines.append((number, problem))
                continue
            rows[key] = row
        if report and self.bad_lines:
            self._report()
        return rows

    def _parse(self, line: bytes) -> tuple[str, dict, str | None]:
        try:
            entry = json.loads(line, parse_constant=_reject_constant)
        except (ValueError, UnicodeDecodeError) as err:
            return "", {}, f"not a JSON line ({str(err).splitlines()[0][:80]})"
        if not isinstance(entry, dict) or set(entry) != {"key", "row"}:
            return "", {}, "expected an object with exactly the fields key and row"
        key, row = entry["key"], entry["row"]
        if not isinstance(key, str) or len(key) != 32 or any(c not in "0123456789abcdef" for c in key):
            return "", {}, "key: expected 32 hex digits"
        if not isinstance(row, dict):
            return "", {}, "row: expected an object"
        bad = nonfinite_fields(row)
        if bad:
            return "", {}, f"row.{bad[0]}: not a finite number"
        if self.check_row is not None:
            try:
                problem = self.check_row(row)
            except (KeyError, TypeError, ValueError, AttributeError) as err:
                problem = f"malformed row ({type(err).__name__}: {err})"
            if problem is not None:
                return "", {}, f"row: {problem}"
        return key, row, None

    def _report(self) -> None:
        for number, problem in self.bad_lines[:MAX_REPORTED]:
            print(f"cascadesim: warning: {self.path}:{number}: {problem}; its point is computed again",
                  file=sys.stderr)
        more = len(self.bad_lines) - MAX_REPORTED
        if more > 0:
            print(f"cascadesim: warning: {self.path}: {more} more unsound line(s); their points are computed "
                  "again", file=sys.stderr)

    def append(self, key: str, row: dict) -> None:
        """Write one finished point and fsync it before returning (a row with a non-finite number
        is a bug of the caller: ValueError)."""
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self.path.open("ab")
            if self._file.tell():
                with self.path.open("rb") as f:
                    f.seek(-1, os.SEEK_END)
                    if f.read(1) != b"\n":
                        self._file.write(b"\n")  # a line cut short (not repaired): the next one starts afresh
        self._file.write(json.dumps({"key": key, "row": row}, allow_nan=False).encode() + b"\n")
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


@contextlib.contextmanager
def exclusive(folder: Path, what: str = "run") -> Iterator[None]:
    """Hold folder/.lock: a second sweep or study writing to the same folder is refused (UsageError)."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"--out: {folder} is a file, not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        lock = (folder / LOCK).open("a")
    except OSError as err:
        raise UsageError(f"--out: cannot write to {folder}: {err.strerror or err}") from None
    with lock:
        try:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise UsageError(f"--out: another {what} is writing to {folder} (it holds {folder / LOCK}); "
                             "wait for it to finish or give another --out") from None
        yield
