"""`cascadesim pi model|cascade`: private-inference cost of a decoder or of one cascade.

Prints bytes on the wire, rounds and latency per network; `--json` prints an object with keys
comm_bytes, rounds, latency_s (seconds, per network, or one number with --network) and breakdown.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from studies.cli.numbers import positive_int
from studies.checked import json_text, require_finite
from studies.cli.cascade_arg import load_cascade
from studies.cli.lazy_parser import LazyParser
from studies.cli.sizes_arg import add_size_argument, parse_sizes

if TYPE_CHECKING:  # imported when the command runs, not to build the parser
    from mappings.targets.private_inference.profiles import Network


def _networks(args: argparse.Namespace) -> list[Network]:
    from mappings.targets.private_inference.profiles import load_network, load_networks

    if args.network:
        return [load_network(args.network, args.networks_file)]
    return list(load_networks(args.networks_file).values())


def _print(result: dict, networks: list[Network], as_json: bool, title: str) -> None:
    require_finite(result, "pi")
    if as_json:
        if len(networks) == 1:
            result = dict(result, latency_s=result["latency_s"][networks[0].name], network=networks[0].name)
        print(json_text(result, "pi", indent=2, sort_keys=True))
        return
    print(title)
    print(f"  communication: {result['comm_bytes'] / 1e9:.4f} GB ({result['comm_bytes']:.0f} bytes)")
    print(f"  rounds:        {result['rounds']}")
    for name, seconds in result["latency_s"].items():
        print(f"  latency {name:<10} {seconds:10.3f} s")
    breakdown = result["breakdown"]
    for key in ("by_class", "by_block", "by_op", "by_einsum"):
        if key in breakdown:
            total = result["comm_bytes"] or 1.0
            parts = ", ".join(f"{k} {v / total:.1%}" for k, v in sorted(breakdown[key].items(), key=lambda kv: -kv[1]))
            print(f"  {key.replace('_', ' ')}: {parts}")


def run_model(args: argparse.Namespace) -> int:
    from mappings.targets.private_inference.profiles import load_profile
    from mappings.targets.private_inference.decoder import DecoderConfig, model_cost

    profile = load_profile(args.profile)
    networks = _networks(args)
    cfg = DecoderConfig(layers=args.layers, context=args.context, variant=args.variant, d_model=args.d_model,
                        heads=args.heads, ffn=args.ffn, vocab=args.vocab, attention=args.attention,
                        gelu_form=args.gelu)
    cost = model_cost(cfg, profile)
    title = (f"{cfg.variant} decoder, L={cfg.layers} T={cfg.context} d={cfg.d_model} H={cfg.heads} "
             f"FFN={cfg.ffn} V={cfg.vocab}, attention {cfg.attention}, profile {profile.name}")
    _print(cost.to_json(networks), networks, args.json, title)
    return 0


def run_cascade(args: argparse.Namespace) -> int:
    from mappings.targets.private_inference.profiles import load_profile
    from mappings.targets.private_inference.protocol import map_cascade

    profile = load_profile(args.profile)
    networks = _networks(args)
    c = load_cascade(args.file)
    plaintext = {name.strip() for item in args.plaintext for name in item.split(",") if name.strip()}
    cost = map_cascade(c, parse_sizes(args.size), profile, plaintext=plaintext, gelu_form=args.gelu,
                       include_fixed=args.fixed)
    _print(cost.to_json(networks), networks, args.json, f"cascade {c.name}, profile {profile.name}")
    return 0


def _common(parser: argparse.ArgumentParser) -> None:
    from mappings.targets.private_inference.profiles import DEFAULT_PROFILE

    parser.add_argument("--profile", default=DEFAULT_PROFILE,
                        help="backend profile name (spu-cheetah, crypten, paper-fit) or YAML file")
    parser.add_argument("--network", help="one network, e.g. lan, wan400, wan100 (default: every known network)")
    parser.add_argument("--networks-file", type=Path, help="YAML file of extra networks (networks: {NAME: {bandwidth_mbps, rtt_ms}})")
    parser.add_argument("--gelu", choices=("tanh", "erf"), default="tanh", help="GELU form")
    parser.add_argument("--json", action="store_true", help="print JSON")


class _Help(argparse.ArgumentDefaultsHelpFormatter):
    """Help that states each option's default (where it has one)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        if action.required or action.default in (None, False) or action.default is argparse.SUPPRESS:
            return action.help or ""
        return super()._get_help_string(action)


def register(subparsers: argparse._SubParsersAction) -> None:
    pi = subparsers.add_parser("pi", help="private-inference (two-party) cost of a model or a cascade")
    sub = pi.add_subparsers(dest="pi_command", required=True, parser_class=LazyParser)
    model = sub.add_parser("model", help="a GPT-2-style decoder under two-party computation",
                           formatter_class=_Help)
    model.register_target = "studies.cli.pi:_model_args"
    model.set_defaults(func=run_model)
    cascade = sub.add_parser("cascade", help="one cascade under two-party computation",
                             formatter_class=_Help)
    cascade.register_target = "studies.cli.pi:_cascade_args"
    cascade.set_defaults(func=run_cascade)


def _model_args(model: argparse.ArgumentParser) -> None:
    """Arguments of `pi model` (added when it is parsed: the variants come from the decoder model)."""
    from mappings.targets.private_inference.decoder import VARIANTS

    model.add_argument("--layers", type=positive_int, required=True, help="decoder layers L")
    model.add_argument("--context", type=positive_int, required=True, help="prompt tokens T")
    model.add_argument("--variant", default="SM+LN+G",
                       help=f"which nonlinearities the decoder keeps (SM softmax, LN LayerNorm, G GELU, R ReLU, "
                            f"ScFFN / ScFuFFN scaled / fused FFN without LayerNorm): one of {', '.join(VARIANTS)}")
    model.add_argument("--d-model", type=positive_int, default=768, help="model width d")
    model.add_argument("--heads", type=positive_int, default=12, help="attention heads H (must divide --d-model)")
    model.add_argument("--ffn", type=positive_int, default=3072, help="FFN hidden width")
    model.add_argument("--vocab", type=positive_int, default=50257, help="vocabulary size of the output layer")
    model.add_argument("--attention", default="attention_3pass",
                       help="library attention cascade (attention_temperature: entropy-guided, temperature-scaled)")
    _common(model)


def _cascade_args(cascade: argparse.ArgumentParser) -> None:
    """Arguments of `pi cascade` (added when it is parsed)."""
    cascade.add_argument("file", help="a .cascade file or a library name")
    add_size_argument(cascade)
    cascade.add_argument("--plaintext", action="append", default=[],
                         help="input tensors the server holds in plaintext (weights), comma-separated")
    cascade.add_argument("--fixed", action="store_true", help="add the profile's one-time per-run cost")
    _common(cascade)
