"""Start-up of the command line: the wall time of `cascadesim simulate` of one point, a fresh
interpreter each run (target: <= 0.7 s on an idle 2-core machine), of `cascadesim --help`, and
which heavy packages each imports (sympy should stay off the numeric paths; it is still on
`simulate`, whose cascade parser builds sympy index expressions).

Best of REPEATS runs (the least disturbed by other load), with the CPU seconds (user + system) of
that run, which other load disturbs less; the load average is printed beside.
"""
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REPEATS = 7
TARGET_S = 0.7
SIMULATE = ["simulate", "attention_1pass", "--arch", "fusemax-cloud", "--mapping", "fusemax",
            "--size", "M=64K", "E=64", "F=64"]
HEAVY = ("sympy", "numpy", "scipy", "networkx", "pydantic", "yaml", "simpy", "pandas", "matplotlib",
         "torch", "dask")
PROBE = ("import sys, contextlib, io\nfrom studies.cli import main\n"
         "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n    main({argv!r})\n"
         "print(' '.join(m for m in {heavy!r} if m in sys.modules))")


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def wall_s(argv: list[str]) -> tuple[float, float]:
    """Best wall time and the least CPU time (seconds) of `python -m studies.cli ARGV`, each run
    in a fresh interpreter."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    best, cpu = float("inf"), float("inf")
    for _ in range(REPEATS):
        t, c = time.perf_counter(), _children_cpu_s()
        subprocess.run([sys.executable, "-m", "studies.cli", *argv], cwd=ROOT, env=env, check=True,
                       stdout=subprocess.DEVNULL)
        best, cpu = min(best, time.perf_counter() - t), min(cpu, _children_cpu_s() - c)
    return best, cpu


def heavy_imports(argv: list[str]) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", PROBE.format(argv=argv, heavy=HEAVY)], cwd=ROOT, env=env,
                         check=True, capture_output=True, text=True)
    return out.stdout.strip() or "none"


def main() -> None:
    load = os.getloadavg()[0]
    (sim, sim_cpu), (helps, help_cpu) = wall_s(SIMULATE), wall_s(["--help"])
    print(f"cascadesim simulate (one point): {sim:.3f} s wall, best of {REPEATS} "
          f"({'within' if sim <= TARGET_S else 'ABOVE'} the {TARGET_S} s target), {sim_cpu:.3f} s CPU; "
          f"load average {load:.2f}")
    print(f"  imports: {heavy_imports(SIMULATE)}")
    print(f"cascadesim --help: {helps:.3f} s wall, {help_cpu:.3f} s CPU; imports: {heavy_imports(['--help'])}")


if __name__ == "__main__":
    main()
