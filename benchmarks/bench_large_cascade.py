"""Benchmark: parsing and analysing (passes over every rank, symbolic costs) generated chain
cascades of 1,250 to 10,000 statements. Prints CPU seconds per phase and per thousand Einsums at
each size: near-constant per-thousand figures mean the analysis is linear in the input."""
from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import einsum_cascade as ec  # noqa: E402
from studies.cli.analyze import format_analysis  # noqa: E402

SIZES = (1250, 2500, 5000, 10000)


def chain(statements: int) -> str:
    """Every third statement a row max and an exp of the difference, the others elementwise."""
    lines = ["cascade chain", "rank E, M, P", "input Q[e,p], K[e,m]", "output Y", "X0[m,p] = Q[e,p] * K[e,m]"]
    for i in range(1, statements):
        if i % 3 == 0:
            lines += [f"R{i}[p] = max(m: X{i - 1}[m,p])", f"X{i}[m,p] = exp(X{i - 1}[m,p] - R{i}[p])"]
        else:
            lines.append(f"X{i}[m,p] = X{i - 1}[m,p] * 2 + 1")
    lines.append(f"Y[p] = sum(m: X{statements - 1}[m,p])")
    return "\n".join(lines) + "\n"


def main() -> None:
    for n in SIZES:
        text = chain(n)
        start = time.process_time()
        c = ec.parse(text, f"chain{n}.cascade")
        parsed = time.process_time()
        format_analysis(c, list(c.ranks), {})
        done = time.process_time()
        k = len(c.einsums) / 1000
        print(f"{n:>6} statements ({len(c.einsums)} Einsums): parse {parsed - start:.1f} s, "
              f"analysis {done - parsed:.1f} s CPU; per thousand Einsums: parse {(parsed - start) / k:.2f} s, "
              f"analysis {(done - parsed) / k:.2f} s", flush=True)


if __name__ == "__main__":
    main()
