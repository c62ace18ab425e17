"""`cascadesim sweep`: spec validation, resume after an interruption or a SIGKILL, executors that
agree byte for byte (serial, processes, a real dask LocalCluster), and the Pareto front."""
from __future__ import annotations

import io
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from studies.cli import main
from studies.sweep import _LineStream, run
from studies.sweep.pareto import pareto_mask
from studies.sweep.spec import RangeSpec, SweepSpecError, load_sweep

ROOT = Path(__file__).resolve().parents[1]
OUTPUTS = ("results.csv", "results.parquet", "pareto.png", "report.md")

# 8 points: 2 d x 2 DRAM bandwidths x 2 buffer sizes; the 4 KiB buffer cannot hold a query block
SPEC = """\
name: small
arch: fusemax-template
cascades: [attention_1pass]
mapping: fusemax
sizes: {M: 1K, P: same-as-M, E: 64, F: 64}
heads: 2
vary:
  d: [64, 128]
  dram.bandwidth_bytes_per_s: [1.0e11, 4.0e11]
  buffer_bytes: [4096, 1048576]
"""


def write_spec(tmp_path: Path, text: str = SPEC, name: str = "spec.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def files(out: Path) -> dict[str, bytes]:
    return {f: (out / f).read_bytes() for f in OUTPUTS}


def journal_keys(out: Path) -> list[str]:
    return [json.loads(line)["key"] for line in (out / "journal.jsonl").read_text().splitlines()]


# ---- the spec -------------------------------------------------------------------------------

def test_ranges_expand_geometric_and_arithmetic():
    assert RangeSpec.model_validate({"from": 64, "to": 512, "times": 2}).values() == [64, 128, 256, 512]
    assert RangeSpec.model_validate({"from": 64, "to": 500, "times": 2}).values() == [64, 128, 256]
    assert RangeSpec.model_validate({"from": 1, "to": 10, "step": 3}).values() == [1, 4, 7, 10]
    assert RangeSpec.model_validate({"from": 0.5, "to": 1.0, "step": 0.25}).values() == [0.5, 0.75, 1.0]
    assert RangeSpec.model_validate({"from": 1.0e11, "to": 4.0e11, "times": 2}).values() == [1e11, 2e11, 4e11]


def test_spec_expands_to_the_cartesian_product(tmp_path):
    text = SPEC.replace("sizes: {M: 1K,", "sizes: {M: [1K, 2K],").replace("heads: 2", "heads: [1, 2]")
    sweep = load_sweep(write_spec(tmp_path, text))
    assert len(sweep.points) == 8 * 2 * 2
    expected = list(itertools.product([64, 128], [1e11, 4e11], [4096, 1 << 20], [1, 2], [1024, 2048]))
    got = [(p["values"]["d"], p["values"]["dram.bandwidth_bytes_per_s"], p["values"]["buffer_bytes"],
            p["heads"], p["sizes"]["M"]) for p in sweep.points]
    assert got == expected
    assert all(p["sizes"]["P"] == p["sizes"]["M"] for p in sweep.points)  # same-as-M
    assert sweep.points[0]["params"] == {"d": 64, "buffer_bytes": 4096}  # template parameters
    assert sweep.points[0]["overrides"] == {"dram.bandwidth_bytes_per_s": 1e11}  # a dotted path


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(1, 3), min_size=0, max_size=3), st.integers(1, 3), st.integers(1, 2))
def test_point_count_is_the_product_and_points_are_distinct(lengths, n_m, n_heads):
    keys = ["word_bytes", "dram.pj_per_byte", "buffer.banks"][:len(lengths)]
    vary = {k: [(1 + i) * 8 for i in range(n)] for k, n in zip(keys, lengths)}
    sweep = load_sweep({"name": "p", "arch": "fusemax-template", "cascades": ["attention_1pass"],
                       "sizes": {"M": [1024 * (i + 1) for i in range(n_m)], "P": "same-as-M", "E": 64, "F": 64},
                       "heads": list(range(1, n_heads + 1)), "vary": vary})
    assert len(sweep.points) == int(np.prod(lengths)) * n_m * n_heads
    identities = {json.dumps([p["values"], p["sizes"], p["heads"]], sort_keys=True) for p in sweep.points}
    assert len(identities) == len(sweep.points)
    assert [p["index"] for p in sweep.points] == list(range(len(sweep.points)))


