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
# -- cascade language v2 library entries (issue 11) ---------------------------------------------

def topk_attention(q: np.ndarray, k: np.ndarray, v: np.ndarray, top: int) -> np.ndarray:
    """Softmax over the `top` largest scores of each query (np.argsort per column)."""
    scores = k.T @ q
    keep = np.zeros_like(scores, dtype=bool)
    order = np.argsort(-scores, axis=0)[:top]
    np.put_along_axis(keep, order, True, axis=0)
    return softmax_attention(q, k, v, mask=keep)


def differential_attention(q1, k1, q2, k2, v, lam: float) -> np.ndarray:
    """softmax(Q1.K1) V - lam softmax(Q2.K2) V (Ye et al. 2025)."""
    return softmax_attention(q1, k1, v) - lam * softmax_attention(q2, k2, v)


def sinks_mask(m: int, p: int, sinks: int, window: int) -> np.ndarray:
    """StreamingLLM: key m visible to query p when m <= p and (m < sinks or p - window < m)."""
    keys = np.arange(m)[:, None]
    queries = np.arange(p)[None, :]
    return (keys <= queries) & ((keys < sinks) | (keys > queries - window))


def cosformer_attention(q: np.ndarray, k: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Quadratic cosFormer: relu(K).relu(Q) cos(pi/2 (p - m) / M), normalised over keys (the
    denominator clamped to 1e-6 as in the authors' code)."""
    n_keys = k.shape[1]
    m = np.arange(n_keys)[:, None]
    p = np.arange(q.shape[1])[None, :]
    weights = (np.maximum(k, 0).T @ np.maximum(q, 0)) * np.cos(np.pi / 2 * (p - m) / n_keys)
    return v @ (weights / np.maximum(weights.sum(axis=0, keepdims=True), 1e-6))


def gated_linear_attention(q, k, v, a) -> np.ndarray:
    """S_t = diag(a_t) S_{t-1} + k_t v_t^T; o_t = S_t^T q_t, one token at a time."""
    state = np.zeros((k.shape[0], v.shape[0]))
    out = np.zeros((v.shape[0], q.shape[1]))
    for t in range(q.shape[1]):
        state = a[:, t][:, None] * state + np.outer(k[:, t], v[:, t])
        out[:, t] = state.T @ q[:, t]
    return out


def selective_scan(x, dt, a, b, c, ds) -> np.ndarray:
    """Mamba's selective scan: h_t = exp(dt_t A) h_{t-1} + dt_t B_t x_t; y_t = C_t h_t + D x_t."""
    n, d = a.shape
    h = np.zeros((n, d))
    y = np.zeros_like(x)
    for t in range(x.shape[1]):
        h = np.exp(dt[:, t][None, :] * a) * h + dt[:, t][None, :] * b[:, t][:, None] * x[:, t][None, :]
        y[:, t] = c[:, t] @ h + ds * x[:, t]
    return y


def stick_breaking_attention(q, k, v) -> np.ndarray:
    """Query p gives key m < p the weight beta_mp prod_{m<j<p} (1 - beta_jp), beta = sigmoid(QK)."""
    beta = 1.0 / (1.0 + np.exp(-(k.T @ q)))
    weights = np.zeros_like(beta)
    for p in range(q.shape[1]):
        for m in range(p):
            weights[m, p] = beta[m, p] * np.prod(1.0 - beta[m + 1:p, p])
    return v @ weights


def flow_attention(q, k, v) -> np.ndarray:
    """Flow-Attention (Wu et al. 2022), non-causal, phi = sigmoid, written per the paper's eqs."""
    phi_q, phi_k = 1 / (1 + np.exp(-q)), 1 / (1 + np.exp(-k))       # [e,p], [e,m]
    incoming = phi_q.T @ phi_k.sum(axis=1)                          # I[p]
    outgoing = phi_k.T @ phi_q.sum(axis=1)                          # O[m]
    conserved_in = phi_q.T @ (phi_k / outgoing[None, :]).sum(axis=1)
    conserved_out = phi_k.T @ (phi_q / incoming[None, :]).sum(axis=1)
    competition = np.exp(conserved_out - conserved_out.max())
    competition = competition / competition.sum() * k.shape[1]       # softmax over keys, times M
    values = v * competition[None, :]                                # [f,m]
    out = (values @ phi_k.T) @ phi_q / incoming[None, :]             # [f,p]
    return out * (1 / (1 + np.exp(-conserved_in)))[None, :]
