"""Which library cascades and blocks generate kernels, and why the others are refused:
`python -m gpu_ref.codegen.table` prints the table of docs/kernels.md (a test checks they agree)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Row:
    name: str
    rank: str
    status: str  # "generated" or "refused"
    form: str  # as written / fused: k -> 1 passes / not fused
    kernels: int
    einsum: str = ""
    reason: str = ""


def kernel_rows(block_m: int = 64, block_n: int = 64) -> list[Row]:
    """One row per library cascade, then per block, from `generate` itself."""
    import einsum_cascade as ec
    from gpu_ref.codegen import KernelRefusal, generate
    from gpu_ref.codegen.generate import default_rank

    rows = []
    for name in ec.library_names() + ec.block_names():
        cascade = ec.load_library(name)
        rank = default_rank(cascade)
        try:
            g = generate(cascade, rank=rank, block_m=block_m, block_n=block_n)
        except KernelRefusal as refusal:
            rows.append(Row(name, rank, "refused", "", 0, refusal.einsum, refusal.reason))
            continue
        form = "not fused" if g.form.startswith("not fused") else g.form
        rows.append(Row(name, rank, "generated", form, len(g.kernels)))
    return rows


def markdown(rows: list[Row]) -> str:
    lines = ["| cascade | streamed rank | kernel | form it is generated from | kernels |",
             "|---|---|---|---|---|"]
    for r in rows:
        if r.status == "generated":
            lines.append(f"| {r.name} | {r.rank} | generated | {r.form} | {r.kernels} |")
        else:
            lines.append(f"| {r.name} | {r.rank} | refused: {r.einsum}: {r.reason} | - | - |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":  # pragma: no cover
    print(markdown(kernel_rows()), end="")
