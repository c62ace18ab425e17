"""Results checked finite before they are printed, written as JSON or recorded in a journal.

`nonfinite_fields(obj)` walks a result (dicts, lists, numbers) and names every field holding NaN
or an infinity (`latency_s`, `util.array2d`); `json_text(obj)` is `json.dumps` that refuses them
(`allow_nan=False`), so JSON output is always valid JSON.
"""
from __future__ import annotations

import json
import math
from typing import Any

from studies.errors import UsageError


def nonfinite_fields(obj: Any, prefix: str = "") -> list[str]:
    """Dotted names of the fields of `obj` that are NaN or infinite (bools and None are fine)."""
    if isinstance(obj, float):
        return [] if math.isfinite(obj) else [prefix or "<value>"]
    if isinstance(obj, dict):
        return [f for k, v in obj.items() for f in nonfinite_fields(v, f"{prefix}.{k}" if prefix else str(k))]
    if isinstance(obj, (list, tuple)):
        return [f for i, v in enumerate(obj) for f in nonfinite_fields(v, f"{prefix}[{i}]")]
    try:  # numpy scalars
        return [] if isinstance(obj, (bool, int, str)) or obj is None or math.isfinite(float(obj)) else [prefix]
    except (TypeError, ValueError):
        return []


def require_finite(obj: Any, what: str) -> None:
    """UsageError naming the first non-finite field of `obj` (a result of `what`)."""
    bad = nonfinite_fields(obj)
    if bad:
        value = _lookup(obj, bad[0])
        raise UsageError(f"{what}: the result is not finite ({bad[0]} = {value}"
                         + (f", and {len(bad) - 1} other field(s)" if len(bad) > 1 else "")
                         + "): an input is out of any physical range (e.g. a bandwidth or clock near zero)")


def _lookup(obj: Any, dotted: str) -> Any:
    for part in dotted.replace("[", ".").replace("]", "").split("."):
        if part == "<value>":
            return obj
        obj = obj[int(part)] if isinstance(obj, (list, tuple)) else obj[part]
    return obj


def json_text(obj: Any, what: str, **kwargs: Any) -> str:
    """`json.dumps(obj, **kwargs)` after `require_finite` (never prints Infinity or NaN)."""
    require_finite(obj, what)
    return json.dumps(obj, allow_nan=False, **kwargs)
