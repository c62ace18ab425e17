"""Calibration of kernel-profile parameters on named measurement rows, and the shipped fit.

The fit (`fit_profile`): for one kernel profile, the parameters its file lists under `fit:`
minimise the sum of squared log errors log(predicted / measured) over the rows given (one
value per parameter for every GPU: a parameter means the same on each), with
`scipy.optimize.least_squares` inside physical bounds, from the file's starting values.

`calibrate(rows)` fits every profile that has rows; a profile without rows takes, for each
parameter it fits, the median over the fitted profiles of its family (`defaults`). Disputed rows
are never fitted. Cross-validation (studies/gpu_crossval.py) calls `calibrate` on all rows but
one source (or one GPU) and predicts the rows held out.

`python -m mappings.gpu_calibration` (`make gpu-calibration`) fits on every undisputed published
row and writes archsim/gpu/fitted.yaml, which `load_profile` applies.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.optimize import least_squares

from archsim.gpu.model import rates
from archsim.gpu.profiles import FITTED_FILE, KernelProfile, load_profile, with_parameters
from archsim.gpu.specs import GPUConfigError, GPUSpec, load_gpu
from mappings.gpu_observations import Observation, load_all
from mappings.gpu_predict import efficiency, fastest, launch_choices

# Bounds of each parameter in fit units (seconds are fitted in microseconds).
BOUNDS = {"issue_efficiency": (0.02, 1.0), "exp_overlap": (0.0, 1.0), "prologue_steps": (0.0, 16.0),
          "step_latency_s": (0.0, 200.0), "launch_s": (0.5, 50.0), "memory_efficiency": (0.2, 1.0)}
UNIT = {"step_latency_s": 1e-6, "launch_s": 1e-6}
MAX_EVALUATIONS = 120


@dataclass
class Predictor:
    """Predicted seconds and bound of observations (launches cached per row and profile; GPU
    files and profiles loaded once). `seen` records every row predicted, for audits."""

    fitted: bool = False
    seen: set = field(default_factory=set)
    _gpus: dict = field(default_factory=dict)
    _profiles: dict = field(default_factory=dict)
    _launches: dict = field(default_factory=dict)

    def gpu(self, name: str) -> GPUSpec:
        if name not in self._gpus:
            self._gpus[name] = load_gpu(name)
        return self._gpus[name]

    def profile(self, name: str) -> KernelProfile:
        """The profile's file (starting values; with `fitted`, the shipped fitted values)."""
        if name not in self._profiles:
            self._profiles[name] = load_profile(name, fitted=self.fitted)
        return self._profiles[name]

    def predict(self, obs: Observation, profile: KernelProfile | None = None) -> tuple[float, str]:
        """(seconds, bound) of `obs` with `profile` (default: its kernel's profile)."""
        self.seen.add(obs.row)
        profile = profile or self.profile(obs.kernel)
        gpu = self.gpu(obs.gpu)
        key = (obs.row, profile.name)
        if key not in self._launches:
            dtype = profile.compute_dtype or obs.dtype
            self._launches[key] = (rates(gpu, profile.instruction_on(gpu, dtype), dtype, obs.clock_hz),
                                   launch_choices(gpu, profile, obs.shape, obs.dtype, dict(obs.tiles) or None))
        rate, choices = self._launches[key]
        total, bound, _, _ = fastest(rate, efficiency(profile), choices)
        return total, bound


def _values(names: list[str], x: np.ndarray) -> dict:
    return {name: float(v) * UNIT.get(name, 1.0) for name, v in zip(names, x)}


