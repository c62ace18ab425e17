"""The auto mapper's DRAM bytes against the data-movement lower bound (mappings/bound.py), for every
library cascade at 64K tokens (BERT head sizes, studies/cascades_study.py's extra sizes) on
fusemax-cloud (16 MiB buffer), one (batch, head) pair. The issue's target: within 1.1x of the bound
for >= 90% of the library cascades. Then GEMMs: the loop tree mappings/gemm.py picks against the bound,
at several shapes and buffer capacities. Prints markdown tables; measures, asserts nothing."""
import dataclasses
import sys

import einsum_cascade as ec
from archsim.config import load_architecture
from archsim.errors import ScheduleError
from mappings.bound import bounds
from mappings.simulation import simulate
from mappings.work import MappingError
from studies.cascades_study import study_sizes

TARGET = 1.1


def main(arch_name: str = "fusemax-cloud", n: int = 65536) -> None:
    arch = load_architecture(arch_name)
    print(f"| cascade | passes | auto DRAM (B) | bound as written (B) | auto / bound | fused-form bound (B) | "
          f"auto / best bound |")
    print("|---|---|---|---|---|---|---|")
    within = total = 0
    for name in ec.library_names():
        c = ec.load_library(name)
        sizes = study_sizes(c, n)
        total += 1
        try:
            r = simulate(c, arch, sizes, mapping="auto")
        except (MappingError, ScheduleError) as err:
            print(f"| {name} | | unmapped: {str(err)[:90]} | | | | |")
            continue
        got = {b.form: b.total_bytes for b in bounds(c, r.sizes, [arch.buffer.capacity_bytes], arch.word_bytes)}
        written, fused = got["as written"], got.get("fused")
        best = min(written, fused) if fused is not None else written
        ratio = r.dram_bytes / written
        within += ratio <= TARGET
        print(f"| {name} | {r.passes} | {r.dram_bytes:.4g} | {written:.4g} | {ratio:.3f} | "
              f"{'-' if fused is None else f'{fused:.4g}'} | {r.dram_bytes / best:.3f} |")
    print(f"\nwithin {TARGET}x of the bound (as written): {within} of {total} library cascades "
          f"({100 * within / total:.0f}%; unmapped ones count as not within)")


GEMM_POINTS = [((4096, 4096, 4096), 2**24), ((16384, 16384, 16384), 2**24), ((4096, 14336, 4096), 2**24),
               ((1, 14336, 4096), 2**24), ((1024, 1024, 1024), 2**20), ((4099, 1031, 2053), 2**20)]


def gemms(arch_name: str = "fusemax-cloud") -> None:
    """The GEMM loop tree's DRAM words against the bound and the compulsory words (M x N x K, buffer)."""
    from archsim.hierarchy import from_architecture
    from mappings.bound import lower_bound
    from mappings.gemm import best_gemm_mapping, gemm_cascade
    h = from_architecture(load_architecture(arch_name))
    print("\n| GEMM M x N x K | buffer (B) | loop tree | tree DRAM (B) | bound (B) | tree / bound | tree / compulsory |")
    print("|---|---|---|---|---|---|---|")
    for (M, N, K), buffer in GEMM_POINTS:
        hb = dataclasses.replace(h, levels=(h.levels[0], dataclasses.replace(h.levels[1], capacity_bytes=buffer)),
                                 name=f"{h.name}-{buffer}")
        m = best_gemm_mapping(M, N, K, hb)
        b = lower_bound(gemm_cascade(), {"M": M, "N": N, "K": K}, buffer, h.word_bytes)
        tree = m.traffic.total_bytes
        print(f"| {M} x {N} x {K} | {buffer} | {m.describe().split(', buffer')[0]} | {tree:.4g} | {b.total_bytes:.4g} | "
              f"{tree / b.total_bytes:.3f} | {tree / b.compulsory_bytes:.3f} |")


if __name__ == "__main__":
    main(*sys.argv[1:2])
    gemms(*sys.argv[1:2])
