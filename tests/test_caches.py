"""Per-process caches: parsed cascades and loaded files are reused while the file is unchanged,
re-read when it changes, and every caller gets its own copy."""
from __future__ import annotations

import os

import pytest

import einsum_cascade as ec
from archsim.config import load_architecture
from archsim.filecache import cached_load
from einsum_cascade.parser import load
from mappings.workload import load_models


def test_library_copies_are_independent_and_equal_to_a_fresh_parse():
    a = ec.load_library("attention_1pass")
    b = ec.load_library("attention_1pass")
    assert a is not b
    fresh = load(ec.library_path("attention_1pass"))
    assert [(e.name, str(e.lhs), repr(e.expr)) for e in a.einsums] == \
           [(e.name, str(e.lhs), repr(e.expr)) for e in fresh.einsums]
    a.einsums.clear()
    a.ranks.clear()
    c = ec.load_library("attention_1pass")
    assert len(c.einsums) == len(fresh.einsums) and set(c.ranks) == set(fresh.ranks)


def test_cascade_file_reparsed_after_an_edit(tmp_path):
    path = tmp_path / "x.cascade"
    text = "cascade one\nrank M, P\ninput A[m,p]\noutput B\nB[p] = A[m,p]\n"
    path.write_text(text)
    assert ec.load_cached(path).name == "one"
    path.write_text(text.replace("one", "two"))
    os.utime(path, ns=(1, 1))  # a different modification time even on a coarse clock
    assert ec.load_cached(path).name == "two"


def test_cascade_error_is_raised_every_time(tmp_path):
    path = tmp_path / "bad.cascade"
    path.write_text("cascade bad\nrank M\ninput A[m]\noutput B\nB[q] = A[m]\n")
    for _ in range(2):
        with pytest.raises(ec.CascadeError):
            ec.load_cached(path)


def test_architecture_copies_cannot_corrupt_the_cache():
    a = load_architecture("fusemax-cloud")
    a.units.clear()
    a.action_pj.clear()
    b = load_architecture("fusemax-cloud")
    assert b.units and b.action_pj


def test_models_copies_cannot_corrupt_the_cache():
    models = load_models()
    first = next(iter(models))
    models[first]["E"] = -1
    assert load_models()[first]["E"] > 0


def test_cached_load_rereads_a_changed_file(tmp_path):
    path = tmp_path / "data.txt"
    path.write_text("1")
    calls = []

    def read():
        calls.append(1)
        return {"value": path.read_text()}

    assert cached_load(path, read, "t")["value"] == "1"
    assert cached_load(path, read, "t")["value"] == "1"
    assert len(calls) == 1
    path.write_text("22")
    assert cached_load(path, read, "t")["value"] == "22"
    assert len(calls) == 2


def test_per_object_memo_lives_as_long_as_its_object():
    """One value per live object (cascades are not hashable); a collected object's entry goes."""
    import gc

    from einsum_cascade import memo

    a, b = ec.load_library("attention_1pass"), ec.load_library("attention_1pass")
    made = []
    first = memo.per_object(a, lambda: made.append("a") or {"of": "a"}, "test")
    assert memo.per_object(a, lambda: made.append("again") or {}, "test") is first
    assert memo.per_object(b, lambda: made.append("b") or {"of": "b"}, "test") == {"of": "b"}
    assert made == ["a", "b"]
    key = ("test", id(a))
    del a, first
    gc.collect()
    assert key not in memo._BY_OBJECT
