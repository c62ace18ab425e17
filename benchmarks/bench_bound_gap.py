"""The auto mapper's DRAM bytes against the data-movement lower bound (mappings/bound.py), for every
library cascade at 64K tokens (BERT head sizes, studies/cascades_study.py's extra sizes) on
fusemax-cloud (16 MiB buffer), one (batch, head) pair. The issue's target: within 1.1x of the bound
for >= 90% of the library cascades. Prints a markdown table; measures, asserts nothing."""
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


if __name__ == "__main__":
    main(*sys.argv[1:2])
