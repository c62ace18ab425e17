"""The model fingerprint covers every package that the model's code imports."""
import ast
from pathlib import Path

from studies.fingerprint import MODEL_PACKAGES, ROOT

FIRST_PARTY = {p.name for p in ROOT.iterdir() if (p / "__init__.py").is_file()}
NO_NUMBERS = {"cascadesim_errors"}  # error messages only


def _imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_every_package_the_model_imports_is_fingerprinted():
    imported = set()
    for package in MODEL_PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            imported |= _imported_packages(path) & (FIRST_PARTY | NO_NUMBERS)
    assert "studies" not in imported  # the model never depends on the studies
    assert imported - NO_NUMBERS <= set(MODEL_PACKAGES)
