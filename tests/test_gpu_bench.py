"""The GPU benchmark harness, run on the CPU with the Triton interpreter and a stand-in timer."""
import json
import os

os.environ["TRITON_INTERPRET"] = "1"  # before triton is imported: the kernels run on the CPU

import pytest  # noqa: E402

pytest.importorskip("torch", reason="torch (the `gpu` extra) is not installed")
pytest.importorskip("triton", reason="triton (the `gpu` extra) is not installed")

from gpu_ref.interpret import enable_cpu_interpreter  # noqa: E402

enable_cpu_interpreter()

from gpu_ref import bench  # noqa: E402


def test_shapes_follow_the_token_and_width_budget():
    shapes = bench.bench_shapes([1024, 32768], [64, 128], tokens=16384, d_model=2048)
    assert shapes[0] == {"batch": 16, "heads": 32, "seq_len": 1024, "head_dim": 64}
    assert shapes[1] == {"batch": 1, "heads": 32, "seq_len": 32768, "head_dim": 64}  # at least one sequence
    assert shapes[3]["heads"] == 16


def test_flop_and_byte_counts_by_hand():
    # docs/references/reference-gpu.md: 4 B H N^2 D, halved when causal.
    assert bench.flop_count("attention_1pass", 2, 3, 10, 16, False) == 4 * 2 * 3 * 100 * 16
    assert bench.flop_count("attention_3pass", 2, 3, 10, 16, True) == 2 * 2 * 3 * 100 * 16
    # linear: 4 N D^2 + 2 N b D per head = 4*8*16*16 + 2*8*4*16 = 8192 + 1024.
    assert bench.flop_count("linear_attention_causal", 1, 1, 8, 16, True, linear_block=4) == 9216
    # q, k, v, out of 1 x 1 x 4 x 16 fp16 = 4 * 64 * 2 bytes; 3-pass adds 4 passes over 4 x 4 scores.
    assert bench.compulsory_bytes("attention_1pass", 1, 1, 4, 16, False, 2) == 512
    assert bench.compulsory_bytes("attention_3pass", 1, 1, 4, 16, False, 2) == 512 + 4 * 16 * 2
    assert bench.compulsory_bytes("attention_3pass", 1, 1, 4, 16, True, 2) == 512 + 4 * 8 * 2


def test_run_writes_json_and_resumes(tmp_path):
    calls = []

    def timer(fn):  # a stand-in for do_bench: runs once, reports fixed quartiles (ms)
        fn()
        calls.append(1)
        return 1.0, 2.0, 3.0

    out = tmp_path / "bench.json"
    kernels = ["attention_1pass", "linear_attention_causal", "torch_sdpa_flash"]
    args = dict(seq_lens=[32], head_dims=[16], causal_modes=[False, True], dtypes=["float32"],
                kernel_names=kernels, tokens=32, d_model=32, timer=timer, settings={"t": 1}, device="cpu",
                progress=lambda s: None)
    data = bench.run_bench(out, **args)
    # 1pass and flash in both settings, linear only causal: 5 measurements.
    assert len(calls) == 5 and data["complete"]
    saved = json.loads(out.read_text())
    assert saved["schema"] == bench.SCHEMA and len(saved["records"]) == 5
    rec = next(r for r in saved["records"] if r["kernel"] == "attention_1pass" and not r["causal"])
    assert (rec["batch"], rec["heads"], rec["seq_len"], rec["head_dim"]) == (1, 2, 32, 16)
    assert (rec["q25_ms"], rec["median_ms"], rec["q75_ms"]) == (1.0, 2.0, 3.0)
    assert rec["tflops"] == pytest.approx(4 * 2 * 32 * 32 * 16 / 2e-3 / 1e12)
    assert rec["max_abs_err"] < 1e-4  # against torch's flash attention on the CPU
    assert rec["tiles"]["BLOCK_M"] == 128
    for key in ("gpu", "driver", "torch", "triton", "date"):
        assert key in saved
    bench.run_bench(out, **args)  # everything already measured: nothing is timed again
    assert len(calls) == 5


def test_inputs_do_not_depend_on_which_jobs_ran_before(tmp_path):
    # A resumed or narrowed run must time the same q, k, v for a shape as a full run does:
    # the inputs of the causal job are the same whether or not the non-causal job ran first.
    seen = {}

    def timer(fn):  # records the sum of q of each (causal) job instead of timing it
        seen.setdefault(fn.args[3], []).append(float(fn.args[0].double().sum()))
        return 1.0, 1.0, 1.0

    args = dict(seq_lens=[16], head_dims=[16], dtypes=["float32"], kernel_names=["attention_1pass"],
                tokens=16, d_model=16, timer=timer, settings={}, device="cpu", progress=lambda s: None)
    bench.run_bench(tmp_path / "both.json", causal_modes=[False, True], **args)
    bench.run_bench(tmp_path / "causal.json", causal_modes=[True], **args)
    assert len(seen[True]) == 2 and seen[True][0] == seen[True][1]
    assert seen[False][0] != seen[True][0]  # different jobs still get different inputs


def test_summary_of_a_missing_file_is_an_error_not_a_traceback(tmp_path, capsys):
    assert bench.main(["--summary", str(tmp_path / "none.json")]) == 2
    assert "--summary" in capsys.readouterr().err


def test_a_file_of_other_settings_is_not_overwritten(tmp_path):
    from gpu_ref.bench import BenchFileError, load_previous

    path = tmp_path / "bench.json"
    fresh = load_previous(path, {"tokens": 1})
    assert fresh["records"] == [] and not path.exists()
    path.write_text(json.dumps({**fresh, "records": [{"kernel": "x"}]}))
    assert load_previous(path, {"tokens": 1})["records"] == [{"kernel": "x"}]  # same settings: resume
    with pytest.raises(BenchFileError, match="other settings"):
        load_previous(path, {"tokens": 2})
    path.write_text("{not json")
    with pytest.raises(BenchFileError, match="not a JSON benchmark file"):
        load_previous(path, {"tokens": 1})
