"""Triton reference kernels of the attention cascades and their GPU benchmark harness.

This package imports nothing from the simulator (archsim, mappings, studies), so that
measured kernel times can check the simulator's predictions. Importing the package itself
needs only the standard library; the kernels (`gpu_ref.kernels`) need torch and triton.
"""
