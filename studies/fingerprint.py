"""A fingerprint of the modelling code and data, so cached sweep points are reused only while
the model that produced them is unchanged.

Covered, because their code or data changes a number: einsum_cascade (the cascades, their counts
and evaluation), archsim (the simulator and the architecture, GPU and profile descriptions),
mappings (the mappings, the targets, the private-inference model) and gpu_ref (its tile tables,
gpu_ref/tiles.py, set the GPU model's launches; its kernels are what the measurements measured).
Not covered: studies/ (each study adds its own module's source to the key of its cached points,
and the sweep engine adds studies/sweep/point.py) and cascadesim_errors.py (messages only).
"""
from __future__ import annotations

import hashlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODEL_PACKAGES = ("einsum_cascade", "archsim", "mappings", "gpu_ref")
MODEL_SUFFIXES = (".py", ".yaml", ".cascade")


def model_fingerprint(packages: tuple[str, ...] = MODEL_PACKAGES) -> str:
    """First 16 hex digits of the SHA-256 over the source and data files of `packages`."""
    digest = hashlib.sha256()
    for package in packages:
        for path in sorted((ROOT / package).rglob("*")):
            if path.suffix in MODEL_SUFFIXES and path.is_file() and "__pycache__" not in path.parts:
                digest.update(str(path.relative_to(ROOT)).encode())
                digest.update(path.read_bytes())
    return digest.hexdigest()[:16]
