"""Differential testing of `simulate` (issue 19): random (cascade, architecture, mapping spec) triples.

Cascades: generated attention-like cascades (masks on a random subset of Einsums, `and` / `or` /
`not` masks with params, several outputs, a recurrence over the keys, a scalar input), blocked ones
(a split key rank, the query rank split too or not, masks on the block coordinates) and library
cascades (split ranks, recurrences). Architectures: fusemax-cloud's datasheet with 1 to 3 units of random shapes,
operators removed at random, a buffer of 1 KiB to 64 MiB and DRAM bandwidth over 4 decades.
Specs: fusion pass / none, tiles, query groups, spills, pipelining, stationarity, skip_masked_tiles
both ways (or the mapper). Properties: every result passes its certificate (mappings/certify.py:
an InvariantViolation fails the test), a refusal is a MappingError, and steady mode equals exact
mode within 1% wherever exact mode is cheap (under EXACT_INSTANCES op instances, well under 1 s).

The suite runs EXAMPLES examples (a fixed, reproducible sequence; about 30-60 s); `make
fuzz-simulate` runs CASCADESIM_FUZZ_SIM_EXAMPLES random ones and writes the counts
(CASCADESIM_FUZZ_SIM_SUMMARY).
"""
from __future__ import annotations

import copy
import os
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import einsum_cascade as ec
from archsim.config import CONFIG_DIR, parse_architecture
from archsim.errors import ScheduleError
from archsim.result import run
from archsim.yamlio import load_yaml_file
from mappings.scheduler import build_schedule
from mappings.simulation import simulate
from mappings.spec import MappingSpec
from mappings.work import MappingError

EXAMPLES = int(os.environ.get("CASCADESIM_FUZZ_SIM_EXAMPLES", "25"))
SUMMARY = os.environ.get("CASCADESIM_FUZZ_SIM_SUMMARY")
EXACT_INSTANCES = 40_000  # op instances under which exact mode is compared (about 0.25 s)
REASONS: dict[str, int] = {}  # refusals by the start of their message
STATS = {"triples": 0, "simulated": 0, "refused": 0, "compared": 0, "violations": 0, "crashes": 0}
BASE = load_yaml_file(CONFIG_DIR / "fusemax-cloud.yaml", "architecture file")
LIBRARY = ["attention_1pass", "attention_1pass_causal", "attention_3pass_causal", "attention_sinks",
           "attention_sliding_window", "linear_attention_causal", "lse_output", "attention_flash1",
           "agent_attention", "softplus_attention"]
MASKS = ["m <= p", "p - W < m", "m <= p and (m < S or p - W < m)", "m < S or p - W < m", "not (m > p)",
         "m <= p and not (p - W >= m)"]


# masks over a split key rank M = M1 x M0 (blocks of M0 keys) and an unsplit query rank: on the global
# key position, the block index (chunked, block-sparse attention) or both
BLOCK_MASKS = ["p < m1*M0 + M0 and m1*M0 + m0 <= p", "m1*M0 <= p and p < (m1 + 2)*M0", "m1*M0 + m0 <= p",
               "m1*M0 <= p or p - W < m1*M0 + m0", "not (m1*M0 > p)"]
# masks over split key and query ranks (P = P1 x P0 too): each comparison on the blocks or within them
SPLIT_MASKS = ["m1 <= p1", "m1 - p1 <= 1 and p1 - m1 <= 1", "m0 <= p0", "m1 <= p1 and m0 <= p0", "m1 < p1 or m0 <= p0"]


