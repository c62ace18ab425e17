"""Validate archsim against AccelForge (`make validate-accelforge`).

AccelForge (pip package `accelforge`, the Timeloop/Accelergy lineage's current tool) needs Python >= 3.12;
the project runs on 3.11, so AccelForge runs in its own venv (`.venv-accelforge`, made by the Makefile)
through accelforge_driver.py, and this script (project Python) compares.

Points: the two GEMMs of attention (QK, AV) and the 3-pass cascade unfused and fused, at 1K and 4K tokens,
one head, E = F = 64, on a FuseMax-cloud-like architecture with the project's energy table
(accelforge/arch_fusemax_cloud.yaml). For each point AccelForge evaluates a STORED mapping
(accelforge/mapping_*.yaml) that makes the project mapping's choices (tiling, what lives in the buffer,
what goes to DRAM, units fully used), and the project simulates its own mapping (`project_schedule`).
Compared per component: DRAM bytes (exact), compute energy per unit (within 1%), buffer energy (10%),
cycles (10%); register-file energy is listed, not checked (`compare`). A difference outside the
tolerance passes only when a named, computed difference closes it (`duplicate_loads`,
`gemm_edge_overcount_words`).

Mappers: on the same workloads AccelForge's mapper (time-boxed per workload) against the project's best
mapping (`project_best`: `mappings.simulate(..., mapping="auto")` where that exists, else the best of
today's mappings). Both tools' wall times are recorded.

Results: accelforge_results.json (AccelForge's numbers, its version and the date; the mapper results
are reused while the inputs and version are unchanged, so an interrupted run resumes) and
accelforge_report.md (every number computed here). `--stored` re-checks from the JSON without
AccelForge and rewrites the report (tests/test_accelforge_peer.py does the same check in CI). Exit 0 all checks pass, 1 a check
fails, 2 AccelForge cannot be run.
"""
from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import yaml
from tqdm import tqdm

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from archsim.config import Architecture, load_architecture  # noqa: E402
from archsim.result import Result, run  # noqa: E402
from archsim.yamlio import YamlFileError, _BoundedLoader, load_yaml_text, read_text_file  # noqa: E402

AF_DIR = HERE / "accelforge"
DRIVER = HERE / "accelforge_driver.py"
RESULTS = HERE / "accelforge_results.json"
REPORT = HERE / "accelforge_report.md"
ARCH_YAML = AF_DIR / "arch_fusemax_cloud.yaml"
ARCH_NAME = "fusemax-cloud"
ACCELFORGE_VERSION = "1.0.467"
E = F = 64
# Tolerances (relative): compute energy per unit, buffer energy, cycles. DRAM bytes must agree exactly.
TOL = {"compute": 0.01, "buffer": 0.10, "cycles": 0.10}
AF_COMPUTE = {"array2d": ("MAC2D",), "array1d": ("Max1D", "Exp1D", "Add1D", "Div1D")}
AF_RF = {"array2d.rf": "RF2D", "array1d.rf": "RF1D"}
# The fused point's dataflow (FLAT's kind: output stationary, scores on chip, nothing spilled) per
# length: the granule of query rows is the largest that keeps QK, SN and A (AccelForge keeps them as
# three tensors) in fusemax-cloud's 16 MiB buffer.
FUSED_GRANULE = {1024: 1024, 4096: 512}


@dataclass(frozen=True)
class Point:
    """One comparison point: `kind` qk, av (GEMMs), unfused or fused (3-pass cascade) at `tokens`."""
    kind: str
    tokens: int

    @property
    def name(self) -> str:
        return f"{self.kind}-{self.tokens // 1024}k"

    @property
    def workload(self) -> Path:
        stem = self.kind if self.kind in ("qk", "av") else "attention_3pass"
        return AF_DIR / f"workload_{stem}_{self.tokens // 1024}k.yaml"

    @property
    def workload_name(self) -> str:
        """The workload's name (qk_1k, attention_3pass_4k, ...): the mapper runs once per workload."""
        return self.workload.stem.removeprefix("workload_")

    @property
    def mapping(self) -> Path:
        return AF_DIR / f"mapping_{self.kind}_{self.tokens // 1024}k.yaml"


POINTS = [Point(k, n) for n in (1024, 4096) for k in ("qk", "av", "unfused", "fused")]
# One point per workload for the mappers (unfused and fused share the 3-pass workload).
MAPPER_POINTS = list({p.workload_name: p for p in reversed(POINTS)}.values())[::-1]


# ---------------------------------------------------------------- AccelForge's YAML files

class _TaggedLoader(_BoundedLoader):
    """archsim.yamlio's bounded safe loader, also reading AccelForge's node tags (`!Memory {...}`,
    `!Storage {...}`) as mappings with the tag under the key "!" (no object is constructed)."""


