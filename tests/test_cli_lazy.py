"""The command line starts without the packages: building the parser and `--help` import no
heavy library, and input errors are still recognised by class once their module is imported."""
import subprocess
import sys
from pathlib import Path

import pytest

from studies import cli

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("sympy", "numpy", "scipy", "networkx", "matplotlib", "simpy", "pandas", "torch", "yaml",
         "einsum_cascade", "archsim", "mappings")
PROBE = """
import sys
import studies.cli
{action}
print(",".join(m for m in {heavy!r} if m in sys.modules))
"""


@pytest.mark.parametrize("action", [
    "studies.cli.build_parser()",
    "import contextlib, io\nwith contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
    "    studies.cli.main(['--help'])",
    "import contextlib, io\nwith contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
    "    studies.cli.main(['pi', '--help'])",
])
def test_parser_imports_nothing_heavy(action):
    out = subprocess.run([sys.executable, "-c", PROBE.format(action=action, heavy=HEAVY)], cwd=ROOT,
                         capture_output=True, text=True, check=True, env={"PYTHONPATH": str(ROOT)})
    assert out.stdout.strip() == ""


def test_subcommand_help_still_complete(capsys):
    """`pi model --help` adds its arguments when asked: the variants of the decoder model are listed."""
    from mappings.secure_transformer import VARIANTS
    with pytest.raises(SystemExit):
        cli.main(["pi", "model", "--help"])
    text = capsys.readouterr().out
    assert "--layers" in text and all(v in text for v in VARIANTS)


def test_every_input_error_is_one_line():
    """Every class of INPUT_ERRORS (resolved lazily) gives a one-line message; other errors none."""
    from einsum_cascade.errors import CascadeError
    assert len(cli.INPUT_ERRORS) == len(cli.INPUT_ERROR_NAMES)
    for cls in cli.INPUT_ERRORS:
        err = cls.__new__(cls)
        Exception.__init__(err, "bad field x")
        assert cli.one_line(err) is not None and "\n" not in cli.one_line(err)
    assert cli.one_line(CascadeError("bad token", "x.cascade", 3, 4)) == "cascadesim: x.cascade:3:4: bad token"
    assert cli.one_line(ZeroDivisionError("a bug")) is None
    assert cli.one_line(KeyError("a bug")) is None
