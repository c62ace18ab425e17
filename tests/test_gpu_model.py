"""archsim's GPU model and the GPU mappings of the library cascades (hand-derived expectations)."""
import dataclasses

import numpy as np
import pytest
import yaml

from archsim.gpu_model import (CONFIG_DIR, GPUConfigError, KernelLaunch, launch_time, load_gpu, makespan_s,
                               program_times_s)
from mappings.gpu_mapping import AttentionShape, kernel_launches


@pytest.fixture(scope="module")
def h200():
    return load_gpu("h200")


def test_h200_config_holds_the_reference_figures(h200):
    # docs/references/reference-gpu.md section 1.
    assert h200.sms == 132 and h200.tensor_flops_per_s == 989e12 and h200.hbm_bytes_per_s == 4.8e12
    assert h200.l2_bytes == 50e6 and h200.exp_per_s == 3.9e12 and h200.smem_bytes_per_block == 227 * 1024


@pytest.mark.parametrize("edit, message", [
    (lambda d: d.pop("sms"), "missing field 'sms'"),
    (lambda d: d.update(sms="many"), "field 'sms' must be a number"),
    (lambda d: d.update(overlap=1.5), r"field 'overlap' must be in \(0, 1\]"),
    (lambda d: d.update(hbm_bytes_per_s=-1), "field 'hbm_bytes_per_s' must be positive"),
    (lambda d: d.update(warp_size=32), "unknown field 'warp_size'"),
])
def test_bad_config_names_file_and_field(tmp_path, edit, message):
    data = yaml.safe_load((CONFIG_DIR / "h200.yaml").read_text())
    edit(data)
    path = tmp_path / "gpu.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(GPUConfigError, match=message) as err:
        load_gpu(path)
    assert str(path) in str(err.value)


def test_makespan_issues_programs_in_order_to_the_first_free_sm():
    assert makespan_s(np.array([3.0, 1.0, 1.0, 1.0]), 2) == 3.0   # SM1 runs the three short ones
    assert makespan_s(np.array([1.0, 1.0, 1.0, 3.0]), 2) == 4.0   # the long one starts at t = 1
    assert makespan_s(np.full(5, 2.0), 2) == 6.0                  # three waves
    assert makespan_s(np.array([]), 2) == 0.0


def test_launch_time_by_hand(h200):
    arch = dataclasses.replace(h200, sms=2, tensor_flops_per_s=8.0, tensor_efficiency=0.5, exp_per_s=2.0,
                               alu_ops_per_s=4.0, hbm_bytes_per_s=10.0, memory_efficiency=1.0,
                               launch_overhead_s=0.5, overlap=0.5)
    # per SM: 2 tensor FLOP/s, 1 exp/s, 2 ALU ops/s. Program: tensor 4/2 = 2 s, vector 1/1 + 2/2 = 2 s,
    # busy = 2 + 0.5 * 2 = 3 s; 3 programs on 2 SMs: 6 s; memory 20 bytes / 10 = 2 s.
    launch = KernelLaunch("k", np.full(3, 4.0), np.full(3, 1.0), np.full(3, 2.0), hbm_bytes=20.0)
    assert program_times_s(arch, launch).tolist() == [3.0, 3.0, 3.0]
    t = launch_time(arch, launch)
    assert (t.compute_s, t.memory_s, t.total_s, t.bound) == (6.0, 2.0, 6.5, "compute")
    # A dependent loop of 10 steps at 1 s each, 2 programs resident: at least 5 s per program.
    slow = dataclasses.replace(launch, serial_steps=np.full(3, 10.0), resident=2)
    assert program_times_s(dataclasses.replace(arch, step_latency_s=1.0), slow).tolist() == [5.0, 5.0, 5.0]


TILES = {"BLOCK_M": 128, "BLOCK_N": 64, "num_warps": 8, "num_stages": 2}


