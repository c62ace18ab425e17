"""Moments: centred sums through running sums of powers.

Justification: for a global mean g = (1/N) sum_m x[m] (complete only after a pass) the centred
sums expand by the binomial theorem,

    sum_m (x[m] - g)^k = sum_{j=0..k} C(k, j) (-g)^(k-j) sum_m x[m]^j,

so the pass that computes sum_m x accumulates sum_m x^j for j <= k as well, and the centred
moment is assembled after the pass (variance: sum x^2 - 2 g sum x + N g^2). The separation of
`deferred` performs exactly this expansion (sympy multiplies the power out); this module says
when it happened (for the report) and measures its numerical behaviour.

The method is running sums of powers, not Welford's update. Its error: the assembled variance
subtracts quantities of size N (mu^2 + sigma^2) to leave N sigma^2, so its relative error is
about eps * (1 + mu^2 / sigma^2) (eps = 2^-53): exact enough when the mean is small against the
spread (attention scores, normalised activations), and losing log10(mu^2 / sigma^2) digits
otherwise. `variance_error` measures it against the two-pass formula; `docs/fuse.md` gives the
measured table, and the certification of `fuse` rejects a rewrite whose error on the check's
inputs exceeds 1e-9.
"""
from __future__ import annotations

import numpy as np
import sympy


def is_moment(terms, late: set) -> bool:
    """True when the separated terms hold the same streamed power at several powers of a
    global, i.e. a polynomial in a global was multiplied out (a centred moment)."""
    with_globals = [t for t in terms if t.coeff.free_symbols & late]
    bodies = {t.body for t in with_globals}
    return len(with_globals) >= 2 and len(bodies) >= 2 and any(
        isinstance(f, sympy.Pow) or f.is_Pow for t in terms for f in sympy.Mul.make_args(t.body))


def variance_error(mean: float, spread: float, n: int = 4096, seed: int = 0) -> float:
    """Relative error of the variance from running sums of powers (sum x^2 - (sum x)^2 / n)
    against the two-pass centred formula, for n normal samples of the given mean and spread."""
    x = np.random.default_rng(seed).normal(mean, spread, n)
    two_pass = np.sum((x - x.mean()) ** 2) / n
    s1, s2 = np.sum(x), np.sum(x * x)
    one_pass = (s2 - s1 * s1 / n) / n
    return float(abs(one_pass - two_pass) / two_pass)


def welford_variance_error(mean: float, spread: float, n: int = 4096, seed: int = 0) -> float:
    """The same measurement for Welford's update (running mean and centred sum of squares), for
    comparison: what the rule would gain by emitting Welford's recurrence instead."""
    x = np.random.default_rng(seed).normal(mean, spread, n)
    two_pass = np.sum((x - x.mean()) ** 2) / n
    mu, m2 = 0.0, 0.0
    for k, value in enumerate(x, start=1):
        delta = value - mu
        mu += delta / k
        m2 += delta * (value - mu)
    return float(abs(m2 / n - two_pass) / two_pass)


def error_table(ratios=(0.0, 10.0, 100.0, 1e3, 1e4, 1e5, 1e6)) -> str:
    """The markdown table of docs/fuse.md: relative variance error of both methods (n = 4096)."""
    lines = ["| mean / spread | running sums of powers | Welford |", "|---|---|---|"]
    for r in ratios:
        lines.append(f"| {r:g} | {variance_error(r, 1.0):.1e} | {welford_variance_error(r, 1.0):.1e} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(error_table())
