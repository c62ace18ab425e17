"""The GPU target: the cascade's kernel timed by the GPU model (archsim/gpu_model.py)."""
from __future__ import annotations

import einsum_cascade as ec

from mappings.size_completion import complete_sizes
from mappings.targets.result import SimulationResult
from mappings.work import MappingError


class GPUTarget:
    """A GPU description (archsim/configs/gpus/ name or YAML path); no mapping choice, no energy model."""
    kind = "gpu"

    def __init__(self, name_or_path: str):
        self.name = name_or_path

    def simulate(self, c: ec.Cascade, sizes: dict[str, float] | None, options) -> SimulationResult:
        """The predicted time of the gpu_ref kernel that implements `c` (mappings/gpu_predict.py)."""
        from mappings.gpu_mapping import AttentionShape
        from mappings.gpu_predict import PROFILE_FOR_CASCADE, predict
        from mappings.targets import passes_over_keys
        arch = self.name
        if c.name not in PROFILE_FOR_CASCADE:
            raise MappingError(f"--arch {arch}: no GPU kernel implements cascade {c.name} "
                               f"(kernels for: {', '.join(sorted(PROFILE_FOR_CASCADE))})")
        full, how = complete_sizes(c, sizes)
        if full.get("M") != full.get("P"):
            raise MappingError(f"--arch {arch}: the GPU kernels run self-attention (M = P), "
                               f"got M={full.get('M')}, P={full.get('P')}")
        shape = AttentionShape(batch=options.batch, heads=options.heads, seq_len=int(full["M"]),
                               head_dim=int(full["E"]), causal=False)
        kernel = PROFILE_FOR_CASCADE[c.name]
        pred = predict(arch, kernel, shape)
        result = SimulationResult(target="gpu", cascade=c.name, arch=str(arch), sizes=full, batch=options.batch,
                                heads=options.heads, latency_s=pred.time_s, bounding_unit=pred.bound,
                                dram_bytes=pred.hbm_bytes, passes=passes_over_keys(c), sizes_defaulted=how,
                                notes=[f"gpu_ref kernel profile {kernel} ({pred.dtype})"])
        if options.check:  # finite, >= 0, latency >= HBM bytes / bandwidth and >= FLOPs / peak
            from mappings.certify import check_gpu
            check_gpu(result, c, arch)
        return result
