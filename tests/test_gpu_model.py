"""GPU descriptions, kernel profiles, the GPU timing model and the mappings (hand-derived expectations)."""
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from archsim.gpu_model import Efficiency, KernelLaunch, Rates, launch_time, makespan_s, program_times
from archsim.gpu_specs import (GPU_DIR, PROFILE_DIR, GPUConfigError, GPUSpec, KernelProfile, known_gpus,
                               known_kernels, load_gpu, load_profile)
from archsim.yamlio import load_yaml_file
from mappings.gpu_mapping import AttentionShape, kernel_launches, kv_reread_bytes
from mappings.gpu_predict import predict
from studies.cli import main as cli_main

GPUS = ("a100", "h100-sxm", "h100-pcie", "h200", "h20", "b200")
KERNELS = ("triton-tutorial", "flash2", "flash3", "flash4", "cudnn", "xformers", "standard", "lightning2",
           "lightning2-decay", "attention_1pass", "attention_2pass", "attention_3pass", "linear_attention")


def test_every_gpu_and_profile_named_by_the_issue_exists_and_validates():
    assert set(GPUS) <= set(known_gpus()) and set(KERNELS) <= set(known_kernels())
    for name in known_gpus():
        gpu = load_gpu(name)
        assert gpu.smem_bytes_per_block <= gpu.smem_bytes_per_sm
    for name in known_kernels():
        assert load_profile(name).name == name and load_profile(name, fitted=False).name == name


def test_gpu_figures_match_the_vendor_datasheets():
    # Dense figures = half the 'with sparsity' ones of the datasheets (A100: dense is quoted directly).
    a100, h100, h200, b200 = (load_gpu(n) for n in ("a100", "h100-sxm", "h200", "b200"))
    assert (a100.sms, a100.tensor_flops_per_s.bf16, a100.hbm_bytes_per_s, a100.l2_bytes) == (108, 312e12, 2.039e12, 40e6)
    assert a100.tensor_flops_per_s.fp8 is None and a100.tensor_rate("fp8") == 312e12  # no fp8 tensor cores
    assert h100.tensor_flops_per_s.fp8 == pytest.approx(3958e12 / 2, rel=1e-3) and h100.hbm_bytes_per_s == 3.35e12
    assert h200.hbm_bytes_per_s == 4.8e12 and h200.tensor_flops_per_s.bf16 == h100.tensor_flops_per_s.bf16
    assert b200.tensor_flops_per_s.fp16 == 4.5e15 / 2
    # the clocks are those of the peaks: 4096 (Hopper) / 8192 (Blackwell) dense FP16 FLOP per clock per SM.
    assert h100.sms * 4096 * h100.clock_hz == pytest.approx(989.4e12, rel=1e-3)
    assert b200.sms * 8192 * b200.clock_hz == pytest.approx(2.25e15, rel=2e-3)
    # exp: 16 MUFU results per clock per SM (CUDA programming guide); H100: the FA3 paper's 3.9e12/s.
    assert h100.exp_per_s == pytest.approx(3.9e12, rel=0.02)


def test_every_gpu_figure_names_a_source():
    for name in GPUS:
        data = load_yaml_file(GPU_DIR / f"{name}.yaml")
        figures = set(data) - {"kind", "name", "architecture", "sources"}
        assert figures <= set(data["sources"]), name
        assert all(len(s) > 20 for s in data["sources"].values())


def _gpu_text(**changes) -> str:
    lines = (GPU_DIR / "a100.yaml").read_text().splitlines()
    out = []
    for line in lines:
        key = line.split(":")[0]
        if key in changes:
            if changes[key] is not None:
                out.append(f"{key}: {changes[key]}")
            continue
        out.append(line)
    return "\n".join(out) + "\n"


