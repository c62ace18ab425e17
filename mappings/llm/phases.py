"""The work of one LLM phase as simulate-able operations: prefill of N tokens, or one decode step.

`phase_ops(model, phase, context, batch)` lists, per distinct layer kind, the operations one layer
runs (its attention as a library cascade, its matrix products as the `matmul` block) with the
sizes, the independent (batch, head) pairs, the KV heads sharing K and V, and how many layers run
it; the model's LM head is one more operation. A phase's time on a target is the sum over the
operations of `count x simulate(...)` (operations run one after another).

- prefill: `batch` sequences of `context` tokens each; matrix products over T = batch x context
  tokens; causal attention with P = M = context (a sliding window's in its one-pass fused form); the
  LM head for the last token of each sequence.
- decode: one new token for each of `batch` sequences at `context` tokens of KV cache; matrix
  products over T = batch tokens; attention with P = 1 query and M = context keys (a sliding
  window sees min(context, window) keys); MLA decodes in its absorbed form (multi-query attention
  over the cached latent: key width kv_lora_rank + qk_rope_head_dim, value width kv_lora_rank,
  one KV head whose latent is read once as key and value: mappings/llm/cascades/mla_latent_decode*),
  with the per-head absorption matrices as products; a gated delta rule layer
  reads, updates (rank 1) and writes its (key x value) state once per value head and reads its
  output from it (mappings/llm/cascades/gated_delta_rule_decode.cascade: the state's key rows are
  the rank M a mapping streams; on a GPU target the library `gated_delta_rule` at one query, which
  the GPU model runs as its recurrent decode-step kernel).
- dtypes: each operation carries the element type it is priced at: matrix products the model's
  weight type (its activations have the same width, mappings/llm/model.py), attention and
  recurrent-state operations the KV-cache type.
- MoE: under uniform routing T tokens touch E (1 - (1 - k/E)^T) distinct experts in expectation
  (k active of E); each touched expert runs ceil(T k / touched) tokens (an assumption: real routers
  are unbalanced). The router and shared experts run every token.

Not modelled (each at most ~1/d_model of a layer's multiply-adds): norms, rotary embeddings,
residual additions, the element-wise activation of gated FFNs, the gated delta rule's short
convolution and gates, the KV-cache append, MLA's prefill key/value up-projection of the rope part.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path

from mappings.llm.model import (ELEMENT_BYTES, DenseAttention, GatedDeltaRule, GatedFFN, LatentAttention, LLMModel, MoEFFN,
                                SlidingWindowAttention)
from mappings.work import MappingError

PHASES = ("prefill", "decode")
CASCADES_DIR = Path(__file__).parent / "cascades"
LLM_CASCADE = "llm/"  # prefix of the cascades of CASCADES_DIR in an Op's `cascade`
# GPU form of a linear-recurrent decode step: the recurrent cascade at one query (P = 1) and the
# least key extent (M = 2) that the GPU target reads as its decode-step kernel (one token's state
# update; the certificate's FLOP floor is that of M = 2 tokens, never above the step's)
GPU_STEP_CASCADE = "gated_delta_rule"
GPU_STEP_KEYS = 2
GPU_STEP_KERNEL_2BYTE = "flashinfer-gdn-decode-bf16"  # the state in a 2-byte type (else the fp32-state default)


def cascade_source(name: str) -> str | Path:
    """What `simulate` loads for an Op's `cascade`: a library name, or a file of CASCADES_DIR."""
    return CASCADES_DIR / f"{name[len(LLM_CASCADE):]}.cascade" if name.startswith(LLM_CASCADE) else name


@dataclass(frozen=True)
class Op:
    """One operation of a layer: `cascade` at `sizes` for `batch` x `heads` independent pairs
    (`kv_heads` of them hold distinct K/V), run `count` times per phase (layers, experts)."""
    name: str
    role: str  # "attention", "projection", "ffn", "moe", "lm_head"
    cascade: str
    sizes: dict[str, int]
    batch: int = 1
    heads: int = 1
    kv_heads: int | None = None
    count: float = 1.0
    layer: str = ""  # the (attention, ffn) kind of the layers that run it
    notes: tuple[str, ...] = field(default_factory=tuple)
    dtype: str = "bf16"  # the element type it is priced at
    # on a GPU target, another cascade, its sizes, KV heads and kernel (None: the same as above)
    gpu_form: tuple[str, tuple[tuple[str, int], ...], int, str | None] | None = None