def test_1pass_mapping_work_equals_attention_flops(h200):
    b, h, n, d = 1, 2, 256, 64
    (launch,) = kernel_launches(h200, "attention_1pass", AttentionShape(b, h, n, d, False), TILES)
    assert launch.programs == b * h * n // 128
    assert launch.tensor_flops.sum() == 4 * b * h * n * n * d            # QK and SLNV products
    # exps per program: SLN at every (key, query) point, PRM once per key tile and query.
    assert launch.exps.tolist() == [128 * 256 + 128 * (256 // 64)] * 4
    assert launch.serial_steps.tolist() == [4.0] * 4
    # compulsory traffic: q, k, v, out once (the heads in flight fit in L2).
    assert launch.hbm_bytes == 4 * b * h * n * d * 2


def test_causal_mapping_visits_keys_up_to_the_diagonal_tile(h200):
    (launch,) = kernel_launches(h200, "attention_1pass", AttentionShape(1, 1, 256, 64, True), TILES)
    # query tile 0 sees keys 0..127, tile 1 keys 0..255 (whole key tiles are computed).
    assert launch.tensor_flops.tolist() == [4 * 128 * 128 * 64, 4 * 128 * 256 * 64]


def test_3pass_mapping_traffic_by_hand(h200):
    n, d = 256, 64
    scores, softmax, probs_v = kernel_launches(h200, "attention_3pass", AttentionShape(1, 1, n, d, False), TILES)
    assert scores.programs == 2 * 4 and scores.tensor_flops.sum() == 2 * n * n * d
    assert scores.hbm_bytes == (n * n + 2 * n * d) * 2             # scores written, q and k read
    assert softmax.programs == n and softmax.exps.sum() == n * n   # one exp per score
    assert softmax.hbm_bytes == 2 * n * n * 2                      # read S, write P over it
    assert probs_v.hbm_bytes == (n * n + 2 * n * d) * 2            # read P and v, write out
    causal = kernel_launches(h200, "attention_3pass", AttentionShape(1, 1, n, d, True), TILES)
    assert causal[1].exps.sum() == n * (n + 1) // 2


def test_2pass_mapping_recomputes_the_scores(h200):
    shape = AttentionShape(1, 1, 256, 64, False)
    stats, av = kernel_launches(h200, "attention_2pass", shape, TILES)
    assert stats.tensor_flops.sum() == 2 * 256 * 256 * 64          # QK only
    assert av.tensor_flops.sum() == 4 * 256 * 256 * 64             # QK again and SN V


def test_linear_mapping_flops_by_hand(h200):
    n, d, bn, be = 256, 64, 64, 32
    tiles = {"BLOCK_N": bn, "BLOCK_E": be, "num_warps": 4, "num_stages": 2}
    (launch,) = kernel_launches(h200, "linear_attention_causal", AttentionShape(1, 2, n, d, True), tiles)
    assert launch.programs == 2 * (d // be)
    # per program: q k^T in blocks (n bn d), S v (n bn be), K^T v state update and q . state (n d be each).
    per_program = 2 * (n * bn * d + n * bn * be + 2 * n * d * be)
    assert launch.tensor_flops.tolist() == [per_program] * 4
    assert launch.exps.sum() == 0                                  # G = 1: no decay factors computed
    with pytest.raises(ValueError, match="causal only"):
        kernel_launches(h200, "linear_attention_causal", AttentionShape(1, 2, n, d, False), tiles)


def test_predicted_ordering_of_the_softmax_kernels(h200):
    # 3 passes move the N x N scores through memory, 2 passes recompute QK: 1 < 2 < 3 in time.
    from mappings.gpu_mapping import predict_kernel_time_s
    shape = AttentionShape(4, 16, 4096, 128, False)
    t1, t2, t3 = (predict_kernel_time_s(h200, k, shape) for k in ("attention_1pass", "attention_2pass",
                                                                   "attention_3pass"))
    assert t1 < t2 < t3


def test_mapping_uses_the_kernels_tile_sizes():
    from gpu_ref.tiles import TILES  # pure Python: no torch needed
    from mappings.gpu_mapping import DEFAULT_TILES
    assert DEFAULT_TILES == TILES
