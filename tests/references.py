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


# -- issue 19 variants and issue 21 kernel families (branch variants) ---------------------------

def squared_relu_attention(q, k, v) -> np.ndarray:
    """relu(Q.K)^2 / M times V (FLASH's quadratic attention)."""
    scores = k.T @ q
    return v @ (np.maximum(scores, 0.0) ** 2 / scores.shape[0])


def alibi_attention(q, k, v, slope: float) -> np.ndarray:
    """Causal softmax of Q.K - slope (p - m), the linear bias of ALiBi."""
    m, p = k.shape[1], q.shape[1]
    distance = np.arange(p)[None, :] - np.arange(m)[:, None]
    scores = np.where(causal_mask(m, p), k.T @ q - slope * distance, -np.inf)
    from scipy.special import softmax
    return v @ softmax(scores, axis=0)


def softpick_attention(q, k, v, eps: float = 1e-6) -> np.ndarray:
    """Causal softpick: relu(e^s - 1) / (sum over visible keys |e^s - 1| + eps), by the definition."""
    mask = causal_mask(k.shape[1], q.shape[1])
    shifted = np.where(mask, np.expm1(k.T @ q), 0.0)
    return v @ (np.maximum(shifted, 0.0) / (np.abs(shifted).sum(axis=0, keepdims=True) + eps))


def pattention(q, k, v) -> np.ndarray:
    """TokenFormer's Pattention: gelu(A sqrt(M) / ||A[:,p]||_2) V with A = K^T Q, exact (erf) GELU."""
    from scipy.special import erf
    scores = k.T @ q
    scaled = scores * np.sqrt(scores.shape[0]) / np.linalg.norm(scores, axis=0, keepdims=True)
    return v @ (0.5 * scaled * (1.0 + erf(scaled / np.sqrt(2.0))))


def hedgehog_attention(q, k, v, w) -> np.ndarray:
    """Linear attention with phi(x) = [softmax(Wx), softmax(-Wx)] over the features, computed quadratically."""
    from scipy.special import softmax

    def phi(x):
        return np.vstack([softmax(w @ x, axis=0), softmax(-(w @ x), axis=0)])
    weights = phi(k).T @ phi(q)                                    # [m, p]
    return v @ (weights / weights.sum(axis=0, keepdims=True))


def grouped_query_attention(q, k, v, causal: bool) -> np.ndarray:
    """q[e,h,g,p] against k[e,g,m], v[f,g,m]: softmax attention per query head, its group's K and V."""
    e, h, g, p = q.shape
    out = np.zeros((v.shape[0], h, g, p))
    mask = causal_mask(k.shape[2], p) if causal else None
    for gi in range(g):
        for hi in range(h):
            out[:, hi, gi, :] = softmax_attention(q[:, hi, gi, :], k[:, gi, :], v[:, gi, :], mask=mask)
    return out


def selective_attention(q, k, v) -> np.ndarray:
    """Causal softmax of s[m,p] - sum_{q < p} F[m,q], F[m,q] = relu(s[m,q]) for 0 < m < q (loops)."""
    s = k.T @ q
    m_n, p_n = s.shape
    logits = np.full((m_n, p_n), -np.inf)
    for p in range(p_n):
        for m in range(p + 1):
            masked = sum(max(s[m, j], 0.0) for j in range(p) if 0 < m < j)
            logits[m, p] = s[m, p] - masked
    from scipy.special import softmax
    return v @ softmax(logits, axis=0)


def landmark_attention(q, k, v, landmarks, block: int) -> np.ndarray:
    """Weight of key m in block b: softmax within block b of Q.K times softmax over blocks of Q.L."""
    from scipy.special import softmax
    n_blocks = k.shape[1] // block
    gate = softmax(landmarks.T @ q, axis=0)                        # [b, p]
    out = np.zeros((v.shape[0], q.shape[1]))
    for b in range(n_blocks):
        keys = slice(b * block, (b + 1) * block)
        out += gate[b][None, :] * softmax_attention(q, k[:, keys], v[:, keys])
    return out


