"""The one YAML loader of the project: safe, bounded, and every error names the file.

Every YAML or JSON document the project reads (architectures, profiles, networks, GPU
descriptions, mapping and sweep specs, measurements) goes through `load_yaml_file` or
`load_yaml_text`. Compared with a bare `yaml.safe_load`:

- aliases (`*name`) are rejected: a "billion laughs" document cannot expand;
- nesting deeper than `MAX_DEPTH` is rejected (no RecursionError on 10,000 nested `[`);
- `1e3`, `2.0e+11`, `.5` are read as floats (YAML 1.1's resolver reads `1e3` as a string);
- a UTF-8 byte-order mark is skipped; bytes that are not UTF-8 are an error, not a traceback;
- paths that are directories, missing, unreadable or symlink loops are errors that name them.

All errors are `YamlFileError` (a ValueError) with the message `file[:line:col]: problem`.
"""
from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import yaml

from cascadesim_errors import InputError

MAX_DEPTH = 100  # nesting levels of mappings and sequences
MAX_BYTES = 64 * 1024 * 1024  # larger input files are refused


class YamlFileError(InputError, ValueError):
    """A YAML/JSON input file that cannot be read or parsed; the message names the file."""


_FLOAT = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$|^[-+]?\.(inf|Inf|INF)$|^\.(nan|NaN|NAN)$")


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader without aliases, with a nesting limit, and YAML 1.2 floats."""

    def __init__(self, stream: str, source: str):
        super().__init__(stream)
        self._source = source
        self._depth = 0

    def compose_node(self, parent, index):  # noqa: ANN001 - PyYAML's signature
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise YamlFileError(f"{self._source}{_where(event.start_mark)}: YAML aliases (*{event.anchor}) "
                                "are not allowed in input files")
        self._depth += 1
        if self._depth > MAX_DEPTH:
            mark = self.peek_event().start_mark
            raise YamlFileError(f"{self._source}{_where(mark)}: nested deeper than {MAX_DEPTH} levels")
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


# Replace the YAML 1.1 float resolver (which needs a dot: `1e3` is a string) with YAML 1.2's.
_BoundedLoader.yaml_implicit_resolvers = {
    key: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:float"]
    for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_BoundedLoader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT, list("-+0123456789."))


def _where(mark: Any) -> str:
    return f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""


def load_yaml_text(text: str, source: str = "<text>") -> Any:
    """Parse one YAML (or JSON) document from `text`; errors name `source` and line:column."""
    if text.startswith("\ufeff"):
        text = text[1:]
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


def read_text_file(path: str | Path, what: str = "file", max_bytes: int = MAX_BYTES) -> str:
    """Read a UTF-8 text file (BOM skipped); every failure is a YamlFileError naming the path."""
    p = Path(path)
    name = str(path) or "''"
    try:
        if str(path) == "":
            raise YamlFileError(f"{name}: empty path given for the {what}")
        if p.is_dir():
            raise YamlFileError(f"{name}: is a directory, expected a {what}")
        if not p.exists():
            if p.is_symlink():
                raise YamlFileError(f"{name}: a symbolic link that cannot be resolved (dangling or a loop)")
            raise YamlFileError(f"{name}: no such {what}")
        size = p.stat().st_size
        if size > max_bytes:
            raise YamlFileError(f"{name}: {size} bytes; the limit for a {what} is {max_bytes} bytes")
        data = p.read_bytes()
    except YamlFileError:
        raise
    except RuntimeError as err:  # pathlib on a symlink loop (older Pythons)
        raise YamlFileError(f"{name}: cannot read: {err}") from None
    except OSError as err:
        raise YamlFileError(f"{name}: cannot read: {err.strerror or err}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise YamlFileError(f"{name}: not UTF-8 text (byte {err.start}: {data[err.start:err.start + 1]!r})") from None
    return text[1:] if text.startswith("\ufeff") else text


def load_yaml_file(path: str | Path, what: str = "YAML file") -> Any:
    """Read and parse one YAML/JSON file safely (see the module docstring)."""
    return load_yaml_text(read_text_file(path, what), str(path))


def finite_number(value: Any, where: str, positive: bool = False) -> float:
    """`value` as a finite float (not bool); `positive` also requires > 0. Errors name `where`."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise YamlFileError(f"{where}: expected a number, got {value!r}")
    if not math.isfinite(value):
        raise YamlFileError(f"{where}: expected a finite number, got {value!r}")
    if positive and value <= 0:
        raise YamlFileError(f"{where}: expected a positive number, got {value!r}")
    return float(value)
