"""The GPU model (archsim/gpu/, mappings/gpu_kernels.py, mappings/gpu_predict.py): descriptions
against their datasheets, hand-derived roofline times, monotonicity, bad input."""
import math

import pytest
from hypothesis import given, settings, strategies as st

from archsim.gpu.profiles import KernelProfile, known_kernels, load_profile
from archsim.gpu.specs import GPU_DIR, GPUConfigError, known_gpus, load_gpu
from mappings.gpu_kernels import AttentionShape
from mappings.gpu_predict import predict

TOLERANCE = 0.015  # datasheet figures are rounded to 3-4 digits


@pytest.mark.parametrize("name", known_gpus())
def test_datasheet_peaks_are_recomputed_from_per_sm_figures(name):
    """peak = SMs x per-SM rate per clock x clock, for every dtype the datasheet quotes; FP32 = SMs
    x lanes x 2 (FMA) x the clock it is quoted at; exp likewise (never retyped: recomputed)."""
    g = load_gpu(name)
    ds = g.datasheet
    quoted = {k: v for k, v in ds.tensor_tflops.model_dump().items() if v is not None}
    assert quoted, name
    for dtype, tflops in quoted.items():
        best = max(r for r in (getattr(rates, dtype) for rates in g.tensor_flops_per_clock_per_sm.values()) if r)
        assert g.sms * best * g.clock_hz / 1e12 == pytest.approx(tflops, rel=TOLERANCE), (name, dtype)
    clock = ds.boost_clock_hz or g.clock_hz
    if ds.fp32_tflops is not None:
        assert g.sms * g.fp32_lanes_per_sm * 2 * clock / 1e12 == pytest.approx(ds.fp32_tflops, rel=TOLERANCE)
    if ds.exp_tera_per_s is not None:
        assert g.sms * g.exp_per_clock_per_sm * clock / 1e12 == pytest.approx(ds.exp_tera_per_s, rel=TOLERANCE)


def test_the_gpus_of_the_data_and_the_issue_are_described():
    for name in ("a100", "h100-sxm", "h200", "h800", "h20", "b200", "b300", "gb200", "rtx-pro-6000", "rtx-a6000",
                 "rtx-5090", "rtx-4090", "l4", "l40s", "mi300x"):
        assert name in known_gpus()
    assert load_gpu("mi300x").vendor == "amd" and load_gpu("mi300x").instructions == ["mfma"]
    # Hopper has both instruction families, sm_120 parts only warp-level mma
    assert set(load_gpu("h100-sxm").instructions) == {"wgmma", "mma.sync"}
    assert load_gpu("rtx-pro-6000").instructions == ["mma.sync"]


def test_a_figure_without_a_source_is_an_error_naming_the_file_and_field(tmp_path):
    text = (GPU_DIR / "a100.yaml").read_text()
    path = tmp_path / "g.yaml"
    path.write_text("\n".join(line for line in text.splitlines() if not line.startswith("  l2_bytes:")) + "\n")
    with pytest.raises(GPUConfigError, match=rf"{path}: field 'sources': no source named for field 'l2_bytes'"):
        load_gpu(path)


@pytest.mark.parametrize("name", known_kernels())
def test_every_profile_loads_and_runs_on_a_gpu_it_supports(name):
    p = load_profile(name)
    gpu = {"hopper": "h100-sxm", "blackwell": "b200"}.get((p.architectures or ["ampere"])[0], "a100")
    d = max(p.tiles)
    shape = AttentionShape(1, 2, 1 if p.family == "split-kv" else 256, d, p.family != "split-kv",
                           seq_len_kv=1024 if p.family == "split-kv" else None, kv_heads=1 if d == 576 else None,
                           head_dim_v=512 if d == 576 else None, shared_kv=d == 576)
    r = predict(gpu, p, shape)
    assert math.isfinite(r.time_s) and r.time_s > 0


def _ideal(family: str, tiles: dict, **extra) -> KernelProfile:
    """A profile with no inefficiency: every limit at its datasheet rate, no fixed time."""
    return KernelProfile.model_validate({
        "name": "ideal", "description": "test", "source": "test", "family": family, "instructions": ["tcgen05", "wgmma", "mma.sync"],
        "tiles": {128: tiles}, "parameters": {"issue_efficiency": 1.0, "exp_overlap": 1.0, "prologue_steps": 0.0,
                                              "step_latency_s": 0.0, "launch_s": 0.0, "memory_efficiency": 1.0}, **extra})