@st.composite
def blocked_cascades(draw) -> ec.Cascade:
    """Attention over key blocks (M = M1 x M0), the queries unsplit or in blocks too (P = P1 x P0),
    a mask on the block coordinates on a random subset of the Einsums."""
    split_q = draw(st.booleans())
    where = " where " + draw(st.sampled_from(SPLIT_MASKS if split_q else BLOCK_MASKS))
    mask = lambda: where if draw(st.booleans()) else ""  # noqa: E731
    q, qi = ("p1,p0", "BQ[e,p1,p0]") if split_q else ("p", "Q[e,p]")
    lines = ["BK[e,m1,m0] = K[e, m1*M0 + m0]", "BV[f,m1,m0] = V[f, m1*M0 + m0]"]
    if split_q:
        lines.append("BQ[e,p1,p0] = Q[e, p1*P0 + p0]")
    lines.append(f"QK[m1,m0,{q}] = {qi} * BK[e,m1,m0]" + mask())
    if draw(st.booleans()):
        w = mask()
        lines += [f"GM[{q}] = max(m1, m0: QK[m1,m0,{q}]){w}", f"SN[m1,m0,{q}] = exp(QK[m1,m0,{q}] - GM[{q}]){w}",
                  f"SD[{q}] = sum(m1, m0: SN[m1,m0,{q}]){w}", f"SNV[f,{q}] = SN[m1,m0,{q}] * BV[f,m1,m0]{w}",
                  f"A2[f,{q}] = SNV[f,{q}] / SD[{q}]"]
    else:
        lines.append(f"A2[f,{q}] = QK[m1,m0,{q}] * BV[f,m1,m0]" + mask())
    lines.append("AV[f, p1*P0 + p0] = A2[f,p1,p0]" if split_q else "AV[f,p] = A2[f,p]")
    text = "\n".join(["cascade fuzz_blocked", "rank E, F" + ("" if split_q else ", P"), "rank M = M1 * M0",
                      *(["rank P = P1 * P0"] if split_q else []), "param S, W",
                      "input Q[e,p], K[e,m], V[f,m]", "output AV", *lines]) + "\n"
    return ec.parse(text)


@st.composite
def cascades(draw) -> ec.Cascade:
    """A generated attention-like cascade, a blocked one (split ranks, masks on block coordinates)
    or a library one."""
    kind = draw(st.integers(0, 4))
    if kind == 0:
        return ec.load_library(draw(st.sampled_from(LIBRARY)))
    if kind == 1:
        return draw(blocked_cascades())
    mask = lambda: (" where " + draw(st.sampled_from(MASKS))) if draw(st.booleans()) else ""  # noqa: E731
    body = draw(st.sampled_from(["softmax", "relu", "plain"]))
    scalar = draw(st.booleans())  # a scalar (rank-0) input scaling the scores
    lines = ["QK[m,p] = Q[e,p] * K[e,m]" + (" * TAU" if scalar else "") + mask()]
    outputs = ["AV"]
    if body == "softmax":
        w = mask()
        lines += [f"GM[p] = max(m: QK[m,p]){w}", f"SN[m,p] = exp(QK[m,p] - GM[p]){w}",
                  f"SD[p] = sum(m: SN[m,p]){w}", f"SNV[f,p] = SN[m,p] * V[f,m]{w}", "AV[f,p] = SNV[f,p] / SD[p]"]
    elif body == "relu":
        lines += ["A[m,p] = relu(QK[m,p])" + mask(), "AV[f,p] = A[m,p] * V[f,m]" + mask()]
    else:
        lines += ["AV[f,p] = QK[m,p] * V[f,m]" + mask()]
    if draw(st.booleans()):
        lines.append("AC[f,p] = QK[m,p] * V[f,m]" + mask())
        outputs.append("AC")
    if draw(st.booleans()):  # a recurrence over the keys, read at the end
        lines += ["R[f,0] = 0", "R[f,m+1] = R[f,m] + V[f,m]", "RS[f] = R[f,M]"]
        outputs.append("RS")
    text = "\n".join(["cascade fuzz", "rank E, F, M, P", "param S, W",
                      "input Q[e,p], K[e,m], V[f,m]" + (", TAU" if scalar else ""),
                      f"output {', '.join(outputs)}", *lines]) + "\n"
    return ec.parse(text)


@st.composite
def architectures(draw):
    """fusemax-cloud's datasheet, reshaped: 1-3 units, operators dropped, buffer and bandwidth drawn."""
    data = copy.deepcopy(BASE)
    units = data["units"]
    n = draw(st.integers(1, 3))
    if n == 1:
        units.pop(draw(st.sampled_from(sorted(units))))
    elif n == 3:
        units["array1d_b"] = copy.deepcopy(units["array1d"])
    for name, u in units.items():
        if u["rows"] > 1:
            u["rows"] = u["cols"] = 2 ** draw(st.integers(3, 8))
        else:
            u["cols"] = 2 ** draw(st.integers(3, 8))
        if draw(st.integers(0, 4)) == 0:
            u["operators"].pop(draw(st.sampled_from(sorted(u["operators"]))))
    data["buffer"]["capacity_bytes"] = int(2 ** draw(st.floats(10, 26)))
    data["dram"]["bandwidth_bytes_per_s"] = float(BASE["dram"]["bandwidth_bytes_per_s"] * 10 ** draw(st.floats(-2, 2)))
    return parse_architecture(data, "fuzz-arch.yaml")