@pytest.mark.parametrize("changes, message", [
    ({"sms": None}, "field 'sms': Field required"),
    ({"sms": "many"}, "field 'sms': Input should be a valid integer"),
    ({"clock_hz": ".inf"}, "non-finite number '.inf'"),  # refused by the loader, with line:column
    ({"hbm_bytes_per_s": "-1"}, "field 'hbm_bytes_per_s': Input should be greater than 0"),
    ({"sms": "true"}, "field 'sms': Input should be a valid integer"),
    ({"warp_size": "32"}, "field 'warp_size': Extra inputs are not permitted"),
    ({"architecture": "volta"}, "field 'architecture'"),
    ({"  l2_bytes": None}, "field 'sources': no source named for field 'l2_bytes'"),  # its source line removed
])
def test_bad_gpu_file_names_file_and_field(tmp_path, changes, message):
    text = _gpu_text(**changes)
    if "warp_size" in changes:
        text += "warp_size: 32\n"
    path = tmp_path / "gpu.yaml"
    path.write_text(text)
    with pytest.raises(GPUConfigError) as err:
        load_gpu(path)
    assert str(path) in str(err.value) and message in str(err.value)


def test_malformed_gpu_file_is_named_by_its_path_not_unicode_string(tmp_path, capsys):
    path = tmp_path / "broken.yaml"
    path.write_text("name: x\nsms: [1, 2\n")
    code = cli_main(["gpu", "predict", "--gpu", str(path), "--kernel", "flash2", "--batch", "1", "--heads", "1",
                     "--seq-len", "1024", "--head-dim", "64"])
    err = capsys.readouterr().err
    assert code == 2 and str(path) in err and "<unicode string>" not in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("edit, message", [
    (("exp_overlap: 0.3", "exp_overlap: 1.5"), "field 'parameters.exp_overlap': Input should be less than or equal to 1"),
    (("algorithm: softmax", "algorithm: cosine"), "field 'algorithm'"),
    (("  64: {BLOCK_M: 128, BLOCK_N: 128,", "  64: {BLOCK_N: 128,"), "field 'tiles.64.BLOCK_M': required"),
    (("mma_efficiency: {ampere: 0.8,", "mma_efficiency: {ampere: .nan,"), "non-finite number '.nan'"),
    (("fit: [", "fit: [speed, "), "field 'fit.0'"),
])
def test_bad_profile_names_file_and_field(tmp_path, edit, message):
    text = (PROFILE_DIR / "flash2.yaml").read_text()
    assert edit[0] in text
    path = tmp_path / "kernel.yaml"
    path.write_text(text.replace(edit[0], edit[1], 1))
    with pytest.raises(GPUConfigError) as err:
        load_profile(path)
    assert str(path) in str(err.value) and message in str(err.value)


@pytest.mark.parametrize("args, message", [
    (["--gpu", "a100x"], "unknown GPU 'a100x'; known: a100, b200"),
    (["--kernel", "flash9"], "unknown kernel 'flash9'"),
    (["--dtype", "int4"], "unknown dtype 'int4'"),
    (["--gpu", "/nonexistent/gpu.yaml"], "/nonexistent/gpu.yaml: no such GPU description file"),
    (["--kernel", "lightning2"], "lightning2 is causal only"),
    (["--clock-mhz", "inf"], "--clock-mhz must be a positive finite number"),
])
def test_predict_bad_names_are_one_line_exit_2(capsys, args, message):
    base = {"--gpu": "a100", "--kernel": "flash2", "--dtype": "bf16"}
    for i in range(0, len(args), 2):
        base[args[i]] = args[i + 1]
    argv = ["gpu", "predict", "--batch", "1", "--heads", "2", "--seq-len", "1024", "--head-dim", "64"]
    for k, v in base.items():
        argv += [k, v]
    code = cli_main(argv)
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_predict_json_states_the_flop_convention(capsys):
    code = cli_main(["gpu", "predict", "--gpu", "h100-sxm", "--kernel", "flash3", "--batch", "2", "--heads", "16",
                     "--seq-len", "8K", "--head-dim", "128", "--causal", "--json"])
    import json
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["flops"] == 4 * 2 * 16 * 8192 ** 2 * 128 / 2
    assert out["tflops"] == pytest.approx(out["flops"] / out["time_s"] / 1e12)
    assert out["bound"] in ("compute", "exp", "memory", "serial", "launch") and "halved" in out["flop_convention"]


# -- prediction bounds, by construction -----------------------------------------------------------
@settings(max_examples=40, deadline=None)
@given(gpu=st.sampled_from(GPUS), kernel=st.sampled_from(KERNELS), batch=st.integers(1, 8),
       heads=st.integers(1, 32), seq_len=st.integers(1, 9000), head_dim=st.sampled_from([32, 64, 100, 128, 256]),
       causal=st.booleans(), dtype=st.sampled_from(["bf16", "fp16", "fp8"]))