def test_a_decode_step_is_pure_bandwidth_by_hand():
    """H200, 1 sequence, 8 heads (MHA), 64K keys, d 128, bf16. Bytes by hand: K and V
    8 x 65536 x (128 + 128) x 2 = 268,435,456; q and out 8 x (128 + 128) x 2 = 4,096. The keys
    are split so that 8 KV heads fill 132 SMs: ceil(132 / 8) = 17 splits, each writing fp32
    partial outputs and 2 row statistics: 8 x 17 x (128 + 2) x 4 = 70,720 bytes, read back by the
    combine launch, which writes the output (8 x 128 x 2 = 2,048 bytes). At 4.8 TB/s. The combine
    launch itself is bound by its FP32 work: 2 programs of 4 output rows, each row 17 x (3 x 128 + 4)
    operations (rescale, accumulate) on one SM's 128 lanes and one exp per split and row on its 16
    special-function units, at 1.83 GHz."""
    p = _ideal("split-kv", {"BLOCK_M": 16, "BLOCK_N": 128, "num_warps": 4, "num_stages": 2})
    r = predict("h200", p, AttentionShape(1, 8, 1, 128, False, seq_len_kv=65536))
    assert r.bound == "memory"
    main = (268_435_456 + 4_096 + 70_720) / 4.8e12
    combine = max((70_720 + 2_048) / 4.8e12, 4 * 17 * (3 * 128 + 4) / (128 * 1.83e9) + 4 * 17 / (16 * 1.83e9))
    assert r.time_s == pytest.approx(main + combine, rel=1e-9)
    assert r.hbm_bytes == 268_435_456 + 4_096 + 70_720 + 70_720 + 2_048


def test_a_compute_bound_prefill_by_hand():
    """H100 SXM, wgmma at 4096 dense bf16 FLOP/clock/SM and 1.83 GHz. 33 heads x 4096 queries in
    tiles of 128 rows: 33 x 32 = 1,056 programs, 8 waves of 132. A program's tensor work: QK^T
    and P V over 4096 keys, 2 x 128 x 4096 x (128 + 128) = 268,435,456 FLOPs, 35.8 us on one SM;
    its exps (128 x 4096 (1 + 1/64) on 16 per clock) and FP32 operations fit under it."""
    p = _ideal("softmax", {"BLOCK_M": 128, "BLOCK_N": 64, "num_warps": 8, "num_stages": 2})
    r = predict("h100-sxm", p, AttentionShape(1, 33, 4096, 128, False))
    assert r.bound == "compute" and r.instruction == "wgmma"
    assert r.time_s == pytest.approx(8 * 268_435_456 / (4096 * 1.83e9), rel=1e-9)


def test_a_kernel_on_a_gpu_it_cannot_run_is_one_line():
    with pytest.raises(GPUConfigError, match=r"^--kernel flash3: runs on hopper GPUs only; NVIDIA A100"):
        predict("a100", "flash3", AttentionShape(1, 8, 1024, 128, False))
    with pytest.raises(GPUConfigError, match=r"uses tcgen05 tensor instructions; NVIDIA H100 SXM5 80GB has"):
        predict("h100-sxm", load_profile("flash4").model_copy(update={"architectures": None}),
                AttentionShape(1, 8, 1024, 128, False))
    with pytest.raises(GPUConfigError, match=r"supports head dims up to 256, got 512"):
        predict("a100", "flash2", AttentionShape(1, 8, 1024, 512, False))
    with pytest.raises(GPUConfigError, match=r"heads \(8\) must be a multiple of kv_heads \(3\)"):
        predict("a100", "flash2", AttentionShape(1, 8, 1024, 64, False, kv_heads=3))


def test_gqa_reads_k_and_v_once_per_kv_head():
    full = predict("h200", "flash-decoding", AttentionShape(16, 32, 1, 128, False, seq_len_kv=32768))
    gqa = predict("h200", "flash-decoding", AttentionShape(16, 32, 1, 128, False, seq_len_kv=32768, kv_heads=8))
    kv = 16 * 32768 * 256 * 2
    assert full.hbm_bytes - gqa.hbm_bytes == pytest.approx(kv * (32 - 8), rel=1e-3)
    assert gqa.time_s < full.time_s


CASES = (("a100", "flash2", False), ("b200", "fla-chunk-gdn", True), ("h100-sxm", "flash3", True),
         ("b200", "mamba2-ssd-triton", True), ("h100-sxm", "flashinfer-gdn-prefill-cp", True))


@settings(max_examples=25, deadline=None)
@given(case=st.sampled_from(CASES), n=st.integers(6, 13), b=st.integers(1, 8), h=st.sampled_from([1, 2, 4, 8, 16]),
       which=st.sampled_from(["seq", "batch", "heads"]))
