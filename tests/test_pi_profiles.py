"""Backend and network profiles: loading, validation errors, and the `cascadesim pi` command line."""
from __future__ import annotations

import json

import pytest

from mappings.targets.private_inference.profiles import (ProfileError, load_network, load_networks, load_profile, parse_profile,
                                    profile_names)
from studies.cli import main


def test_shipped_profiles_and_networks():
    assert {"spu-cheetah", "crypten", "paper-fit"} <= set(profile_names())
    for name in ("spu-cheetah", "crypten", "paper-fit"):
        assert load_profile(name).name == name
    # The networks of the issue: LAN 3 Gbps / 0.8 ms, WAN 400 Mbps / 10 ms, WAN 100 Mbps / 80 ms.
    nets = load_networks()
    assert (nets["lan"].bandwidth_bps, nets["lan"].rtt_s) == (3e9, pytest.approx(0.8e-3))
    assert (nets["wan400"].bandwidth_bps, nets["wan400"].rtt_s) == (400e6, pytest.approx(10e-3))
    assert (nets["wan100"].bandwidth_bps, nets["wan100"].rtt_s) == (100e6, pytest.approx(80e-3))
    # latency = compute + 8 * bytes / bandwidth + rounds * RTT: 1e9 B over 100 Mbps = 80 s, 10 rounds = 0.8 s
    assert nets["wan100"].latency_s(1e9, 10, 1.5) == pytest.approx(80 + 0.8 + 1.5)


def test_crypten_profile_is_the_reference_table():
    # docs/references/reference-private-inference.md section 2, CrypTen 0.4.1 online phase: exp 128 B / 8 rounds,
    # reciprocal 1,104 B / 38, ReLU 464 B / 9, GELU (tanh) 832 B / 26, LayerNorm 54 B / 19, x*y 32 B / 1.
    p = load_profile("crypten")
    expected = {"exp": (128, 8), "recip": (1104, 38), "relu": (464, 9), "gelu_tanh": (832, 26),
                "layernorm": (54, 19), "mul": (32, 1)}
    assert {op: (p.op(op).bytes_per_element, p.op(op).rounds) for op in expected} == expected


def test_unknown_names_list_the_known_ones():
    with pytest.raises(ProfileError, match=r"unknown backend profile 'nope' \(known: crypten, paper-fit, spu-cheetah"):
        load_profile("nope")
    with pytest.raises(ProfileError, match=r"unknown network 'moon' \(known: lan, wan100, wan400\)"):
        load_network("moon")


