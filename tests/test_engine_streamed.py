"""The streamed engine (archsim.streaming, what `simulate_exact` runs) against the simpy
reference (`simulate_exact_simpy`): the same cycles and peak buffer bytes, bit for bit, on
random schedules with every feature (units and DMA ops, lags, prev: and cross-segment
dependencies, loads after stored results, stores, buffer holds until later ops, a buffer
small enough to stall the loader), on the mappings' schedules, and the same errors."""
from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from archsim import engine
from archsim.config import load_architecture
from archsim.engine import simulate_exact_simpy
from archsim.errors import ScheduleError
from archsim.schedule import Schedule, Segment, TileOp
from mappings import get_mapping
from mappings.workload import Workload

ARCH = load_architecture("fusemax-cloud")
BPC = ARCH.dram_bytes_per_cycle
UNITS = ["array2d", "array1d", None]


def _arch_with_buffer(capacity: int):
    return replace(ARCH, buffer=replace(ARCH.buffer, capacity_bytes=capacity))


@st.composite
def schedules(draw):
    n_segments = draw(st.integers(1, 3))
    segments, names = [], []
    for si in range(n_segments):
        ops = []
        for oi in range(draw(st.integers(1, 4))):
            name = f"s{si}o{oi}"
            same = [o.name for o in ops]
            earlier = list(names)  # ops of earlier segments
            deps = draw(st.lists(st.sampled_from(same + earlier + [f"prev:{n}" for n in same + [name]]),
                                 max_size=3, unique=True)) if same + earlier else \
                draw(st.lists(st.just(f"prev:{name}"), max_size=1))
            ops.append(TileOp(
                name, draw(st.sampled_from(UNITS)), float(draw(st.sampled_from([0, 1, 5, 10, 37.5, 100]))),
                deps=tuple(deps),
                load_bytes=draw(st.sampled_from([0.0, 0.0, BPC * 3, BPC * 40, BPC * 7.25])),
                store_bytes=draw(st.sampled_from([0.0, 0.0, BPC * 2, BPC * 30])),
                buffer_bytes=draw(st.sampled_from([0.0, 100.0, 400.0, 700.0])),
                load_after_deps=draw(st.booleans()),
                lag=draw(st.sampled_from([0, 0, 0, 1, 2])),
            ))
        # some ops hold their bytes until the last op of the segment
        if len(ops) > 1 and draw(st.booleans()):
            ops[0] = replace(ops[0], hold_until=ops[-1].name)
        names += [o.name for o in ops]
        segments.append(Segment(f"seg{si}", draw(st.integers(0, 5)), tuple(ops)))
    return Schedule("random", draw(st.integers(0, 6)), tuple(segments))


def _outcome(f, s, arch):
    try:
        return f(s, arch)
    except ScheduleError as err:
        return ("error", str(err))


@settings(max_examples=300, deadline=None)
@given(schedules(), st.sampled_from([1000, 1500, 4096, 10**9]))
def test_streamed_equals_simpy_reference(s, capacity):
    arch = _arch_with_buffer(capacity)
    engine.clear_memo()
    assert _outcome(engine.simulate_exact, s, arch) == _outcome(simulate_exact_simpy, s, arch)


@pytest.mark.parametrize("config", ["fusemax", "flat", "unfused", "cascade", "arch"])
def test_streamed_equals_simpy_on_mappings(config):
    w = Workload("small", B=1, D=256, E=64, F=64, H=2, S=1024, seq_len=4096)
    m = get_mapping(config)
    arch = load_architecture(m.default_arch)
    s = m.schedule(w, arch)
    engine.clear_memo()
    assert engine.simulate_exact(s, arch) == simulate_exact_simpy(s, arch)


def test_memo_ignores_names_but_not_timing():
    ops = (TileOp("A", "array2d", 10.0), TileOp("B", "array1d", 30.0, deps=("A",)))
    s = Schedule("t", 2, (Segment("s", 5, ops),))
    engine.clear_memo()
    first = engine.simulate_exact(s, ARCH)
    assert engine.simulate_exact(replace(s, name="other"), ARCH) == first
    slower = replace(s, segments=(Segment("s", 5, (ops[0], replace(ops[1], cycles=31.0))),))
    assert engine.simulate_exact(slower, ARCH) == simulate_exact_simpy(slower, ARCH) != first
