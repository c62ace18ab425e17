"""The core install is enough for `analyze`, `eval`, `fuse` and `simulate`: each runs with every
package of the extras ([reports], [dse], [gpu], [test]) made unimportable."""
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXTRAS = ("matplotlib", "pandas", "pyarrow", "scipy", "tqdm", "dask", "distributed", "torch", "triton",
          "simpy", "pytest", "hypothesis")
PROBE = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {extras!r}:
            raise ImportError(f"{{name}} is not in the core install")
sys.meta_path.insert(0, Block())
for name in [m for m in sys.modules if m.split(".")[0] in {extras!r}]:
    del sys.modules[name]
from studies.cli import main
sys.exit(main({argv!r}))
"""


@pytest.mark.parametrize("argv", [
    ["analyze", "attention_3pass", "--size", "M=64", "P=64", "E=8", "F=8"],
    ["eval", "attention_1pass", "--size", "M=8", "P=4", "E=2", "F=2", "M0=4"],
    ["fuse", "attention_3pass"],
    ["simulate", "attention_1pass", "--arch", "fusemax-cloud", "--mapping", "fusemax", "--size", "M=4K", "E=64", "F=64"],
    ["simulate", "attention_3pass", "--arch", "spu-cheetah", "--size", "M=128", "E=64", "F=64"],
])
def test_command_runs_on_the_core_install(argv):
    out = subprocess.run([sys.executable, "-c", PROBE.format(extras=EXTRAS, argv=argv)], cwd=ROOT,
                         capture_output=True, text=True, env={"PYTHONPATH": str(ROOT)}, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip()
