"""Fuzzing the front end: the corpus of bad inputs (tests/fuzz_corpus/cases.json, each with its exit
status and message) and property tests on arbitrary input. Every input must end in the project's
own error classes (or success) within a time bound: no traceback, no hang.

This is the reduced run of every `make test`; `make fuzz` runs the property tests with many more
examples (CASCADESIM_FUZZ_EXAMPLES) and prints the counts (tests/fuzz.py).
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import einsum_cascade as ec
from benchmarks.bench_large_cascade import chain
from archsim.config import CONFIG_DIR, load_architecture
from archsim.gpu.specs import GPU_DIR, load_gpu
from mappings.targets.private_inference.profiles import load_networks, load_profile
from archsim.yamlio import load_yaml_file
from fuzz_harness import PROJECT_ERRORS, check_case, guarded, load_corpus
from mappings.workload import MODELS_FILE, load_models
from studies.cli.cascade_arg import load_cascade
from studies.cli.sizes_arg import parse_sizes
from mappings.spec import SPEC_DIR
from mappings.spec import load_spec as load_mapping
from studies.sweep.journal import Journal
from studies.sweep.point import check_row
from studies.sweep.spec import load_sweep

EXAMPLES = int(os.environ.get("CASCADESIM_FUZZ_EXAMPLES", "40"))
STATS = {"inputs": 0, "crashes": 0, "hangs": 0}
FUZZ_SETTINGS = settings(max_examples=EXAMPLES, deadline=None,
                         suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
CORPUS = load_corpus()


def _record(outcome) -> None:
    STATS["inputs"] += 1
    STATS["crashes"] += outcome.kind == "crash"
    STATS["hangs"] += outcome.kind == "hang"
    assert outcome.kind == "ok", outcome.detail


# -- the corpus ------------------------------------------------------------------------------------
def test_corpus_has_at_least_200_bad_inputs_of_every_kind_of_the_issue():
    bad = [c for c in CORPUS if c["exit"] != 0]
    assert len(bad) >= 200
    kinds = {c["kind"].split("-")[0] for c in bad}
    assert {"cascade", "path", "size", "eval", "pi", "study"} <= kinds
    assert len({c["id"] for c in CORPUS}) == len(CORPUS)


@pytest.mark.parametrize("case", CORPUS, ids=[c["id"] for c in CORPUS])
def test_corpus_case(case, tmp_path):
    if os.geteuid() == 0 and case["kind"] == "path-unreadable":
        pytest.skip("root reads every file")
    STATS["inputs"] += 1
    problem = check_case(case, tmp_path)
    assert problem is None, problem


def test_unreadable_file_is_one_line(tmp_path, monkeypatch):
    """A file the user may not read (simulated: the tests may run as root, who reads everything)."""
    from fuzz_harness import run_cli

    path = tmp_path / "secret.cascade"
    path.write_text("rank M\n")

    import archsim.yamlio as yamlio
    real_open = yamlio.os.open

    def refuse(name, *args, **kwargs):  # noqa: ANN001
        if str(name) == str(path):
            raise PermissionError(13, "Permission denied", str(name))
        return real_open(name, *args, **kwargs)

    monkeypatch.setattr(yamlio.os, "open", refuse)
    outcome = run_cli(["analyze", str(path)])
    assert (outcome.kind, outcome.status) == ("ok", 2)
    assert f"{path}: cannot read: Permission denied" in outcome.stderr


# -- property tests ----------------------------------------------------------------------------
def _analyse_file(path: Path) -> None:
    c = load_cascade(str(path))
    for rank in c.ranks:
        ec.passes(c, rank)
    ec.cost(c)


@FUZZ_SETTINGS
@given(st.binary(max_size=400))
def test_any_bytes_as_a_cascade(tmp_path, data):
    path = tmp_path / "fuzz.cascade"
    path.write_bytes(data)
    _record(guarded(_analyse_file, path))


_TOKENS = ["rank M, P", "rank E, M, P", "rank M = M1 * M0", "param S", "input Q[m,p]", "input K[e,m]",
           "output Y", "Y[p] =", "X[m,p] =", "sum(m:", "max(m:", "exp(", "Q[m,p]", "K[e,m]", "X[m,p]", "+", "-",
           "*", "/", ")", "(", "where m <= p", "where p - m < S", "0", "1e400", "-1", "\n", " ", ",", "[", "]",
           "RM[m1+1, p]", "RM[M1, p]", "#", ":", "=", "m", "p"]


@FUZZ_SETTINGS
@given(st.lists(st.sampled_from(_TOKENS), max_size=60))
def test_token_soup_as_a_cascade(tmp_path, tokens):
    path = tmp_path / "soup.cascade"
    path.write_text(" ".join(tokens))
    _record(guarded(_analyse_file, path))


_LEAF = (st.none() | st.booleans() | st.integers(-10**20, 10**20)
         | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=12))
_DOCUMENT = st.recursive(_LEAF, lambda inner: st.lists(inner, max_size=4)
                         | st.dictionaries(st.text(max_size=10), inner, max_size=4), max_leaves=20)


def _shipped(name: str) -> dict:
    return load_yaml_file(name)


def _load_journal(path: Path) -> None:
    Journal(path, check_row).load(report=False)  # unsound lines are left out, never raised


_SHIPPED = {
    "mapping": _shipped(SPEC_DIR / "fusemax.yaml"),
    "sweep": _shipped(Path(__file__).resolve().parents[1] / "docs" / "sweep-example.yaml"),
    "journal": {"key": "0" * 32, "row": {"status": "ok", "error": None, "mapping": "m", "latency_s": 1.0,
                                         "energy_j": 1.0, "area_mm2": 1.0, "dram_bytes": 0, "cycles": 1,
                                         "util": {"a": 0.5}, "bound": "a"}},
    "architecture": _shipped(CONFIG_DIR / "fusemax-cloud.yaml"),
    "profile": _shipped(CONFIG_DIR / "pi" / "spu-cheetah.yaml"),
    "networks": _shipped(CONFIG_DIR / "pi" / "networks.yaml"),
    "gpu": _shipped(GPU_DIR / "h200.yaml"),
    "models": _shipped(MODELS_FILE),
}
_LOADERS = {"architecture": load_architecture, "profile": load_profile, "networks": load_networks,
            "gpu": load_gpu, "models": load_models, "mapping": load_mapping, "sweep": load_sweep,
            "journal": _load_journal}


def _leaves(doc, prefix=()):
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield from _leaves(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield from _leaves(v, (*prefix, i))
    yield prefix


@st.composite
def _mutated(draw, kind: str):
    """A shipped file's document with one node replaced by an arbitrary value (or deleted)."""
    import copy

    doc = copy.deepcopy(_SHIPPED[kind])
    paths = [p for p in _leaves(doc) if p]
    path = draw(st.sampled_from(paths))
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    if draw(st.booleans()) and isinstance(parent, dict):
        del parent[path[-1]]
    else:
        parent[path[-1]] = draw(_DOCUMENT)
    return doc


