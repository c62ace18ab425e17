"""Calibration of kernel-profile parameters on named measurement rows, kept apart from validation.

The split (`split`): within each series of rows that differ only in sequence length (same
source, GPU, kernel, dtype, head dim and causal flag), sorted by length, the 2nd, 4th, 6th, ...
lengths calibrate and the 1st, 3rd, 5th, ... are held out for validation (so validation covers
the shortest and, for odd-length series, the longest lengths: interpolation and extrapolation).

The fit (`fit_profile`): for one kernel profile, the parameters its file lists under `fit:`
(a parameter given per architecture, as MMA efficiency always is, once per GPU architecture
present in its calibration rows) minimise the sum of
squared log errors log(predicted / measured) over its calibration rows only, with
`scipy.optimize.least_squares` inside physical bounds, from two starts (the file's values and
the middle of the bounds), keeping the better.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import least_squares

from archsim.gpu_model import launches_time
from archsim.gpu_specs import GPUSpec, KernelProfile, load_gpu, load_profile, with_parameters
from mappings.gpu_predict import attention_flops, efficiency, launches_for, rates
from studies.gpu_observations import Observation

# Bounds of each parameter in fit units (seconds are fitted in microseconds).
BOUNDS = {"mma_efficiency": (0.02, 1.0), "exp_overlap": (0.0, 1.0), "prologue_steps": (0.0, 16.0),
          "step_latency_s": (0.0, 500.0), "launch_s": (0.0, 2000.0), "memory_efficiency": (0.2, 1.0)}
UNIT = {"step_latency_s": 1e-6, "launch_s": 1e-6}


def split(rows: list[Observation]) -> tuple[list[Observation], list[Observation]]:
    """(calibration, validation) by the rule of the module docstring; disjoint, order kept."""
    series: dict[tuple, list[Observation]] = {}
    for r in rows:
        series.setdefault(r.series, []).append(r)
    chosen = set()
    for group in series.values():
        lengths = sorted({r.shape.seq_len for r in group})
        calibrating = set(lengths[1::2])
        chosen.update(r.row for r in group if r.shape.seq_len in calibrating)
    return [r for r in rows if r.row in chosen], [r for r in rows if r.row not in chosen]


@dataclass
class Predictor:
    """Predicted seconds and bound of observations (launches cached per row; GPU files and the
    profiles' starting values loaded once). `seen` records every row predicted, for audits."""

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
        """The profile's file (starting values; with `fitted`, the committed fitted values)."""
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
            self._launches[key] = launches_for(gpu, profile, obs.shape, obs.dtype, dict(obs.tiles) or None)
        total, bound, _ = launches_time(rates(gpu, profile.compute_dtype or obs.dtype, obs.clock_hz),
                                        efficiency(profile, gpu), self._launches[key])
        return total, bound

    def tflops(self, obs: Observation, time_s: float) -> float:
        """TFLOP/s of `obs` at `time_s` (4 B H N^2 D, halved when causal)."""
        return attention_flops(obs.shape) / time_s / 1e12


def _parameter_names(profile: KernelProfile, architectures: list[str]) -> list[tuple[str, str | None]]:
    names = []
    for name in profile.fit:
        if isinstance(getattr(profile.parameters, name), dict):  # one value per architecture
            names += [(name, arch) for arch in architectures]
        else:
            names.append((name, None))
    return names


def _values(names: list[tuple[str, str | None]], x: np.ndarray) -> dict:
    values: dict = {}
    for (name, arch), v in zip(names, x):
        v = float(v) * UNIT.get(name, 1.0)
        if arch:
            values.setdefault(name, {})[arch] = v
        else:
            values[name] = v
    return values


def fit_profile(predictor: Predictor, profile: KernelProfile, rows: list[Observation]) -> tuple[KernelProfile, dict]:
    """Fit `profile`'s listed parameters on `rows` (its calibration rows); the fitted profile and
    a summary (parameters, rows used, root-mean-square log error)."""
    architectures = sorted({predictor.gpu(r.gpu).architecture for r in rows})
    names = _parameter_names(profile, architectures)
    measured = np.array([r.time_s for r in rows])
    start = []
    for name, arch in names:
        value = profile.parameter(name, arch) if arch else getattr(profile.parameters, name)
        lo, hi = BOUNDS[name]
        start.append(min(max(value / UNIT.get(name, 1.0), lo), hi))

    def residuals(x: np.ndarray) -> np.ndarray:
        candidate = with_parameters(profile, _values(names, x), "fit")
        predicted = np.array([predictor.predict(r, candidate)[0] for r in rows])
        return np.log(predicted / measured)

    x = np.array(start)
    if names and rows:
        lower = np.array([BOUNDS[n][0] for n, _ in names])
        upper = np.array([BOUNDS[n][1] for n, _ in names])
        best = None
        # Two starts: the file's values, and the middle of the bounds (the model is piecewise: a
        # parameter whose bound is inactive at one start has no gradient there).
        for x0 in (x, (lower + upper) / 2):
            result = least_squares(residuals, x0, bounds=(lower, upper), diff_step=1e-3, x_scale="jac",
                                   max_nfev=300)
            if best is None or result.cost < best.cost - 1e-12:
                best = result
        x = best.x
    values = _values(names, x)
    fitted = with_parameters(profile, values, "fit")
    rms = float(np.sqrt(np.mean(residuals(x) ** 2))) if rows else None
    return fitted, {"parameters": values, "rows": [r.row for r in rows], "rms_log_error": rms}


def calibrate(predictor: Predictor, rows: list[Observation]) -> tuple[dict[str, KernelProfile], dict[str, dict]]:
    """Fit every profile that has calibration rows among `rows`; profiles without rows keep their
    file's values. Returns (profile name -> profile used for prediction, name -> fit summary)."""
    by_kernel: dict[str, list[Observation]] = {}
    for r in rows:
        by_kernel.setdefault(r.kernel, []).append(r)
    profiles, summaries = {}, {}
    for name in sorted(by_kernel):
        profiles[name], summaries[name] = fit_profile(predictor, predictor.profile(name), by_kernel[name])
    return profiles, summaries