def _matmul(name: str, role: str, tokens: int, k: int, n: int, count: float, layer: str,
            heads: int = 1) -> Op:
    """`tokens` x `k` times `k` x `n` (`heads` independent such products)."""
    return Op(name, role, "blocks/matmul", {"T": tokens, "D": k, "N": n}, heads=heads, count=count, layer=layer)


def _attention_ops(a, d: int, phase: str, context: int, batch: int, count: int, layer: str) -> list[Op]:
    """The attention block's operations (projections and the attention itself) for one layer kind."""
    t = batch * context if phase == "prefill" else batch
    ops: list[Op] = []
    if isinstance(a, DenseAttention):  # dense and sliding_window
        q_width = a.heads * a.head_dim * (2 if a.output_gate else 1)
        ops.append(_matmul("qkv", "projection", t, d, q_width + a.kv_heads * (a.head_dim + a.v_dim), count, layer))
        window = a.window if isinstance(a, SlidingWindowAttention) else None
        if phase == "prefill":
            if window is not None and window < context:
                att = Op("attention", "attention", "attention_sliding_window_1pass",
                         {"P": context, "M": context, "E": a.head_dim, "F": a.v_dim, "W": window},
                         batch=batch, heads=a.heads, kv_heads=a.kv_heads, count=count, layer=layer)
            else:
                att = Op("attention", "attention", "attention_1pass_causal",
                         {"P": context, "M": context, "E": a.head_dim, "F": a.v_dim},
                         batch=batch, heads=a.heads, kv_heads=a.kv_heads, count=count, layer=layer)
        else:
            keys = min(context, window) if window is not None else context
            att = Op("attention", "attention", "attention_1pass", {"P": 1, "M": keys, "E": a.head_dim, "F": a.v_dim},
                     batch=batch, heads=a.heads, kv_heads=a.kv_heads, count=count, layer=layer)
        ops.append(att)
        ops.append(_matmul("o", "projection", t, a.heads * a.v_dim, d, count, layer))
        return ops
    if isinstance(a, LatentAttention):
        qk = a.qk_nope_head_dim + a.qk_rope_head_dim
        if a.q_lora_rank:
            ops.append(_matmul("q_a", "projection", t, d, a.q_lora_rank, count, layer))
            ops.append(_matmul("q_b", "projection", t, a.q_lora_rank, a.heads * qk, count, layer))
        else:
            ops.append(_matmul("q", "projection", t, d, a.heads * qk, count, layer))
        ops.append(_matmul("kv_a", "projection", t, d, a.kv_lora_rank + a.qk_rope_head_dim, count, layer))
        if phase == "prefill":
            ops.append(_matmul("kv_b", "projection", t, a.kv_lora_rank, a.heads * (a.qk_nope_head_dim + a.v_head_dim),
                               count, layer))
            ops.append(Op("attention", "attention", "attention_1pass_causal",
                          {"P": context, "M": context, "E": qk, "F": a.v_head_dim},
                          batch=batch, heads=a.heads, kv_heads=a.heads, count=count, layer=layer))
        else:  # absorbed: q_nope -> latent per head, MQA over the latent cache, latent -> v per head
            ops.append(_matmul("absorb_k", "projection", t, a.qk_nope_head_dim, a.kv_lora_rank, count, layer,
                               heads=a.heads))
            sizes = {"P": 1, "M": context, "E": a.qk_rope_head_dim, "F": a.kv_lora_rank}
            ops.append(Op("attention", "attention", LLM_CASCADE + "mla_latent_decode", sizes,
                          batch=batch, heads=a.heads, kv_heads=1, count=count, layer=layer,
                          notes=("MLA absorbed: one latent KV head shared by every query head, the latent "
                                 "read once as key and value",),
                          gpu_form=(LLM_CASCADE + "mla_latent_decode_2pass", tuple(sorted(sizes.items())), 1, None)))
            ops.append(_matmul("absorb_v", "projection", t, a.kv_lora_rank, a.v_head_dim, count, layer,
                               heads=a.heads))
        ops.append(_matmul("o", "projection", t, a.heads * a.v_head_dim, d, count, layer))
        return ops
    if isinstance(a, GatedDeltaRule):
        qk, v = a.key_heads * a.key_head_dim, a.value_heads * a.value_head_dim
        ops.append(_matmul("in_proj", "projection", t, d, 2 * qk + 2 * v + 2 * a.value_heads, count, layer))
        if phase == "prefill":
            ops.append(Op("attention", "attention", "gated_delta_rule",
                          {"M": context, "E": a.key_head_dim, "F": a.value_head_dim},
                          batch=batch, heads=a.value_heads, kv_heads=a.value_heads, count=count, layer=layer))
        else:
            gpu_sizes = (("E", a.key_head_dim), ("F", a.value_head_dim), ("M", GPU_STEP_KEYS), ("P", 1))
            ops.append(Op("attention", "attention", LLM_CASCADE + "gated_delta_rule_decode",
                          {"M": a.key_head_dim, "F": a.value_head_dim},
                          batch=batch, heads=a.value_heads, kv_heads=a.value_heads, count=count, layer=layer,
                          gpu_form=(GPU_STEP_CASCADE, gpu_sizes, a.key_heads, None)))
        ops.append(_matmul("out_proj", "projection", t, v, d, count, layer))
        return ops
    raise MappingError(f"attention kind {type(a).__name__} has no phase model")