def _construct_tagged(loader, suffix: str, node):  # noqa: ANN001 - PyYAML's signature
    if isinstance(node, yaml.MappingNode):
        return {"!": suffix, **loader.construct_mapping(node, deep=True)}
    if isinstance(node, yaml.SequenceNode):
        return {"!": suffix, "items": loader.construct_sequence(node, deep=True)}
    return {"!": suffix, "value": loader.construct_scalar(node)}


_TaggedLoader.add_multi_constructor("!", _construct_tagged)


def load_accelforge_yaml(path: Path):
    """Parse one of AccelForge's YAML files safely (no Jinja: the stored files use none).
    YamlFileError naming the file and line:column on bad input."""
    text = read_text_file(path, "AccelForge YAML file")
    loader = _TaggedLoader(text, str(path))
    try:
        return loader.get_single_data()
    except YamlFileError:
        raise
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = f":{mark.line + 1}:{mark.column + 1}" if mark else ""
        raise YamlFileError(f"{path}{where}: invalid YAML: {err.problem or err.context}") from None
    except yaml.YAMLError as err:
        raise YamlFileError(f"{path}: invalid YAML: {err}") from None
    finally:
        loader.dispose()


# ---------------------------------------------------------------- the project's side

def one_head(tokens: int):
    """The workload of one attention head at `tokens` (E = F = 64; B, D, S unused here)."""
    from mappings.workload import Workload
    return Workload(model="one-head", B=1, D=E, E=E, F=F, H=1, S=E, seq_len=tokens)


def flat_granule_mapping(rows: int):
    """FLAT's fused 3-pass mapping (mappings/specs/flat.yaml) with one dataflow: output stationary,
    `rows` query rows per granule, the scores QK and A (= SN) kept on chip, nothing else resident."""
    from mappings import SpecMapping, load_spec
    spec = load_spec("flat").model_copy(update={
        "name": f"flat-granule-{rows}", "variants": [], "stationarity": "output", "query_group": rows,
        "buffer_resident": [], "spill": {"QK": 0.0, "SN": 0.0}})
    return SpecMapping(spec)


def fused_dataflow(tokens: int):
    """The FLAT mapping of the fused point (see FUSED_GRANULE)."""
    return flat_granule_mapping(FUSED_GRANULE[tokens])


def project_schedule(point: Point, arch: Architecture):
    """The project's schedule for `point` with the same mapping choices as the stored AccelForge mapping.

    mappings.gemm.gemm_schedule for the GEMMs; the `unfused` spec and FLAT's spec with the fused
    point's granule (fused_dataflow) for the cascade.
    """
    from mappings import get_mapping
    from mappings.gemm import gemm_schedule
    n = point.tokens
    if point.kind == "qk":
        return gemm_schedule("QK", n, n, E, arch)      # rows m, columns p, reduction e
    if point.kind == "av":
        return gemm_schedule("AV", n, F, n, arch)      # rows p, columns f, reduction m
    if point.kind == "unfused":
        return get_mapping("unfused").schedule(one_head(n), arch)
    if point.kind == "fused":
        return fused_dataflow(n).schedule(one_head(n), arch)
    raise ValueError(f"unknown point kind {point.kind!r}")


def summarise_result(r: Result, wall_s: float) -> dict:
    """The numbers compared: cycles, energy by component (pJ), DRAM bytes, buffer words per Einsum."""
    words = {e: {"read": a.get("buffer.read_words", 0.0), "write": a.get("buffer.write_words", 0.0)}
             for e, a in r.action_counts.items()}
    return {"cycles": r.cycles, "energy_pj": r.joules * 1e12,
            "energy_by_component_pj": {k: v * 1e12 for k, v in r.energy_by_component.items()},
            "dram_bytes": r.dram_bytes, "buffer_words": words, "wall_s": wall_s}


def project_point(point: Point, arch: Architecture) -> dict:
    """Simulate `point` with the project's mapping (project_schedule); wall time in seconds."""
    t0 = time.perf_counter()
    r = run(project_schedule(point, arch), arch)
    return summarise_result(r, time.perf_counter() - t0)


def project_candidates(point: Point, arch: Architecture) -> dict:
    """Today's project mappings of `point`'s workload (name -> schedule factory): the stand-in for the
    mapper (`mapping: auto`) until `mappings.simulate` exists. GEMMs: the one GEMM mapping. 3-pass:
    `unfused` and FLAT's fused dataflow at every granule of query rows (256 .. all) that fits the buffer
    (FLAT itself picks one per length; here the best is taken)."""
    from mappings import get_mapping
    if point.kind in ("qk", "av"):
        return {"gemm": lambda: project_schedule(point, arch)}
    n = point.tokens
    out = {"unfused": lambda: get_mapping("unfused").schedule(one_head(n), arch)}
    rows = 256
    while rows <= n:
        out[f"flat(granule {rows})"] = lambda rows=rows: flat_granule_mapping(rows).schedule(one_head(n), arch)
        rows *= 2
    return out