@st.composite
def specs(draw, c: ec.Cascade, arch, n: int):
    """A random spec for `c` on `arch` at M = P = n (or "auto")."""
    if draw(st.integers(0, 5)) == 0:
        return "auto"
    units = sorted(arch.units)
    live = list(ec.passes(c, "M").live_across_passes)
    fields = dict(
        name="fuzz", fusion=draw(st.sampled_from(["pass", "pass", "none"])),
        binding_rules=[{"einsums": "sum_of_products", "unit": draw(st.sampled_from(units))},
                       {"einsums": "rest", "unit": draw(st.sampled_from(units))}],
        tile=draw(st.sampled_from([t for t in (16, 64, 256) if t <= n] + ["whole"])),
        query_group=draw(st.sampled_from(["auto", 16, 64, n])),
        pipeline=draw(st.sampled_from(["tiles", "none", "blocks"])),
        stationarity=draw(st.sampled_from(["weight", "output"])),
        skip_masked_tiles=draw(st.booleans()),
        spill={t: draw(st.sampled_from([0.0, 0.5, 1.0])) for t in live if draw(st.booleans())},
        min_blocks=draw(st.sampled_from([1, 16])),
    )
    return MappingSpec(**fields)


def _sizes(c: ec.Cascade, n: int, e: int) -> dict:
    sizes = {"M": n, "P": n, "E": e, "F": e, "S": 4, "W": 16, "N": 16, "M0": 16, "P0": 16}
    return {k: v for k, v in sizes.items() if k in c.size_names or k in c.params}


def _instances(s) -> int:
    return sum(n for _, n in s.instances_per_op())


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_every_simulated_result_is_certified_and_steady_equals_exact(data):
    from mappings.certify import InvariantViolation
    c = data.draw(cascades())
    arch = data.draw(architectures())
    n = 2 ** data.draw(st.integers(6, 10))
    sizes = _sizes(c, n, data.draw(st.sampled_from([16, 64])))
    spec = data.draw(specs(c, arch, n))
    heads = data.draw(st.integers(1, 3))
    STATS["triples"] += 1
    if SUMMARY and STATS["triples"] % 100 == 0:  # progress of a long campaign, written as it goes
        _write_summary()
    try:
        r = simulate(c, arch, sizes, mapping=spec, heads=heads)
    except InvariantViolation:
        STATS["violations"] += 1
        raise
    except (MappingError, ScheduleError) as err:
        STATS["refused"] += 1
        reason = str(err).split(": ", 1)[-1][:70]
        REASONS[reason] = REASONS.get(reason, 0) + 1
        return
    except Exception:
        STATS["crashes"] += 1
        raise
    STATS["simulated"] += 1
    used = MappingSpec.model_validate({**r.mapping, "source": "fuzz"})
    s = build_schedule(c, used, arch, r.sizes, outer_blocks=heads)
    if _instances(s) <= EXACT_INSTANCES:
        exact = run(s, arch, "exact").cycles
        steady = run(s, arch, "steady").cycles
        STATS["compared"] += 1
        assert abs(steady - exact) <= 0.01 * exact, f"steady {steady} vs exact {exact} cycles ({c.name}, {used})"


def _write_summary() -> str:
    line = ", ".join(f"{v} {k}" for k, v in STATS.items())
    if SUMMARY:
        Path(SUMMARY).write_text(line + "\n" + "".join(f"  refused {k}: {r}\n" for r, k in
                                                     sorted(REASONS.items(), key=lambda x: -x[1])[:12]))
    return line


def teardown_module(module) -> None:
    print(f"\nfuzz simulate: {_write_summary()}")
    for reason, k in sorted(REASONS.items(), key=lambda x: -x[1])[:12]:
        print(f"  refused {k}: {reason}")
