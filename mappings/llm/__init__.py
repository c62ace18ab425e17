"""LLM inference workloads: model descriptions (model.py, models/) and their prefill and decode phases (phases.py)."""