def project_best(point: Point, arch: Architecture) -> dict:
    """The project's best mapping of `point`'s workload for latency and for energy, with wall time.

    Uses `mappings.simulate(cascade, arch, sizes, mapping="auto", objective=...)` (issue 9's mapper)
    when the package has it, else the best of project_candidates (reported as such).
    """
    import mappings
    t0 = time.perf_counter()
    out: dict = {}
    if hasattr(mappings, "simulate"):
        import einsum_cascade as ec
        cascade = ec.load_library("attention_3pass") if point.kind in ("unfused", "fused") else ec.parse(
            GEMM_CASCADES[point.kind])
        sizes = {k: v for k, v in {"E": E, "F": F, "M": point.tokens, "P": point.tokens}.items()
                 if k in cascade.size_names}
        for objective in ("latency", "energy"):
            r = mappings.simulate(cascade, arch, sizes, mapping="auto", objective=objective)
            out[f"best_{objective}"] = {"mapping": f"auto ({r.mapping['name']}, {r.candidates_evaluated} candidates)",
                                        "cycles": r.cycles, "energy_pj": r.energy_j * 1e12}
        out["source"] = "mappings.simulate(mapping='auto')"
    else:
        results = {}
        for name, make in project_candidates(point, arch).items():
            try:
                results[name] = run(make(), arch)
            except ValueError:  # a candidate that does not fit this length (MappingError, ScheduleError)
                continue
        for objective, key in (("latency", lambda r: r.cycles), ("energy", lambda r: r.joules)):
            name = min(results, key=lambda k: key(results[k]))
            out[f"best_{objective}"] = {"mapping": name, "cycles": results[name].cycles,
                                        "energy_pj": results[name].joules * 1e12}
        out["source"] = "best of today's mappings (" + ", ".join(results) + ")"
    out["wall_s"] = time.perf_counter() - t0
    return out


GEMM_CASCADES = {
    "qk": "cascade qk\nrank E, M, P\ninput Q[e,p], K[e,m]\noutput QK\nQK[m,p] = Q[e,p] * K[e,m]\n",
    "av": "cascade av\nrank F, M, P\ninput A[m,p], V[f,m]\noutput AV\nAV[f,p] = A[m,p] * V[f,m]\n",
}


def onepass_reference(tokens: int, arch: Architecture) -> dict:
    """The project's FuseMax mapping of the 1-pass cascade at `tokens` (AccelForge cannot express it)."""
    from mappings import get_mapping
    t0 = time.perf_counter()
    r = run(get_mapping("fusemax").schedule(one_head(tokens), arch), arch)
    return {"cycles": r.cycles, "energy_pj": r.joules * 1e12, "wall_s": time.perf_counter() - t0}


# ---------------------------------------------------------------- AccelForge's side

def file_digest(*paths: Path) -> str:
    """sha256 of the files' bytes (the inputs a stored AccelForge result depends on)."""
    h = hashlib.sha256()
    for p in paths:
        h.update(p.read_bytes())
    return h.hexdigest()[:16]


