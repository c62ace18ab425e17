"""Hardening round 3 (issue 24): the general defences at the boundary, checked against hand
derivations and brute force (the command-line cases are in tests/fuzz_corpus, run by test_fuzz)."""
from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from archsim.config import load_architecture
from archsim.yamlio import YamlFileError, load_yaml_text, read_text_file
from mappings.divisors import divisors
from studies.checked import json_text, nonfinite_fields
from studies.errors import UsageError
from studies.sweep.area import point_area_mm2
from studies.sweep.expr import ExprError, evaluate, parse_expr
from studies.sweep.journal import Journal, exclusive, journal_key
from studies.sweep.point import check_row
from studies.sweep.spec import SweepSpecError, apply_arch, load_sweep

ROOT = Path(__file__).resolve().parents[1]


# -- the YAML loader --------------------------------------------------------------------------------
def test_duplicate_keys_name_both_lines():
    with pytest.raises(YamlFileError, match=r"^f\.yaml:3:3: duplicate key 'b' \(first given at line 2:3\)"):
        load_yaml_text("a:\n  b: 1\n  b: 2\n", "f.yaml")
    with pytest.raises(YamlFileError, match=r"^f\.yaml:1:14: duplicate key 'x' \(first given at line 1:2\)"):
        load_yaml_text("{x: 1, y: 2, x: 3}", "f.yaml")
    assert load_yaml_text("a: {x: 1}\nb: {x: 1}\n") == {"a": {"x": 1}, "b": {"x": 1}}  # same key, two mappings


@pytest.mark.parametrize("value, yaml11", [("940:00:00", "a base-60 number"), ("1:30", "a base-60 number"),
                                           ("0777", "an octal number"), ("-010", "an octal number"),
                                           ("yes", "a boolean"), ("Off", "a boolean"), ("ON", "a boolean"),
                                           ("0b1010", "a binary number"), ("1_000", "a number with '_' removed")])
def test_scalars_yaml_1_1_reads_otherwise_are_refused(value, yaml11):
    with pytest.raises(YamlFileError, match=rf"^f\.yaml:1:4: ambiguous value '{value}': YAML 1\.1 reads it as {yaml11}"):
        load_yaml_text(f"x: {value}", "f.yaml")
    assert load_yaml_text(f"x: '{value}'") == {"x": value}  # quoted: text


def test_yaml_1_2_scalars():
    doc = load_yaml_text("a: 0x1F\nb: 0o17\nc: 1e3\nd: .5\ne: -3\nf: true\ng: ~\nN: 1\nY: n\nh: 2026-01-01\n")
    assert doc == {"a": 31, "b": 15, "c": 1000.0, "d": 0.5, "e": -3, "f": True, "g": None, "N": 1, "Y": "n",
                   "h": "2026-01-01"}
    assert isinstance(doc["c"], float) and isinstance(doc["a"], int)


@pytest.mark.parametrize("value", [".nan", ".NaN", ".inf", "-.inf", "+.Inf", "1e400", "-1e309"])
def test_non_finite_numbers_are_refused_where_they_are(value):
    with pytest.raises(YamlFileError, match=r"^f\.yaml:2:5: (non-finite number|number .* too large)"):
        load_yaml_text(f"a: 1\nb: [{value}]\n", "f.yaml")


def test_only_regular_files_are_read_and_never_block(tmp_path):
    fifo = tmp_path / "pipe.yaml"
    os.mkfifo(fifo)
    start = time.monotonic()
    with pytest.raises(YamlFileError, match=r"pipe\.yaml: is a FIFO \(named pipe\), expected a regular spec"):
        read_text_file(fifo, "spec")
    with pytest.raises(YamlFileError, match=r"^/dev/zero: is a device"):
        read_text_file("/dev/zero", "spec")
    assert time.monotonic() - start < 5  # neither waited for a writer nor read an endless device
    big = tmp_path / "big.yaml"
    big.write_text("x" * 100)
    with pytest.raises(YamlFileError, match=r"100 bytes; the limit for a spec is 99 bytes"):
        read_text_file(big, "spec", max_bytes=99)


def test_architecture_ranges_and_reserved_names(tmp_path):
    text = (ROOT / "archsim" / "configs" / "fusemax-cloud.yaml").read_text()
    for old, new, message in (("bandwidth_bytes_per_s: 429496729600", "bandwidth_bytes_per_s: 0.001",
                               "dram.bandwidth_bytes_per_s: input should be greater than or equal to 1000"),
                              ("word_bytes: 2", "word_bytes: true", "word_bytes: input should be a valid integer"),
                              ("  array1d:", "  dram:", "units.dram: a unit may not be called 'dram'")):
        path = tmp_path / "a.yaml"
        path.write_text(text.replace(old, new, 1))
        with pytest.raises(ValueError, match=message):
            load_architecture(path)


