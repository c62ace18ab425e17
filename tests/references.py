"""Direct numpy formulas of the attention variants, written independently of the cascades.

Conventions: Q[e,p], K[e,m], V[f,m] (columns are tokens), outputs AV[f,p]; fp64 throughout.
Masks are boolean arrays mask[m,p], True where key m is visible to query p.
"""
from __future__ import annotations

import numpy as np


def causal_mask(m: int, p: int) -> np.ndarray:
    """mask[m,p] = m <= p."""
    return np.arange(m)[:, None] <= np.arange(p)[None, :]


def window_mask(m: int, p: int, w: int) -> np.ndarray:
    """mask[m,p] = p - w < m <= p (the w most recent keys, the query's own included)."""
    keys = np.arange(m)[:, None]
    queries = np.arange(p)[None, :]
    return (keys <= queries) & (keys > queries - w)


def softmax_attention(q: np.ndarray, k: np.ndarray, v: np.ndarray,
                      mask: np.ndarray | None = None,
                      temperature: np.ndarray | None = None) -> np.ndarray:
    """softmax over keys of (T[p] * Q.K), masked, times V; unscaled."""
    scores = k.T @ q                                   # [m, p]
    if temperature is not None:
        scores = scores * temperature[None, :]
    if mask is not None:
        scores = np.where(mask, scores, -np.inf)
    weights = np.exp(scores - scores.max(axis=0, keepdims=True))
    weights /= weights.sum(axis=0, keepdims=True)
    return v @ weights                                 # [f, p]


def sigmoid_attention(q: np.ndarray, k: np.ndarray, v: np.ndarray, bias: float) -> np.ndarray:
    """sigmoid(Q.K + b) V, no normalisation."""
    weights = 1.0 / (1.0 + np.exp(-(k.T @ q + bias)))
    return v @ weights


def relu_attention(q: np.ndarray, k: np.ndarray, v: np.ndarray) -> np.ndarray:
    """relu(Q.K) / M times V (Wortsman et al. 2023: ReLU divided by the sequence length)."""
    scores = k.T @ q
    return v @ (np.maximum(scores, 0.0) / scores.shape[0])


def softplus_attention(q: np.ndarray, k: np.ndarray, v: np.ndarray) -> np.ndarray:
    """l1-normalised softplus(Q.K) over keys, times V."""
    weights = np.logaddexp(0.0, k.T @ q)
    weights /= np.abs(weights).sum(axis=0, keepdims=True)
    return v @ weights


def elu_plus_one(x: np.ndarray) -> np.ndarray:
    """phi(x) = elu(x) + 1 = x + 1 for x > 0, exp(x) otherwise."""
    return np.where(x > 0, x + 1.0, np.exp(np.minimum(x, 0.0)))


def linear_attention(q: np.ndarray, k: np.ndarray, v: np.ndarray,
                     mask: np.ndarray | None = None) -> np.ndarray:
    """Kernel attention with phi = elu + 1, computed quadratically: weights phi(K).phi(Q), masked, l1-normalised."""
    weights = elu_plus_one(k).T @ elu_plus_one(q)      # [m, p]
    if mask is not None:
        weights = np.where(mask, weights, 0.0)
    return v @ (weights / weights.sum(axis=0, keepdims=True))


def decayed_causal_linear_attention(q: np.ndarray, k: np.ndarray, v: np.ndarray,
                                    decay: float) -> np.ndarray:
    """AV[:,p] = sum_{m <= p} decay^(p-m) (Q[:,p].K[:,m]) V[:,m], one query at a time."""
    out = np.zeros((v.shape[0], q.shape[1]))
    for p in range(q.shape[1]):
        for m in range(p + 1):
            out[:, p] += decay ** (p - m) * float(q[:, p] @ k[:, m]) * v[:, m]
    return out


def agent_attention(q: np.ndarray, k: np.ndarray, v: np.ndarray, a: np.ndarray) -> np.ndarray:
    """softmax_n(Q.A) (softmax_m(A.K) V): agents aggregate the keys, queries read the agents."""
    agent_values = softmax_attention(a, k, v)          # [f, n]
    return softmax_attention(q, a, agent_values)       # [f, p]


# -- multi-pass cascades for `cascadesim fuse` (issue 12) --------------------------------------

def _softmax_weights(q: np.ndarray, k: np.ndarray) -> np.ndarray:
    """softmax over keys (axis 0) of K^T Q, via scipy's stable softmax."""
    from scipy.special import softmax
    return softmax(k.T @ q, axis=0)


def differential_attention(q: np.ndarray, k: np.ndarray, q2: np.ndarray, k2: np.ndarray,
                           v: np.ndarray, lam: float) -> np.ndarray:
    """(softmax(Q.K) - lam * softmax(Q2.K2)) V (Ye et al., Differential Transformer)."""
    return v @ (_softmax_weights(q, k) - lam * _softmax_weights(q2, k2))


def softmax_one_attention(q: np.ndarray, k: np.ndarray, v: np.ndarray) -> np.ndarray:
    """exp(s) / (1 + sum exp(s)) times V: a softmax over the keys plus one zero logit (the sink)
    whose value is dropped."""
    from scipy.special import softmax
    scores = k.T @ q
    with_sink = np.vstack([np.zeros((1, scores.shape[1])), scores])
    return v @ softmax(with_sink, axis=0)[1:]


def attention_entropy(q: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Shannon entropy (nats) of each query's attention distribution, by scipy."""
    from scipy.stats import entropy
    return entropy(_softmax_weights(q, k), axis=0)


def attention_lse(q: np.ndarray, k: np.ndarray) -> np.ndarray:
    """log sum_m exp(K^T Q) per query, by scipy."""
    from scipy.special import logsumexp
    return logsumexp(k.T @ q, axis=0)


def sequence_layernorm(v: np.ndarray, eps: float = 1e-5) -> np.ndarray:
    """(V - mean) / sqrt(var + eps) with mean and (biased) variance over the tokens, per feature."""
    return (v - v.mean(axis=1, keepdims=True)) / np.sqrt(v.var(axis=1, keepdims=True) + eps)


def softplus_reweighted_attention(q: np.ndarray, k: np.ndarray, v: np.ndarray) -> np.ndarray:
    """l1-normalised softplus weights, squared, normalised again, times V."""
    w = np.logaddexp(0.0, k.T @ q)
    w = w / w.sum(axis=0, keepdims=True)
    w = w ** 2
    return v @ (w / w.sum(axis=0, keepdims=True))


def threshold_attention(q: np.ndarray, k: np.ndarray, v: np.ndarray, width: float) -> np.ndarray:
    """Weights relu(s - max s + width), normalised over the keys, times V."""
    s = k.T @ q
    w = np.maximum(s - s.max(axis=0, keepdims=True) + width, 0.0)
    return v @ (w / w.sum(axis=0, keepdims=True))


def softplus_centred_attention(q: np.ndarray, k: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Weights softplus(s - mean s), normalised over the keys, times V."""
    s = k.T @ q
    w = np.logaddexp(0.0, s - s.mean(axis=0, keepdims=True))
    return v @ (w / w.sum(axis=0, keepdims=True))