def experts_touched(tokens: int, experts: int, active: int) -> float:
    """Expected distinct experts that `tokens` tokens route to, `active` of `experts` each, uniformly."""
    return experts * (1.0 - (1.0 - active / experts) ** tokens)


def _ffn_ops(f, d: int, tokens: int, count: int, layer: str) -> list[Op]:
    """The FFN or MoE block's matrix products for `tokens` tokens."""
    if isinstance(f, GatedFFN):
        return [_matmul("ffn_up", "ffn", tokens, d, 2 * f.hidden, count, layer),
                _matmul("ffn_down", "ffn", tokens, f.hidden, d, count, layer)]
    assert isinstance(f, MoEFFN)
    touched = experts_touched(tokens, f.experts, f.active)
    per_expert = math.ceil(tokens * f.active / touched)
    ops = [_matmul("router", "moe", tokens, d, f.experts, count, layer),
           _matmul("expert_up", "moe", per_expert, d, 2 * f.expert_hidden, count * touched, layer),
           _matmul("expert_down", "moe", per_expert, f.expert_hidden, d, count * touched, layer)]
    if f.shared:
        width = f.shared * (f.shared_hidden or f.expert_hidden)
        ops += [_matmul("shared_up", "moe", tokens, d, 2 * width, count, layer),
                _matmul("shared_down", "moe", tokens, width, d, count, layer)]
    return ops


def phase_ops(model: LLMModel, phase: str, context: int, batch: int) -> list[Op]:
    """Every operation of `phase` (prefill or decode) at `context` tokens for `batch` sequences."""
    if phase not in PHASES:
        raise MappingError(f"--phase: {phase!r} is not one of {', '.join(PHASES)}")
    for name, v in (("context", context), ("batch", batch)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise MappingError(f"--{name}: must be a positive integer, got {v!r}")
    d = model.d_model
    tokens = batch * context if phase == "prefill" else batch
    ops: list[Op] = []
    for (att, ffn), n in model.layer_counts().items():
        layer = f"{att}+{ffn}"
        ops += _attention_ops(model.attentions[att], d, phase, context, batch, n, layer)
        ops += _ffn_ops(model.ffns[ffn], d, tokens, n, layer)
    ops.append(_matmul("lm_head", "lm_head", batch, d, model.vocab, 1, "head"))
    return [_with_dtype(op, model.dtypes) for op in ops]


def _with_dtype(op: Op, dtypes) -> Op:
    """`op` priced at the model's element type for it (module docstring)."""
    dtype = dtypes.kv_cache if op.role == "attention" else dtypes.weights
    if op.gpu_form is not None and op.gpu_form[0] == GPU_STEP_CASCADE and ELEMENT_BYTES[dtype] == 2:
        cascade, sizes, kv, _ = op.gpu_form
        return replace(op, dtype=dtype, gpu_form=(cascade, sizes, kv, GPU_STEP_KERNEL_2BYTE))
    return replace(op, dtype=dtype)


def kv_cache_bytes(model: LLMModel, context: int, batch: int) -> float:
    """Bytes of KV cache (and recurrent state) a decode step reads: per layer kind, per sequence."""
    b = model.kv_bytes
    total = 0.0
    for (att, _), n in model.layer_counts().items():
        a = model.attentions[att]
        if isinstance(a, DenseAttention):
            keys = min(context, a.window) if isinstance(a, SlidingWindowAttention) else context
            total += n * keys * a.kv_heads * (a.head_dim + a.v_dim) * b
        elif isinstance(a, LatentAttention):
            total += n * context * (a.kv_lora_rank + a.qk_rope_head_dim) * b
        elif isinstance(a, GatedDeltaRule):
            total += n * a.value_heads * a.key_head_dim * a.value_head_dim * b
    return total * batch
