"""A new user's trial (2026-12-08): four attention variants from the papers list that nobody here had
written (tests/data/trial/), run end to end: eval against independent numpy formulas, the pass
counts derived by hand, fuse's fewest passes, and simulate certified on both accelerators (the
equality mask `m == 0` of Attention Calibration was refused before)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import einsum_cascade as ec
from mappings import simulate

DATA = Path(__file__).parent / "data" / "trial"
E, F, M, P = 8, 6, 24, 24


def _softmax(x: np.ndarray, axis: int) -> np.ndarray:
    x = x - x.max(axis=axis, keepdims=True)
    e = np.exp(x)
    return e / e.sum(axis=axis, keepdims=True)


def _load(name: str) -> ec.Cascade:
    return ec.load(DATA / f"{name}.cascade")


@pytest.fixture
def qkv():
    rng = np.random.default_rng(4)
    return rng, rng.standard_normal((E, P)), rng.standard_normal((E, M)), rng.standard_normal((F, M))


def test_act_calibrated_attention_equals_numpy(qkv):
    # sink weight a[0] scaled by beta; the mass removed goes to the other keys in proportion
    _, Q, K, V = qkv
    beta = 0.4
    out = _load("act_calibrated_attention").evaluate({"Q": Q, "K": K, "V": V}, {"BETA": beta})
    a = _softmax(K.T @ Q, 0)
    w = a * (1 + (1 - beta) * a[0] / (1 - a[0]))
    w[0] = beta * a[0]
    assert np.abs(out["AV"] - V @ w).max() < 1e-12


def test_titans_linear_memory_equals_numpy(qkv):
    # W trained online on |W^T k - v|^2 / 2 with momentum eta, step theta and decay alpha
    _, Q, K, V = qkv
    eta, theta, alpha = 0.9, 0.1, 0.05
    out = _load("titans_memory").evaluate({"Q": Q, "K": K, "V": V}, {"ETA": eta, "THETA": theta, "ALPHA": alpha})
    w, s, states = np.zeros((E, F)), np.zeros((E, F)), []
    for m in range(M):
        s = eta * s - theta * np.outer(K[:, m], w.T @ K[:, m] - V[:, m])
        w = (1 - alpha) * w + s
        states.append(w.copy())
    want = np.stack([states[p].T @ Q[:, p] for p in range(P)], axis=1)
    assert np.abs(out["AV"] - want).max() < 1e-12


def test_snapkv_attention_equals_numpy(qkv):
    rng, _, K, V = qkv
    window, kk = rng.standard_normal((E, 5)), 7
    q = rng.standard_normal((E, 3))
    out = _load("snapkv_attention").evaluate({"Q": q, "QW": window, "K": K, "V": V}, {"KK": kk})
    vote = _softmax(K.T @ window, 0).sum(axis=1)
    keep = vote >= np.sort(vote)[::-1][kk - 1]
    assert np.abs(out["AV"] - V @ _softmax(np.where(keep[:, None], K.T @ q, -np.inf), 0)).max() < 1e-12


def test_urpe_attention_equals_numpy(qkv):
    rng, Q, K, V = qkv
    c = rng.random(M)
    out = _load("urpe_attention").evaluate({"Q": Q, "K": K, "V": V, "C": c}, {})
    m, p = np.meshgrid(np.arange(M), np.arange(P), indexing="ij")
    a = _softmax(np.where(m <= p, K.T @ Q, -np.inf), 0)
    w = a * np.where(m <= p, c[np.clip(p - m, 0, M - 1)], 0)
    assert np.abs(out["AV"] - V @ w).max() < 1e-12


@pytest.mark.parametrize("name, written, fewest", [
    ("act_calibrated_attention", 3, 1),  # max; sum; the sums of A (AS, AR, A0) need SD: online, one pass
    ("titans_memory", 1, 1),             # a recurrence over the keys: one pass
    ("snapkv_attention", 5, 3),          # votes need a whole softmax over M, top-k all votes, then one pass
    ("urpe_attention", 2, 1)])           # causal softmax with a positional weight: online, one pass
def test_pass_counts_by_hand(name, written, fewest):
    c = _load(name)
    assert ec.passes(c, "M").passes == written
    assert (ec.fuse(c, "M").passes_after if written > 1 else 1) == fewest


CLOCK_HZ, ARRAY_PES, ROW_PES = 940e6, 256 * 256, 256  # both accelerators' datasheets (archsim/configs)


@pytest.mark.parametrize("arch, n, heads", [("fusemax-cloud", 4096, 12), ("flat-cloud", 1024, 1)])
def test_fused_calibrated_attention_simulates_certified_within_its_bounds(arch, n, heads):
    """ACT's fused form (E = F = 64), certified (simulate raises otherwise), against hand bounds:
    QK and AR are n x n x 64 multiply-adds each (A0 reads one key) on the 256 x 256 array; on
    flat-cloud, whose 2D array has only MACs, the two running maxes (LM, LM3) and the two exps of
    the scores (SLN, SLN3, the shift folded into the exp) are one 1-cycle operation per score point
    each on the 256-wide 1D array. Latency within [1.0, 1.6] x the larger bound."""
    fused = ec.fuse(_load("act_calibrated_attention"), "M").cascade
    r = simulate(fused, arch, {"M": n, "E": 64, "F": 64, "BETA": 0.5}, heads=heads)
    macs = heads * 2 * n * n * 64
    bound = macs / ARRAY_PES / CLOCK_HZ
    if arch == "flat-cloud":
        bound = max(bound, heads * 4 * n * n / ROW_PES / CLOCK_HZ)
    assert bound <= r.latency_s <= 1.6 * bound
