"""Imports go one way: the input-error base imports nothing of the project, archsim and
einsum_cascade import nothing of each other (so the base cannot live in either without one of them
depending on the other), and importing the base loads no sympy."""
import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIRST_PARTY = {p.name for p in ROOT.iterdir() if (p / "__init__.py").is_file()} | {"cascadesim_errors"}


def _imports(path: Path) -> list[tuple[str, bool]]:
    """(first-party top-level name, whether the import is at module level) of each import in `path`."""
    tree = ast.parse(path.read_text())
    top = {id(node) for node in tree.body}
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name.split(".")[0] for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module.split(".")[0]]
        else:
            continue
        out += [(n, id(node) in top) for n in names if n in FIRST_PARTY]
    return out


def _package_imports(package: str) -> dict[str, set[tuple[str, bool]]]:
    return {str(p.relative_to(ROOT)): set(_imports(p)) for p in (ROOT / package).rglob("*.py")}


def test_the_error_base_imports_nothing_of_the_project():
    assert _imports(ROOT / "cascadesim_errors.py") == []


def test_archsim_imports_nothing_of_the_cascades_the_mappings_or_the_studies():
    bad = {f: names for f, names in _package_imports("archsim").items()
           if {n for n, _ in names} & {"einsum_cascade", "mappings", "studies"}}
    assert bad == {}


def test_einsum_cascade_imports_no_hardware_at_module_level():
    """The language knows nothing of hardware; only the fusion certificate's optional simulation
    (einsum_cascade/fuse/certify.py) calls mappings, from inside a function."""
    bad = {f: names for f, names in _package_imports("einsum_cascade").items()
           if any(n in {"archsim", "mappings", "studies"} and (top or f != "einsum_cascade/fuse/certify.py")
                  for n, top in names)}
    assert bad == {}


def test_the_error_base_loads_without_sympy():
    code = "import sys, cascadesim_errors, archsim.errors; print('sympy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
