"""Runs inside the AccelForge venv (Python >= 3.12): evaluate a stored mapping or run the mapper.

Called by accelforge_check.py (which runs in the project's Python) as
    python accelforge_driver.py evaluate ARCH WORKLOAD MAPPING
    python accelforge_driver.py map ARCH WORKLOAD both
and prints one JSON object on stdout: AccelForge's version, wall seconds, total latency (cycles of the
architecture's clock) and energy (pJ), and per Einsum: latency per component, action counts per
"component.action" (memory actions also per tensor) and energy per component. With `map`: the mapper
optimises latency and energy together; the best mapping for each (as an indented loop tree) with its
numbers. The caller time-boxes
the run (AccelForge 1.0.467's own `mapper.time_limit` sets RLIMIT_CPU in its reused joblib workers, which
kills them: it is not used).

Only the standard library and accelforge are imported: this file is not part of the project's package.
"""
from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections import defaultdict

SEP = "<SEP>"


def summarise(row) -> dict:
    """Per-Einsum latency, actions and energy from one row of AccelForge's result table."""
    out = {"latency": float(row[f"Total{SEP}latency"]), "energy_pj": float(row[f"Total{SEP}energy"]),
           "einsums": {}}
    einsums: dict = defaultdict(lambda: {"latency": {}, "actions": defaultdict(float),
                                         "tensor_actions": defaultdict(float), "energy_pj": defaultdict(float)})
    for key, value in row.items():
        parts = key.split(SEP)
        if parts[0] in ("Total", "reservation") or len(parts) < 2:
            continue
        einsum, kind = parts[0], parts[1]
        if kind == "latency" and len(parts) == 3:
            einsums[einsum]["latency"][parts[2]] = float(value)
        elif kind == "action" and len(parts) == 5:
            component, tensor, action = parts[2], parts[3], parts[4]
            einsums[einsum]["actions"][f"{component}.{action}"] += float(value)
            if tensor != "None":
                einsums[einsum]["tensor_actions"][f"{component}.{tensor}.{action}"] += float(value)
        elif kind == "energy" and len(parts) >= 4:
            einsums[einsum]["energy_pj"][parts[2]] += float(value)
    out["einsums"] = {e: {k: dict(v) for k, v in d.items()} for e, d in einsums.items()}
    return out


def describe_mapping(make) -> str:
    """The mapping as an indented loop tree, one node per line (AccelForge 1.0.467 cannot dump it to YAML)."""
    def lines(node, depth: int) -> list[str]:
        children = getattr(node, "nodes", None)
        if children is None:
            return ["  " * depth + node.compact_str()]
        out = ["  " * depth + type(node).__name__]
        for child in children:
            out += lines(child, depth + 1)
        return out

    try:
        return "\n".join(lines(make() if callable(make) else make, 0))
    except Exception as err:  # noqa: BLE001 - the description is informative only
        return f"(not describable: {type(err).__name__}: {err})"


def tree_rss_bytes(root: int) -> int:
    """Resident bytes of process `root` and all its descendants (AccelForge's joblib workers), from /proc."""
    children: dict = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(d))
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        try:
            with open(f"/proc/{pid}/status") as f:
                total += sum(int(line.split()[1]) * 1024 for line in f if line.startswith("VmRSS:"))
        except (OSError, ValueError):
            pass
        stack += children.get(pid, [])
    return total


class PeakMemory(threading.Thread):
    """Samples tree_rss_bytes of this process every `every` seconds; `.peak` in bytes (0 without /proc)."""

    def __init__(self, every: float = 2.0):
        super().__init__(daemon=True)
        self.every, self.peak = every, 0

    def run(self) -> None:
        if not os.path.isdir("/proc"):
            return
        while True:
            self.peak = max(self.peak, tree_rss_bytes(os.getpid()))
            time.sleep(self.every)


def main(argv: list[str]) -> int:
    import accelforge as af
    from importlib.metadata import version

    mode, arch, workload, last = argv[1:5]
    t0 = time.perf_counter()
    memory = PeakMemory()
    memory.start()
    try:
        out = run(af, mode, arch, workload, last)
    except Exception as err:  # noqa: BLE001 - reported to the caller as data (exit 3)
        lines = str(err).strip().splitlines() or [""]
        json.dump({"error": f"{type(err).__name__}: {lines[0][:300]}", "wall_s": time.perf_counter() - t0,
                   "peak_rss_gb": memory.peak / 2**30}, sys.stdout)
        return 3
    out["wall_s"] = time.perf_counter() - t0
    out["peak_rss_gb"] = memory.peak / 2**30
    out["accelforge_version"] = version("accelforge")
    json.dump(out, sys.stdout, default=str)
    return 0


def run(af, mode: str, arch: str, workload: str, last: str) -> dict:
    """One evaluation (`last` = the mapping file) or one mapper run; the summary dict."""
    if mode == "evaluate":
        result = af.Spec.from_yaml(arch, workload, last).evaluate_mapping()
        row = result.data.iloc[0]
        out = summarise(row)
    elif mode == "map":
        from accelforge.mapper.FFM import mappings as ffm_mappings

        # The mapper draws every mapping it evaluates to ./mapping.svg with graphviz's `dot`, which is
        # not needed here (and may not be installed): skip the drawing.
        ffm_mappings.Mappings.render = lambda self, *a, **k: ""
        spec = af.Spec.from_yaml(arch, workload)
        spec.mapper.metrics = af.Metrics.LATENCY | af.Metrics.ENERGY
        result = spec.map_workload_to_arch(print_progress=False)
        if len(result.data) == 0:
            raise RuntimeError("the mapper found no valid mapping")
        out = {"pareto_mappings": int(len(result.data))}
        for objective, metric in (("latency", "latency"), ("energy", "energy")):
            row = result.data.sort_values(f"Total{SEP}{metric}", kind="stable").iloc[0]
            best = summarise(row)
            best["mapping"] = describe_mapping(row[f"Total{SEP}mapping"])
            out[f"best_{objective}"] = best
    else:
        raise ValueError(f"unknown mode {mode!r} (evaluate or map)")
    return out


if __name__ == "__main__":
    sys.exit(main(sys.argv))