def test_time_is_never_below_the_compute_and_memory_floors(gpu, kernel, batch, heads, seq_len, head_dim, causal, dtype):
    profile = load_profile(kernel)
    causal = causal or profile.causal_only
    shape = AttentionShape(batch, heads, seq_len, head_dim, causal)
    p = predict(gpu, profile, shape, dtype)
    spec = load_gpu(gpu)
    peak = spec.tensor_rate(profile.compute_dtype or dtype)
    element = {"bf16": 2, "fp16": 2, "fp8": 1}[dtype]
    compulsory = 4.0 * batch * heads * seq_len * head_dim * element       # q, k, v read, out written
    assert p.time_s >= p.flops_model / peak * (1 - 1e-12)
    if profile.algorithm == "softmax":
        assert p.flops_model >= p.flops * (1 - 1e-12)                       # whole tiles >= the convention
    assert p.time_s >= compulsory / spec.hbm_bytes_per_s * (1 - 1e-12)
    assert p.hbm_bytes >= compulsory * (1 - 1e-12)
    assert math.isfinite(p.time_s) and p.bound in ("compute", "exp", "memory", "serial", "launch")


# -- two hand-derived predictions ----------------------------------------------------------------
def _toy_gpu(**changes) -> GPUSpec:
    data = load_gpu("a100").model_dump()
    data.update(changes)
    return GPUSpec.model_validate(data)


def _toy_profile(name: str, **params) -> KernelProfile:
    data = load_profile(name, fitted=False).model_dump()
    data["parameters"].update(params)
    return KernelProfile.model_validate(data)


def test_compute_bound_prediction_by_hand():
    """2 SMs, 1e12 tensor FLOP/s; exp and ALU rates so large that vector work is negligible.

    flash2 at D=64 launches 128 x 128 tiles; B=1, H=1, N=256, non-causal: 2 programs (query tiles),
    each 2 key steps of 4 * 128 * 128 * 64 FLOPs (QK and PV), 8,388,608 FLOPs per program.
    Per SM: 1e12 * mma_efficiency 0.5 / 2 SMs = 2.5e11 FLOP/s -> 33.554432 us per program;
    prologue 1 step on 2 steps: x 1.5 -> 50.331648 us; 2 programs on 2 SMs: one wave.
    Memory: q, k, v, out = 4 * 256 * 64 * 2 bytes = 131,072 bytes at 1e12 B/s x 1.0 = 0.131 us.
    Total: 1 us fixed + 50.331648 us = 51.331648 us, bound compute.
    """
    gpu = _toy_gpu(sms=2, tensor_flops_per_s={"fp16": 1e12, "bf16": 1e12, "tf32": 1e12, "fp8": None},
                   exp_per_s=1e30, alu_ops_per_s=1e30, hbm_bytes_per_s=1e12)
    profile = _toy_profile("flash2", mma_efficiency={"ampere": 0.5}, exp_overlap=0.0, prologue_steps=1.0,
                           step_latency_s=0.0, launch_s=1e-6, memory_efficiency=1.0)
    p = predict(gpu, profile, AttentionShape(1, 1, 256, 64, False), "bf16")
    assert p.time_s == pytest.approx(51.331648e-6, rel=1e-9)
    assert p.bound == "compute" and p.hbm_bytes == 131072


def test_serial_loop_bound_prediction_by_hand():
    """lightning2 (64-token blocks, 32 value columns per program) with a 10 us step latency.

    B=1, H=1, N=256, D=64: 64 / 32 = 2 programs, each walking 256 / 64 = 4 blocks in order.
    Tensor and vector rates so large that their time is negligible; max_warps_per_sm = 4 and
    4 warps per program: 1 program resident per SM, so no latency is hidden: 4 x 10 us = 40 us
    per program; no prologue; 2 programs on 2 SMs: 40 us; plus 2 us fixed = 42 us, bound serial.
    """
    gpu = _toy_gpu(sms=2, tensor_flops_per_s={"fp16": 1e30, "bf16": 1e30, "tf32": 1e30, "fp8": None},
                   exp_per_s=1e30, alu_ops_per_s=1e30, max_warps_per_sm=4)
    profile = _toy_profile("lightning2", step_latency_s=10e-6, prologue_steps=0.0, launch_s=2e-6)
    p = predict(gpu, profile, AttentionShape(1, 1, 256, 64, True), "bf16")
    assert p.time_s == pytest.approx(42e-6, rel=1e-9) and p.bound == "serial"
    (launch,) = kernel_launches(gpu, profile, AttentionShape(1, 1, 256, 64, True))
    assert launch.programs == 2 and launch.steps.tolist() == [4.0, 4.0] and launch.resident == 1