def run_driver(python: str, args: list[str], timeout_s: float) -> dict:
    """Run accelforge_driver.py in the AccelForge venv; its JSON output. RuntimeError on failure.

    The driver runs in its own process group (AccelForge's mapper starts joblib workers), which is
    killed whole when `timeout_s` passes."""
    proc = subprocess.Popen([python, str(DRIVER), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=str(HERE), start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise RuntimeError(f"timed out after {timeout_s:.0f} s") from None
    except BaseException:  # interrupted (Ctrl-C, SIGTERM): take the driver and its workers down too
        os.killpg(proc.pid, signal.SIGKILL)
        raise
    if proc.returncode == 3:  # the driver's own report of a failure, with wall time and peak memory
        return json.loads(out)
    if proc.returncode:
        lines = (err or out).strip().splitlines() or [""]
        raise RuntimeError(f"exit {proc.returncode}: {lines[-1][-300:]}")
    return json.loads(out)


def check_interpreter(python: str) -> str:
    """The AccelForge venv's accelforge version; RuntimeError naming the problem if it cannot run."""
    code = "import sys, importlib.metadata as m; assert sys.version_info >= (3, 12), sys.version; " \
           "import accelforge; print(m.version('accelforge'))"
    try:
        proc = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=300, check=False)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise RuntimeError(f"{python}: cannot run: {err}") from None
    if proc.returncode:
        raise RuntimeError(f"{python}: accelforge does not import: {proc.stderr.strip()[-800:]}")
    return proc.stdout.strip()


def load_results(path: Path = RESULTS) -> dict:
    """The stored AccelForge results (empty structure if none)."""
    if not path.exists():
        return {"points": {}, "mapper": {}}
    return load_yaml_text(read_text_file(path, "results file"), str(path))


def save_results(data: dict, path: Path = RESULTS) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    tmp.replace(path)


# ---------------------------------------------------------------- comparison

def af_totals(af: dict) -> dict:
    """AccelForge's evaluation summed over Einsums: energy by component (pJ), DRAM bytes, buffer
    accesses, duplicate DRAM loads (`duplicate_loads`)."""
    energy: dict = {}
    dram = 0.0
    buffer_words: dict = {}
    for einsum, d in af["einsums"].items():
        for comp, pj in d["energy_pj"].items():
            energy[comp] = energy.get(comp, 0.0) + pj
        dram += d["actions"].get("DRAM.read", 0.0) + d["actions"].get("DRAM.write", 0.0)  # 1 byte per action
        buffer_words[einsum] = {"read": d["actions"].get("GlobalBuffer.read", 0.0) * 256,  # 4096-bit accesses
                                "write": d["actions"].get("GlobalBuffer.write", 0.0) * 256}
    return {"energy_pj": energy, "dram_bytes": dram, "buffer_words": buffer_words,
            "cycles": af["latency"], "duplicate_load_bytes": duplicate_loads(af)}


def duplicate_loads(af: dict) -> float:
    """Bytes AccelForge loads from DRAM more than once because two Einsums read the same DRAM-backed
    tensor: it keeps no buffer copy shared between Einsums of a DRAM-backed tensor (in the unfused
    3-pass mapping GM and SN each load QK; the project loads each chunk once for the whole softmax).
    Per tensor: all DRAM reads minus the largest read by one Einsum."""
    return sum(b for b, _ in duplicate_readers(af).values())


def duplicate_readers(af: dict) -> dict:
    """tensor -> (bytes loaded beyond one Einsum's load, the Einsums that load it) (duplicate_loads)."""
    reads: dict = {}
    for einsum, d in af["einsums"].items():
        for key, n in d["tensor_actions"].items():
            comp, tensor, action = key.split(".")
            if comp == "DRAM" and action == "read" and n:
                reads.setdefault(tensor, []).append((einsum, n))
    return {t: (sum(n for _, n in v) - max(n for _, n in v), [e for e, _ in v]) for t, v in reads.items() if len(v) > 1}


def gemm_edge_overcount_words(point: Point, arch: Architecture) -> float:
    """Buffer words mappings.gemm counts beyond the operand tiles a fold reads: it charges
    (rows + cols) x K per fold whatever the fold's shape; a GEMM narrower than the array (AV: 64 columns
    of f on 256) reads only min(M, rows) + min(N, cols) per step of K."""
    if point.kind not in ("qk", "av"):
        return 0.0
    from archsim.systolic import folds_and_cycles_per_fold
    unit = arch.units["array2d"]
    n = point.tokens
    M, N, K = (n, n, E) if point.kind == "qk" else (n, F, n)
    folds, _ = folds_and_cycles_per_fold(M, N, K, unit.rows, unit.cols, "os")
    return float(folds * K * ((unit.rows + unit.cols) - (min(M, unit.rows) + min(N, unit.cols))))


def compare(point: Point, af: dict, proj: dict, arch: Architecture) -> list[dict]:
    """Rows (quantity, accelforge, project, rel, tolerance, status, note) for one point.

    status: "ok" within tolerance; "explained" outside it but within it once the named, computed
    difference is taken out; "info" not checked (register files); "FAIL" otherwise.
    """
    t = af_totals(af)
    rows = []
    pj_word_read = arch.buffer.read_pj / arch.buffer_width_words
    pj_word_write = arch.buffer.write_pj / arch.buffer_width_words

    def row(quantity, a, p, tol, adjusted=None, note=""):
        rel = (a - p) / p if p else (0.0 if a == p else float("inf"))
        if tol is None:
            status = "info"
        elif (tol == 0 and a == p) or (tol and abs(rel) <= tol):
            status = "ok"
        elif adjusted is not None and ((tol == 0 and adjusted == p) or (tol and abs(adjusted - p) <= tol * p)):
            status = "explained"
        else:
            status = "FAIL"
        rows.append({"point": point.name, "quantity": quantity, "accelforge": a, "project": p, "rel": rel,
                     "tolerance": tol, "status": status, "adjusted": adjusted,
                     "note": note if status in ("explained", "info") else ""})

    dup = t["duplicate_load_bytes"]
    twice = "; ".join(f"{' and '.join(es)} each load {tensor} from DRAM ({b:.0f} B more)"
                      for tensor, (b, es) in duplicate_readers(af).items())
    row("DRAM bytes", t["dram_bytes"], proj["dram_bytes"], 0.0, t["dram_bytes"] - dup if dup else None,
        f"in AccelForge {twice}")
    for unit, comps in AF_COMPUTE.items():
        a = sum(t["energy_pj"].get(c, 0.0) for c in comps)
        p = proj["energy_by_component_pj"].get(unit, 0.0)
        if a or p:
            row(f"{unit} compute pJ", a, p, TOL["compute"])
    over = gemm_edge_overcount_words(point, arch)
    adjusted = t["energy_pj"].get("GlobalBuffer", 0.0) - dup / arch.word_bytes * pj_word_write
    notes = []
    if dup:
        notes.append(f"AccelForge's second load of {dup:.0f} B also writes the buffer")
    if over:
        adjusted += over * pj_word_read
        notes.append(f"mappings.gemm charges {over:.0f} buffer words beyond the fold's operand tiles")
    row("buffer pJ", t["energy_pj"].get("GlobalBuffer", 0.0), proj["energy_by_component_pj"].get("buffer", 0.0),
        TOL["buffer"], adjusted if notes else None, "; ".join(notes))
    for unit, comp in AF_RF.items():
        a, p = t["energy_pj"].get(comp, 0.0), proj["energy_by_component_pj"].get(unit, 0.0)
        if a or p:
            row(f"{unit} pJ", a, p, None, note="register files: AccelForge counts the dataflow's accesses "
                "(operand fills included), the project a fixed count per operator (not checked)")
    row("DRAM pJ", t["energy_pj"].get("DRAM", 0.0), proj["energy_by_component_pj"].get("dram", 0.0), None,
        note="follows DRAM bytes")
    row("cycles", t["cycles"], proj["cycles"], TOL["cycles"])
    return rows


def check_all(stored: dict, arch: Architecture, points=POINTS) -> tuple[list[dict], dict]:
    """Compare every point of `stored` (AccelForge's results) with the project simulated now."""
    rows, projects = [], {}
    for p in points:
        if p.name not in stored["points"]:
            raise KeyError(f"no stored AccelForge result for point {p.name}")
        projects[p.name] = project_point(p, arch)
        rows += compare(p, stored["points"][p.name]["evaluate"], projects[p.name], arch)
    return rows, projects


# ---------------------------------------------------------------- report

def fmt(x: float) -> str:
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:.3g}"


