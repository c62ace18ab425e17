"""The one YAML loader of the project: safe, bounded, and every error names the file.

Every YAML or JSON document the project reads (architectures, profiles, networks, GPU
descriptions, mapping and sweep specs, measurements) goes through `load_yaml_file` or
`load_yaml_text`. Compared with a bare `yaml.safe_load`:

- aliases (`*name`) are rejected: a "billion laughs" document cannot expand;
- nesting deeper than `MAX_DEPTH` is rejected (no RecursionError on 10,000 nested `[`);
- a key given twice in one mapping is an error naming both lines (YAML requires unique keys;
  PyYAML keeps the last one silently);
- scalars follow YAML 1.2's core schema: `1e3`, `2.0e+11`, `.5` are floats, `0x1F` and `0o17`
  integers, only true/false are booleans, dates stay strings;
- plain scalars that YAML 1.1 and 1.2 read differently are errors (quote them, or write the
  number): base-60 `940:00:00`, leading-zero `0777` (octal in 1.1), `yes`/`no`/`on`/`off`,
  `0b101`, `1_000`;
- `.nan`, `.inf` and numbers too large for a float (`1e400`) are errors: no input field of the
  project may be non-finite;
- a UTF-8 byte-order mark is skipped; bytes that are not UTF-8 are an error, not a traceback;
- only regular files are read (not FIFOs, devices such as /dev/zero, or directories), and only
  up to `MAX_BYTES`, checked before reading; YAML text longer than `MAX_YAML_BYTES` is refused
  before parsing (the pure-Python parser takes seconds per megabyte);
- paths that are directories, missing, unreadable or symlink loops are errors that name them.

All errors are `YamlFileError` (a ValueError) with the message `file[:line:col]: problem`.
"""
from __future__ import annotations

import math
import os
import re
import stat
from pathlib import Path
from collections.abc import Callable
from typing import Any

import yaml

from cascadesim_errors import InputError

MAX_DEPTH = 100  # nesting levels of mappings and sequences
MAX_BYTES = 4 * 1024 * 1024  # larger input files are refused before they are read
MAX_YAML_BYTES = 1024 * 1024  # larger YAML/JSON documents are refused before they are parsed


class YamlFileError(InputError, ValueError):
    """A YAML/JSON input file that cannot be read or parsed; the message names the file."""


# YAML 1.2 core schema (https://yaml.org/spec/1.2.2/#1032-tag-resolution)
_NULL = re.compile(r"^(?:~|null|Null|NULL|)$")
_BOOL = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")
_INT = re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$")
_FLOAT = re.compile(r"^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?$"
                    r"|^[-+]?\.(?:inf|Inf|INF)$|^\.(?:nan|NaN|NAN)$")
# plain scalars YAML 1.1 reads as something else than 1.2 does (what 1.1 makes of them)
_AMBIGUOUS = [
    (re.compile(r"^[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?$"), "a base-60 number"),
    (re.compile(r"^[-+]?0[0-9_]+$"), "an octal number"),
    (re.compile(r"^(?:yes|Yes|YES|no|No|NO|on|On|ON|off|Off|OFF)$"), "a boolean"),
    (re.compile(r"^[-+]?0b[0-1_]+$"), "a binary number"),
    (re.compile(r"^[-+]?(?:[0-9][0-9_]*_[0-9_]*)(?:\.[0-9_]*)?(?:[eE][-+]?[0-9]+)?$"), "a number with '_' removed"),
]
_AMBIGUOUS_TAG = "tag:cascadesim,2026:ambiguous"
_FIRST_CHARS = {
    "tag:yaml.org,2002:null": ["~", "n", "N", ""],
    "tag:yaml.org,2002:bool": list("tTfF"),
    "tag:yaml.org,2002:int": list("-+0123456789"),
    "tag:yaml.org,2002:float": list("-+0123456789."),
    _AMBIGUOUS_TAG: list("-+0123456789yYnNoO"),
}