def test_bad_profile_fields_name_file_and_field(tmp_path):
    with pytest.raises(ProfileError, match=r"<p>: field 'ops.exp': missing field 'rounds'"):
        parse_profile({"name": "p", "ops": {"exp": {"bytes_per_element": 3}}}, "<p>")
    with pytest.raises(ProfileError, match=r"<p>: field 'ops.exp.bytes_per_element': must be non-negative"):
        parse_profile({"name": "p", "ops": {"exp": {"bytes_per_element": -1, "rounds": 1}}}, "<p>")
    with pytest.raises(ProfileError, match=r"<p>: field 'ops.teleport': unknown operation"):
        parse_profile({"name": "p", "ops": {"teleport": {"bytes_per_element": 1, "rounds": 1}}}, "<p>")
    with pytest.raises(ProfileError, match=r"<p>: field 'ops.exp.rounds': expected a whole number"):
        parse_profile({"name": "p", "ops": {"exp": {"bytes_per_element": 1, "rounds": 1.5}}}, "<p>")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nops: [1, 2\n")
    with pytest.raises(ProfileError, match=r"bad.yaml:\d+:\d+: invalid YAML"):
        load_profile(bad)
    nets = tmp_path / "nets.yaml"
    nets.write_text("networks:\n  sat: {bandwidth_mbps: 0, rtt_ms: 600}\n")
    with pytest.raises(ProfileError, match=r"nets.yaml: field 'networks.sat.bandwidth_mbps': must be positive"):
        load_networks(nets)


def test_user_defined_network(tmp_path):
    nets = tmp_path / "nets.yaml"
    nets.write_text("networks:\n  sat: {bandwidth_mbps: 50, rtt_ms: 600}\n")
    sat = load_network("sat", nets)
    assert (sat.bandwidth_bps, sat.rtt_s) == (50e6, pytest.approx(0.6))


def test_cli_cascade_json_matches_hand_count(tmp_path, capsys):
    # 3-pass attention, E = F = 2, M = P = 4, crypten profile (reference table):
    # QK, AV: secret matmuls: (8 + 8 + 16) and (16 + 8 + 8) elements x 10.7 B; GM: 12 compares x 1228 B;
    # SN: 16 exp x 128 B; A: 4 recip x 1104 B + 16 mul x 32 B.
    rc = main(["pi", "cascade", "attention_3pass", "--size", "E=2,F=2,M=4,P=4", "--profile", "crypten",
               "--network", "lan", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0
    expected = 64 * 10.7 + 12 * 1228 + 16 * 128 + 4 * 1104 + 16 * 32
    assert out["comm_bytes"] == pytest.approx(expected)
    # rounds: QK 1 + GM 2 levels x 9 + SN 8 + A (38 + 1) + AV 1
    assert out["rounds"] == 1 + 18 + 8 + 39 + 1
    assert out["latency_s"] == pytest.approx(8 * expected / 3e9 + out["rounds"] * 0.8e-3)
    assert set(out["breakdown"]) >= {"by_einsum", "by_op"}


def test_cli_model_json(capsys):
    """The CLI's JSON against a hand derivation: SM+LN+G and SM+LN+R differ only in the FFN
    activation, T x FFN elements per layer, so their bytes differ by L * T * FFN * (gelu_tanh - relu
    bytes per element) and their rounds by L * (gelu_tanh - relu rounds); latency is
    bytes / bandwidth + rounds * RTT + compute on the shipped networks (LAN 3 Gbit/s 0.8 ms,
    WAN 400 Mbit/s 10 ms, WAN 100 Mbit/s 80 ms)."""
    layers, context, ffn = 2, 16, 3072
    outs = {}
    for variant in ("SM+LN+G", "SM+LN+R"):
        rc = main(["pi", "model", "--layers", str(layers), "--context", str(context), "--ffn", str(ffn),
                   "--variant", variant, "--json"])
        assert rc == 0
        outs[variant] = json.loads(capsys.readouterr().out)
    gelu, relu = load_profile("spu-cheetah").op("gelu_tanh"), load_profile("spu-cheetah").op("relu")
    g, r = outs["SM+LN+G"], outs["SM+LN+R"]
    assert g["comm_bytes"] - r["comm_bytes"] == pytest.approx(
        layers * context * ffn * (gelu.bytes_per_element - relu.bytes_per_element), rel=1e-9)
    assert g["rounds"] - r["rounds"] == layers * (gelu.rounds - relu.rounds)
    networks = {"lan": (3e9, 0.8e-3), "wan400": (400e6, 10e-3), "wan100": (100e6, 80e-3)}
    for out in (g, r):
        assert set(out["latency_s"]) == set(networks)
        for name, (bps, rtt) in networks.items():
            assert out["latency_s"][name] == pytest.approx(
                out["compute_s"] + 8 * out["comm_bytes"] / bps + out["rounds"] * rtt, rel=1e-12)
        assert sum(out["breakdown"]["by_class"].values()) == pytest.approx(out["comm_bytes"], rel=1e-12)


@pytest.mark.parametrize("argv, message", [
    (["pi", "model", "--layers", "1", "--context", "8", "--profile", "nope"], "unknown backend profile 'nope'"),
    (["pi", "model", "--layers", "1", "--context", "8", "--network", "moon"], "unknown network 'moon' (known: lan"),
    (["pi", "model", "--layers", "1", "--context", "8", "--variant", "SM+XX"], "--variant: unknown variant"),
    (["pi", "model", "--layers", "1", "--context", "8", "--heads", "5"], "--heads: 5 does not divide"),
    (["pi", "cascade", "softplus_attention", "--size", "E=2,F=2,M=4,P=4", "--profile", "crypten"],
     "operator 'softplus' has no cost in backend profile 'crypten'"),
    (["pi", "cascade", "attention_3pass", "--size", "E=2,M=4"], "sizes 'F', 'P' are not bound"),
    (["pi", "cascade", "attention_3pass", "--size", "E=two"], "--size: expected NAME=NUMBER"),
    (["pi", "cascade", "no_such_cascade", "--size", "E=2"], "'no_such_cascade' is neither a file nor a library"),
    (["pi", "cascade", "attention_3pass", "--size", "E=2,F=2,M=4,P=4", "--plaintext", "ZZ"],
     "plaintext input(s) ZZ are not inputs of cascade attention_3pass"),
])
def test_cli_errors_are_one_line(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err