def write_report(data: dict, rows: list[dict], projects: dict, bests: dict, onepass: dict, arch: Architecture,
                 path: Path = REPORT) -> None:
    """accelforge_report.md from the results (every number computed here)."""
    meta = data["meta"]
    n_ok = sum(r["status"] in ("ok", "explained") for r in rows if r["tolerance"] is not None)
    n_checked = sum(r["tolerance"] is not None for r in rows)
    n_explained = sum(r["status"] == "explained" for r in rows)
    L = [
        "# archsim against AccelForge",
        "",
        f"AccelForge {meta['accelforge_version']} (Python {meta['accelforge_python']}), run {meta['date']}; "
        f"written by `benchmarks/peers/accelforge_check.py` (`make validate-accelforge`). One head, E = F = 64, "
        f"{ARCH_NAME} with this project's energy table in both tools (`benchmarks/peers/accelforge/`).",
        "",
        f"**{n_ok}/{n_checked} checks pass** ({n_explained} of them after a named, computed difference is "
        f"taken out). Tolerances: DRAM bytes exact, compute energy {TOL['compute']:.0%}, buffer energy "
        f"{TOL['buffer']:.0%}, cycles {TOL['cycles']:.0%}; register files listed, not checked.",
        "",
        "## Same mapping in both tools",
        "",
        "| point | quantity | AccelForge | project | diff | status | note |",
        "|---|---|---:|---:|---:|---|---|",
    ]
    for r in rows:
        L.append(f"| {r['point']} | {r['quantity']} | {fmt(r['accelforge'])} | {fmt(r['project'])} | "
                 f"{r['rel']:+.2%} | {r['status']} | {r['note']} |")
    L += ["", "Buffer words per Einsum (read / write; AccelForge counts 4096-bit accesses, shown as 16-bit words):",
          "", "| point | Einsum | AccelForge read | project read | AccelForge write | project write |",
          "|---|---|---:|---:|---:|---:|"]
    for p in POINTS:
        af = af_totals(data["points"][p.name]["evaluate"])["buffer_words"]
        pr = projects[p.name]["buffer_words"]
        for e in af:
            key = e if e in pr else ("GEMM" if "GEMM" in pr else e)
            prw = pr.get(key, {"read": 0.0, "write": 0.0})
            L.append(f"| {p.name} | {e} | {fmt(af[e]['read'])} | {fmt(prw['read'])} | {fmt(af[e]['write'])} | "
                     f"{fmt(prw['write'])} |")
    L += ["", "## Mappers", "",
          "AccelForge's mapper (FFM, latency and energy together: its Pareto front; the best of each) against "
          "the project's best mapping of the same workload (project side: " +
          (next(iter(bests.values()))["source"] if bests else "none") + "). The middle columns are "
          "AccelForge's own evaluation of the project's mappings (the stored YAML files), so that the mapper "
          "is also compared within one cost model. Latency in cycles, energy in uJ, wall time in seconds.", "",
          "| workload | AF mapper latency | AF on project mapping | project best latency | AF mapper energy | "
          "AF on project mapping | project best energy | project best (latency / energy) | AF mapper wall | "
          "project wall |",
          "|---|---:|---:|---:|---:|---:|---:|---|---:|---:|"]
    for p in MAPPER_POINTS:
        m = data.get("mapper", {}).get(p.workload_name)
        b = bests.get(p.workload_name)
        if not b:
            continue
        own = [data["points"][q.name]["evaluate"] for q in POINTS if q.workload_name == p.workload_name]
        own_lat = fmt(min(e["latency"] for e in own))
        own_en = f"{min(e['energy_pj'] for e in own) / 1e6:,.1f}"
        if m and "error" not in m:
            af_lat, af_en, af_wall = fmt(m["best_latency"]["latency"]), f"{m['best_energy']['energy_pj'] / 1e6:,.1f}", \
                f"{m['wall_s']:.0f}"
        else:
            af_lat = af_en = "-"
            af_wall = "not run" if not m else f"no result after {m['wall_s']:.0f} ({m['error'].split(':')[0]}" + (
                f", {m['peak_rss_gb']:.1f} GB" if m.get("peak_rss_gb") else "") + ")"
        L.append(f"| {p.workload_name} | {af_lat} | {own_lat} | {fmt(b['best_latency']['cycles'])} | {af_en} | "
                 f"{own_en} | {b['best_energy']['energy_pj'] / 1e6:,.1f} | {b['best_latency']['mapping']} / "
                 f"{b['best_energy']['mapping']} | {af_wall} | {b['wall_s']:.3f} |")
    L += ["", mapper_verdict(data, bests, onepass, projects), ""]
    L += ["## Wall time per point (evaluating one fixed mapping)", "",
          "| point | AccelForge evaluate (s) | project simulate (s) |", "|---|---:|---:|"]
    for p in POINTS:
        L.append(f"| {p.name} | {data['points'][p.name]['evaluate']['wall_s']:.2f} | "
                 f"{projects[p.name]['wall_s']:.3f} |")
    L += ["", "## What differs and why", "", *explanations(rows, data, projects, onepass, arch)]
    path.write_text("\n".join(L) + "\n")