# -- the timing model ------------------------------------------------------------------------------
def test_makespan_issues_programs_in_order_to_the_first_free_sm():
    assert makespan_s(np.array([3.0, 1.0, 1.0, 1.0]), 2) == 3.0   # SM1 runs the three short ones
    assert makespan_s(np.array([1.0, 1.0, 1.0, 3.0]), 2) == 4.0   # the long one starts at t = 1
    assert makespan_s(np.full(5, 2.0), 2) == 6.0                  # three waves (quantisation)
    assert makespan_s(np.array([]), 2) == 0.0


def test_launch_time_by_hand():
    rates = Rates(sms=2, tensor_flops_per_s=8.0, exp_per_s=2.0, alu_ops_per_s=4.0, hbm_bytes_per_s=10.0)
    eff = Efficiency(mma_efficiency=0.5, exp_overlap=0.5, prologue_steps=0.0, step_latency_s=0.0, launch_s=0.5,
                     memory_efficiency=1.0)
    # per SM: 2 tensor FLOP/s, 1 exp/s, 2 ALU ops/s. Program: tensor 4/2 = 2 s, vector 1/1 + 2/2 = 2 s,
    # busy = 2 + 0.5 * 2 = 3 s; 3 programs on 2 SMs: 6 s; memory 20 bytes / 10 = 2 s.
    launch = KernelLaunch("k", np.full(3, 4.0), np.full(3, 1.0), np.full(3, 2.0), hbm_bytes=20.0)
    assert program_times(rates, eff, launch).total.tolist() == [3.0, 3.0, 3.0]
    t = launch_time(rates, eff, launch)
    assert (t.compute_s, t.memory_s, t.total_s) == (6.0, 2.0, 6.5)
    # 10 loop steps at 1 s each with 2 programs resident: at least 5 s per program; 1 step of
    # prologue on 10: x 1.1 -> 5.5 s; 3 programs on 2 SMs: 11 s, bound serial.
    slow = KernelLaunch("k", np.full(3, 4.0), np.full(3, 1.0), np.full(3, 2.0), 20.0, np.full(3, 10.0), resident=2)
    eff2 = Efficiency(0.5, 0.5, 1.0, 1.0, 0.5, 1.0)
    assert program_times(rates, eff2, slow).total == pytest.approx([5.5] * 3)
    assert launch_time(rates, eff2, slow).bound == "serial"


# -- mappings -------------------------------------------------------------------------------------
TILES = {"BLOCK_M": 128, "BLOCK_N": 64, "num_warps": 8, "num_stages": 2}


@pytest.fixture(scope="module")
def h200():
    return load_gpu("h200")