def test_time_grows_with_sequence_batch_and_heads(case, n, b, h, which):
    gpu, kernel, causal = case
    base = AttentionShape(b, h, 2 ** n, 128 if "mamba" not in kernel else 128, causal)
    bigger = {"seq": AttentionShape(b, h, 2 ** (n + 1), base.head_dim, causal),
              "batch": AttentionShape(b + 1, h, 2 ** n, base.head_dim, causal),
              "heads": AttentionShape(b, 2 * h, 2 ** n, base.head_dim, causal)}[which]
    assert predict(gpu, kernel, bigger).time_s >= predict(gpu, kernel, base).time_s * (1 - 1e-9)


@settings(max_examples=20, deadline=None)
@given(m=st.integers(8, 17), b=st.integers(1, 16), kernel=st.sampled_from(["flash-decoding", "trtllm-gen-decode"]))
def test_decode_time_grows_with_the_keys(m, b, kernel):
    gpu = "b200" if kernel.startswith("trtllm") else "h100-sxm"
    short = predict(gpu, kernel, AttentionShape(b, 32, 1, 128, False, kv_heads=8, seq_len_kv=2 ** m))
    long = predict(gpu, kernel, AttentionShape(b, 32, 1, 128, False, kv_heads=8, seq_len_kv=2 ** (m + 1)))
    assert long.time_s >= short.time_s * (1 - 1e-9)


def test_a_non_finite_figure_is_refused_where_it_is_written(tmp_path):
    path = tmp_path / "g.yaml"
    path.write_text((GPU_DIR / "a100.yaml").read_text().replace("clock_hz: 1.4100e+9", "clock_hz: .inf"))
    with pytest.raises(GPUConfigError, match=rf"{path}:\d+:\d+: non-finite number '.inf'"):
        load_gpu(path)


def test_context_parallel_chunking_splits_the_sequence_to_fill_the_gpu_by_hand():
    """flashinfer-gdn-prefill-cp on H100 SXM (132 SMs): 1 sequence of 4096 tokens, 2 heads, d = dv = 128,
    chunks of 64 (64 chunks), value tiles of 32 (4 per head): 2 x 4 = 8 programs without splitting, so
    the sequence is cut into ceil(132 / 8) = 17 segments of ceil(64 / 17) = 4 chunks: 136 programs.
    Bytes by hand: q, k, v, out 4096 x (2 x 2 x 128 + 2 x 2 x 128) x 2 = 8,388,608, gates 2 x 4096 x 12
    = 98,304, the 16 segment states entering a later segment 2 x 16 x 128 x 128 x 4 = 2,097,152 (written
    by the first launch, read by the second); the fix-up launch reads q and out of the 16 later segments
    and writes out: 4096 x (2 x 128 + 2 x 2 x 128) x 2 x 16 / 17 = 5,921,370.35..."""
    from archsim.gpu.specs import load_gpu
    from mappings.gpu_kernels import kernel_launches
    profile = load_profile("flashinfer-gdn-prefill-cp")
    fused, fix = kernel_launches(load_gpu("h100-sxm"), profile, AttentionShape(1, 2, 4096, 128, True))
    assert (fused.programs, float(fused.loop_steps()[0])) == (136, 4.0)
    assert fused.hbm_bytes == 8_388_608 + 98_304 + 2_097_152
    assert fix.programs == 8 * 16
    assert fix.hbm_bytes == pytest.approx(4096 * 768 * 2 * 16 / 17 + 2_097_152, rel=1e-12)
    serial = profile.model_copy(update={"chunk_work": profile.chunk_work.model_copy(update={"context_parallel": False})})
    (one,) = kernel_launches(load_gpu("h100-sxm"), serial, AttentionShape(1, 2, 4096, 128, True))
    assert (one.programs, float(one.loop_steps()[0]), one.hbm_bytes) == (8, 64.0, 8_388_608 + 98_304)


def test_a_context_parallel_kernel_runs_its_fastest_segment_count():
    """The prediction is the fastest of the kernel run at each segment count of SEGMENT_CHOICES
    (each predicted with that count fixed), and it splits a long single sequence (one head: 4
    programs on 132 SMs) but not a batch that fills the GPU by itself."""
    from mappings.gpu_kernels import SEGMENT_CHOICES
    profile = load_profile("flashinfer-gdn-prefill-cp")
    tiles = profile.tiles_for(128)
    for shape, split in ((AttentionShape(1, 1, 65536, 128, True), True), (AttentionShape(64, 16, 1024, 128, True), False)):
        each = {s: predict("h100-sxm", profile, shape, tiles={**tiles, "SEGMENTS": s}).time_s for s in SEGMENT_CHOICES}
        best = predict("h100-sxm", profile, shape)
        assert best.time_s == pytest.approx(min(each.values()), rel=1e-12)
        assert (min(each, key=each.get) > 1) == split