def mapper_verdict(data: dict, bests: dict, onepass: dict, projects: dict | None = None) -> str:
    """One paragraph: where the project's best is no worse than AccelForge's mapper, where not; the same
    within AccelForge's cost model; and what decides for attention."""
    projects = projects or {}
    better, worse, same_model = [], [], []
    for p in MAPPER_POINTS:
        b, m = bests.get(p.workload_name), data.get("mapper", {}).get(p.workload_name)
        if not b or not m or "error" in m:
            continue
        own = [data["points"][q.name]["evaluate"] for q in POINTS if q.workload_name == p.workload_name]
        for obj, ours, theirs, own_best in (
                ("latency", b["best_latency"]["cycles"], m["best_latency"]["latency"], min(e["latency"] for e in own)),
                ("energy", b["best_energy"]["energy_pj"], m["best_energy"]["energy_pj"],
                 min(e["energy_pj"] for e in own))):
            entry = f"{p.workload_name} {obj} ({(ours - theirs) / theirs:+.1%}"
            same = [q for q in POINTS if q.workload_name == p.workload_name]
            if len(same) == 1 and same[0].name in projects:  # one mapping: the tools' gap on it is the model's
                af_e, pr = data["points"][same[0].name]["evaluate"], projects[same[0].name]
                gap = pr["cycles"] / af_e["latency"] if obj == "latency" else pr["energy_pj"] / af_e["energy_pj"]
                entry += f"; {(ours / theirs) / gap - 1:+.1%} once the tools' gap on the same mapping is taken out"
            (better if ours <= theirs * (1 + 1e-9) else worse).append(entry + ")")
            entry = f"{p.workload_name} {obj} {(theirs - own_best) / own_best:+.1%}"
            if obj == "energy" and theirs < own_best * 0.99:
                own_e = min(own, key=lambda e: e["energy_pj"])
                delta = {c: af_totals(m["best_energy"])["energy_pj"].get(c, 0.0) - v
                         for c, v in af_totals(own_e)["energy_pj"].items()}
                comp = min(delta, key=delta.get)
                entry += f" (mostly {comp}: {delta[comp] / 1e6:+,.1f} uJ)"
            same_model.append(entry)
    if better or worse:
        text = (f"The project's best is no worse than AccelForge's mapper on {len(better)} of "
                f"{len(better) + len(worse)} (workload, objective) pairs" +
                (": it is worse on " + ", ".join(worse) + "." if worse else ".") +
                " Within AccelForge's own cost model, its mapper's best against its evaluation of the project's "
                "mapping (negative: the mapper found better): " + ", ".join(same_model) + ".")
    else:
        text = "AccelForge's mapper has no result yet (run `make validate-accelforge`)."
    failed = {k: v for k, v in data.get("mapper", {}).items() if "error" in v}
    if failed:
        text += " AccelForge's mapper gave no result for " + "; ".join(
            f"{k} ({v['error'][:160]}; after {v['wall_s']:.0f} s" +
            (f", peak resident memory of AccelForge and its workers {v['peak_rss_gb']:.1f} GB)"
             if v.get("peak_rss_gb") else ")") for k, v in sorted(failed.items())) + "."
    gaps = []
    for q in POINTS:
        af = data["points"][q.name]["evaluate"]
        if q.name in projects:
            pr = projects[q.name]
            gaps.append(f"{q.name} {(pr['cycles'] - af['latency']) / af['latency']:+.1%} / "
                        f"{(pr['energy_pj'] - af['energy_pj']) / af['energy_pj']:+.1%}")
    if gaps:
        text += (" For scale, on the same mapping archsim's cycles / energy differ from AccelForge's by: " +
                 ", ".join(gaps) + " (the first table; register files and the buffer accounting make most of "
                 "the energy gap).")
    parts = []
    for n, o in sorted(onepass.items()):
        name = f"attention_3pass_{n // 1024}k"
        m = data.get("mapper", {}).get(name) or {}
        stored = [data["points"][q.name]["evaluate"] for q in POINTS if q.workload_name == name]
        if "best_latency" in m:
            lat, en, what = m["best_latency"]["latency"], m["best_energy"]["energy_pj"], "its mapper's best"
        elif stored:
            lat, en = min(e["latency"] for e in stored), min(e["energy_pj"] for e in stored)
            what = "the best of the stored 3-pass mappings (its mapper has no result here)"
        else:
            continue
        parts.append(f"at {n // 1024}K the project's FuseMax mapping of the 1-pass cascade takes {fmt(o['cycles'])} "
                     f"cycles and {o['energy_pj'] / 1e6:,.1f} uJ; AccelForge's 3-pass attention ({what}) "
                     f"takes {lat / o['cycles']:.1f}x the cycles and {en / o['energy_pj']:.2f}x the energy")
    if parts:
        text += (" What decides for attention is what AccelForge 1.0.467 cannot express: the 1-pass recurrence "
                 "(a self-read such as RM[m1-1] is dropped), which lets FuseMax run the exponentials on the 2D "
                 "array, and units running concurrently (its latency is the sum over Einsums): " +
                 "; ".join(parts) + ".")
    return text


