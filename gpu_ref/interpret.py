"""Run the kernels on the CPU with Triton's interpreter (for correctness tests, not speed).

Call `enable_cpu_interpreter()` before anything imports triton: Triton decides at decoration
time whether a `@triton.jit` function (its own `tl.zeros` included) is compiled or interpreted.

Triton 3.6's interpreter converts a loop bound to a Python int with `int(array)` on a
one-element array, which NumPy >= 2.4 refuses ("only 0-dimensional arrays can be converted
to Python scalars"; triton-lang/triton issue #9171, fixed upstream after 3.6). When that
NumPy is present we re-register the tensor's `__index__` the way the upstream fix does.
"""
from __future__ import annotations

import os
import sys


def enable_cpu_interpreter() -> None:
    """Set TRITON_INTERPRET=1 and apply the NumPy >= 2.4 loop-bound fix to the interpreter.

    Raises RuntimeError if triton was imported before TRITON_INTERPRET=1 was set.
    """
    if "triton" in sys.modules and os.environ.get("TRITON_INTERPRET") != "1":
        raise RuntimeError("triton was imported before TRITON_INTERPRET=1 was set; enable the CPU "
                           "interpreter before importing triton (or run in a fresh process)")
    os.environ["TRITON_INTERPRET"] = "1"
    from triton.runtime import interpreter

    original = interpreter._patch_lang_tensor
    if getattr(original, "_cascadesim_fixed", False):
        return

    def patch_lang_tensor(tensor, scope) -> None:
        original(tensor, scope)
        scope.set_attr(tensor, "__index__", lambda self: int(self.handle.data.reshape(-1)[0]))

    patch_lang_tensor._cascadesim_fixed = True
    interpreter._patch_lang_tensor = patch_lang_tensor
