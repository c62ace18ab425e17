"""Parser: accepted syntax, and every error class with its exact line and column."""
from __future__ import annotations

import pytest
import sympy
from hypothesis import given, settings
from hypothesis import strategies as st

import einsum_cascade as ec
from einsum_cascade.ast import Access, Reduce, var_symbol

HEADER = "rank E, F, M, P\ninput Q[e,p], K[e,m], V[f,m]\noutput AV\n"


def test_doc_example_parses_with_structure():
    c = ec.parse(
        "cascade attention_3pass\n" + HEADER
        + "QK[m,p] = Q[e,p] * K[e,m]\nGM[p] = max(m: QK[m,p])\nSN[m,p] = exp(QK[m,p] - GM[p])\n"
        "SD[p] = sum(m: SN[m,p])\nA[m,p] = SN[m,p] / SD[p]\nAV[f,p] = A[m,p] * V[f,m]\n"
    )
    assert c.name == "attention_3pass"
    assert [e.name for e in c.einsums] == ["QK", "GM", "SN", "SD", "A", "AV"]
    assert c.einsum("QK").implicit_vars == {"e"}
    assert c.einsum("GM").reduced_vars == {"m"} and c.einsum("GM").implicit_vars == set()
    assert isinstance(c.einsum("GM").expr, Reduce)
    assert set(c.graph.predecessors("SN")) == {"QK", "GM"}


def test_partitioned_rank_affine_index_and_recurrence():
    c = ec.parse(
        "rank E, P\nrank M = M1 * M0\ninput Q[e,p], K[e,m]\noutput RM\n"
        "BK[e,m1,m0] = K[e, m1*M0 + m0]\n"
        "LM[m1,p] = max(m0: Q[e,p] * BK[e,m1,m0])\n"
        "RM[0,p] = -inf\nRM[m1+1,p] = max(RM[m1,p], LM[m1,p])\n"
    )
    assert c.var_rank == {"e": "E", "p": "P", "m": "M", "m1": "M1", "m0": "M0"}
    access = c.einsum("BK").reads[0]
    assert isinstance(access, Access)
    assert sympy.expand(access.indices[1] - var_symbol("m1") * sympy.Symbol("M0", positive=True)
                        - var_symbol("m0")) == 0
    assert c.tensors["RM"] == ec.Tensor("RM", 2, "output", 0)
    assert c.tensors["K"].role == "input" and c.tensors["BK"].role == "intermediate"
    rm = c.einsum("RM")
    assert rm.iterative_var == "m1" and c.initial("RM").is_initial
    assert c.graph.edges["RM", "RM"]["delayed"] is True


ERRORS = [
    # (text, line, col, words in the message)
    (HEADER + "X[m,p] = foo(Q[e,p])\n", 4, 10, "unknown function 'foo'"),
    (HEADER + "X[m,p] = Z[m,p]\n", 4, 10, "unknown tensor 'Z'"),
    (HEADER + "X[m,p] = Q[e,p] * K[e,x]\n", 4, 23, "rank variable 'x' is not declared"),
    (HEADER + "X[m,p] = Q[e,p] * K[e]\n", 4, 19, "has 1 indices here but 2"),
    (HEADER + "X[m,p] = Q[e,p]\nX[m,p] = K[e,m]\n", 5, 1, "defined twice"),
    (HEADER + "X[p] = Y[p]\nY[p] = Q[e,p]\n", 4, 8, "used before its definition"),
    (HEADER + "R[m+1,p] = R[m,p] + Q[e,p]\n", 4, 1, "no initial value"),
    (HEADER + "X[m,p] = Q[e,p] * K[e,m] where m * p < 3\n", 4, 32, "not affine"),
    (HEADER + "X[m,p] = Q[e,p] * K[e,m] where exp(m) < 3\n", 4, 32, "not affine"),
    (HEADER + "X[m,p] = Q[e, m*p]\n", 4, 15, "not affine"),
    (HEADER + "X[m,p] = Q[e,p] $ K[e,m]\n", 4, 17, "unexpected character '$'"),
    (HEADER + "X[m,p] = (Q[e,p]\n", 4, 17, "expected ')'"),
    ("rank E\ninput Q[e]\noutput Q\nrank m\n", 4, 6, "upper-case"),
    (HEADER + "Q[e,p] = K[e,p]\n", 4, 1, "is an input"),
    (HEADER + "X[m,-p] = K[e,m]\n", 4, 2, "can be negative"),
    (HEADER + "X[m,p] = sum(Q[e,p])\n", 4, 10, "needs its variables"),
    (HEADER + "X[m,p] = exp(Q[e,p], K[e,m])\n", 4, 10, "takes 1 argument"),
    ("rank E\ninput Q[e]\noutput Z\n", 3, 8, "output 'Z' is never defined"),
]


@pytest.mark.parametrize("text,line,col,words", ERRORS)
def test_errors_carry_line_and_column(text, line, col, words):
    with pytest.raises(ec.CascadeError) as info:
        ec.parse(text, "bad.cascade")
    err = info.value
    assert (err.file, err.line, err.col) == ("bad.cascade", line, col), str(err)
    assert words in err.message
    assert str(err).startswith(f"bad.cascade:{line}:{col}: ")


