"""The committed reports of the studies say nothing of the machine that wrote them: no absolute paths
(a library cascade is named by its name, not by where this checkout keeps it)."""
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ABSOLUTE = re.compile(r"(?<![\w.~])/(?:work|tmp|home|Users|root)/")


@pytest.mark.parametrize("report", ["taxonomy", "pareto", "private-inference", "fusemax-vs-flat", "gpu-crossval", "llm", "cascades"])
def test_a_committed_report_holds_no_absolute_path(report):
    for path in sorted((ROOT / "reports" / report).glob("*")):
        if path.suffix in (".md", ".json", ".csv"):
            hits = [line for line in path.read_text().splitlines() if ABSOLUTE.search(line)]
            assert hits == [], f"{path.relative_to(ROOT)}: {hits[0][:200]}"
