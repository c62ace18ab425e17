"""Time of one auto-mapped point (the mapper's search + its simulation) as a ratio to one
simulated point with a fixed spec (target: an auto point under 5 s on 2 cores)."""
import time

import einsum_cascade as ec
from archsim.config import load_architecture
from mappings.simulation import simulate

REPEATS = 3
POINTS = [("attention_1pass", "fusemax-cloud", "fusemax"), ("attention_3pass", "flat-cloud", "flat")]
SIZES = {"M": 16384, "E": 64, "F": 64}


def main() -> None:
    for casc, arch_name, spec in POINTS:
        arch = load_architecture(arch_name)
        fixed = auto = float("inf")
        candidates = 0
        for _ in range(REPEATS):  # interleaved, best of each; a fresh cascade so no search is cached
            t = time.perf_counter()
            simulate(ec.load_library(casc), arch, SIZES, mapping=spec, heads=12)
            fixed = min(fixed, time.perf_counter() - t)
            t = time.perf_counter()
            r = simulate(ec.load_library(casc), arch, SIZES, mapping="auto", heads=12)
            auto = min(auto, time.perf_counter() - t)
            candidates = r.candidates_evaluated
        print(f"{casc} on {arch_name} at 16K: auto point {auto:.2f} s ({candidates} candidates) = "
              f"{auto / fixed:.1f} x one simulated point ({fixed:.3f} s with the {spec} spec); target < 5 s")


if __name__ == "__main__":
    main()
