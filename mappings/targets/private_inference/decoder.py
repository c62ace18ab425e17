"""A GPT-2-style decoder built from cascades, priced on a two-party secure-computation backend.

One forward pass over a T-token prompt: token and position embedding, L layers of
[LayerNorm] -> QKV projection -> attention (H heads in parallel) -> output projection ->
[LayerNorm] -> FFN, a final [LayerNorm] and the vocabulary projection. Residual additions are
free under additive sharing. The variants are those of Jha and Reagen, "Entropy-Guided Attention
for Private LLMs" (2025): SM+LN+G (baseline), SM+LN+R, SM+ScFFN and SM+ScFuFFN; the attention
cascade is any library cascade over Q[e,p], K[e,m], V[f,m] (default: 3-pass softmax; the
temperature-scaled, entropy-guided one is `attention_temperature`).

Bytes add up over blocks (times heads for attention); rounds add up along the layers, as every
block waits for the previous one, while the heads of one layer run side by side.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from cascadesim_errors import InputError
import einsum_cascade as ec
from mappings.targets.private_inference import KEY_TILE
from mappings.targets.private_inference.profiles import BackendProfile, Network
from mappings.targets.private_inference.protocol import SecureCost, map_cascade


class DecoderConfigError(InputError, ValueError):
    """A decoder configuration that cannot be built; the message names the option."""


@dataclass(frozen=True)
class Variant:
    """Which blocks a decoder variant uses: LayerNorm or not, and the FFN block cascade."""

    layernorm: bool
    ffn: str


VARIANTS = {
    "SM+LN+G": Variant(layernorm=True, ffn="ffn_gelu"),
    "SM+LN+R": Variant(layernorm=True, ffn="ffn_relu"),
    "SM+ScFFN": Variant(layernorm=False, ffn="ffn_scaled"),
    "SM+ScFuFFN": Variant(layernorm=False, ffn="ffn_fused"),
}
TEMPERATURE_ATTENTION = "attention_temperature"
# Inputs of attention cascades that are model weights (plaintext at the server), not activations.
ATTENTION_PLAINTEXT = {"attention_temperature": {"T"}}
# Params of attention cascades that only change values, not costs; bound to a neutral number.
NEUTRAL_PARAMS = {"B": 0.0, "S": 1.0, "W": 64, "C": 1.0}


@dataclass(frozen=True)
class DecoderConfig:
    """Shape of the decoder: layers, model width, heads, context tokens, FFN width, vocabulary."""

    layers: int
    context: int
    variant: str = "SM+LN+G"
    d_model: int = 768
    heads: int = 12
    ffn: int = 3072
    vocab: int = 50257
    attention: str = "attention_3pass"
    gelu_form: str = "tanh"
    tile: int = KEY_TILE  # M0 of partitioned attention cascades (keys per tile)

    def validate(self) -> None:
        """Raise DecoderConfigError naming the command-line option of a bad field."""
        if self.variant not in VARIANTS:
            raise DecoderConfigError(f"--variant: unknown variant '{self.variant}' (known: {', '.join(VARIANTS)})")
        for name in ("layers", "context", "d_model", "heads", "ffn", "vocab", "tile"):
            if getattr(self, name) < 1:
                raise DecoderConfigError(f"--{name.replace('_', '-')}: must be a positive integer, got {getattr(self, name)}")
        if self.d_model % self.heads:
            raise DecoderConfigError(f"--heads: {self.heads} does not divide --d-model {self.d_model}")
        if self.attention not in ec.library_names():
            raise DecoderConfigError(f"--attention: unknown library cascade '{self.attention}'")


@dataclass
class ModelCost:
    """Cost of one forward pass: totals plus bytes per block kind, per operator, per operator class."""

    comm_bytes: float
    rounds: int
    compute_s: float
    by_block: dict[str, float] = field(default_factory=dict)
    by_op: dict[str, float] = field(default_factory=dict)
    by_class: dict[str, float] = field(default_factory=dict)

    def latency_s(self, network: Network) -> float:
        """compute + bytes / bandwidth + rounds * RTT, in seconds."""
        return network.latency_s(self.comm_bytes, self.rounds, self.compute_s)

    def to_json(self, networks: list[Network]) -> dict:
        """Bytes, rounds, compute seconds, latency (seconds) per network and the byte breakdowns."""
        return {"comm_bytes": self.comm_bytes, "rounds": self.rounds, "compute_s": self.compute_s,
                "latency_s": {n.name: self.latency_s(n) for n in networks},
                "breakdown": {"by_block": self.by_block, "by_op": self.by_op, "by_class": self.by_class}}


def operator_class(block: str, op: str) -> str:
    """The class an operator's bytes are reported under in the study's stacked bars."""
    if op == "fixed":
        return "fixed"
    if op.startswith("matmul"):
        return "linear layers" if op == "matmul_plain" else "attention matmuls"
    if block == "attention":
        return "softmax / attention nonlinearity"
    if block == "layernorm" or op == "layernorm":
        return "layernorm"
    if op.startswith("gelu"):
        return "gelu"
    if op == "relu":
        return "relu"
    return "other"


BLOCKS_DIR = Path(ec.__file__).resolve().parent / "library" / "blocks"


def _block(name: str) -> ec.Cascade:
    """A block cascade of einsum_cascade/library/blocks/ (LayerNorm, linear, FFN, embedding)."""
    return ec.load(BLOCKS_DIR / f"{name}.cascade")


def attention_sizes(c: ec.Cascade, head_dim: int, context: int, tile: int) -> dict[str, float]:
    """Sizes of one head of an attention cascade: E = F = head_dim, M = P = context, M0 = tile."""
    sizes: dict[str, float] = {}
    for name in c.size_names:
        if name in ("E", "F"):
            sizes[name] = head_dim
        elif name in ("M", "P"):
            sizes[name] = context
        elif "M" in c.ranks and name in c.ranks["M"].parts[1:]:
            sizes[name] = min(tile, context)  # the tile; the number of tiles follows
    for param in c.params:
        if param not in NEUTRAL_PARAMS:
            raise DecoderConfigError(f"--attention: cascade {c.name} has param '{param}' with no default for the model")
        sizes[param] = NEUTRAL_PARAMS[param]
    return sizes


def decoder_blocks(cfg: DecoderConfig) -> list[tuple[str, ec.Cascade, dict, set[str], int, int]]:
    """(block kind, cascade, sizes, plaintext inputs, copies for bytes, times on the critical path)."""
    cfg.validate()
    d, t, L = cfg.d_model, cfg.context, cfg.layers
    variant = VARIANTS[cfg.variant]
    attention = ec.load_library(cfg.attention)
    blocks = [("embedding", _block("embedding"), {"V": cfg.vocab, "D": d, "T": t}, {"WTE", "WPE"}, 1, 1)]
    layer = []
    if variant.layernorm:
        layer.append(("layernorm", _block("layernorm"), {"D": d, "T": t}, {"G", "B"}, 1, 1))
    layer.append(("linear", _block("linear"), {"D": d, "N": 3 * d, "T": t}, {"W", "B"}, 1, 1))
    layer.append(("attention", attention, attention_sizes(attention, d // cfg.heads, t, cfg.tile),
                  set(ATTENTION_PLAINTEXT.get(cfg.attention, ())), cfg.heads, 1))
    layer.append(("linear", _block("linear"), {"D": d, "N": d, "T": t}, {"W", "B"}, 1, 1))
    if variant.layernorm:
        layer.append(("layernorm", _block("layernorm"), {"D": d, "T": t}, {"G", "B"}, 1, 1))
    ffn = _block(variant.ffn)
    ffn_sizes = {"D": d, "N": d, "T": t} | ({"H": cfg.ffn} if "H" in ffn.size_names else {})
    ffn_plain = set(ffn.inputs) - {"X"}
    layer.append(("ffn", ffn, ffn_sizes, ffn_plain, 1, 1))
    blocks += [(kind, c, s, p, copies * L, path * L) for kind, c, s, p, copies, path in layer]
    if variant.layernorm:
        blocks.append(("layernorm", _block("layernorm"), {"D": d, "T": t}, {"G", "B"}, 1, 1))
    blocks.append(("vocab", _block("linear"), {"D": d, "N": cfg.vocab, "T": t}, {"W", "B"}, 1, 1))
    return blocks


def model_cost(cfg: DecoderConfig, profile: BackendProfile) -> ModelCost:
    """Bytes, rounds and compute seconds of one private forward pass of the decoder on `profile`."""
    comm = compute = 0.0
    rounds = profile.fixed.rounds
    by_block: dict[str, float] = defaultdict(float)
    by_op: dict[str, float] = defaultdict(float)
    by_class: dict[str, float] = defaultdict(float)
    cache: dict[tuple, SecureCost] = {}
    for kind, c, sizes, plaintext, copies, path in decoder_blocks(cfg):
        key = (c.name, tuple(sorted(sizes.items())))
        if key not in cache:
            cache[key] = map_cascade(c, sizes, profile, plaintext=plaintext, gelu_form=cfg.gelu_form)
        cost = cache[key]
        comm += copies * cost.comm_bytes
        compute += copies * cost.compute_s
        rounds += path * cost.rounds
        by_block[kind] += copies * cost.comm_bytes
        for op, b in cost.by_op.items():
            by_op[op] += copies * b
            by_class[operator_class(kind, op)] += copies * b
    comm += profile.fixed.bytes
    compute += profile.fixed.seconds
    if profile.fixed.bytes:
        by_block["fixed"] += profile.fixed.bytes
        by_op["fixed"] += profile.fixed.bytes
        by_class["fixed"] += profile.fixed.bytes
    return ModelCost(comm, rounds, compute, dict(by_block), dict(by_op), dict(by_class))
