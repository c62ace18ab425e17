"""Example of a new mapping: FuseMax's cascade and hardware, with SLN (exp) moved to the 1D array."""
from mappings import SpecMapping, load_spec


def exp_on_1d() -> SpecMapping:
    spec = load_spec("fusemax")
    binding = dict(spec.binding, SLN="array1d")  # exp(QK - RM) now runs on the 1D array
    return SpecMapping(spec.model_copy(update={"name": "exp-on-1d", "binding": binding, "register_file": ["QK"],
                                               "description": "FuseMax with the exp of SLN on the 1D array"}))


if __name__ == "__main__":
    from archsim.config import load_architecture
    from archsim.result import run
    from mappings.workload import make_workload

    arch = load_architecture("fusemax-cloud")
    result = run(exp_on_1d().schedule(make_workload("BERT", 4096), arch), arch)
    print(f"{result.cycles:.0f} cycles, 1D busy {result.busy('array1d'):.2f}, 2D busy {result.busy('array2d'):.2f}")
