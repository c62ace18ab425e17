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
    from mappings.targets.private_inference.decoder import VARIANTS
    with pytest.raises(SystemExit):
        cli.main(["pi", "model", "--help"])
    text = capsys.readouterr().out
    assert "--layers" in text and all(v in text for v in VARIANTS)


# every class of bad-input error in the packages, as (module, class): each must derive from the base
INPUT_ERROR_CLASSES = (
    ("einsum_cascade.errors", "CascadeError"), ("studies.errors", "UsageError"), ("archsim.errors", "ArchError"),
    ("archsim.errors", "ScheduleError"), ("archsim.gpu.specs", "GPUConfigError"),
    ("mappings.targets.private_inference.profiles", "ProfileError"), ("mappings.targets.private_inference.decoder", "DecoderConfigError"),
    ("mappings.work", "MappingError"), ("mappings.spec", "SpecError"), ("mappings.looptree.tree", "LoopTreeError"),
    ("mappings.workload", "WorkloadError"),
    ("archsim.yamlio", "YamlFileError"), ("studies.sweep.spec", "SweepSpecError"),
    ("mappings.gpu_observations", "MeasurementError"), ("gpu_ref.bench", "BenchFileError"),
)


@pytest.mark.parametrize("module, name", INPUT_ERROR_CLASSES)
def test_every_input_error_derives_from_the_base_and_is_one_line(module, name):
    """The CLI recognises an input error by its base class alone: one line, whatever the class."""
    import importlib

    cls = getattr(importlib.import_module(module), name)
    assert issubclass(cls, cli.InputError)
    err = cls.__new__(cls)
    Exception.__init__(err, "bad field x")
    err.message, err.file, err.line, err.col, err.field = "bad field x", None, 0, 0, None
    assert cli.one_line(err) == "cascadesim: error: bad field x"


def test_input_error_message_names_file_line_column_and_field():
    from einsum_cascade.errors import CascadeError

    assert cli.one_line(CascadeError("bad token", "x.cascade", 3, 4)) == "cascadesim: error: x.cascade:3:4: bad token"
    assert cli.one_line(cli.InputError("not a number", file="s.yaml", line=2, col=7, field="vary.d[0]")) == \
        "cascadesim: error: s.yaml:2:7: vary.d[0]: not a number"
    assert cli.one_line(cli.InputError("expected a mapping", file="a.yaml")) == "cascadesim: error: a.yaml: expected a mapping"
    assert cli.one_line(ZeroDivisionError("a bug")) is None
    assert cli.one_line(KeyError("a bug")) is None


def test_input_errors_survive_a_process_boundary():
    """Sweep workers send errors back pickled: a subclass with its own constructor round-trips."""
    import pickle

    from archsim.errors import ArchError

    err = pickle.loads(pickle.dumps(ArchError("a.yaml", "pe.rows", "must be positive")))
    assert isinstance(err, ArchError) and str(err) == "a.yaml: pe.rows: must be positive"
