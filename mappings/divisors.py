"""Divisors of a (possibly huge) positive integer from its prime factorisation, not by trial.

Sizes may be as large as the command line accepts (`M=1e30`); trying every candidate up to n
would never finish. Small primes are divided out by trial (up to 1000); a cofactor left over is
factorised by sympy's `factorint` (imported only then: most sizes are a power of two times
small primes).
"""
from __future__ import annotations

from functools import lru_cache

_SMALL_PRIMES = [p for p in range(2, 1000) if all(p % q for q in range(2, int(p ** 0.5) + 1))]
MAX_DIVISORS = 1_000_000  # more divisors than this is refused (no size of this project has that many)


@lru_cache(maxsize=256)
def prime_factors(n: int) -> tuple[tuple[int, int], ...]:
    """((prime, exponent), ...) of n >= 1, primes ascending."""
    if n < 1:
        raise ValueError(f"prime_factors: expected a positive integer, got {n}")
    out: dict[int, int] = {}
    for p in _SMALL_PRIMES:
        if p * p > n:
            break
        while n % p == 0:
            out[p] = out.get(p, 0) + 1
            n //= p
    if n > 1:
        if n < 1_000_000:  # no factor up to its square root among the small primes: n is prime
            out[n] = out.get(n, 0) + 1
        else:
            from sympy import factorint
            for p, e in factorint(n).items():
                out[int(p)] = out.get(int(p), 0) + int(e)
    return tuple(sorted(out.items()))


def divisors(n: int) -> list[int]:
    """Every divisor of n >= 1, ascending (ValueError if there are more than MAX_DIVISORS)."""
    factors = prime_factors(n)
    count = 1
    for _, e in factors:
        count *= e + 1
    if count > MAX_DIVISORS:
        raise ValueError(f"{n} has {count} divisors, more than the {MAX_DIVISORS} a search may try")
    out = [1]
    for p, e in factors:
        out = [d * p ** k for d in out for k in range(e + 1)]
    return sorted(out)
