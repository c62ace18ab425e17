"""The FuseMax paper's five configurations as spec files + the generic scheduler keep the numbers
of the per-configuration mapping classes they replaced (tests/data/fusemax_vs_flat_hand_mappings.csv,
written by `cascadesim study fusemax-vs-flat` at commit b851cd4): every point within 1% of latency."""
import csv
import statistics
from pathlib import Path

import pytest

from archsim.config import load_architecture
from archsim.result import run
from mappings import MAPPINGS, get_mapping, load_spec, spec_names
from mappings.workload import make_workload, parse_length

BEFORE = Path(__file__).parent / "data" / "fusemax_vs_flat_hand_mappings.csv"


def _before() -> list[dict]:
    lines = [line for line in BEFORE.read_text().splitlines() if not line.startswith("#")]
    return [r for r in csv.DictReader(lines) if r["kind"] == "attention"]


@pytest.fixture(scope="module")
def now():
    out = {}
    for r in _before():
        m = get_mapping(r["config"])
        a = load_architecture(m.default_arch)
        out[(r["model"], r["seq_len"], r["config"])] = run(m.schedule(make_workload(r["model"], parse_length(r["seq_len"])), a), a)
    return out


def test_every_point_within_one_percent(now):
    rows = _before()
    assert len(rows) == 120
    for r in rows:
        res = now[(r["model"], r["seq_len"], r["config"])]
        assert res.seconds == pytest.approx(float(r["latency_s"]), rel=0.01), (r["model"], r["seq_len"], r["config"])
        assert res.dram_bytes == pytest.approx(float(r["dram_bytes"]), rel=0.01)
        assert res.joules == pytest.approx(float(r["energy_j"]), rel=0.01)


def test_means_within_one_percent(now):
    rows = _before()
    pairs = sorted({(r["model"], r["seq_len"]) for r in rows})
    by = {(r["model"], r["seq_len"], r["config"]): float(r["latency_s"]) for r in rows}
    for c in MAPPINGS:
        before = statistics.mean(by[(m, n, "flat")] / by[(m, n, c)] for m, n in pairs)
        after = statistics.mean(now[(m, n, "flat")].seconds / now[(m, n, c)].seconds for m, n in pairs)
        assert after == pytest.approx(before, rel=0.01), c


def test_the_five_configurations_are_spec_files():
    assert set(MAPPINGS) <= set(spec_names())
    for name in MAPPINGS:
        spec = load_spec(name)
        assert spec.name == name and spec.arch in ("flat-cloud", "fusemax-cloud")
    mappings_dir = Path(__file__).parents[1] / "mappings"
    assert not (mappings_dir / "onepass.py").exists() and not (mappings_dir / "threepass.py").exists()