def explanations(rows: list[dict], data: dict, projects: dict, onepass: dict, arch: Architecture) -> list[str]:
    """The report's closing notes, every number from the rows, the stored results or the architecture."""
    out = []
    for r in rows:
        if r["quantity"] == "DRAM bytes" and r["status"] == "explained":
            out.append(f"- {r['point']}: AccelForge moves {fmt(r['accelforge'] - r['project'])} more DRAM bytes than "
                       f"the project ({r['note'].removeprefix('in AccelForge ')}): it keeps no buffer copy of a "
                       f"DRAM-backed tensor shared between Einsums, where the project loads each chunk once for "
                       f"the whole softmax. Without that second load the bytes agree exactly ({fmt(r['adjusted'])}).")
    for r in rows:
        if r["quantity"] == "buffer pJ" and r["status"] == "explained":
            out.append(f"- {r['point']}: buffer energy {r['rel']:+.1%} ({r['note']}); with that taken out "
                       f"{(r['adjusted'] - r['project']) / r['project']:+.1%}.")
    # buffer reads of the 2D array's operands: AccelForge once per array tile, archsim once per block
    pj_read = arch.buffer.read_pj / arch.buffer_width_words
    for p in POINTS:
        if p.kind not in ("unfused", "fused"):
            continue
        af = af_totals(data["points"][p.name]["evaluate"])["buffer_words"]
        pr = projects[p.name]["buffer_words"]
        extra = sum(af[e]["read"] - pr[e]["read"] for e in ("QK", "AV"))
        total = next(r for r in rows if r["point"] == p.name and r["quantity"] == "buffer pJ")
        out.append(f"- {p.name}: AccelForge reads {fmt(extra)} more buffer words than archsim for QK and AV "
                   f"({extra * pj_read / 1e6:,.1f} uJ of the {(total['accelforge'] - total['project']) / 1e6:+,.1f} uJ "
                   f"buffer difference): it reads an operand tile into the 2D array for every 256-wide tile of "
                   f"the other operand, archsim's `mappings.base.plan_einsums` one read per element per block." +
                   (" Here archsim's own DRAM traffic re-streams Q, K and V through the buffer (it counts those "
                    "writes), so its reads are an undercount (the `flat` spec in mappings/specs/)."
                    if p.kind == "fused" else ""))
    cyc = [r for r in rows if r["quantity"] == "cycles"]
    if cyc:
        worst = max(cyc, key=lambda r: abs(r["rel"]))
        out.append(f"- Cycles: AccelForge's latency is the sum over Einsums of max(DRAM time, compute time); the "
                   f"project's discrete-event simulation overlaps DRAM, the 2D and the 1D array across tiles and "
                   f"blocks and pays pipeline fill. The largest difference is {worst['rel']:+.1%} ({worst['point']}).")
    rf = [r for r in rows if r["quantity"].endswith(".rf pJ")]
    if rf:
        lo, hi = min(r["rel"] for r in rf), max(r["rel"] for r in rf)
        ops = "; ".join(f"{unit} {op}: {spec.actions.get('rf_read', 0):g} reads, {spec.actions.get('rf_write', 0):g} "
                        f"writes" for unit, op in (("array2d", "mac"), ("array1d", "exp"), ("array1d", "max"))
                        for spec in [arch.units[unit].operators[op]])
        out.append(f"- Register files ({lo:+.0%} to {hi:+.0%}, not checked): AccelForge counts the accesses its "
                   f"dataflow implies (each operand written into a PE's register and read, partial sums read and "
                   f"written), the project a fixed count per operator from the architecture's operator table "
                   f"({ops}).")
    out.append("- Compute energy agrees because both tools price the same points (one action per Einsum point) "
               "with the same table; AccelForge 1.0.467 names no operator per Einsum, so the 1D unit is four "
               "compute nodes (max, exp, add, divide), one per softmax Einsum.")
    return out


