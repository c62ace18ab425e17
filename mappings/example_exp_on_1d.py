"""Example of a new mapping: FuseMax's cascade and hardware, with SLN (exp) moved to the 1D array."""
from mappings.onepass import FUSEMAX_BINDING, OnePassMapping


def exp_on_1d() -> OnePassMapping:
    binding = dict(FUSEMAX_BINDING, SLN="array1d")  # exp(QK - RM) now runs on the 1D array
    return OnePassMapping("exp-on-1d", "fusemax-cloud", binding, array_resident=("QK",),
                          description="FuseMax with the exp of SLN on the 1D array")


if __name__ == "__main__":
    from archsim.config import load_architecture
    from archsim.result import run
    from mappings.workload import make_workload

    arch = load_architecture("fusemax-cloud")
    result = run(exp_on_1d().schedule(make_workload("BERT", 4096), arch), arch)
    print(f"{result.cycles:.0f} cycles, 1D busy {result.busy('array1d'):.2f}, 2D busy {result.busy('array2d'):.2f}")
