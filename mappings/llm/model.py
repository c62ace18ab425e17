"""LLM model descriptions as data: layers, widths, heads, attention kind per layer, FFN or MoE.

A model file (mappings/llm/models/*.yaml) names its attention and FFN configurations once and lists
the layers as groups (`layers`: each entry `{attention: NAME, ffn: NAME, repeat: N}`, the whole list
repeated `pattern_repeat` times), so an alternating local/global model or a 3:1 hybrid is a
two-entry list. Every figure comes from the model's published configuration (`source`).

Attention kinds (per query head: `head_dim` for queries/keys, `head_dim_v` for values):
- `dense`: causal softmax attention with `heads` query heads sharing `kv_heads` K/V heads (GQA;
  MQA when kv_heads = 1); `output_gate` adds a sigmoid gate of the output (a second query-width
  projection, Qwen3-Next's gated attention).
- `sliding_window`: as dense, each query seeing the `window` most recent keys.
- `mla`: multi-head latent attention (DeepSeek-V2/V3): queries through a `q_lora_rank` bottleneck,
  keys and values compressed to a `kv_lora_rank` latent plus a shared `qk_rope_head_dim` key part;
  the KV cache holds the latent and the rope key only.
- `gated_delta_rule`: a linear recurrence with a (key_head_dim x value_head_dim) state per value
  head (Gated DeltaNet), `key_heads` query/key heads, `value_heads` value heads, a causal
  convolution of `conv_kernel` taps on q, k and v.

FFN kinds: `gated` (SwiGLU/GeGLU: gate, up and down matrices of width `hidden`) and `moe`
(`experts` gated experts of width `expert_hidden`, `active` routed per token, `shared` always-on
experts of width `shared_hidden`, a router of d_model x experts).
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from archsim.yamlio import YamlFileError, load_yaml_file
from mappings.work import MappingError

MODELS_DIR = Path(__file__).parent / "models"
Count = Annotated[int, Field(gt=0, strict=True)]


class ModelError(MappingError):
    """A model description that cannot be used; the message names the file and the field."""


class _Doc(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DenseAttention(_Doc):
    kind: Literal["dense"]
    heads: Count
    kv_heads: Count
    head_dim: Count
    head_dim_v: Optional[Count] = None
    output_gate: bool = False

    @model_validator(mode="after")
    def _groups(self):
        if self.heads % self.kv_heads:
            raise ValueError(f"kv_heads {self.kv_heads} does not divide heads {self.heads}")
        return self

    @property
    def v_dim(self) -> int:
        """Value head dimension."""
        return self.head_dim_v or self.head_dim


class SlidingWindowAttention(DenseAttention):
    kind: Literal["sliding_window"]  # type: ignore[assignment]
    window: Count


class LatentAttention(_Doc):
    kind: Literal["mla"]
    heads: Count
    q_lora_rank: Optional[Count] = None
    kv_lora_rank: Count
    qk_nope_head_dim: Count
    qk_rope_head_dim: Count
    v_head_dim: Count


class GatedDeltaRule(_Doc):
    kind: Literal["gated_delta_rule"]
    key_heads: Count
    value_heads: Count
    key_head_dim: Count
    value_head_dim: Count
    conv_kernel: Count

    @model_validator(mode="after")
    def _groups(self):
        if self.value_heads % self.key_heads:
            raise ValueError(f"key_heads {self.key_heads} does not divide value_heads {self.value_heads}")
        return self


Attention = Annotated[Union[DenseAttention, SlidingWindowAttention, LatentAttention, GatedDeltaRule],
                      Field(discriminator="kind")]


class GatedFFN(_Doc):
    kind: Literal["gated"]
    hidden: Count


class MoEFFN(_Doc):
    kind: Literal["moe"]
    experts: Count
    active: Count
    expert_hidden: Count
    shared: int = Field(0, ge=0, strict=True)
    shared_hidden: Optional[Count] = None
    shared_gate: bool = False  # a d_model -> 1 gate of the shared expert (Qwen)

    @model_validator(mode="after")
    def _active(self):
        if self.active > self.experts:
            raise ValueError(f"active {self.active} exceeds experts {self.experts}")
        return self


FFN = Annotated[Union[GatedFFN, MoEFFN], Field(discriminator="kind")]
DType = Literal["bf16", "fp16", "fp8"]
ELEMENT_BYTES = {"bf16": 2, "fp16": 2, "fp8": 1}


class DTypes(_Doc):
    """Element types of the weights, the activations (the other operand of each matrix product) and
    the KV cache (and recurrent state). A target prices one element width per operation, so the
    weights and the activations must agree (a mixed-width product is not modelled)."""
    weights: DType = "bf16"
    activations: DType = "bf16"
    kv_cache: DType = "bf16"

    @model_validator(mode="after")
    def _one_width_per_product(self):
        if ELEMENT_BYTES[self.weights] != ELEMENT_BYTES[self.activations]:
            raise ValueError(f"activations: {self.activations} differs in width from the weights' {self.weights} "
                             "(a matrix product of mixed element widths is not modelled)")
        return self


class LayerGroup(_Doc):
    attention: str
    ffn: str
    repeat: Count = 1


class LLMModel(_Doc):
    """One model (units: counts of parameters, elements; bytes only through `dtypes`). `dtype`: one
    element type for everything, or {weights, activations, kv_cache}."""
    name: str
    source: str = Field(min_length=10)
    params_stated: float = Field(gt=0, allow_inf_nan=False)  # the model card's parameter count
    d_model: Count
    vocab: Count
    tied_embeddings: bool = False
    dtype: DTypes = DTypes()
    attentions: dict[str, Attention] = Field(min_length=1)
    ffns: dict[str, FFN] = Field(min_length=1)
    layers: list[LayerGroup] = Field(min_length=1)
    pattern_repeat: Count = 1

    @field_validator("dtype", mode="before")
    @classmethod
    def _one_type_for_all(cls, v):
        return {"weights": v, "activations": v, "kv_cache": v} if isinstance(v, str) else v

    @model_validator(mode="after")
    def _names(self):
        for i, g in enumerate(self.layers):
            if g.attention not in self.attentions:
                raise ValueError(f"layers[{i}].attention: unknown attention {g.attention!r} "
                                 f"(defined: {', '.join(self.attentions)})")
            if g.ffn not in self.ffns:
                raise ValueError(f"layers[{i}].ffn: unknown ffn {g.ffn!r} (defined: {', '.join(self.ffns)})")
        return self

    @property
    def dtypes(self) -> DTypes:
        """The element types of the weights, activations and KV cache."""
        return self.dtype

    @property
    def weight_bytes(self) -> int:
        """Bytes per weight element."""
        return ELEMENT_BYTES[self.dtypes.weights]

    @property
    def kv_bytes(self) -> int:
        """Bytes per KV-cache (and recurrent-state) element."""
        return ELEMENT_BYTES[self.dtypes.kv_cache]

    def layer_list(self) -> list[tuple[str, str]]:
        """(attention name, ffn name) of every layer, in order."""
        one = [(g.attention, g.ffn) for g in self.layers for _ in range(g.repeat)]
        return one * self.pattern_repeat

    @property
    def n_layers(self) -> int:
        """Number of transformer layers."""
        return len(self.layer_list())

    def layer_counts(self) -> dict[tuple[str, str], int]:
        """How many layers have each (attention, ffn) pair."""
        counts: dict[tuple[str, str], int] = {}
        for pair in self.layer_list():
            counts[pair] = counts.get(pair, 0) + 1
        return counts


def attention_params(a, d: int) -> int:
    """Weights of one attention block (projections, convolution, gates; norms included), elements."""
    if isinstance(a, DenseAttention):  # also sliding_window
        q = d * a.heads * a.head_dim * (2 if a.output_gate else 1)
        kv = d * a.kv_heads * (a.head_dim + a.v_dim)
        return q + kv + a.heads * a.v_dim * d
    if isinstance(a, LatentAttention):
        qk = a.qk_nope_head_dim + a.qk_rope_head_dim
        q = (d * a.q_lora_rank + a.q_lora_rank + a.q_lora_rank * a.heads * qk) if a.q_lora_rank else d * a.heads * qk
        kv = d * (a.kv_lora_rank + a.qk_rope_head_dim) + a.kv_lora_rank \
            + a.kv_lora_rank * a.heads * (a.qk_nope_head_dim + a.v_head_dim)
        return q + kv + a.heads * a.v_head_dim * d
    if isinstance(a, GatedDeltaRule):
        qk, v = a.key_heads * a.key_head_dim, a.value_heads * a.value_head_dim
        in_proj = d * (2 * qk + 2 * v) + d * 2 * a.value_heads  # q, k, v, output gate z; beta and decay a
        conv = (2 * qk + v) * a.conv_kernel
        per_head = 2 * a.value_heads + a.value_head_dim  # dt bias, A, the output norm
        return in_proj + conv + per_head + v * d
    raise TypeError(f"unknown attention {a!r}")


def ffn_params(f, d: int) -> int:
    """Weights of one FFN or MoE block, elements."""
    if isinstance(f, GatedFFN):
        return 3 * d * f.hidden
    experts = f.experts * 3 * d * f.expert_hidden + d * f.experts
    shared = f.shared * 3 * d * (f.shared_hidden or f.expert_hidden) + (d if f.shared_gate else 0)
    return experts + shared


def parameter_count(m: LLMModel) -> int:
    """Total weights from the shapes (embeddings, layers with two norms each, final norm, LM head)."""
    total = m.vocab * m.d_model * (1 if m.tied_embeddings else 2) + m.d_model
    for (att, ffn), n in m.layer_counts().items():
        total += n * (attention_params(m.attentions[att], m.d_model) + ffn_params(m.ffns[ffn], m.d_model)
                      + 2 * m.d_model)
    return total


def model_names() -> list[str]:
    """Names of the shipped model files."""
    return sorted(p.stem for p in MODELS_DIR.glob("*.yaml"))


def load_model(name_or_path: str | Path) -> LLMModel:
    """A shipped model by file stem (`llama-3-8b`) or a YAML path; errors name the file and field."""
    p = Path(name_or_path)
    if p.suffix not in (".yaml", ".yml"):
        if str(name_or_path) not in model_names():
            raise ModelError(f"--model: unknown model {str(name_or_path)!r} (known: {', '.join(model_names())})")
        p = MODELS_DIR / f"{name_or_path}.yaml"
    try:
        data = load_yaml_file(p, "model file")
    except YamlFileError as err:
        raise ModelError(str(err)) from None
    if not isinstance(data, dict):
        raise ModelError(f"{p}: <top>: expected a mapping of model fields")
    try:
        return LLMModel.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        loc = ".".join(str(x) for x in first["loc"] if not str(x).startswith("function-")) or "<top>"
        raise ModelError(f"{p}: {loc}: {first['msg']}") from None