def test_cycle_is_an_error_but_a_recurrence_is_not():
    # A cycle through current-step reads only: X reads R[m+1] (defined later), R reads X.
    text = ("rank M, P\ninput Q[m,p]\noutput R\nR[0,p] = 0\nX[m,p] = R[m+1,p] * 2\n"
            "R[m+1,p] = X[m,p] + Q[m,p]\n")
    with pytest.raises(ec.CascadeError) as info:
        ec.parse(text, "cyc.cascade")
    assert "cycle" in info.value.message and info.value.line == 5
    ok = "rank M, P\ninput Q[m,p]\noutput R\nR[0,p] = 0\nR[m+1,p] = R[m,p] + Q[m,p]\n"
    assert ec.parse(ok).einsum("R").iterative_var == "m"


def test_load_names_the_file(tmp_path):
    path = tmp_path / "x.cascade"
    path.write_text(HEADER + "AV[f,p] = V[f,m] * nope[m,p]\n")
    with pytest.raises(ec.CascadeError) as info:
        ec.load(path)
    assert info.value.file == str(path) and info.value.line == 4 and info.value.col == 20


# -- property tests: random well-formed cascades parse; random bytes only raise CascadeError --
_FUNCS = ["exp", "relu", "sigmoid", "tanh", "square", "abs"]


@st.composite
def well_formed_with_passes(draw):
    """A small random cascade over ranks E, M, P with a chain of Einsums, and its passes over M
    derived independently of einsum_cascade from the generator's own bookkeeping.

    The derivation (the pass rule of docs/cascade-language.md, restated on what the generator
    wrote): a tensor whose indices keep m is streamed, else global; `done[T]` is the pass in which
    T streams or at whose end it is complete (A[e,m] streams in pass 1, B[e,p] is there at 0). An
    Einsum that iterates over m (m among its output or reduced variables) runs in
    max(1, done of streamed reads, 1 + done of global reads that took a pass); one that does not
    is done when its last read is."""
    lines = ["rank E, M, P", "input A[e,m], B[e,p]"]
    tensors = {"A": ("e", "m"), "B": ("e", "p")}
    done = {"A": 1, "B": 0}
    passes = 0
    count = draw(st.integers(1, 5))
    for i in range(count):
        name = f"T{i}"
        left, right = draw(st.sampled_from(sorted(tensors))), draw(st.sampled_from(sorted(tensors)))
        out = draw(st.sampled_from([("m", "p"), ("p",), ("m",), ("e", "p")]))
        kind = draw(st.integers(0, 3))
        l_ix, r_ix = ",".join(tensors[left]), ",".join(tensors[right])
        if kind == 0:
            expr = f"{left}[{l_ix}] * {right}[{r_ix}]"
        elif kind == 1:
            expr = f"{draw(st.sampled_from(_FUNCS))}({left}[{l_ix}] - {right}[{r_ix}])"
        elif kind == 2:
            var = draw(st.sampled_from(tensors[left]))
            expr = f"max({var}: {left}[{l_ix}]) + {right}[{r_ix}]"
        else:
            expr = f"{left}[{l_ix}] / (1 + square({right}[{r_ix}]))"
        free = set(tensors[left]) | set(tensors[right])
        if "e" in out and "e" not in free:
            out = ("p",)
        where = " where m <= p" if draw(st.booleans()) and {"m", "p"} <= set(out) else ""
        lines.append(f"{name}[{','.join(out)}] = {expr}{where}")
        reads = {left, right}
        if "m" in free | set(out):  # iterates over m
            run = max([1] + [done[t] if "m" in tensors[t] else done[t] + 1 for t in reads])
            passes = max(passes, run)
            done[name] = run
        else:
            done[name] = max(done[t] for t in reads)
        tensors[name] = out
    lines.append(f"output T{count - 1}")
    return "\n".join(lines) + "\n", passes


def well_formed():
    return well_formed_with_passes().map(lambda pair: pair[0])


@settings(max_examples=60, deadline=None)
@given(well_formed_with_passes())
def test_random_well_formed_cascades_parse_and_analyse(case):
    text, expected_passes = case
    c = ec.parse(text)
    assert ec.passes(c, "M").passes == expected_passes, text
    ec.cost(c)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_raise_only_cascade_error(data):
    text = data.decode("utf-8", errors="replace")
    try:
        ec.parse(text, "fuzz.cascade")
    except ec.CascadeError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="rankinputoutwhere QKVMEPmepf[],:=+-*/()<>!#0123456789\n.infsumaxd", max_size=160))
def test_random_token_soup_raises_only_cascade_error(text):
    try:
        ec.parse(text, "fuzz.cascade")
    except ec.CascadeError:
        pass


@settings(max_examples=40, deadline=None)
@given(well_formed())
def test_random_well_formed_cascades_evaluate_to_declared_shapes(text):
    import numpy as np

    c = ec.parse(text)
    rng = np.random.default_rng(0)
    inputs = {"A": rng.standard_normal((3, 4)), "B": rng.standard_normal((3, 5))}
    out = c.evaluate(inputs)
    sizes = c.bind_sizes(inputs)
    for name, value in out.items():
        assert value.shape == c.tensor_shape(name, sizes)
