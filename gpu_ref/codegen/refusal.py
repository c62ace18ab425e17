"""The error a cascade the generator cannot compile raises: which Einsum, and why."""
from __future__ import annotations


class KernelRefusal(Exception):
    """A cascade (or one of its Einsums) that `generate` does not turn into a kernel.

    `einsum` names the Einsum (or tensor) at fault, `reason` says why; `str()` is one line."""

    def __init__(self, cascade: str, einsum: str, reason: str):
        self.cascade, self.einsum, self.reason = cascade, einsum, reason
        super().__init__(f"{cascade}: {einsum}: {reason}")
