"""The private-inference target: the cascade's protocol calls (mappings/targets/private_inference/protocol.py) on a network."""
from __future__ import annotations

import einsum_cascade as ec

from mappings.size_completion import complete_sizes
from mappings.targets.result import SimulationResult


KEY_TILE = 64  # keys per tile (M0) where none is given: the decoder's default and simulate's


def _default_tiles(c: ec.Cascade, sizes: dict[str, float], how: dict[str, str]) -> None:
    """A split rank (M = M1 * M0) given whole, with neither part: its inner part set to KEY_TILE (at most
    the whole), in place; the protocol prices every size as given, so a tile must be chosen here."""
    for rank in c.ranks.values():
        if len(rank.parts) == 2 and rank.name in sizes and not set(rank.parts) & set(sizes):
            inner = rank.parts[1]
            sizes[inner] = min(KEY_TILE, int(sizes[rank.name]))
            how[inner] = f"the private-inference tile ({KEY_TILE} keys, at most {rank.name})"


def _bound(net, comm_bytes: float, rounds: int, compute_s: float) -> str:
    """The largest of the latency's three terms: 'compute', 'bandwidth' (bytes on the wire) or 'rounds'."""
    terms = {"compute": compute_s, "bandwidth": net.transfer_s(comm_bytes), "rounds": rounds * net.rtt_s}
    return max(terms, key=terms.get)


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
        _default_tiles(c, full, how)
        net = load_network(options.network or "lan")
        cost = map_cascade(c, full, load_profile(self.name), plaintext=options.plaintext)
        pairs = options.batch * options.heads
        comm, compute = cost.comm_bytes * pairs, cost.compute_s * pairs
        result = SimulationResult(target="private-inference", cascade=c.name, arch=self.name, sizes=full,
                                batch=options.batch, heads=options.heads,
                                latency_s=net.latency_s(comm, cost.rounds, compute), comm_bytes=comm,
                                rounds=cost.rounds, network=net.name, passes=passes_over_keys(c),
                                sizes_defaulted=how, bound=_bound(net, comm, cost.rounds, compute),
                                notes=[f"{pairs} (batch, head) pairs run in parallel rounds"]
                                + ([] if options.network else ["network: lan (default)"]))
        if options.check:  # every number finite and >= 0
            from mappings.certify import check_sanity
            check_sanity(result)
        return result