def _where(mark: Any) -> str:
    return f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader without aliases, with a nesting limit, unique keys and YAML 1.2 scalars."""

    def __init__(self, stream: str, source: str):
        super().__init__(stream)
        self._source = source
        self._depth = 0

    def _error(self, node_or_mark: Any, message: str) -> YamlFileError:
        mark = getattr(node_or_mark, "start_mark", node_or_mark)
        return YamlFileError(f"{self._source}{_where(mark)}: {message}")

    def compose_node(self, parent, index):  # noqa: ANN001 - PyYAML's signature
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise self._error(event, f"YAML aliases (*{event.anchor}) are not allowed in input files")
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise self._error(self.peek_event(), f"nested deeper than {MAX_DEPTH} levels")
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node, deep=False):  # noqa: ANN001 - PyYAML's signature
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, Any] = {}
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=True)
                try:
                    first = seen.get(key)
                except TypeError:  # an unhashable key: PyYAML reports it below
                    continue
                if first is not None:
                    raise self._error(key_node, f"duplicate key {key!r} (first given at line "
                                                f"{first.start_mark.line + 1}:{first.start_mark.column + 1}); "
                                                "YAML keys must be unique")
                seen[key] = key_node
        return super().construct_mapping(node, deep)

    def construct_yaml_int(self, node):  # noqa: ANN001
        text = self.construct_scalar(node)
        sign, digits = (-1, text[1:]) if text.startswith("-") else (1, text.lstrip("+"))
        if digits.startswith("0x"):
            return sign * int(digits[2:], 16)
        if digits.startswith("0o"):
            return sign * int(digits[2:], 8)
        return sign * int(digits)

    def construct_yaml_float(self, node):  # noqa: ANN001
        text = self.construct_scalar(node)
        if text.lstrip("+-").lower() in (".inf", ".nan"):
            raise self._error(node, f"non-finite number {text!r}: every number of an input file must be finite")
        value = float(text)
        if not math.isfinite(value):
            raise self._error(node, f"number {text!r} is too large for a float (at most about 1.8e308)")
        return value

    def construct_ambiguous(self, node):  # noqa: ANN001
        text = self.construct_scalar(node)
        what = next(w for pattern, w in _AMBIGUOUS if pattern.match(text))
        raise self._error(node, f"ambiguous value {text!r}: YAML 1.1 reads it as {what}, YAML 1.2 as text; "
                                "quote it if it is text, else write the plain number (or true/false)")


_BoundedLoader.yaml_implicit_resolvers = {}
for _tag, _regexp in ((_AMBIGUOUS_TAG, re.compile("|".join(p.pattern for p, _ in _AMBIGUOUS))),
                      ("tag:yaml.org,2002:null", _NULL), ("tag:yaml.org,2002:bool", _BOOL),
                      ("tag:yaml.org,2002:int", _INT), ("tag:yaml.org,2002:float", _FLOAT)):
    _BoundedLoader.add_implicit_resolver(_tag, _regexp, _FIRST_CHARS[_tag])
_BoundedLoader.add_constructor("tag:yaml.org,2002:int", _BoundedLoader.construct_yaml_int)
_BoundedLoader.add_constructor("tag:yaml.org,2002:float", _BoundedLoader.construct_yaml_float)
_BoundedLoader.add_constructor(_AMBIGUOUS_TAG, _BoundedLoader.construct_ambiguous)


def compose_yaml_text(text: str) -> yaml.Node | None:
    """The node tree of `text` (for line:column of fields); the text must have loaded already."""
    return yaml.compose(text[1:] if text.startswith("\ufeff") else text, Loader=_BoundedLoader)


def load_yaml_text(text: str, source: str = "<text>") -> Any:
    """Parse one YAML (or JSON) document from `text`; errors name `source` and line:column."""
    if text.startswith("\ufeff"):
        text = text[1:]
    if len(text) > MAX_YAML_BYTES:
        raise YamlFileError(f"{source}: {len(text)} characters of YAML; the limit is {MAX_YAML_BYTES} "
                            "(input files of this project are a few kilobytes)")
    loader = None
    try:
        loader = _BoundedLoader(text, source)  # the reader rejects control characters here
        return loader.get_single_data()
    except YamlFileError:
        raise
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        raise YamlFileError(f"{source}{_where(mark)}: invalid YAML: {err.problem or err.context}") from None
    except yaml.reader.ReaderError as err:
        raise YamlFileError(f"{source}: invalid YAML: character {err.character!r} at position {err.position} "
                            f"is not allowed") from None
    except yaml.YAMLError as err:
        raise YamlFileError(f"{source}: invalid YAML: {err}") from None
    except RecursionError:
        raise YamlFileError(f"{source}: nested too deeply") from None
    finally:
        if loader is not None:
            loader.dispose()


def read_bytes_file(path: str | Path, what: str = "file", max_bytes: int = MAX_BYTES) -> bytes:
    """The bytes of a regular file of at most `max_bytes`; every failure is a YamlFileError naming
    the path. A FIFO, a device (/dev/zero), a socket or a directory is refused without blocking."""
    name = str(path) or "''"
    if str(path) == "":
        raise YamlFileError(f"{name}: empty path given for the {what}")
    p = Path(path)
    try:
        if p.is_dir():
            raise YamlFileError(f"{name}: is a directory, expected a {what}")
        if not p.exists():
            if p.is_symlink():
                raise YamlFileError(f"{name}: a symbolic link that cannot be resolved (dangling or a loop)")
            raise YamlFileError(f"{name}: no such {what}")
        fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO opens at once instead of waiting for a writer
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                kind = ("a FIFO (named pipe)" if stat.S_ISFIFO(info.st_mode) else "a device" if
                        stat.S_ISCHR(info.st_mode) or stat.S_ISBLK(info.st_mode) else "a socket" if
                        stat.S_ISSOCK(info.st_mode) else "not a regular file")
                raise YamlFileError(f"{name}: is {kind}, expected a regular {what}")
            if info.st_size > max_bytes:
                raise YamlFileError(f"{name}: {info.st_size} bytes; the limit for a {what} is {max_bytes} bytes")
            with os.fdopen(fd, "rb", closefd=False) as f:
                data = f.read(max_bytes + 1)
        finally:
            os.close(fd)
        if len(data) > max_bytes:  # grew while being read
            raise YamlFileError(f"{name}: more than {max_bytes} bytes; the limit for a {what}")
        return data
    except YamlFileError:
        raise
    except RuntimeError as err:  # pathlib on a symlink loop (older Pythons)
        raise YamlFileError(f"{name}: cannot read: {err}") from None
    except OSError as err:
        raise YamlFileError(f"{name}: cannot read: {err.strerror or err}") from None


def read_text_file(path: str | Path, what: str = "file", max_bytes: int = MAX_BYTES) -> str:
    """Read a UTF-8 text file (BOM skipped) with `read_bytes_file`'s checks; errors name the path."""
    data = read_bytes_file(path, what, max_bytes)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise YamlFileError(f"{path}: not UTF-8 text (byte {err.start}: {data[err.start:err.start + 1]!r})") from None
    return text[1:] if text.startswith("\ufeff") else text


def load_yaml_file(path: str | Path, what: str = "YAML file",
                   error: Callable[[str], Exception] | None = None) -> Any:
    """Read and parse one YAML/JSON file safely (see the module docstring). `error`: the caller's
    error type, raised with the YamlFileError's message (file, line:column) instead of it."""
    try:
        return load_yaml_text(read_text_file(path, what), str(path))
    except YamlFileError as err:
        if error is None:
            raise
        raise error(str(err)) from None


def finite_number(value: Any, where: str, positive: bool = False) -> float:
    """`value` as a finite float (not bool); `positive` also requires > 0. Errors name `where`."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise YamlFileError(f"{where}: expected a number, got {value!r}")
    if not math.isfinite(value):
        raise YamlFileError(f"{where}: expected a finite number, got {value!r}")
    if positive and value <= 0:
        raise YamlFileError(f"{where}: expected a positive number, got {value!r}")
    return float(value)