def _load_text(kind: str, path: Path) -> None:
    _LOADERS[kind](path)


@pytest.mark.parametrize("kind", sorted(_LOADERS))
def test_any_yaml_document_as_a_data_file(kind, tmp_path):
    @FUZZ_SETTINGS
    @given(st.one_of(_DOCUMENT, _mutated(kind)))
    def check(doc):
        path = tmp_path / f"fuzz-{kind}.yaml"
        path.write_text(json.dumps(doc) + "\n" if kind == "journal" else yaml.safe_dump(doc, allow_unicode=True))
        _record(guarded(_load_text, kind, path))

    check()


@pytest.mark.parametrize("kind", sorted(_LOADERS))
def test_any_text_as_a_data_file(kind, tmp_path):
    @FUZZ_SETTINGS
    @given(st.text(alphabet=st.characters(codec="utf-8"), max_size=200) | st.binary(max_size=100))
    def check(data):
        path = tmp_path / f"fuzz-{kind}.yaml"
        path.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8", "surrogatepass"))
        _record(guarded(_load_text, kind, path))

    check()


_CASCADE_1PASS = ec.load_library("attention_1pass")


def _sizes_through_the_analysis(text: str) -> None:
    sizes = parse_sizes([[text]])
    for value in sizes.values():
        assert isinstance(value, int) or math.isfinite(value)
    full = {"E": 2, "F": 2, "M": 8, "P": 8, "M0": 4} | sizes
    ec.cost(_CASCADE_1PASS).at(full)


@FUZZ_SETTINGS
@given(st.text(max_size=40)
       | st.from_regex(r"\A[A-Z][0-9]?=[-+]?[0-9]{0,25}(\.[0-9]{0,3})?([eE][-+]?[0-9]{1,4})?[KkMmGg]?\Z"))
def test_any_size_argument(text):
    _record(guarded(_sizes_through_the_analysis, text))


def test_project_errors_are_what_the_cli_prints_as_one_line():
    from studies.cli import InputError

    assert PROJECT_ERRORS == (InputError,) and issubclass(ec.CascadeError, InputError)


@pytest.fixture(scope="module", autouse=True)
def _summary():
    yield
    summary = f"fuzz: {STATS['inputs']} inputs, {STATS['crashes']} crashes, {STATS['hangs']} hangs"
    target = os.environ.get("CASCADESIM_FUZZ_SUMMARY")
    if target:
        Path(target).write_text(summary + "\n")
    print("\n" + summary)


# -- rows of the issue's table that are not command lines --------------------------------------
def test_billion_laughs_under_extra_of_an_architecture_is_refused(tmp_path):
    from archsim.errors import ArchError

    text = (CONFIG_DIR / "fusemax-cloud.yaml").read_text()
    laughs = ("extra:\n  a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n  b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
              "  c: [*b, *b, *b, *b, *b, *b, *b, *b, *b]\n")
    path = tmp_path / "laughs.yaml"
    path.write_text(text + laughs)
    outcome = guarded(load_architecture, path, seconds=20)
    assert outcome.kind == "ok" and outcome.status == 2
    assert "YAML aliases (*a) are not allowed" in outcome.stderr and str(path) in outcome.stderr
    with pytest.raises(ArchError):
        load_architecture(path)


def test_a_gpu_file_that_is_not_utf8_names_the_file(tmp_path):
    from archsim.gpu.specs import GPUConfigError

    path = tmp_path / "g.yaml"
    path.write_bytes(b"\xff\xfe")
    with pytest.raises(GPUConfigError, match=f"{path}: not UTF-8"):
        load_gpu(path)


def test_a_cascade_of_thousands_of_statements_is_analysed(tmp_path):
    """3,000 statements (4,000 Einsums) within the time bound (a hang guard, not a speed test:
    `make bench` times 10,000); the passes are those of the chain: one per row max, plus one."""
    path = tmp_path / "chain.cascade"
    path.write_text(chain(3000))  # the generator `make bench` times (benchmarks/bench_large_cascade.py)
    from fuzz_harness import run_cli

    outcome = run_cli(["analyze", str(path), "--rank", "M", "--json"], seconds=300)
    assert (outcome.kind, outcome.status) == ("ok", 0), outcome.detail or outcome.stderr
    c = ec.load(path)
    assert ec.passes(c, "M").passes == 1 + 2999 // 3
