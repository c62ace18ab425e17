"""Validate the private-inference cost model against SPU: measured vs predicted bytes of attention cascades.

Usage: python benchmarks/pi/validate_cascades.py   (`make validate-pi`; not part of `make test`)

For the 3-pass and 1-pass softmax cascades and sigmoid attention, a jax program that does what the
cascade says (same Einsums, same order) runs two-party in SPU (CHEETAH, FM64, 18 fractional bits;
benchmarks/pi/.venv, created by measure_spu.py if missing) at two context lengths. The difference of
the measured bytes (which removes the one-time setup) is compared with the difference of the model's
prediction (mappings/targets/private_inference/protocol.py with the shipped spu-cheetah profile). Target: within 15%.
Prints a table and writes benchmarks/pi/validation.json. Exit status 1 if a cascade misses the target.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SPU_PYTHON = HERE / ".venv" / "bin" / "python"
E = 32
TILE = 32
CONTEXTS = (128, 256)
TARGET = 0.15
CASCADES = ("attention_3pass", "attention_1pass", "sigmoid_attention")


def spu_program(name: str, t: int):
    """The jax function of cascade `name` on Q[e,p], K[e,m], V[f,m] with M = P = t, and its inputs."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    rng = np.random.default_rng(0)
    q, k, v = (rng.normal(size=(E, t)).astype(np.float32) / 3 for _ in range(3))

    def three_pass(q, k, v):
        qk = k.T @ q                                   # QK[m,p]
        gm = jnp.max(qk, axis=0)                       # GM[p]
        sn = jnp.exp(qk - gm[None, :])                 # SN[m,p]
        sd = jnp.sum(sn, axis=0)                       # SD[p]
        a = sn * jnp.reciprocal(sd)[None, :]           # A = SN / SD: reciprocal per row, then multiply
        return v @ a                                   # AV[f,p]

    def one_pass(q, k, v):
        # Einsum by Einsum, each over its whole iteration space (one batched call, as the model
        # prices it); only the recurrences RM, RD, RNV step over m1 one after another.
        m1 = t // TILE
        bk = k.reshape(E, m1, TILE)                                  # BK[e,m1,m0]
        bv = v.reshape(E, m1, TILE)                                  # BV[f,m1,m0]
        qk = jnp.einsum("ep,eij->ijp", q, bk)                        # QK[m1,m0,p]
        lm = jnp.max(qk, axis=1)                                     # LM[m1,p]
        rm = [lm[0]]                                                 # RM[1] = max(-inf, LM[0])
        for i in range(1, m1):
            rm.append(jnp.maximum(rm[-1], lm[i]))                    # RM[m1+1,p]
        rm_next = jnp.stack(rm)                                      # RM[m1+1,p] for every m1
        rm_prev = jnp.concatenate([jnp.full((1, t), -1e4, dtype=jnp.float32), rm_next[:-1]])
        prm = jnp.exp(rm_prev - rm_next)                             # PRM[m1,p]
        sln = jnp.exp(qk - rm_next[:, None, :])                      # SLN[m1,m0,p]
        sld = jnp.sum(sln, axis=1)                                   # SLD[m1,p]
        slnv = jnp.einsum("ijp,fij->fip", sln, bv)                   # SLNV[f,m1,p]
        rd, rnv = sld[0], slnv[:, 0]                                 # RD[1], RNV[1] (RD[0] = RNV[0] = 0)
        for i in range(1, m1):
            rd = sld[i] + rd * prm[i]                                # RD[m1+1] = SLD + SPD
            rnv = slnv[:, i] + rnv * prm[i][None, :]                 # RNV[m1+1] = SLNV + SPNV
        return rnv * jnp.reciprocal(rd)[None, :]                     # AV = RNV[M1] / RD[M1]

    def sigmoid(q, k, v):
        return v @ jax.nn.sigmoid(k.T @ q)             # B = 0

    return {"attention_3pass": three_pass, "attention_1pass": one_pass,
            "sigmoid_attention": sigmoid}[name], (q, k, v)


def run_in_spu(name: str, t: int) -> None:
    """Child process inside the spu venv: run once; the parent reads the link log."""
    import spu.libspu as libspu
    import spu.utils.simulation as spsim

    cfg = libspu.RuntimeConfig(protocol=libspu.ProtocolKind.CHEETAH, field=libspu.FieldType.FM64,
                               fxp_fraction_bits=18)
    cfg.enable_hal_profile = True
    fn, args = spu_program(name, t)
    spsim.sim_jax(spsim.Simulator(2, cfg), fn)(*args)


LINK = re.compile(r"Link details: total send bytes (\d+), recv bytes (\d+)")


def measured_bytes(name: str, t: int) -> int:
    proc = subprocess.run([str(SPU_PYTHON), __file__, "--spu-run", name, str(t)], capture_output=True, text=True)
    found = LINK.findall(proc.stdout + proc.stderr)
    if proc.returncode != 0 or not found:
        raise SystemExit(f"validate_cascades: SPU run of {name} at T={t} failed:\n{(proc.stdout + proc.stderr)[-2000:]}")
    send, recv = map(int, found[-1])
    return send + recv


def predicted_bytes(name: str, t: int) -> float:
    import einsum_cascade as ec
    from mappings.targets.private_inference.profiles import load_profile
    from mappings.targets.private_inference.protocol import map_cascade

    c = ec.load_library(name)
    sizes = {"E": E, "F": E, "M": t, "P": t}
    if "M0" in c.size_names:
        sizes["M0"] = TILE
    for param in c.params:
        sizes[param] = 0.0
    return map_cascade(c, sizes, load_profile("spu-cheetah")).comm_bytes


def main() -> int:
    if len(sys.argv) == 4 and sys.argv[1] == "--spu-run":
        run_in_spu(sys.argv[2], int(sys.argv[3]))
        return 0
    if not SPU_PYTHON.exists():
        subprocess.run([sys.executable, str(HERE / "measure_spu.py"), "--venv-only"], check=False)
    if not SPU_PYTHON.exists():
        print("validate_cascades: no SPU environment; run benchmarks/pi/measure_spu.py first", file=sys.stderr)
        return 2
    sys.path.insert(0, str(HERE.parent.parent))
    from studies.progress import progress as tqdm

    results = []
    ok = True
    for name in tqdm(CASCADES, desc="cascades"):
        t1, t2 = CONTEXTS
        measured = measured_bytes(name, t2) - measured_bytes(name, t1)
        predicted = predicted_bytes(name, t2) - predicted_bytes(name, t1)
        error = predicted / measured - 1.0
        ok &= abs(error) <= TARGET
        results.append({"cascade": name, "contexts": [t1, t2], "E": E, "tile": TILE,
                        "measured_bytes": measured, "predicted_bytes": predicted, "error": error})
    (HERE / "validation.json").write_text(json.dumps(results, indent=1))
    print(f"{'cascade':<20} {'measured MB':>12} {'predicted MB':>13} {'error':>8}   (T {CONTEXTS[0]} -> {CONTEXTS[1]}, E = {E})")
    for r in results:
        print(f"{r['cascade']:<20} {r['measured_bytes'] / 1e6:12.2f} {r['predicted_bytes'] / 1e6:13.2f} {r['error']:+8.1%}")
    print(f"target: within {TARGET:.0%}: {'met' if ok else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
