"""Benchmark of issue 22: `cascadesim analyze` and `cascadesim fuse` of every library cascade and of
generated cascades with an n-way `or` mask (MInference's vertical-slash pattern has 6), against
the 2 s target per command. Prints CPU seconds per command (in-process, the command's own work:
parsing, passes, symbolic and numeric counts, the rewrite, its certification and simulation) and
the longest printed line; for the `or` masks at n = 2 ... 12 the seconds grow about linearly in
n (point counts by intervals per row; symbolic counts an explicit sum beyond 3 or-terms).

On a shared machine CPU seconds are the figure to read; wall seconds are printed beside them.
"""
from __future__ import annotations

import contextlib
import io
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import einsum_cascade as ec  # noqa: E402
from einsum_cascade.catalog import BLOCKS_DIR, LIBRARY_DIR  # noqa: E402
from studies.cli import main as cli  # noqa: E402

TARGET_S = 2.0
OR_TERMS = (2, 4, 6, 8, 12)
LONG = {"M": 1024, "P": 1024}  # the sequence ranks; every other rank 16, tiles 64, params 3


def or_mask_cascade(terms: int) -> str:
    """Causal softmax attention whose mask is an `or` of `terms` affine conditions: sink columns,
    a local band, then alternately diagonals (p - m == Dk) and columns (m == Vk)."""
    conds = ["m < S", "p - m < W"][:terms]
    names = ["S", "W"][:terms]
    for k in range(terms - 2):
        name = f"D{k}" if k % 2 == 0 else f"V{k}"
        conds.append(f"p - m == {name}" if k % 2 == 0 else f"m == {name}")
        names.append(name)
    return "\n".join([
        f"cascade or_mask_{terms}", "rank E, F, M, P", f"param {', '.join(names)}",
        "size " + ", ".join(f"{n} = {4 + 37 * i}" for i, n in enumerate(names)),
        "input Q[e,p], K[e,m], V[f,m]", "output AV",
        f"QK[m,p] = Q[e,p] * K[e,m] where m <= p and ({' or '.join(conds)})",
        "GM[p] = max(m: QK[m,p])", "SN[m,p] = exp(QK[m,p] - GM[p])", "SD[p] = sum(m: SN[m,p])",
        "A[m,p] = SN[m,p] / SD[p]", "AV[f,p] = A[m,p] * V[f,m]"]) + "\n"


def sizes_for(c: ec.Cascade) -> list[str]:
    """`--size` arguments binding every size and param the cascade does not default."""
    parts = {p for r in c.ranks.values() for p in r.parts[:1]}  # the outer part follows
    out = []
    for name in c.size_names:
        if name in c.defaults or name in parts:
            continue
        is_part = any(name in r.parts for r in c.ranks.values())
        out.append(f"{name}={64 if is_part else LONG.get(name, 16)}")
    out += [f"{p}=3" for p in c.params if p not in c.defaults]
    return out


def timed(argv: list[str]) -> tuple[float, float, int, int]:
    """CPU and wall seconds of one command in this process, its exit status, its longest line."""
    out = io.StringIO()
    c0, w0 = time.process_time(), time.perf_counter()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        status = cli(argv)
    cpu, wall = time.process_time() - c0, time.perf_counter() - w0
    return cpu, wall, status, max((len(line) for line in out.getvalue().splitlines()), default=0)


def bench(path: Path, label: str) -> list[float]:
    """analyze and fuse (over M, or a block's rank with the most passes) of one cascade file."""
    c = ec.load(path)
    sizes = sizes_for(c)
    rows = []
    rank = "M" if "M" in c.ranks else max(c.ranks, key=lambda r: ec.passes(c, r).passes or 0)
    for command, extra in (("analyze", []), ("fuse", ["--rank", rank])):
        cpu, wall, status, longest = timed([command, str(path), *extra, "--size", *sizes])
        rows.append(cpu)
        flag = "" if cpu <= TARGET_S else "  OVER TARGET"
        print(f"  {label:<32} {command:<8} cpu {cpu:6.2f} s  wall {wall:6.2f} s  exit {status}  "
              f"longest line {longest:5d}{flag}", flush=True)
    return rows


def main() -> None:
    print(f"analyze and fuse per cascade (target <= {TARGET_S:g} s each; sizes: M = P = 1024, other "
          "ranks 16, tiles 64, params 3 where not defaulted)")
    worst = 0.0
    over = 0
    files = sorted(LIBRARY_DIR.glob("*.cascade")) + sorted(BLOCKS_DIR.glob("*.cascade"))
    for path in files:
        for cpu in bench(path, path.stem):
            worst = max(worst, cpu)
            over += cpu > TARGET_S
    print(f"library: {len(files)} cascades, slowest command {worst:.2f} s CPU, {over} over the target")
    print("n-way `or` masks (causal softmax; the vertical-slash pattern is n = 6):")
    with tempfile.TemporaryDirectory() as tmp:
        for n in OR_TERMS:
            path = Path(tmp) / f"or_mask_{n}.cascade"
            path.write_text(or_mask_cascade(n))
            bench(path, f"or of {n} conditions")


if __name__ == "__main__":
    main()
