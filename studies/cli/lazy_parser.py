"""An argparse parser whose arguments are added only when it is used, so that the command line
starts without importing what every subcommand needs (sympy, numpy, ...)."""
from __future__ import annotations

import argparse
import importlib


def resolve(target: str):
    """The object named by "module:attribute" (the module is imported)."""
    module, name = target.split(":")
    return getattr(importlib.import_module(module), name)


class LazyParser(argparse.ArgumentParser):
    """A subcommand's parser: `register_target` ("module:function", called with the parser) adds
    its arguments when that subcommand is parsed or its help printed, not before."""

    register_target: str | None = None

    def _ensure(self) -> None:
        target, self.register_target = self.register_target, None
        if target is not None:
            resolve(target)(self)

    def parse_known_args(self, args=None, namespace=None):
        self._ensure()
        return super().parse_known_args(args, namespace)

    def format_help(self) -> str:
        self._ensure()
        return super().format_help()
