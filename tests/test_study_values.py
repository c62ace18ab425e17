"""Study points against values stored before the speed work (issue 15): the numeric cost path,
the caches, the memo and the engine must leave every number bit-for-bit unchanged.

The rows below are copied from reports/fusemax-vs-flat/results.csv as produced at commit
b851cd4 (symbolic cost, uncached loads, the simpy engine without memo)."""
from __future__ import annotations

import pytest

from archsim import engine
from studies.fusemax_vs_flat import COLUMNS, attention_point

STORED = """\
attention,BERT,1K,fusemax,0.0020141036667844082,2.10311721493463,402653184.0,0.8891849351315307,0.999521751899677
attention,BERT,4K,arch,0.09515827940232298,33.22786638554411,1610612736.0,0.8638121360750253,0.312115326520747
attention,TrXL,256K,cascade,1321.9193636659575,227597.62342473475,343597383680.0,0.11060557598937949,0.9998247208454016
attention,T5,64K,unfused,57.6487639643617,9052.567702564113,17609365913600.0,0.07925779896175161,0.6340623916940129
attention,XLM,1M,flat,22283.525441817594,7110488.633645919,9570698963976192.0,0.20996555937118175,0.839862237484727
"""


@pytest.mark.parametrize("row", STORED.splitlines())
@pytest.mark.parametrize("memo", ["cold", "warm"])
def test_point_unchanged(row, memo):
    values = dict(zip(COLUMNS, row.split(",")))
    if memo == "cold":
        engine.clear_memo()
    p = attention_point(values["model"], values["seq_len"], values["config"])
    for column in ("latency_s", "energy_j", "dram_bytes", "util_2d", "util_1d"):
        assert p[column] == float(values[column]), column
