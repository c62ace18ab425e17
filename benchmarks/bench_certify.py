"""Cost of certifying a result (mappings/certify.py) as a ratio to simulating the point unchecked
(target: < 0.05). CPU seconds, best of REPEATS, the engine's memo emptied before each simulation.
Each repeat loads a fresh cascade object, so the first certificate ("cold") computes its bounds
(the cascade's counts are shared with the scheduler, which computed them for the point); the
second ("warm") finds them memoised (mappings/certify.bounds: per cascade and architecture, an
explicit key of the other arguments), as the mapper's candidates and a second mode of one point do."""
import time

import einsum_cascade as ec
from archsim import engine
from archsim.config import load_architecture
from mappings.simulation import simulate
from mappings.spec import load_spec
from mappings.targets.accelerator import certify

REPEATS = 10  # the cold check is a fraction of a millisecond: best of 10 against the load of a shared machine
POINTS = [("attention_1pass", "fusemax-cloud", "fusemax", 16384),
          ("attention_1pass_causal", "fusemax-cloud", "fusemax-causal", 65536),
          ("attention_3pass", "flat-cloud", "flat", 65536)]


def main() -> None:
    for casc, arch_name, spec_name, n in POINTS:
        arch, spec = load_architecture(arch_name), load_spec(spec_name)
        sizes = {"M": n, "E": 64, "F": 64}
        point = cold = warm = float("inf")
        for _ in range(REPEATS):
            c = ec.load_library(casc)  # a fresh object: nothing of its certificate memoised
            engine.clear_memo()
            t = time.process_time()
            r = simulate(c, arch, sizes, mapping=spec, heads=12, check=False)
            point = min(point, time.process_time() - t)
            t = time.process_time()
            certify(c, arch, spec, r.sizes, 1, 12, r.result)
            cold = min(cold, time.process_time() - t)
            t = time.process_time()
            certify(c, arch, spec, r.sizes, 1, 12, r.result)
            warm = min(warm, time.process_time() - t)
        print(f"certify {casc} on {arch_name} ({spec_name}) at {n}: cold {1e3 * cold:.2f} ms, warm "
              f"{1e3 * warm:.2f} ms CPU / {1e3 * point:.1f} ms for the unchecked point = ratio {cold / point:.3f} "
              f"cold, {warm / point:.3f} warm (target < 0.05)")


if __name__ == "__main__":
    main()
