"""Times the whole fusemax-vs-flat study and the ratio of simulation time at 1M to 1K (target < 2)."""
import tempfile
import time
from pathlib import Path

from studies.fusemax_vs_flat import CONFIGS, MODELS, run_study, simulate_point

REPEATS = 3


def main() -> None:
    t = time.perf_counter()
    with tempfile.TemporaryDirectory() as d:
        run_study(Path(d), progress=False)
    total = time.perf_counter() - t
    per = {"1K": float("inf"), "1M": float("inf")}
    for _ in range(REPEATS):  # interleaved repeats, best of each: robust to a busy machine
        for n in per:
            t = time.perf_counter()
            for m in MODELS:
                for c in CONFIGS:
                    simulate_point(m, n, c)
            per[n] = min(per[n], time.perf_counter() - t)
    print(f"whole study: {total:.1f} s (target <= 60 s on 2 cores)")
    print(f"simulation time 1M / 1K: {per['1M'] / per['1K']:.2f} (target < 2; best of {REPEATS}: "
          f"1K {per['1K']:.2f} s, 1M {per['1M']:.2f} s for {len(MODELS) * len(CONFIGS)} points each)")


if __name__ == "__main__":
    main()