@pytest.mark.parametrize("edit, where, words", [
    (("heads: 2", "heads: 2\nfoo: 1"), ":7:1: foo", "unknown key 'foo'"),
    (("d: [64, 128]", "d: {from: 64, to: 128, tims: 2}"), ":8:", "unknown key 'tims'"),
    (("dram.bandwidth_bytes_per_s", "dram.bandwidth"), ":9:", "vary.dram.bandwidth: unknown arch field path"),
    (("d: [64, 128]", "units.array1d.colz: [1, 2]"), ":8:", "has no field 'colz' under units.array1d"),
    (("d: [64, 128]", "d: []"), ":8:", "vary.d: empty list: the product has no points"),
    (("cascades: [attention_1pass]", "cascades: []"), ":3:", "cascades: empty list"),
    (("d: [64, 128]", "d: {from: 128, to: 64, times: 2}"), ":8:", "vary.d: bad range: empty range"),
    (("d: [64, 128]", "d: {from: 64, to: 128, times: 1}"), ":8:", "vary.d: bad range: times must be greater than 1"),
    (("d: [64, 128]", "d: {from: 64, to: 128, times: 2, step: 2}"), ":8:", "exactly one of"),
    (("d: [64, 128]", "d: {from: 64, to: 128, step: -1}"), ":8:", "step must be positive"),
    (("d: [64, 128]", "d: {from: 64, step: 2}"), ":8:", "missing 'to'"),
    (("P: same-as-M", "P: same-as-Q"), ":5:", "sizes.P: same-as-Q: Q is not in sizes"),
    (("M: 1K", "M: 1X"), ":5:", "sizes.M: expected a positive integer"),
    (("heads: 2", "heads: 0"), ":6:", "heads: expected a positive integer"),
    (("d: [64, 128]", "d: [0, 64]"), ":8:", "vary.d: value 0 gives an invalid architecture"),
    (("mapping: fusemax", "mapping: nosuch"), ":4:", "mapping: 'nosuch' is not auto"),
    (("arch: fusemax-template", "arch: nosuch"), ":2:", "arch: 'nosuch' is neither a file nor"),
])
def test_spec_errors_are_one_line_naming_file_and_field_exit_2(tmp_path, capsys, edit, where, words):
    old, new = edit
    text = SPEC.replace(old, new)
    assert text != SPEC
    spec = write_spec(tmp_path, text)
    assert main(["sweep", str(spec), "--out", str(tmp_path / "out"), "--executor", "serial", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith(f"cascadesim: error: {spec}{where}"), err
    assert words in err, err
    assert not (tmp_path / "out" / "journal.jsonl").exists()


def test_spec_errors_in_the_python_api(tmp_path):
    with pytest.raises(SweepSpecError, match=r"<spec>: vary.d: empty list"):
        load_sweep({"name": "x", "arch": "fusemax-template", "cascades": ["attention_1pass"],
                   "sizes": {"M": 1024, "P": 1024, "E": 64, "F": 64}, "vary": {"d": []}})
    with pytest.raises(SweepSpecError, match=r"<spec>: name: missing field"):
        load_sweep({"arch": "fusemax-template", "cascades": ["attention_1pass"], "sizes": {}})


# ---- points ---------------------------------------------------------------------------------

def test_rows_carry_the_varied_architecture(tmp_path):
    table = run(write_spec(tmp_path), tmp_path / "out", executor="serial", progress=False)
    assert list(table["point"]) == list(range(8))
    ok = table[table["status"] == "ok"]
    assert list(ok["buffer_bytes"]) == [1 << 20] * 4
    bad = table[table["status"] == "infeasible"]
    assert list(bad["buffer_bytes"]) == [4096] * 4  # recorded, with the reason, not dropped
    assert bad["error"].str.contains("buffer").all() and bad["latency_s"].isna().all()
    # area by hand (fusemax-template): 2D array d*d PEs of mac + max + register file, 1D array d PEs
    # of mac + add + max + divide + register file, and the buffer: 47 mm^2 at the file's 16 MiB,
    # scaled with the capacity at that density (the sweep's area model: a bigger buffer is not free)
    for _, r in table.iterrows():
        d = r["d"]
        um2 = d * d * (1545 + 49.29 + 16800) + d * (1545 + 1030 + 49.29 + 23741 + 16800) + \
            47_000_000 * r["buffer_bytes"] / 16_777_216
        assert r["area_mm2"] == pytest.approx(um2 / 1e6, rel=1e-12)
    # a 4x faster DRAM never makes a point slower, and moves no bytes
    for d in (64, 128):
        slow, fast = (ok[(ok["d"] == d) & (ok["dram.bandwidth_bytes_per_s"] == bw)].iloc[0] for bw in (1e11, 4e11))
        assert fast["latency_s"] <= slow["latency_s"] and fast["dram_bytes"] == slow["dram_bytes"]
    # DRAM-bound at 1e11 B/s: Q, K, V and AV of 2 heads at 1K x 64 in 2-byte words, K and V read
    # once per query group, so the latency is at least those bytes over the bandwidth
    r = ok[(ok["d"] == 64) & (ok["dram.bandwidth_bytes_per_s"] == 1e11)].iloc[0]
    assert r["latency_s"] >= r["dram_bytes"] / 1e11
    assert r["dram_bytes"] >= 2 * 4 * 1024 * 64 * 2
    assert set(table.columns) >= {"util_array2d", "util_array1d", "bound", "mapping", "front_latency_area"}
    assert (ok["mapping"] == "fusemax").all()
    assert pd.read_parquet(tmp_path / "out" / "results.parquet").equals(table)


def test_auto_mapping_maps_a_cascade_no_named_mapping_covers(tmp_path):
    """mapping: auto is the generic mapper: a 2-pass cascade gets a mapping, and the 1-pass one is
    no slower than with the FuseMax spec (the mapper's search includes it)."""
    text = SPEC.replace("mapping: fusemax", "mapping: auto").replace(
        "cascades: [attention_1pass]", "cascades: [attention_1pass, attention_2pass]")
    auto = run(write_spec(tmp_path, text), tmp_path / "auto", executor="serial", progress=False)
    named = run(write_spec(tmp_path, SPEC, "named.yaml"), tmp_path / "named", executor="serial", progress=False)
    big = auto["buffer_bytes"] > 4096
    assert (auto[big]["status"] == "ok").all()
    one = auto[big & (auto["cascade"] == "attention_1pass")].reset_index(drop=True)
    ref = named[named["buffer_bytes"] > 4096].reset_index(drop=True)
    assert (one["latency_s"] <= ref["latency_s"] * 1.01).all()


# ---- resume and executors -------------------------------------------------------------------

class Stop(Exception):
    pass


def test_interrupted_sweep_loses_no_point_and_recomputes_none(tmp_path):
    spec = write_spec(tmp_path)
    reference = tmp_path / "reference"
    run(spec, reference, executor="serial", progress=False)

    out = tmp_path / "out"
    first: list[int] = []

    def stop_after_three(point, row):
        first.append(point["index"])
        if len(first) == 3:
            raise Stop

    with pytest.raises(Stop):
        run(spec, out, executor="serial", progress=False, on_point=stop_after_three)
    assert len(journal_keys(out)) == 3 and not (out / "results.csv").exists()
    second: list[int] = []
    run(spec, out, executor="serial", progress=False, on_point=lambda p, r: second.append(p["index"]))
    assert sorted(first + second) == list(range(8))  # every point computed exactly once
    assert len(set(journal_keys(out))) == len(journal_keys(out)) == 8
    assert files(out) == files(reference)
    third: list[int] = []
    run(spec, out, executor="serial", progress=False, on_point=lambda p, r: third.append(p["index"]))
    assert third == [] and files(out) == files(reference)


def test_interrupted_process_pool_resumes(tmp_path):
    spec = write_spec(tmp_path)
    reference = tmp_path / "reference"
    run(spec, reference, executor="serial", progress=False)
    out = tmp_path / "out"
    first: list[int] = []

    def stop_after_two(point, row):
        first.append(point["index"])
        if len(first) == 2:
            raise Stop

    with pytest.raises(Stop):
        run(spec, out, executor="processes", workers=2, progress=False, on_point=stop_after_two)
    second: list[int] = []
    run(spec, out, executor="processes", workers=2, progress=False, on_point=lambda p, r: second.append(p["index"]))
    assert sorted(first + second) == list(range(8))
    assert files(out) == files(reference)


def test_sigkilled_sweep_resumes_without_recomputing(tmp_path):
    # 90 points (about 2 s serially): the kill comes long before the end
    text = SPEC.replace("sizes: {M: 1K,", "sizes: {M: [1K, 2K, 4K],").replace(
        "[1.0e11, 4.0e11]", "{from: 1.0e11, to: 1.6e12, times: 2}").replace("[64, 128]", "[64, 128, 256]")
    spec = write_spec(tmp_path, text)
    out = tmp_path / "out"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "studies.cli", "sweep", str(spec), "--out", str(out),
                             "--executor", "serial", "--quiet"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    journal = out / "journal.jsonl"
    deadline = time.monotonic() + 120
    while not (journal.exists() and journal.read_bytes().count(b"\n") >= 3):
        assert proc.poll() is None and time.monotonic() < deadline, "the sweep ended before it was killed"
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    kept = journal.read_bytes().count(b"\n")  # complete lines: finished points
    assert 3 <= kept < 90
    resumed: list[int] = []
    run(spec, out, executor="serial", progress=False, on_point=lambda p, r: resumed.append(p["index"]))
    assert len(resumed) == 90 - kept
    assert len(set(journal_keys(out))) == len(journal_keys(out)) == 90
    reference = tmp_path / "reference"
    run(spec, reference, executor="serial", progress=False)
    assert files(out) == files(reference)


def test_ctrl_c_stops_a_process_pool_sweep_cleanly_and_it_resumes(tmp_path):
    text = SPEC.replace("sizes: {M: 1K,", "sizes: {M: [1K, 2K, 4K],").replace(
        "[1.0e11, 4.0e11]", "{from: 1.0e11, to: 1.6e12, times: 2}").replace("[64, 128]", "[64, 128, 256]")
    spec = write_spec(tmp_path, text)  # 90 points
    out = tmp_path / "out"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "studies.cli", "sweep", str(spec), "--out", str(out),
                             "--executor", "processes", "--workers", "2", "--quiet"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    journal = out / "journal.jsonl"
    deadline = time.monotonic() + 120
    while not (journal.exists() and journal.read_bytes().count(b"\n") >= 2):
        assert proc.poll() is None and time.monotonic() < deadline, "the sweep ended before it was interrupted"
        time.sleep(0.005)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert err.strip().splitlines() == [f"cascadesim: sweep interrupted; the finished points are in {out}/"
                                        "journal.jsonl: run the same command again to resume"], err
    kept = len(journal_keys(out))
    assert 2 <= kept < 90
    resumed: list[int] = []
    run(spec, out, executor="serial", progress=False, on_point=lambda p, r: resumed.append(p["index"]))
    assert len(resumed) == 90 - kept and len(set(journal_keys(out))) == 90


def test_dask_local_cluster_and_process_pool_equal_serial_byte_for_byte(tmp_path):
    pytest.importorskip("dask.distributed")
    spec = write_spec(tmp_path)
    run(spec, tmp_path / "serial", executor="serial", progress=False)
    run(spec, tmp_path / "processes", executor="processes", workers=2, progress=False)
    table = run(spec, tmp_path / "dask", executor="dask", workers=2, progress=False)
    assert files(tmp_path / "dask") == files(tmp_path / "serial")
    assert files(tmp_path / "processes") == files(tmp_path / "serial")
    assert (table["status"] == "ok").sum() == 4


def test_bad_scheduler_address_is_one_line(tmp_path, capsys):
    pytest.importorskip("dask.distributed")
    assert main(["sweep", str(write_spec(tmp_path)), "--out", str(tmp_path / "o"), "--executor", "dask",
                 "--scheduler", "tcp://127.0.0.1:1", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--scheduler: cannot connect to tcp://127.0.0.1:1" in err


# ---- Pareto front and progress ----------------------------------------------------------------

def brute_front(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    out = np.zeros(len(x), dtype=bool)
    for i in range(len(x)):
        if np.isnan(x[i]) or np.isnan(y[i]):
            continue
        out[i] = not any(x[j] <= x[i] and y[j] <= y[i] and (x[j] < x[i] or y[j] < y[i])
                         for j in range(len(x)) if not (np.isnan(x[j]) or np.isnan(y[j])))
    return out


def test_pareto_front_of_a_hand_made_table():
    # (latency, energy): b dominates d; a, b, c trade off; e ties c exactly; f is NaN (infeasible)
    x = np.array([1.0, 2.0, 4.0, 3.0, 4.0, np.nan, 5.0])
    y = np.array([9.0, 5.0, 1.0, 6.0, 1.0, 0.5, 1.0])
    assert list(pareto_mask(x, y)) == [True, True, True, False, True, False, False]


values = st.sampled_from([0.5, 1.0, 2.0, 3.0, 7.0, float("nan")])


@given(st.lists(st.tuples(values, values), max_size=30))
def test_pareto_front_equals_brute_force(pairs):
    x = np.array([p[0] for p in pairs], dtype=float)
    y = np.array([p[1] for p in pairs], dtype=float)
    assert list(pareto_mask(x, y)) == list(brute_front(x, y))


def test_front_columns_match_brute_force_per_workload(tmp_path):
    text = SPEC.replace("sizes: {M: 1K,", "sizes: {M: [1K, 2K],")
    table = run(write_spec(tmp_path, text), tmp_path / "out", executor="serial", progress=False)
    for m in (1024, 2048):
        g = table[table["M"] == m]
        ok = (g["status"] == "ok").to_numpy()
        lat = np.where(ok, g["latency_s"], np.nan)
        assert list(g["front_latency_energy"]) == list(brute_front(lat, g["energy_j"].to_numpy()))
        assert list(g["front_latency_area"]) == list(brute_front(lat, g["area_mm2"].to_numpy()))
    report = (tmp_path / "out" / "report.md").read_text()
    assert "## cascade=attention_1pass, M=1024" in report and "## cascade=attention_1pass, M=2048" in report


def test_progress_in_a_log_is_one_line_per_update():
    buf = io.StringIO()
    stream = _LineStream(buf)
    for text in ("\rsweep:  10%| 1/10", "\rsweep:  20%| 2/10", "\n"):
        stream.write(text)
    assert buf.getvalue() == "sweep:  10%| 1/10\nsweep:  20%| 2/10\n"


# ---- user files, the external-cluster path and the documentation ------------------------------

def test_user_files_relative_to_the_spec_and_edits_recompute_only_what_they_change(tmp_path):
    import einsum_cascade as ec
    from archsim.config import CONFIG_DIR
    (tmp_path / "my-arch.yaml").write_text((CONFIG_DIR / "fusemax-template.yaml").read_text())
    (tmp_path / "mine.cascade").write_text(ec.library_path("attention_1pass").read_text())
    text = SPEC.replace("arch: fusemax-template", "arch: my-arch.yaml").replace(
        "cascades: [attention_1pass]", "cascades: [mine.cascade]")
    spec = write_spec(tmp_path, text)
    out = tmp_path / "out"
    table = run(spec, out, executor="serial", progress=False)
    library = run(write_spec(tmp_path, SPEC, "library.yaml"), tmp_path / "library", executor="serial",
                  progress=False)
    cols = ["latency_s", "energy_j", "area_mm2", "dram_bytes", "status"]
    pd.testing.assert_frame_equal(table[cols], library[cols])  # same texts: same rows
    # editing the architecture file (a MAC 1000 um2 larger) recomputes every point: the area grows
    # by 1000 um2 per MAC (d*d in the 2D array, d in the 1D array), the timing stays
    arch = tmp_path / "my-arch.yaml"
    arch.write_text(arch.read_text().replace("mac: 1545,", "mac: 2545,"))
    again: list[int] = []
    larger = run(spec, out, executor="serial", progress=False, on_point=lambda p, r: again.append(p["index"]))
    assert sorted(again) == list(range(8))
    d = table["d"].to_numpy()
    assert np.allclose(larger["area_mm2"] - table["area_mm2"], (d * d + d) * 1000 / 1e6, rtol=1e-9)
    pd.testing.assert_series_equal(larger["latency_s"], table["latency_s"])


def test_an_existing_dask_cluster_by_its_address(tmp_path):
    distributed = pytest.importorskip("dask.distributed")
    spec = write_spec(tmp_path)
    run(spec, tmp_path / "serial", executor="serial", progress=False)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        assert cluster.scheduler_address.startswith("tcp://")
        assert main(["sweep", str(spec), "--out", str(tmp_path / "remote"), "--scheduler",
                     cluster.scheduler_address, "--quiet"]) == 0
    assert files(tmp_path / "remote") == files(tmp_path / "serial")


def test_docs_example_runs_and_example_spec_is_valid(tmp_path, monkeypatch):
    import re
    text = (ROOT / "docs" / "sweep.md").read_text()
    block = re.findall(r"```python\n(.*?)```", text, flags=re.S)[0]
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(block, "docs/sweep.md", "exec"), namespace)  # the documented example, as written
    table = namespace["table"]
    assert len(table) == 2 * 3 and (tmp_path / "out" / "buffer-vs-array" / "report.md").exists()
    # a d-row query block (E + F + 2 = 130 words a row) beside d keys of K and V (128 words a key),
    # 2-byte words: 2 * d * 258 bytes = 33024 B at d = 64, more than 16 KiB; 128 KiB holds d = 128
    assert list(table.loc[table["status"] == "infeasible", "buffer_bytes"]) == [16384, 16384]
    assert (table.loc[table["buffer_bytes"] > 16384, "status"] == "ok").all()
    sweep = load_sweep(ROOT / "docs" / "sweep-example.yaml")
    assert len(sweep.points) == 64


def test_a_second_sweep_into_the_same_folder_is_refused(tmp_path, capsys):
    import fcntl
    out = tmp_path / "out"
    out.mkdir()
    with (out / ".lock").open("a") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)  # as a running sweep holds it
        assert main(["sweep", str(write_spec(tmp_path)), "--out", str(out), "--executor", "serial", "--quiet"]) == 2
    assert "--out: another sweep is writing to" in capsys.readouterr().err
    (tmp_path / "file").write_text("")
    assert main(["sweep", str(write_spec(tmp_path)), "--out", str(tmp_path / "file"), "--quiet"]) == 2
    assert "exists and is not a folder" in capsys.readouterr().err


def test_dry_run_counts_points_and_journal(tmp_path, capsys):
    spec = write_spec(tmp_path)
    out = tmp_path / "out"
    assert main(["sweep", str(spec), "--out", str(out), "--dry-run"]) == 0
    assert "small: 8 points (d, dram.bandwidth_bytes_per_s, buffer_bytes varied); 0 already in" in \
        capsys.readouterr().out
    first: list[int] = []

    def stop_after_five(point, row):
        first.append(point["index"])
        if len(first) == 5:
            raise Stop
    with pytest.raises(Stop):
        run(spec, out, executor="serial", progress=False, on_point=stop_after_five)
    assert main(["sweep", str(spec), "--out", str(out), "--dry-run"]) == 0
    text = capsys.readouterr().out
    assert "5 already in" in text and "3 to compute" in text


def test_cascade_params_take_any_finite_number(tmp_path):
    # alibi_attention's slope SL is a param: 0.5 and 1/16 are its values (a size must be a positive
    # integer, a param need not be); a param that is not a number is named with its field
    spec = {"name": "p", "arch": "fusemax-template", "cascades": ["alibi_attention"],
            "sizes": {"M": 1024, "P": "same-as-M", "E": 64, "F": 64, "SL": [0.5, 0.0625]}}
    sweep = load_sweep(spec)
    assert [p["sizes"]["SL"] for p in sweep.points] == [0.5, 0.0625]
    with pytest.raises(SweepSpecError, match=r"sizes\.SL.*expected a number \(a param of the cascade\)"):
        load_sweep({**spec, "sizes": {**spec["sizes"], "SL": "steep"}})
    with pytest.raises(SweepSpecError, match=r"sizes\.M.*positive integer"):
        load_sweep({**spec, "sizes": {**spec["sizes"], "M": 0.5}})
