"""Test-suite settings: property tests run a fixed, reproducible sequence of examples (the same
on every machine and every run); explore more with HYPOTHESIS_PROFILE=explore."""
from __future__ import annotations

import os

from hypothesis import settings

settings.register_profile("reproducible", derandomize=True, print_blob=True)
settings.register_profile("explore", derandomize=False, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "reproducible"))
