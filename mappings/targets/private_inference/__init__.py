"""The private-inference target: the cascade's protocol calls (mappings/targets/private_inference/protocol.py) on a network."""
from __future__ import annotations

import einsum_cascade as ec

from mappings.size_completion import complete_sizes
from mappings.targets.result import SimulationResult


class PrivateInferenceTarget:
    """A two-party-computation cost profile (archsim/configs/pi/); cycles, energy and DRAM do not apply."""
    kind = "private-inference"

    def __init__(self, profile_name: str):
        self.name = profile_name

    def simulate(self, c: ec.Cascade, sizes: dict[str, float] | None, options) -> SimulationResult:
        """Communication bytes, rounds and latency (seconds) of `c` on options.network (default lan)."""
        from mappings.targets.private_inference.profiles import load_network, load_profile
        from mappings.targets.private_inference.protocol import map_cascade
        from mappings.targets import passes_over_keys
        full, how = complete_sizes(c, sizes)
        net = load_network(options.network or "lan")
        cost = map_cascade(c, full, load_profile(self.name), plaintext=options.plaintext)
        pairs = options.batch * options.heads
        comm, compute = cost.comm_bytes * pairs, cost.compute_s * pairs
        result = SimulationResult(target="private-inference", cascade=c.name, arch=self.name, sizes=full,
                                batch=options.batch, heads=options.heads,
                                latency_s=net.latency_s(comm, cost.rounds, compute), comm_bytes=comm,
                                rounds=cost.rounds, network=net.name, passes=passes_over_keys(c),
                                sizes_defaulted=how,
                                notes=[f"{pairs} (batch, head) pairs run in parallel rounds"]
                                + ([] if options.network else ["network: lan (default)"]))
        if options.check:  # every number finite and >= 0
            from mappings.certify import check_sanity
            check_sanity(result)
        return result