# ---------------------------------------------------------------- main

def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--accelforge-python", default=str(ROOT / ".venv-accelforge" / "bin" / "python"),
                    help="python of the AccelForge venv (default .venv-accelforge/bin/python)")
    ap.add_argument("--stored", action="store_true",
                    help="compare the stored results with archsim now and rewrite the report; do not run AccelForge")
    ap.add_argument("--no-mapper", action="store_true", help="skip AccelForge's mapper")
    ap.add_argument("--rerun-mapper", action="store_true", help="run the mapper even where a result is stored")
    ap.add_argument("--mapper-timeout", type=float, default=1800.0,
                    help="wall seconds per workload for the mapper; past it the workload is recorded as timed out")
    args = ap.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so that run_driver cleans up on SIGTERM
    arch = load_architecture(ARCH_NAME)
    data = load_results()
    if not args.stored:
        try:
            version = check_interpreter(args.accelforge_python)
        except RuntimeError as err:
            print(f"accelforge_check: {err}", file=sys.stderr)
            return 2
        data["meta"] = {"accelforge_version": version, "accelforge_python": subprocess.run(
            [args.accelforge_python, "-c", "import platform; print(platform.python_version())"],
            capture_output=True, text=True, check=False).stdout.strip(),
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}
        for p in tqdm(POINTS, desc="AccelForge evaluate", unit="point"):
            try:
                ev = run_driver(args.accelforge_python, ["evaluate", str(ARCH_YAML), str(p.workload), str(p.mapping)], 600)
                if "error" in ev:
                    raise RuntimeError(ev["error"])
            except RuntimeError as err:
                print(f"accelforge_check: evaluating {p.mapping.name}: {err}", file=sys.stderr)
                return 2
            data["points"][p.name] = {"evaluate": ev, "inputs": file_digest(ARCH_YAML, p.workload, p.mapping)}
            save_results(data)
        if not args.no_mapper:
            for p in tqdm(MAPPER_POINTS, desc="AccelForge mapper", unit="workload"):
                key = file_digest(ARCH_YAML, p.workload) + ":" + version
                old = data.setdefault("mapper", {}).get(p.workload_name)
                if old and old.get("inputs") == key and "error" not in old and not args.rerun_mapper:
                    continue  # resume: this point's mapper result is current
                t0 = time.perf_counter()
                try:
                    m = run_driver(args.accelforge_python, ["map", str(ARCH_YAML), str(p.workload), "both"],
                                   args.mapper_timeout)
                except RuntimeError as err:
                    m = {"error": str(err)[-300:], "wall_s": time.perf_counter() - t0}
                except BaseException:  # interrupted: record it, keep what is done
                    data["mapper"][p.workload_name] = {"error": f"interrupted after {time.perf_counter() - t0:.0f} s",
                                                       "wall_s": time.perf_counter() - t0, "inputs": key}
                    save_results(data)
                    raise
                m["inputs"] = key
                data["mapper"][p.workload_name] = m
                save_results(data)
    if "meta" not in data:
        print(f"accelforge_check: no stored results in {RESULTS}; run without --stored", file=sys.stderr)
        return 2
    rows, projects = check_all(data, arch)
    bests = {p.workload_name: project_best(p, arch) for p in MAPPER_POINTS}
    onepass = {n: onepass_reference(n, arch) for n in sorted({p.tokens for p in POINTS})}
    write_report(data, rows, projects, bests, onepass, arch)
    width = max(len(r["quantity"]) for r in rows)
    for r in rows:
        print(f"{r['point']:<11} {r['quantity']:<{width}} {fmt(r['accelforge']):>16} {fmt(r['project']):>16} "
              f"{r['rel']:+8.2%}  {r['status']}")
    failed = [r for r in rows if r["status"] == "FAIL"]
    checked = [r for r in rows if r["tolerance"] is not None]
    print(f"{len(checked) - len(failed)}/{len(checked)} checks pass "
          f"({sum(r['status'] == 'explained' for r in rows)} after a computed, named difference)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
