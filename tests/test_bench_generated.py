"""The GPU benchmark's generated modules: generated where they run, never committed; where the
generator does not import, the modules `--write-modules` wrote into the build folder serve."""
from __future__ import annotations

import os

os.environ["TRITON_INTERPRET"] = "1"  # before triton is imported: the kernels run on the CPU

import pytest  # noqa: E402

pytest.importorskip("torch", reason="torch (the `gpu` extra) is not installed")
pytest.importorskip("triton", reason="triton (the `gpu` extra) is not installed")

from gpu_ref import bench_generated as bg  # noqa: E402
from gpu_ref.codegen import generate  # noqa: E402


def test_write_modules_writes_the_gpu_tiles_of_every_case(tmp_path):
    written = bg.write_modules(tmp_path, dtypes=("bf16",))
    assert sorted(p.name for p in written) == sorted(f"{case}_bf16.py" for case in bg.CASES)
    assert bg.TILES["cuda"] == (128, 64)
    text = generate(bg.case_cascade("causal"), block_m=128, block_n=64, dtype="bf16").source
    assert (tmp_path / "causal_bf16.py").read_text() == text


def test_without_the_generator_the_written_module_is_loaded(tmp_path, monkeypatch):
    monkeypatch.setattr(bg, "MODULES", tmp_path / "gpu-kernels")
    bg.write_modules(dtypes=("fp16",))

    def no_generator(*args, **kwargs):
        raise ModuleNotFoundError("No module named 'sympy'")

    monkeypatch.setattr(bg, "write_module", no_generator)
    module = bg.load_generated("dense", "fp16", "cuda", tmp_path / "run")
    assert module.__file__ == str(tmp_path / "gpu-kernels" / "dense_fp16.py")
    assert str(module.DTYPE) == "torch.float16"
    with pytest.raises(FileNotFoundError, match="--write-modules"):  # none written for bf16
        bg.load_generated("dense", "bf16", "cuda", tmp_path / "run")
    with pytest.raises(FileNotFoundError, match="--write-modules"):  # the CPU run never uses GPU tiles
        bg.load_generated("dense", "fp16", "cpu", tmp_path / "run")


def test_the_generated_modules_are_not_committed():
    """gpu_ref/ holds no generator output: the modules are written under the ignored build/ folder."""
    root = bg.MODULES.parents[1]
    assert bg.MODULES.relative_to(root).parts[0] == "build"
    assert "build/" in (root / ".gitignore").read_text().split()
    assert not list((root / "gpu_ref").rglob("*_bf16.py")) and not list((root / "gpu_ref").rglob("*_fp16.py"))
