"""`cascadesim kernel`: writes a module, refuses with one line (exit 3), rejects bad input (exit 2).
Generating needs neither torch nor triton."""
import ast

import pytest

from studies.cli import main


def test_writes_a_module(tmp_path, capsys):
    out = tmp_path / "kernel.py"
    assert main(["kernel", "attention_sliding_window", "-o", str(out), "--block-m", "32", "--block-n", "16",
                 "--dtype", "bf16", "--kv-heads", "2"]) == 0
    text = out.read_text()
    ast.parse(text)
    assert "def run(" in text and "KV_HEADS = 2" in text and "BLOCK_M, BLOCK_N = 32, 16" in text
    assert "# QK[m, p] = Q[e, p] * K[e, m] where -W + p < m and m <= p" in text
    line = capsys.readouterr().out
    assert line.startswith(f"wrote {out}: attention_sliding_window (fused: 3 -> 1 passes), 1 kernel(s)")


def test_prints_without_output(capsys):
    assert main(["kernel", "linear", "--dtype", "fp32"]) == 0
    text = capsys.readouterr().out
    assert text.startswith('"""Triton kernels of the cascade linear') and "@triton.jit" in text


def test_refusal_is_one_line_naming_the_einsum(capsys):
    assert main(["kernel", "selective_scan"]) == 3
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and out.startswith("refused: selective_scan: H: its state is indexed by d")


@pytest.mark.parametrize("argv, words", [
    (["kernel", "no_such_cascade"], "FILE"),
    (["kernel", "attention_3pass", "--rank", "Z"], "--rank Z"),
])
def test_bad_input_exits_2(argv, words, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert words in err and err.count("\n") == 1


@pytest.mark.parametrize("option, value, words", [("--block-n", "24", "power of two"), ("--kv-heads", "0", "positive")])
def test_bad_option_exits_2(option, value, words, capsys):
    with pytest.raises(SystemExit) as info:
        main(["kernel", "attention_3pass", option, value])
    assert info.value.code == 2
    assert words in capsys.readouterr().err.splitlines()[-1]