# -- bounded work -----------------------------------------------------------------------------------
def test_divisors_by_factorisation_match_trial_division():
    for n in range(1, 1500):
        assert divisors(n) == [d for d in range(1, n + 1) if n % d == 0]
    huge = 10 ** 30 // 256  # 2^22 * 5^30: (22 + 1) * (30 + 1) divisors
    got = divisors(huge)
    assert len(got) == 23 * 31 and got[0] == 1 and got[-1] == huge and all(huge % d == 0 for d in got[::37])
    assert divisors(999_983 * 1_000_003) == [1, 999_983, 1_000_003, 999_983 * 1_000_003]  # two large primes


def test_query_group_bisection_is_the_largest_fitting_divisor():
    """The scheduler bisects the divisors of the query blocks; a linear scan over all of them (here)
    must find the same largest fitting group on buffers of several capacities."""
    import einsum_cascade as ec
    from mappings import scheduler
    from mappings.spec import load_spec as load_mapping
    c = ec.load_library("attention_1pass")
    spec = load_mapping("fusemax")
    base = load_architecture("fusemax-cloud")
    doc = load_yaml_text((ROOT / "archsim" / "configs" / "fusemax-cloud.yaml").read_text())
    sizes = {"M": 65536, "P": 65536, "E": 64, "F": 64, "M0": 256, "M1": 256}
    for capacity in (1 << 19, 1 << 21, 1 << 23, 1 << 24):
        arch = apply_arch(doc, "fusemax-cloud", {}, {"buffer.capacity_bytes": capacity})
        ctx = scheduler._Ctx(c, spec, arch, sizes)
        qb = 256
        fits = [d * qb for d in range(1, 65536 // qb + 1) if (65536 // qb) % d == 0 and
                scheduler._resident_bytes(ctx, d * qb) + scheduler._staging_bytes(ctx, d * qb) <= capacity]
        assert fits, capacity
        assert scheduler.query_group_rows(ctx) == max(fits)
    assert base.buffer.capacity_bytes == 1 << 24


def test_eval_refuses_long_recurrences_up_front(capsys):
    from studies.cli import main
    start = time.monotonic()
    assert main(["eval", "selective_scan", "--size", "M=4M", "D=2", "N=2"]) == 2
    assert time.monotonic() - start < 20
    assert "its recurrence runs 4194304 steps one by one, more than --max-steps 20000" in capsys.readouterr().err


# -- results are finite; JSON is JSON ---------------------------------------------------------------
def test_non_finite_results_are_named_and_json_is_never_infinity():
    result = {"latency_s": 1.0, "util": {"array2d": float("inf")}, "notes": ["x"], "n": 3, "ok": True}
    assert nonfinite_fields(result) == ["util.array2d"]
    with pytest.raises(UsageError, match=r"simulate: the result is not finite \(util\.array2d = inf\)"):
        json_text(result, "simulate")
    assert json.loads(json_text({"a": [1.5, None]}, "x")) == {"a": [1.5, None]}


# -- journals ---------------------------------------------------------------------------------------
GOOD = {"status": "ok", "error": None, "mapping": "fusemax", "latency_s": 1e-3, "energy_j": 2e-3, "area_mm2": 300.0,
        "dram_bytes": 1e6, "cycles": 9e5, "util": {"array2d": 0.5}, "bound": "array2d"}


@pytest.mark.parametrize("edit, problem", [({"latency_s": -1.0}, "latency_s: expected a positive finite number"),
                                           ({"latency_s": 0}, "latency_s: expected a positive"),
                                           ({"util": {"array2d": 1.5}}, "util: expected busy fractions"),
                                           ({"status": "fine"}, "status: expected one of ok, infeasible, error"),
                                           ({"energy_j": True}, "energy_j: expected a positive"),
                                           ({"extra": 1}, "unknown extra")])
def test_sweep_rows_read_back_are_checked(edit, problem):
    assert check_row(GOOD) is None
    assert problem in check_row({**GOOD, **edit})


def test_bad_journal_lines_are_reported_with_file_and_line_and_left_out(tmp_path, capsys):
    path = tmp_path / "journal.jsonl"
    key = journal_key("f" * 16, "point")
    lines = [json.dumps({"key": key, "row": GOOD}), "{not json", json.dumps({"key": key, "row": {**GOOD, "cycles": -5}}),
             '{"key": "' + key + '", "row": {"latency_s": Infinity}}', json.dumps({"key": "short", "row": GOOD})]
    path.write_text("\n".join(lines) + "\n" + '{"key": "cut sh')
    rows = Journal(path, check_row).load()
    assert rows == {key: GOOD}
    err = capsys.readouterr().err
    assert f"{path}:2: not a JSON line" in err and f"{path}:3: row: cycles: expected a positive" in err
    assert f"{path}:4: not a JSON line (non-finite number Infinity)" in err
    assert f"{path}: 1 more unsound line(s)" in err  # line 5, past the first three
    assert path.read_text().endswith("\n") and "cut sh" not in path.read_text()  # the cut line removed


def test_a_second_writer_of_a_folder_is_refused(tmp_path):
    from studies.cascades_study import run_study
    with exclusive(tmp_path, "cascades study"):
        with pytest.raises(UsageError, match=r"another cascades study is writing to .* \(it holds .*\.lock\)"):
            run_study(tmp_path, ["attention_1pass"], ["fusemax-cloud"], ["4K"], progress=False)
    assert not (tmp_path / "points.jsonl").exists()  # it computed nothing


# -- processes --------------------------------------------------------------------------------------
def test_pool_workers_exit_when_the_parent_is_killed(tmp_path):
    """kill -9 of the process that owns a pool: its workers are gone within seconds (no orphans)."""
    script = tmp_path / "owner.py"
    script.write_text(textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(ROOT)!r})
        from studies.sweep.pool import pool_map
        from tests_pool_helper import sleep_and_report
        if __name__ == "__main__":
            for _ in pool_map(sleep_and_report, [{str(tmp_path)!r}] * 4, 2, preload=["tests_pool_helper"]):
                pass
    """))
    (tmp_path / "tests_pool_helper.py").write_text(textwrap.dedent("""
        import os, time
        def sleep_and_report(folder):
            open(os.path.join(folder, f"worker-{os.getpid()}"), "w").close()
            time.sleep(60)
    """))
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}"}
    owner = subprocess.Popen([sys.executable, str(script)], env=env, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while len(list(tmp_path.glob("worker-*"))) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        workers = [int(p.name.split("-")[1]) for p in tmp_path.glob("worker-*")]
        assert len(workers) == 2
    finally:
        owner.send_signal(signal.SIGKILL)
        owner.wait()
    deadline = time.monotonic() + 15
    alive = workers
    while alive and time.monotonic() < deadline:
        time.sleep(0.2)
        alive = [pid for pid in workers if _running(pid)]
    assert not alive, f"workers {alive} outlived their parent"


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"  # a zombie has exited
    except FileNotFoundError:
        return False


@pytest.mark.parametrize("address, message", [("tls://h:8786", "tls:// addresses are not supported"),
                                              ("ucx://h:8786", "ucx:// addresses are not supported"),
                                              ("tcp://h:0", "expected an address like tcp://host:8786"),
                                              ("h", "expected an address like tcp://host:8786")])
def test_dask_addresses_are_validated(address, message):
    from studies.sweep.exec import check_scheduler_address
    with pytest.raises(UsageError, match=message):
        check_scheduler_address(address)
    assert check_scheduler_address("tcp://[::1]:8786") == ("::1", 8786)


# -- sweeps for design-space work -------------------------------------------------------------------
def test_expressions_are_arithmetic_only():
    assert evaluate(parse_expr("47000000 * b / 16777216 + max(d, 2) ** 2"), {"b": 16777216, "d": 3}) == 47000009
    for bad in ("__import__('os')", "open('x')", "d.real", "[d]", "d if d else 1", "(lambda: 1)()", "'s'"):
        with pytest.raises(ExprError):
            evaluate(parse_expr(bad), {"d": 1})
    with pytest.raises(ExprError, match="exponent"):
        evaluate(parse_expr("9 ** 9 ** 9"), {})
    with pytest.raises(ExprError, match="division by zero"):
        evaluate(parse_expr("1 / (d - 1)"), {"d": 1})


def test_per_cascade_sizes_zip_and_derive_make_the_points_by_hand():
    sweep = load_sweep({"name": "s", "arch": "fusemax-template",
                       "cascades": ["attention_1pass", {"cascade": "attention_sliding_window", "sizes": {"W": [256, 512]}}],
                       "sizes": {"M": 4096, "P": "same-as-M", "E": 64, "F": 64}, "vary": {"d": [128, 256]},
                       "zip": [{"buffer_bytes": [1 << 20, 1 << 22], "dram.bandwidth_bytes_per_s": [1e11, 4e11]}],
                       "derive": {"buffer_area_um2": "47000000 * buffer_bytes / 16777216"}})
    # 2 values of d x 2 zipped pairs x (1 point of attention_1pass + 2 of the window cascade)
    assert len(sweep.points) == 2 * 2 * 3
    first = sweep.points[0]
    assert first["values"] == {"d": 128, "buffer_bytes": 1 << 20, "dram.bandwidth_bytes_per_s": 1e11,
                               "buffer_area_um2": 47000000 // 16}
    assert [p["sizes"].get("W") for p in sweep.points[:3]] == [None, 256, 512]
    assert {p["values"]["dram.bandwidth_bytes_per_s"] for p in sweep.points if p["values"]["buffer_bytes"] == 1 << 22} \
        == {4e11}  # zipped: never the product


def test_a_shared_size_a_cascade_lacks_is_not_an_infeasible_half():
    with pytest.raises(SweepSpecError, match=r"cascades\[1\]: attention_sliding_window needs W: give it under sizes"):
        load_sweep({"name": "s", "arch": "fusemax-template", "cascades": ["attention_1pass", "attention_sliding_window"],
                   "sizes": {"M": 4096, "E": 64, "F": 64}})
    with pytest.raises(SweepSpecError, match=r"sizes\.Q: not a size of any cascade"):
        load_sweep({"name": "s", "arch": "fusemax-template", "cascades": ["attention_1pass"],
                   "sizes": {"M": 4096, "E": 64, "F": 64, "Q": 1}})


def test_area_responds_to_buffer_capacity_array_shape_and_register_file_depth():
    doc = load_yaml_text((ROOT / "archsim" / "configs" / "fusemax-cloud.yaml").read_text())
    base = apply_arch(doc, "cloud", {}, {})
    um2 = {"array2d": 256 * 256 * (1545 + 49.29 + 16800), "array1d": 256 * (1545 + 1030 + 49.29 + 23741 + 16800),
           "buffer": 47e6}
    assert point_area_mm2(base, base) == pytest.approx(sum(um2.values()) / 1e6, rel=1e-12)
    double = apply_arch(doc, "cloud", {}, {"buffer.capacity_bytes": 1 << 25})
    assert point_area_mm2(double, base) == pytest.approx((sum(um2.values()) + 47e6) / 1e6, rel=1e-12)
    given = apply_arch(doc, "cloud", {}, {"buffer.capacity_bytes": 1 << 25, "buffer.area_um2": 1e6})
    assert point_area_mm2(given, base) == pytest.approx((um2["array2d"] + um2["array1d"] + 1e6) / 1e6, rel=1e-12)
    deep = apply_arch(doc, "cloud", {}, {"units.array1d.register_file.depth": 64})  # 32 -> 64 words
    assert point_area_mm2(deep, base) - point_area_mm2(base, base) == pytest.approx(256 * 16800 / 1e6, rel=1e-12)
    wide = apply_arch(doc, "cloud", {}, {"units.array2d.cols": 128})
    assert point_area_mm2(wide, base) == pytest.approx((sum(um2.values()) - um2["array2d"] / 2) / 1e6, rel=1e-12)
    assert math.isfinite(point_area_mm2(wide, base))


# -- kernel profiles against the shape asked for ---------------------------------------------------
def _gpu_predict(*args: str, kernel: str = "flash2") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "studies.cli", "gpu", "predict", "--gpu", "h100-sxm",
                           "--kernel", kernel, "--seq-len", "4096", "--batch", "1", "--heads", "8", *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("head_dim, fragment", [
    ("3", "smallest instance is head dim 64; head dim 3 would run padded"),
    ("48", "head dim 48 would run padded"),
    ("300", "head dims up to 256, got 300"),
    ("100000", "head dims up to 256, got 100000")])
def test_head_dims_without_a_kernel_instance_are_refused(head_dim, fragment):
    # flash2.yaml lists tiles for head dims 64, 128, 256 (max_head_dim 256): a smaller head dim would
    # run in the 64 instance with its padded lanes computed, so the FLOPs of head dim 3 are not what runs
    done = _gpu_predict("--head-dim", head_dim)
    assert done.returncode == 2 and fragment in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_a_context_parallel_kernel_checks_its_head_dim_too():
    # flashinfer-gdn-prefill-cp (tiles for head dim 128 only) picks its segment count over several
    # launch settings, each built from the instance's tiles: head dim 3 has no instance there either
    done = _gpu_predict("--head-dim", "3", kernel="flashinfer-gdn-prefill-cp")
    assert done.returncode == 2 and "smallest instance is head dim 128; head dim 3 would run padded" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_a_listed_head_dim_is_predicted():
    done = _gpu_predict("--head-dim", "64")
    assert done.returncode == 0 and "launch" in done.stdout