def fit_profile(predictor: Predictor, profile: KernelProfile, rows: list[Observation]) -> tuple[KernelProfile, dict]:
    """Fit `profile`'s listed parameters on `rows`; the fitted profile and a summary (parameters,
    rows used, root-mean-square log error)."""
    names = list(profile.fit)
    measured = np.array([r.time_s for r in rows])
    lower = np.array([BOUNDS[n][0] for n in names])
    upper = np.array([BOUNDS[n][1] for n in names])
    x0 = np.clip([getattr(profile.parameters, n) / UNIT.get(n, 1.0) for n in names], lower, upper)

    def residuals(x: np.ndarray) -> np.ndarray:
        candidate = with_parameters(profile, _values(names, x), "fit")
        predicted = np.array([predictor.predict(r, candidate)[0] for r in rows])
        return np.log(predicted / measured)

    x = x0
    if names and rows:
        x = least_squares(residuals, x0, bounds=(lower, upper), diff_step=1e-2, x_scale="jac",
                          max_nfev=MAX_EVALUATIONS).x
    values = _values(names, x)
    fitted = with_parameters(profile, values, "fit")
    rms = float(np.sqrt(np.mean(residuals(x) ** 2))) if rows else None
    return fitted, {"parameters": values, "rows": len(rows), "rms_log_error": rms}


@dataclass
class Calibration:
    """Fitted profiles by name, their summaries, and each family's default parameters."""

    profiles: dict[str, KernelProfile]
    summaries: dict[str, dict]
    defaults: dict[str, dict[str, float]]

    def profile(self, predictor: Predictor, name: str) -> KernelProfile:
        """The profile used to predict kernel `name`: fitted, else the file's with its family's defaults."""
        if name in self.profiles:
            return self.profiles[name]
        base = predictor.profile(name)
        values = {k: v for k, v in self.defaults.get(base.family, {}).items() if k in base.fit}
        return with_parameters(base, values, "family defaults") if values else base


def family_defaults(profiles: dict[str, KernelProfile]) -> dict[str, dict[str, float]]:
    """Per family, the median of each fitted parameter over the family's fitted profiles."""
    by_family: dict[str, dict[str, list[float]]] = {}
    for p in profiles.values():
        for name in p.fit:
            by_family.setdefault(p.family, {}).setdefault(name, []).append(getattr(p.parameters, name))
    return {fam: {k: float(np.median(v)) for k, v in params.items()} for fam, params in by_family.items()}


def calibrate(predictor: Predictor, rows: list[Observation], reuse: Calibration | None = None,
              refit: set[str] | None = None) -> Calibration:
    """Fit every profile with undisputed rows among `rows`. With `reuse`, profiles not in `refit`
    keep reuse's fit (their rows are unchanged), which makes a fold cheap."""
    by_kernel: dict[str, list[Observation]] = {}
    for r in rows:
        if not r.disputed:
            by_kernel.setdefault(r.kernel, []).append(r)
    profiles, summaries = {}, {}
    for name in sorted(by_kernel):
        if reuse is not None and refit is not None and name not in refit and name in reuse.profiles:
            profiles[name], summaries[name] = reuse.profiles[name], reuse.summaries[name]
            continue
        profiles[name], summaries[name] = fit_profile(predictor, predictor.profile(name), by_kernel[name])
    return Calibration(profiles, summaries, family_defaults(profiles))


def fitted_document(cal: Calibration, rows: list[Observation]) -> dict:
    """The YAML document of a calibration (archsim/gpu/fitted.yaml)."""
    return {"note": "Generated by `make gpu-calibration` (python -m mappings.gpu_calibration): kernel-profile "
                    "parameters fitted on every undisputed published row; do not edit by hand.",
            "rows_fitted": sum(1 for r in rows if not r.disputed),
            "profiles": {name: {k: float(v) for k, v in s["parameters"].items()} for name, s in sorted(cal.summaries.items())},
            "rms_log_error": {name: s["rms_log_error"] for name, s in sorted(cal.summaries.items())},
            "defaults": cal.defaults}


def main(argv: list[str] | None = None) -> int:
    """Fit on every published row and write the fitted parameters (archsim/gpu/fitted.yaml)."""
    import yaml
    parser = argparse.ArgumentParser(prog="python -m mappings.gpu_calibration", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=FITTED_FILE, help="fitted-parameters YAML file to write")
    args = parser.parse_args(argv)
    try:
        rows, _ = load_all()
        predictor = Predictor()
        cal = calibrate(predictor, rows)
    except GPUConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    args.out.write_text(yaml.safe_dump(fitted_document(cal, rows), sort_keys=False))
    print(f"wrote {args.out}: {len(cal.profiles)} profiles fitted on {sum(1 for r in rows if not r.disputed)} rows")
    return 0


if __name__ == "__main__":
    sys.exit(main())
