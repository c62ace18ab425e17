"""The journal of a sweep: an append-only JSON-lines file of finished points, fsync'd per point.

Each line is `{"key": ..., "row": {...}}`. The key is the SHA-256 of the point's identity (its
architecture and cascade file contents, parameters, sizes, mapping, ...) and of the model
fingerprint (the simulator's code and data and studies/sweep/point.py), so a point is reused only
while the same model would compute the same row. A line cut short by a kill is removed on open;
lines that are not JSON are ignored (their points are computed again).
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from studies.fingerprint import model_fingerprint
from studies.sweep.spec import point_identity

POINT_MODULE = Path(__file__).with_name("point.py")


def sweep_fingerprint() -> str:
    """What computes a row: the model's code and data and studies/sweep/point.py (16 hex digits)."""
    digest = hashlib.sha256(model_fingerprint().encode())
    digest.update(POINT_MODULE.read_bytes())
    return digest.hexdigest()[:16]


def point_key(point: dict, fingerprint: str) -> str:
    """The journal key of `point` under `fingerprint` (32 hex digits)."""
    return hashlib.sha256((fingerprint + point_identity(point)).encode()).hexdigest()[:32]


class Journal:
    """Finished points of the sweep in folder `out` (file `journal.jsonl`)."""

    def __init__(self, path: Path):
        self.path = path
        self._file = None

    def load(self, repair: bool = True) -> dict[str, dict]:
        """key -> row of every complete line; with `repair`, a trailing partial line is truncated
        away (only while holding the sweep's lock: another run may be writing that line)."""
        rows: dict[str, dict] = {}
        if not self.path.exists():
            return rows
        data = self.path.read_bytes()
        end = data.rfind(b"\n") + 1
        if repair and end < len(data):
            os.truncate(self.path, end)  # a line cut short by a kill: its point is computed again
        for line in data[:end].splitlines():
            try:
                entry = json.loads(line)
            except (json.JSONDecodeError, UnicodeDecodeError):
                continue
            if isinstance(entry, dict) and isinstance(entry.get("key"), str) and isinstance(entry.get("row"), dict):
                rows[entry["key"]] = entry["row"]
        return rows

    def append(self, key: str, row: dict) -> None:
        """Write one finished point and fsync it before returning."""
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self.path.open("ab")
        self._file.write(json.dumps({"key": key, "row": row}, sort_keys=True).encode() + b"\n")
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
