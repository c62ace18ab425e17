"""The FILE argument of the commands: a `.cascade` path, or the name of a library cascade
(`attention_1pass`) or of a building block (`layernorm`, also `blocks/layernorm`)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from studies.errors import UsageError

if TYPE_CHECKING:  # imported when the command runs, not to build the parser
    import einsum_cascade as ec

MAX_CASCADE_BYTES = 16 * 1024 * 1024  # larger cascade files are refused


def _is_path(arg: str) -> bool:
    """Whether `arg` names something on disk (a symlink loop or a dangling link counts)."""
    return os.path.lexists(arg) or arg.endswith(".cascade") or (os.sep in arg and not arg.startswith("blocks/"))


def load_cascade(arg: str, what: str = "FILE") -> ec.Cascade:
    """Parse `arg` as a file if it names one (or ends in .cascade), else as a library or block name.

    Every failure is one UsageError or CascadeError naming the argument or the file."""
    import einsum_cascade as ec
    from archsim.yamlio import YamlFileError, read_text_file

    if arg.strip() == "":
        raise UsageError(f"{what}: empty; give a .cascade file or a library cascade name")
    if _is_path(arg):
        try:
            text = read_text_file(arg, "cascade file", MAX_CASCADE_BYTES)
        except YamlFileError as err:
            raise UsageError(f"{what}: {err}") from None
        try:
            return ec.parse(text, str(Path(arg)))
        except RecursionError:  # a parser without its own depth limit
            raise ec.CascadeError("expressions nested too deeply", str(Path(arg))) from None
    stem = arg.removeprefix("blocks/")
    if stem in ec.library_names():
        return ec.load_library(stem)
    if stem in ec.block_names():
        return ec.load(ec.library_path(stem))
    raise UsageError(f"{what}: '{arg}' is neither a file nor a library cascade "
                     f"(library: {', '.join(ec.library_names())}; blocks: {', '.join(ec.block_names())})")