def chunk_mask(n: int, chunk: int) -> np.ndarray:
    """mask[m,p] = same chunk of `chunk` tokens and m <= p."""
    keys, queries = np.arange(n)[:, None], np.arange(n)[None, :]
    return (keys // chunk == queries // chunk) & (keys <= queries)


def neighborhood_mask(nx: int, ny: int, radius: int) -> np.ndarray:
    """mask[m,p] on an nx x ny grid (token = x*ny + y): |mx - px| <= r and |my - py| <= r."""
    x, y = np.divmod(np.arange(nx * ny), ny)
    return (np.abs(x[:, None] - x[None, :]) <= radius) & (np.abs(y[:, None] - y[None, :]) <= radius)


def vertical_slash_mask(vertical: np.ndarray, slash: np.ndarray) -> np.ndarray:
    """MInference: mask[m,p] = m <= p and (vertical[m] or slash[p - m])."""
    n = len(vertical)
    keys, queries = np.arange(n)[:, None], np.arange(n)[None, :]
    offset = np.clip(queries - keys, 0, n - 1)
    return (keys <= queries) & (vertical[:, None] | slash[offset])


def block_local_mask(n: int, block: int, n_blocks: int) -> np.ndarray:
    """mask[m,p] = key block within the n_blocks most recent blocks of the query's block, its own included."""
    kb, qb = np.arange(n)[:, None] // block, np.arange(n)[None, :] // block
    return (kb <= qb) & (kb > qb - n_blocks)


def gated_delta_rule(q, k, v, a, b) -> np.ndarray:
    """S_t = a_t S_{t-1} (I - b_t k_t k_t^T) + b_t v_t k_t^T (S: [f, e]); o_t = S_t q_t."""
    e, f = k.shape[0], v.shape[0]
    state = np.zeros((f, e))
    out = np.zeros((f, q.shape[1]))
    for t in range(q.shape[1]):
        kt = k[:, t]
        state = a[t] * state @ (np.eye(e) - b[t] * np.outer(kt, kt)) + b[t] * np.outer(v[:, t], kt)
        out[:, t] = state @ q[:, t]
    return out


def retention(q, k, v, gamma: float) -> np.ndarray:
    """RetNet's parallel retention: (Q K^T . D) V, D[m,p] = gamma^(p-m) for m <= p."""
    m, p = k.shape[1], q.shape[1]
    distance = np.arange(p)[None, :] - np.arange(m)[:, None]
    decay = np.where(distance >= 0, gamma ** np.maximum(distance, 0), 0.0)
    return v @ ((k.T @ q) * decay)


def mamba2_ssd(c, b, x, dt, a: float) -> np.ndarray:
    """SSD with a scalar decay: h_t = exp(dt_t a) h_{t-1} + dt_t b_t x_t^T; y_t = h_t^T c_t."""
    h = np.zeros((b.shape[0], x.shape[0]))
    y = np.zeros((x.shape[0], c.shape[1]))
    for t in range(x.shape[1]):
        h = np.exp(dt[t] * a) * h + dt[t] * np.outer(b[:, t], x[:, t])
        y[:, t] = h.T @ c[:, t]
    return y


def mla_attention(q, qr, wuk, ckv, kr, wuv) -> np.ndarray:
    """MLA without absorption: per head h keys WUK[:,:,h] CKV and values WUV[:,:,h]^T CKV, plus the
    shared RoPE key KR; softmax over the cache. q[e,h,p], qr[r,h,p]; returns [f,h,p]."""
    heads = q.shape[1]
    out = np.zeros((wuv.shape[1], heads, q.shape[2]))
    for h in range(heads):
        keys = np.vstack([wuk[:, :, h] @ ckv, kr])                     # [e + r, m]
        values = wuv[:, :, h].T @ ckv                                   # [f, m]
        out[:, h, :] = softmax_attention(np.vstack([q[:, h, :], qr[:, h, :]]), keys, values)
    return out