def test_1pass_mapping_work_equals_attention_flops(h200):
    b, h, n, d = 1, 2, 256, 64
    (launch,) = kernel_launches(h200, load_profile("attention_1pass"), AttentionShape(b, h, n, d, False), TILES)
    assert launch.programs == b * h * n // 128
    assert launch.tensor_flops.sum() == 4 * b * h * n * n * d            # QK and SLNV products
    # exps per program: SLN at every (key, query) point, PRM once per key tile and query.
    assert launch.exps.tolist() == [128 * 256 + 128 * (256 // 64)] * 4
    assert launch.steps.tolist() == [4.0] * 4
    assert launch.hbm_bytes == 4 * b * h * n * d * 2                    # q, k, v, out once


def test_causal_mapping_visits_keys_up_to_the_diagonal_tile_in_the_profiles_order(h200):
    shape = AttentionShape(1, 1, 256, 64, True)
    (launch,) = kernel_launches(h200, load_profile("attention_1pass"), shape, TILES)
    # query tile 0 sees keys 0..127, tile 1 keys 0..255 (whole key tiles are computed).
    assert launch.tensor_flops.tolist() == [4 * 128 * 128 * 64, 4 * 128 * 256 * 64]
    (reverse,) = kernel_launches(h200, load_profile("flash3"), shape, TILES)   # longest tile first
    assert reverse.tensor_flops.tolist() == [4 * 128 * 256 * 64, 4 * 128 * 128 * 64]


def test_standard_attention_computes_masked_scores_in_full(h200):
    scores, softmax, _ = kernel_launches(h200, load_profile("standard"), AttentionShape(1, 1, 256, 64, True), TILES)
    assert scores.tensor_flops.sum() == 2 * 256 * 256 * 64 and softmax.exps.sum() == 256 * 256


def test_3pass_mapping_traffic_by_hand(h200):
    n, d = 256, 64
    profile = load_profile("attention_3pass")
    scores, softmax, probs_v = kernel_launches(h200, profile, AttentionShape(1, 1, n, d, False), TILES)
    assert scores.programs == 2 * 4 and scores.tensor_flops.sum() == 2 * n * n * d
    assert scores.hbm_bytes == (n * n + 2 * n * d) * 2             # scores written, q and k read
    assert softmax.programs == n and softmax.exps.sum() == n * n   # one exp per score
    assert softmax.hbm_bytes == 2 * n * n * 2                      # read S, write P over it
    assert probs_v.hbm_bytes == (n * n + 2 * n * d) * 2            # read P and v, write out
    causal = kernel_launches(h200, profile, AttentionShape(1, 1, n, d, True), TILES)
    assert causal[1].exps.sum() == n * (n + 1) // 2


def test_2pass_mapping_recomputes_the_scores(h200):
    stats, av = kernel_launches(h200, load_profile("attention_2pass"), AttentionShape(1, 1, 256, 64, False), TILES)
    assert stats.tensor_flops.sum() == 2 * 256 * 256 * 64          # QK only
    assert av.tensor_flops.sum() == 4 * 256 * 256 * 64             # QK again and SN V


def test_linear_mapping_flops_by_hand(h200):
    n, d, bn, be = 256, 64, 64, 32
    tiles = {"BLOCK_N": bn, "BLOCK_E": be, "num_warps": 4, "num_stages": 2}
    profile = load_profile("linear_attention")
    (launch,) = kernel_launches(h200, profile, AttentionShape(1, 2, n, d, True), tiles)
    assert launch.programs == 2 * (d // be)
    # per program: q k^T in blocks (n bn d), S v (n bn be), K^T v state update and q . state (n d be each).
    assert launch.tensor_flops.tolist() == [2 * (n * bn * d + n * bn * be + 2 * n * d * be)] * 4
    assert launch.exps.sum() == 0                                  # G = 1: no decay factors computed
    # 4 programs fit in one wave: each head's q, k read once, v read and out written once.
    assert launch.hbm_bytes == 2 * n * d * 2 * 4
    with pytest.raises(ValueError, match="causal only"):
        kernel_launches(h200, profile, AttentionShape(1, 2, n, d, False), tiles)


def test_gpu_ref_profiles_use_the_tiles_the_kernels_launch_with(h200):
    """The gpu_ref profiles repeat the kernels' launch table (gpu_ref/tiles.py, read by the kernels
    themselves): a profile that drifted from the kernel would model a different kernel."""
    from gpu_ref.tiles import TILES as KERNEL_TILES
    for profile_name, kernel in (("attention_1pass", "attention_1pass"), ("attention_2pass", "attention_2pass"),
                                 ("attention_3pass", "attention_3pass"), ("linear_attention", "linear_attention_causal")):
        profile = load_profile(profile_name)
        for head_dim, tiles in KERNEL_TILES[kernel].items():
            assert profile.tiles_for(head_dim) == tiles, (profile_name, head_dim)
    # and the mapping launches them: attention_1pass at D=128 uses 128-row query tiles, 64-key steps.
    (launch,) = kernel_launches(h200, load_profile("attention_1pass"), AttentionShape(2, 4, 1024, 128, False))
    assert launch.programs == 2 * 4 * 1024 // 128 and set(launch.steps.tolist()) == {1024 / 64}


def test_kv_is_not_re_read_while_one_head_fits_in_l2(h200):
    """The issue's case: 86K tokens on H200 (D=128, bf16). One head's K and V: 2 x 88064 x 128 x 2 =
    45,088,768 bytes <= 50 MB of L2, and the 264 programs in flight (2 per SM) all belong to one head
    (688 query tiles per head): no re-read (the former rule charged every program's keys: ~500 GB)."""
    shape = AttentionShape(1, 32, 88064, 128, True)
    assert kv_reread_bytes(h200, shape, 128, 2, 2) == 0.0
    p = predict(h200, "attention_1pass", shape, "bf16")
    assert p.hbm_bytes == 4 * 32 * 88064 * 128 * 2
    # 128K tokens: a head's K, V = 67,108,864 bytes > L2; 1024 query tiles over 264 slots = 4 waves,
    # each reading the head's K, V once: 3 re-reads per head.
    big = AttentionShape(1, 32, 131072, 128, True)
    assert kv_reread_bytes(h200, big, 128, 2, 2) == 3 * 67108864 * 32


def test_fa3_is_told_from_fa2_on_h100():
    shape = AttentionShape(2, 16, 8192, 128, False)
    fa2, fa3 = (predict("h100-sxm", k, shape, "bf16") for k in ("flash2", "flash3"))
    assert fa3.tflops > 1.4 * fa2.tflops


def test_predicted_ordering_of_the_softmax_kernels(h200):
    # 3 passes move the N x N scores through memory, 2 passes recompute QK: 1 < 2 < 3 in time.
    shape = AttentionShape(4, 16, 4096, 128, False)
    t1, t2, t3 = (predict(h200, k, shape).time_s for k in ("attention_1pass", "attention_2pass", "attention_3pass"))
    assert t1 < t2 < t3


@pytest.mark.parametrize("content, message", [
    (b"\xff\xfe\x00n\x00a", "not UTF-8 text"),
    (b"a: &x [1, 2]\nb: *x\n", "YAML aliases"),
    (b"- 1\n- 2\n", "expected a mapping of fields, got list"),
])
def test_unreadable_gpu_file_is_one_line_naming_it(tmp_path, capsys, content, message):
    path = tmp_path / "gpu.yaml"
    path.write_bytes(content)
    code = cli_main(["gpu", "predict", "--gpu", str(path), "--kernel", "flash2", "--batch", "1", "--heads", "1",
                     "--seq-len", "64", "--head-dim", "64"])
    err = capsys.readouterr().err
    assert code == 2 and str(path) in err and message in err and len(err.strip().splitlines()) == 1


def test_a_launch_too_large_to_list_is_one_line_not_a_memory_error(capsys):
    # PyTorch eager at 1M tokens: 32 heads x 8192 x 8192 score tiles = 2,147,483,648 programs.
    code = cli_main(["gpu", "predict", "--gpu", "h200", "--kernel", "standard", "--batch", "1", "--heads", "32",
                     "--seq-len", "1M", "--head-dim", "128"])
    err = capsys.readouterr().err
    assert code == 2 and "2,147,483,648 programs in one launch" in err and len(err.strip().splitlines()) == 1


_yaml_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**20, 10**20) | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3),
    max_leaves=8)


@settings(max_examples=60, deadline=None)
@given(kind=st.sampled_from(["gpu", "profile"]), field_index=st.integers(0, 40), value=_yaml_values)
def test_any_value_in_any_field_is_loaded_or_a_named_error(tmp_path_factory, kind, field_index, value):
    """Property (issue 10): whatever a GPU or profile file holds, loading it either succeeds or raises
    GPUConfigError naming the file; never another exception."""
    import yaml
    source = GPU_DIR / "a100.yaml" if kind == "gpu" else PROFILE_DIR / "flash2.yaml"
    data = load_yaml_file(source)
    keys = sorted(data)
    data[keys[field_index % len(keys)]] = value
    path = tmp_path_factory.mktemp("fuzz") / "file.yaml"
    path.write_text(yaml.safe_dump(data))
    try:
        (load_gpu if kind == "gpu" else load_profile)(path)
    except GPUConfigError as err:
        assert str(path) in str(err) and "\n" not in str(err)
