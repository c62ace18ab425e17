"""Write tests/fuzz_corpus/cases.json: bad inputs to the command line, each with the exit status and
a fragment of the one-line message a careful front end gives (written here by hand per kind of
input, not recorded from the program). Run `python tests/fuzz_corpus/make_corpus.py` after editing.

In argv and messages `{dir}` is the folder the case's files are written to.
"""
from __future__ import annotations

import base64
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LIBRARY = ROOT / "einsum_cascade" / "library"
OUT = Path(__file__).resolve().parent / "cases.json"

cases: list[dict] = []


def case(kind: str, argv: list[str], exit_status: int, message: str, files: dict | None = None) -> None:
    cases.append({"id": f"{kind}-{sum(c['kind'] == kind for c in cases) + 1:03d}", "kind": kind,
                  "argv": argv, "files": files or {}, "exit": exit_status, "message": message})


def text(t: str) -> dict:
    return {"text": t}


def raw(b: bytes) -> dict:
    return {"bytes_b64": base64.b64encode(b).decode()}


SMALL = "rank M, P\ninput Q[m,p]\noutput Y\nY[p] = sum(m: Q[m,p])\n"
SIZES = ["E=8", "F=8", "M=16", "P=16", "M0=4"]

# -- 1. cascade text: an '@' (not a character of the language) in a statement of every library file --
for path in sorted(LIBRARY.glob("*.cascade")) + sorted((LIBRARY / "blocks").glob("*.cascade")):
    lines = path.read_text().splitlines()
    statements = [i for i, line in enumerate(lines) if line.strip() and not line.lstrip().startswith("#")
                  and "#" not in line]
    picks = {statements[0], statements[len(statements) // 2], statements[-1]}
    for i in sorted(picks):
        start = list(lines)
        start[i] = "@" + start[i]
        case("cascade-char", ["analyze", f"{{dir}}/{path.stem}.cascade"], 2,
             f"{{dir}}/{path.stem}.cascade:{i + 1}:1: unexpected character '@'",
             {f"{path.stem}.cascade": text("\n".join(start) + "\n")})
        end = list(lines)
        end[i] = end[i] + " @"
        case("cascade-char", ["analyze", f"{{dir}}/{path.stem}.cascade"], 2,
             f"{{dir}}/{path.stem}.cascade:{i + 1}:{len(lines[i]) + 2}: unexpected character '@'",
             {f"{path.stem}.cascade": text("\n".join(end) + "\n")})

# -- 2. cascade files that are not cascades --------------------------------------------------
for name, content, message in [
    ("empty.cascade", text(""), "empty cascade"),
    ("comments.cascade", text("# only a comment\n\n"), "empty cascade"),
    ("utf16.cascade", raw("rank M\n".encode("utf-16")), "not UTF-8"),
    ("fffe.cascade", raw(b"\xff\xfe"), "not UTF-8"),
    ("latin1.cascade", raw("rank M  # caf\xe9\n".encode("latin-1")), "not UTF-8"),
    ("nul.cascade", raw(b"rank M\x00\n"), "nul.cascade:1"),
]:
    case("cascade-file", ["analyze", f"{{dir}}/{name}"], 2, message, {name: content})
for cmd in (["analyze"], ["eval"], ["pi", "cascade"]):
    case("cascade-file", [*cmd, "{dir}/fffe.cascade"], 2, "{dir}/fffe.cascade: not UTF-8", {"fffe.cascade": raw(b"\xff\xfe")})

# -- 3. paths ---------------------------------------------------------------------------------
for cmd in (["analyze"], ["eval"], ["pi", "cascade"]):
    case("path", [*cmd, "{dir}"], 2, "{dir}: is a directory")
    case("path", [*cmd, ""], 2, "FILE: empty")
    case("path", [*cmd, "{dir}/loop.cascade"], 2, "{dir}/loop.cascade: a symbolic link that cannot be resolved",
         {"loop.cascade": {"symlink": "{dir}/loop.cascade"}})
    case("path", [*cmd, "{dir}/missing.cascade"], 2, "{dir}/missing.cascade: no such cascade file")
    case("path", [*cmd, "no_such_cascade"], 2, "'no_such_cascade' is neither a file nor a library cascade")
    case("path", [*cmd, "{dir}/dangling.cascade"], 2, "{dir}/dangling.cascade: a symbolic link that cannot be resolved",
         {"dangling.cascade": {"symlink": "{dir}/nowhere"}})
case("path", ["eval", "attention_3pass", "--size", "M=4", "P=4", "E=2", "F=2", "--check-against", "{dir}"], 2,
     "{dir}: is a directory")
for argv in (["report", "--out", "{dir}/file"], ["study", "pareto", "--out", "{dir}/file"],
             ["study", "private-inference", "--out", "{dir}/file"], ["study", "fusemax-vs-flat", "--out", "{dir}/file"],
             ["study", "gpu-crossval", "--out", "{dir}/file"]):
    case("path", argv, 2, "--out {dir}/file: exists and is not a folder", {"file": text("x\n")})
    case("path", [*argv[:-1], ""], 2, "--out: empty")

# -- 4. sizes ---------------------------------------------------------------------------------
BAD_SIZE_TEXT = ["M", "M=", "=4", "M=abc", "M=4KB", "M=0x10", "M=inf", "M=nan", "M==4", "4=M", "M=1_000",
                 "M=4 4", "M=--4", "M=4e", "M=.", "M=1e", "Ω=4"]
for cmd in (["analyze", "attention_3pass"], ["eval", "attention_3pass"], ["pi", "cascade", "attention_3pass"]):
    for bad in BAD_SIZE_TEXT:
        case("size-text", [*cmd, "--size", bad], 2, "--size: expected NAME=NUMBER")
    case("size-range", [*cmd, "--size", "M=1e400"], 2, "--size M: 1e400 is out of range")
    case("size-range", [*cmd, "--size", "M=1e31"], 2, "--size M: 1e31 is out of range")
    case("size-twice", [*cmd, "--size", "M=4", "M=8"], 2, "--size: M is given twice (M=4 and M=8)")
    case("size-twice", [*cmd, "--size", "M=4,E=2", "--size", "E=3"], 2, "--size: E is given twice (E=2 and E=3)")
for cmd, extra in ((["analyze", "attention_3pass"], []), (["eval", "attention_3pass"], []),
                   (["pi", "cascade", "attention_3pass"], [])):
    for value in ("-1", "0", "2.5", "-4K", "1e-3"):
        exit_status = 2
        case("size-value", [*cmd, "--size", f"M={value}", "P=4", "E=2", "F=2", *extra], exit_status,
             "must be a positive integer")
case("size-value", ["analyze", "attention_1pass", "--size", "M=64", "P=64", "E=2", "F=2", "M0=0"], 2,
     "size M0 = 0 must be a positive integer")
case("size-value", ["analyze", "attention_1pass", "--size", "M=64", "P=64", "E=2", "F=2", "M0=7"], 2,
     "M = 64 is not divisible by 7")
case("size-missing", ["analyze", "attention_3pass", "--size", "M=4096", "E=64"], 2,
     "sizes 'F', 'P' are not bound (given: E, M); numbers need every size: add --size F=N P=N")
case("size-missing", ["eval", "attention_3pass", "--size", "M=8", "P=8", "E=2"], 2, "size 'F' is not bound")
case("size-missing", ["pi", "cascade", "attention_3pass", "--size", "E=2,M=4"], 2, "sizes 'F', 'P' are not bound")
case("size-unknown", ["analyze", "attention_3pass", "--size", "Z=4"], 2, "unknown size or param 'Z'")
case("size-unknown", ["eval", "attention_3pass", "--size", "Z=4"], 2, "--size: Z is not a size or param")

# -- 5. eval: resource limits, options, non-finite outputs -------------------------------------
for sizes in (["M=1M", "P=1M", "E=64", "F=64"], ["M=1e30", "P=1", "E=1", "F=1"], ["M=64K", "P=64K", "E=1", "F=1"],
              ["M=1M", "P=1", "E=1", "F=1", "--max-memory", "1K"]):
    case("eval-memory", ["eval", "attention_3pass", "--size", *sizes], 2, "--max-memory); use `analyze`")
case("eval-memory", ["eval", "attention_1pass", "--size", "M=1M", "P=1M", "E=64", "F=64", "M0=64"], 2, "needs about")
for bad in ("-1", "x", "1.5", ""):
    case("eval-option", ["eval", "attention_3pass", "--size", "M=4", "P=4", "E=2", "F=2", "--seed", bad], 2,
         "argument --seed: expected an integer >= 0")
for option in ("--rtol", "--atol"):
    for bad in ("nan", "inf", "-1", "x"):
        case("eval-option", ["eval", "attention_3pass", "--size", "M=4", "P=4", "E=2", "F=2", option, bad], 2,
             f"argument {option}: expected a")
for bad in ("0", "x", "-1G", "1T"):
    case("eval-option", ["eval", "attention_3pass", "--size", "M=4", "P=4", "E=2", "F=2", "--max-memory", bad], 2,
         "argument --max-memory: expected")
DIV0 = "cascade div0\nrank E, P\ninput Q[e,p]\noutput D\nB[e,p] = Q[e,p] / 0\nC[p] = sum(e: B[e,p])\nD[p] = C[p] - C[p]\n"
case("eval-nonfinite", ["eval", "{dir}/div0.cascade", "--size", "E=2", "P=3"], 1,
     "{dir}/div0.cascade:5:1: output D has 3 non-finite value(s) of 3; they first appear in Einsum B",
     {"div0.cascade": text(DIV0)})
LOG0 = "rank P\ninput Q[p]\noutput Y\nZ[p] = Q[p] * 0\nY[p] = log(Z[p] * Z[p])\n"
case("eval-nonfinite", ["eval", "{dir}/log0.cascade", "--size", "P=3"], 1, "first appear in Einsum Y",
     {"log0.cascade": text(LOG0)})
EXP = "rank P\ninput Q[p]\noutput Y\nX[p] = exp(exp(exp(Q[p] + 10)))\nY[p] = X[p] - X[p]\n"
case("eval-nonfinite", ["eval", "{dir}/exp.cascade", "--size", "P=4"], 1, "first appear in Einsum X",
     {"exp.cascade": text(EXP)})

# -- 6. private inference: profiles and networks files -----------------------------------------
PI = ["pi", "model", "--layers", "1", "--context", "8"]
LAUGHS = ("name: x\ndescription: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"
          "b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
          "d: [*c, *c, *c, *c, *c, *c, *c, *c, *c]\nops: {}\n")
NET_LAUGHS = ("x: &a [lol, lol, lol, lol]\ny: &b [*a, *a, *a, *a]\n"
              "networks:\n  fast: {bandwidth_mbps: 100, rtt_ms: 1, description: *b}\n")
for option, name in (("--profile", "p.yaml"), ("--networks-file", "n.yaml")):
    for content, message in ((raw(b"\xff\xfe"), "not UTF-8"), (raw("networks: {}\n".encode("utf-16")), "not UTF-8"),
                             (text("a: [\n"), f"{{dir}}/{name}:2:1: invalid YAML"),
                             (text("a: b: c\n"), f"{{dir}}/{name}:1:5: invalid YAML"),
                             (text("\t- x\n"), f"{{dir}}/{name}:1:1: invalid YAML"),
                             (text("[" * 150 + "]" * 150 + "\n"), "nested deeper than 100 levels"),
                             (text(LAUGHS if option == "--profile" else NET_LAUGHS), "YAML aliases (*a) are not allowed"),
                             (text("- 1\n- 2\n"), "expected a mapping"),
                             (text(""), "expected a mapping"),
                             (text("x\n"), "expected a mapping")):
        case("pi-file", [*PI, option, f"{{dir}}/{name}"], 2, message, {name: content})
    case("pi-file", [*PI, option, "{dir}"], 2, "{dir}: is a directory")
    case("pi-file", [*PI, option, "{dir}/missing.yaml"], 2, "{dir}/missing.yaml: no such")
case("pi-file", [*PI, "--networks-file", "{dir}/deep.yaml"], 2, "{dir}/deep.yaml:1:101: nested deeper than 100 levels",
     {"deep.yaml": text("[" * 10000 + "]" * 10000 + "\n")})  # the networks file of 10,000 nested [
case("pi-file", [*PI, "--profile", ""], 2, "backend profile: empty name")
case("pi-file", [*PI, "--profile", "nope"], 2, "unknown backend profile 'nope'")

def loader_says(values: tuple[str, ...], message: str) -> str:
    """What archsim.yamlio says of a non-finite literal among `values` (it is refused when the
    file is read, naming line:column), else `message` (what the file's schema says)."""
    for v in values:
        if v.lstrip("+-") in (".inf", ".nan"):
            return f"non-finite number {v!r}"
        if v == "1e999":
            return "number '1e999' is too large for a float"
    return message


NET = "networks:\n  fast: {{bandwidth_mbps: {bw}, rtt_ms: {rtt}}}\n"
for bw, rtt, message in (("1e999", "1", "bandwidth_mbps': expected a number"), (".inf", "1", "bandwidth_mbps': expected a number"),
                         (".nan", "1", "bandwidth_mbps': expected a number"), ("0", "1", "bandwidth_mbps': must be positive"),
                         ("-5", "1", "bandwidth_mbps': must be positive"), ("fast", "1", "bandwidth_mbps': expected a number"),
                         ("true", "1", "bandwidth_mbps': expected a number"), ("[1]", "1", "bandwidth_mbps': expected a number"),
                         ("100", "-1", "rtt_ms': must be non-negative"), ("100", ".inf", "rtt_ms': expected a number"),
                         ("100", "-.inf", "rtt_ms': expected a number"), ("100", "null", "rtt_ms': expected a number")):
    case("pi-network", [*PI, "--networks-file", "{dir}/n.yaml"], 2,
         loader_says((bw, rtt), f"{{dir}}/n.yaml: field 'networks.fast.{message}"),
         {"n.yaml": text(NET.format(bw=bw, rtt=rtt))})
for content, message in (("networks:\n  fast: {rtt_ms: 1}\n", "missing field 'bandwidth_mbps'"),
                         ("networks:\n  fast: {bandwidth_mbps: 1, rtt_ms: 1, jitter: 2}\n", "unknown field(s) jitter"),
                         ("networks: [1, 2]\n", "field 'networks': expected a mapping"),
                         ("networks:\n  fast: 3\n", "field 'networks.fast': expected a mapping"),
                         ("nets: {}\n", "field 'networks': expected a mapping")):
    case("pi-network", [*PI, "--networks-file", "{dir}/n.yaml"], 2, message, {"n.yaml": text(content)})
case("pi-network", [*PI, "--network", "moon"], 2, "unknown network 'moon' (known: lan")
case("pi-network", [*PI, "--networks-file", "{dir}/n.yaml", "--network", "slow"], 2, "unknown network 'slow'",
     {"n.yaml": text(NET.format(bw="1e3", rtt="1"))})

PROFILE = "name: p\nops:\n  exp: {{bytes_per_element: {b}, rounds: {r}}}\n"
for b, r, message in ((".inf", "1", "ops.exp.bytes_per_element': expected a number"),
                      (".nan", "1", "ops.exp.bytes_per_element': expected a number"),
                      ("-1", "1", "ops.exp.bytes_per_element': must be non-negative"),
                      ("x", "1", "ops.exp.bytes_per_element': expected a number"),
                      ("1", "1.5", "ops.exp.rounds': expected a whole number"),
                      ("1", "-2", "ops.exp.rounds': must be non-negative"),
                      ("1", "1e999", "ops.exp.rounds': expected a number")):
    case("pi-profile", [*PI, "--profile", "{dir}/p.yaml"], 2, loader_says((b, r), f"{{dir}}/p.yaml: field '{message}"),
         {"p.yaml": text(PROFILE.format(b=b, r=r))})
for content, message in (("ops: {}\n", "field 'name': expected a non-empty string"),
                         ("name: p\n", "field 'ops': expected a mapping"),
                         ("name: p\nops:\n  teleport: {bytes_per_element: 1, rounds: 1}\n", "field 'ops.teleport': unknown operation"),
                         ("name: p\nops:\n  exp: {rounds: 1}\n", "missing field 'bytes_per_element'"),
                         ("name: p\nops:\n  exp: {bytes_per_element: 1, rounds: 1, speed: 2}\n", "unknown field(s) speed"),
                         ("name: p\nops: {}\nfixed: {bytes: .inf}\n", "p.yaml:3:16: non-finite number '.inf'"),
                         ("name: p\nops: {}\nfixed: {hours: 1}\n", "field 'fixed': unknown field(s) hours"),
                         ("name: p\nops: {}\n", "operator 'matmul_plain' has no cost in backend profile 'p'")):
    case("pi-profile", [*PI, "--profile", "{dir}/p.yaml"], 2, message, {"p.yaml": text(content)})

# -- 7. private inference: sizes and options ---------------------------------------------------
for value in ("-1", "0", "2.5"):
    case("pi-size", ["pi", "cascade", "attention_3pass", "--size", f"M={value}", "E=4", "F=4", "P=4"], 2,
         f"--size M={value}: a size must be a positive integer")
case("pi-size", ["pi", "cascade", "attention_1pass_causal", "--size", "M=64K", "P=64K", "E=64", "F=64", "M0=64",
                 "--plaintext", "Z"], 2, "plaintext input(s) Z are not inputs")
for option, bad, message in (("--layers", "0", "argument --layers: expected a positive integer, got '0'"),
                             ("--layers", "-3", "argument --layers: expected a positive integer, got '-3'"),
                             ("--layers", "x", "argument --layers: expected a positive integer, got 'x'"),
                             ("--context", "0", "argument --context: expected a positive integer, got '0'"),
                             ("--context", "1.5", "argument --context: expected a positive integer, got '1.5'"),
                             ("--heads", "5", "--heads: 5 does not divide"),
                             ("--d-model", "0", "argument --d-model: expected a positive integer, got '0'"),
                             ("--variant", "SM+XX", "--variant: unknown variant"),
                             ("--attention", "nope", "--attention: unknown library cascade 'nope'"),
                             ("--gelu", "cubic", "argument --gelu: invalid choice")):
    argv = ["pi", "model", "--layers", "1", "--context", "8"]
    if option in ("--layers", "--context"):
        i = argv.index(option)
        argv[i + 1] = bad
    else:
        argv += [option, bad]
    case("pi-option", argv, 2, message)
case("pi-option", ["pi", "model", "--layers", "1"], 2, "the following arguments are required: --context")

# -- 8. studies ---------------------------------------------------------------------------------
for bad, message in (("100", "--contexts 100: the tiled cascades"), ("0", "--contexts: lengths must be positive"),
                     ("-64", "--contexts: lengths must be positive"), ("x", "argument --contexts: invalid int value")):
    case("study", ["study", "private-inference", "--out", "{dir}/out", "--contexts", bad], 2, message)
case("study", ["study", "fusemax-vs-flat", "--out", "{dir}/out", "--accounting", "creative"], 2,
     "argument --accounting: invalid choice")
case("study", ["study", "fusemax-vs-flat", "--out", "{dir}/out", "--lengths", "1X"], 2, "bad sequence length '1X'")
case("study", ["study", "fusemax-vs-flat", "--out", "{dir}/out", "--models", "GPT9"], 2, "unknown model 'GPT9'")
for content, message in ((raw(b"\xff\xfe"), "{dir}/m.json: not UTF-8"), (text("{"), "{dir}/m.json:1:2: invalid YAML"),
                         (text("[" * 5000 + "]" * 5000), "{dir}/m.json:1:101: nested deeper than"),
                         (text("{}"), "field 'schema' must be")):
    case("study", ["study", "gpu-crossval", "--out", "{dir}/out", "--measurements", "{dir}/m.json"], 2, message,
         {"m.json": content})
case("study", ["study", "gpu-crossval", "--out", "{dir}/out", "--measurements", "{dir}"], 2, "--measurements")

# -- 9. analyze options ---------------------------------------------------------------------------
case("analyze-option", ["analyze", "attention_3pass", "--rank", "Z"], 2, "--rank Z: not a rank")
case("analyze-option", ["analyze"], 2, "the following arguments are required: file")
case("analyze-option", ["frobnicate"], 2, "invalid choice: 'frobnicate'")

# -- 10. inputs that must succeed (the front end must not reject them) ---------------------------
case("accepted", ["analyze", "{dir}/bom.cascade"], 0, "", {"bom.cascade": text("\ufeff" + SMALL)})
case("accepted", ["analyze", "layernorm"], 0, "")
case("accepted", ["analyze", "blocks/ffn_gelu"], 0, "")
case("accepted", ["analyze", "attention_3pass", "--size", "M=12345678901234567891", "P=1", "E=1", "F=1"], 0, "")
case("accepted", ["pi", "model", "--layers", "1", "--context", "8", "--networks-file", "{dir}/n.yaml", "--network", "fast"],
     0, "", {"n.yaml": text(NET.format(bw="1e3", rtt="1"))})
case("accepted", ["pi", "cascade", "attention_1pass_causal", "--size", "M=64K", "P=64K", "E=64", "F=64", "M0=64",
                  "--network", "lan"], 0, "")
case("accepted", ["pi", "cascade", "attention_sliding_window", "--size", "M=1M", "P=1M", "E=64", "F=64", "W=256",
                  "--network", "lan"], 0, "")

# -- 11. hardening round 3 (issue 24): YAML scalars, file kinds, physical ranges, mappings, sweeps,
# journals, executors, bounded work. Each message is what the boundary must say, written by hand.
ARCH = (ROOT / "archsim" / "configs" / "fusemax-cloud.yaml").read_text()
SIM = ["simulate", "attention_1pass", "--size", "M=1024", "P=1024", "E=64", "F=64"]


def arch_case(kind: str, old: str, new: str, message: str, extra: list[str] | None = None, status: int = 2) -> None:
    assert old in ARCH, old
    case(kind, [*SIM, "--arch", "{dir}/a.yaml", *(extra or [])], status, message,
         {"a.yaml": text(ARCH.replace(old, new, 1))})


# duplicate keys, on every surface that reads YAML (the last one used to win silently)
arch_case("yaml-dup", "clock_hz: 940000000\n", "clock_hz: 940000000\nclock_hz: 1000\n",
          "{dir}/a.yaml:12:1: duplicate key 'clock_hz' (first given at line 11:1)")
arch_case("yaml-dup", "rows: 256\n", "rows: 256\n    rows: 3\n", "{dir}/a.yaml:18:5: duplicate key 'rows' (first given at line 17:5)")
arch_case("yaml-dup", "{mac: 17.1645,", "{mac: 17.1645, mac: 1,", "{dir}/a.yaml:13:27: duplicate key 'mac' (first given at line 13:13)")
case("yaml-dup", ["pi", "model", "--layers", "1", "--context", "8", "--networks-file", "{dir}/n.yaml"], 2,
     "{dir}/n.yaml:3:3: duplicate key 'fast' (first given at line 2:3)",
     {"n.yaml": text("networks:\n  fast: {bandwidth_mbps: 1, rtt_ms: 1}\n  fast: {bandwidth_mbps: 2, rtt_ms: 1}\n")})
case("yaml-dup", [*SIM, "--arch", "fusemax-cloud", "--mapping", "{dir}/m.yaml"], 2,
     "{dir}/m.yaml:3:1: duplicate key 'tile'", {"m.yaml": text("name: m\ntile: 256\ntile: 512\n")})
# YAML 1.1 scalars that YAML 1.2 reads otherwise
for value, what in (("940:00:00", "a base-60 number"), ("0777", "an octal number"), ("on", "a boolean"),
                    ("1_000_000", "a number with '_' removed"), ("0b101", "a binary number")):
    arch_case("yaml-scalar", "clock_hz: 940000000\n", f"clock_hz: {value}\n",
              f"{{dir}}/a.yaml:11:11: ambiguous value '{value}': YAML 1.1 reads it as {what}")
for value in (".nan", ".inf", "-.inf", ".NaN"):
    arch_case("yaml-nonfinite", "pj_per_byte: 31.2", f"pj_per_byte: {value}", f"non-finite number '{value}'")
arch_case("yaml-nonfinite", "pj_per_byte: 31.2", "pj_per_byte: 1e400", "number '1e400' is too large for a float")
case("yaml-nonfinite", [*SIM, "--arch", "fusemax-cloud", "--mapping", "{dir}/m.yaml"], 2,
     "{dir}/m.yaml:2:13: non-finite number '.nan'", {"m.yaml": text("name: m\nstall: {LM: .nan}\n")})
# not a regular file: refused at once, never read (FIFOs block, /dev/zero never ends)
for option in ("--arch", "--mapping"):
    for path, message, files in (("{dir}/pipe.yaml", "{dir}/pipe.yaml: <file>: is a FIFO (named pipe)" if option == "--arch"
                                  else "{dir}/pipe.yaml: is a FIFO (named pipe)", {"pipe.yaml": {"fifo": True}}),
                                 ("/dev/zero", "/dev/zero: <file>: is a device" if option == "--arch" else
                                  "/dev/zero: is a device", {})):
        argv = [*SIM, "--arch", "fusemax-cloud", "--mapping", "auto"]
        argv[argv.index(option) + 1] = path
        case("file-kind", argv, 2, message, files)
case("file-kind", ["analyze", "{dir}/pipe.cascade"], 2, "{dir}/pipe.cascade: is a FIFO", {"pipe.cascade": {"fifo": True}})
case("file-kind", ["sweep", "{dir}/pipe.yaml", "--out", "{dir}/out"], 2, "{dir}/pipe.yaml: is a FIFO",
     {"pipe.yaml": {"fifo": True}})
case("file-kind", ["sweep", "/dev/zero", "--out", "{dir}/out"], 2, "/dev/zero: is a device")
case("file-kind", ["analyze", "{dir}/big.cascade"], 2, "bytes; the limit for a cascade file is 16777216 bytes",
     {"big.cascade": {"generate": {"head": "", "unit": "# a long comment line\n", "count": 800_000, "tail": "rank M\n"}}})
for name in ("--arch", "--mapping"):  # a 50 MB flow list took minutes to parse: refused by size at once
    argv = [*SIM, "--arch", "fusemax-cloud", "--mapping", "auto"]
    argv[argv.index(name) + 1] = "{dir}/flow.yaml"
    case("file-kind", argv, 2, "characters of YAML; the limit is 1048576" if name == "--mapping" else
         "bytes; the limit for a architecture file is 4194304 bytes",
         {"flow.yaml": {"generate": {"head": "units: [", "unit": "1, ", "count": 400_000 if name == "--mapping"
                                     else 2_000_000, "tail": "1]\n"}}})
# physical ranges: zero where it divides, absurd magnitudes, booleans are not numbers
for old, new, message in (
        ("clock_hz: 940000000", "clock_hz: 0", "clock_hz: input should be greater than or equal to 1000"),
        ("clock_hz: 940000000", "clock_hz: 1.0e+300", "clock_hz: input should be less than or equal to 1000000000000"),
        ("bandwidth_bytes_per_s: 429496729600", "bandwidth_bytes_per_s: 1.0e-300",
         "dram.bandwidth_bytes_per_s: input should be greater than or equal to 1000"),
        ("bandwidth_bytes_per_s: 429496729600", "bandwidth_bytes_per_s: true", "dram.bandwidth_bytes_per_s: input should be a valid number"),
        ("word_bytes: 2", "word_bytes: 4096", "word_bytes: input should be less than or equal to 64"),
        ("word_bytes: 2", "word_bytes: true", "word_bytes: input should be a valid integer"),
        ("rows: 256", "rows: 0", "units.array2d.rows: input should be greater than 0"),
        ("rows: 256", "rows: 1099511627777", "units.array2d.rows: input should be less than or equal to 1099511627776"),
        ("capacity_bytes: 16777216", "capacity_bytes: 1267650600228229401496703205376",
         "buffer.capacity_bytes: input should be less than or equal to 1125899906842624"),
        ("  array1d:\n", "  dram:\n", "units.dram: a unit may not be called 'dram'"),
        ("  array1d:\n", "  buffer:\n", "units.buffer: a unit may not be called 'buffer'")):
    arch_case("arch-range", old, new, message)
# mapping files: every name must exist, booleans are not tiles, variants neither nest nor reverse
MAPS = [("tile: true\n", "{dir}/m.yaml: tile: expected a positive integer or a name, got True"),
        ("variants:\n  - {when: {M: [4096, 1024]}, tile: 64}\n", "variants.0.when: M: a range is [lo, hi] with lo <= hi"),
        ("variants:\n  - {when: {M: 1024}, variants: [{when: {M: 1024}}]}\n", "variants do not nest"),
        ("variants:\n  - {when: {M: 1024}, tiles: 64}\n", "tiles: not a field a variant can set"),
        ("variants:\n  - {when: {Z: 1024}, tile: 64}\n", "variants[0].when.Z: not a size of this cascade"),
        ("variants:\n  - {when: {M: 1024}, tile: true}\n", "variants[0].tile: expected a positive integer"),
        ("stall: {LM: -1}\n", "a stall factor must be in [0, 1000.0]"),
        ("variants:\n  - {when: {}, tile: 64}\n", "a variant needs at least one size")]
for body, message in MAPS:
    case("mapping-file", [*SIM, "--arch", "fusemax-cloud", "--mapping", "{dir}/m.yaml"], 2, message,
         {"m.yaml": text("name: m\n" + body)})
case("mapping-file", [*SIM, "--arch", "fusemax-cloud", "--mapping", "{dir}/m.yaml"], 2,
     "{dir}/m.yaml: query_rank: attention_1pass has no rank 'Q'",
     {"m.yaml": text((ROOT / "mappings" / "specs" / "fusemax.yaml").read_text() + "query_rank: Q\n")})
case("size", [*SIM[:2], "--arch", "fusemax-cloud", "--size", "M=1267650600228229401496703205376", "P=4", "E=4", "F=4"], 2,
     "--size M: 1267650600228229401496703205376 is out of range (sizes and params are at most 1e30)")
# bounded work: sizes the README accepts must not make the mapper search for ever
for size in ("1e30", "1024G"):
    case("accepted", ["simulate", "attention_1pass", "--arch", "fusemax-cloud", "--size", f"M={size}", f"P={size}",
                      "E=64", "F=64"], 0, "")
case("accepted", ["simulate", "attention_1pass", "--arch", "fusemax-cloud", "--size", "M=1e30", "P=1e30", "E=64", "F=64",
                  "--json"], 0, "")
case("eval-steps", ["eval", "selective_scan", "--size", "M=4M", "D=2", "N=2"], 2,
     "its recurrence runs 4194304 steps one by one, more than --max-steps 20000")
case("eval-steps", ["eval", "selective_scan", "--size", "M=64", "D=2", "N=2", "--max-steps", "0"], 2,
     "argument --max-steps: expected a positive integer")
# sweeps: per-cascade sizes, linked fields, every point checked by --dry-run
SW = "name: s\narch: fusemax-template\ncascades: [attention_1pass]\nsizes: {M: 1024, P: same-as-M, E: 64, F: 64}\n"
for body, message in (
        (SW.replace("M: 1024,", "M: 1024, Q: 3,"), "{dir}/s.yaml:4:21: sizes.Q: not a size of any cascade of the sweep"),
        (SW.replace(", F: 64", ""), "cascades[0]: attention_1pass needs F: give it under sizes"),
        (SW.replace("[attention_1pass]", "[attention_1pass, attention_sliding_window]"),
         "cascades[1]: attention_sliding_window needs W: give it under sizes"),
        (SW.replace("[attention_1pass]", "[{cascade: attention_1pass, sizes: {W: 3}}]"),
         "cascades[0].sizes.W: not a size of attention_1pass"),
        (SW.replace("[attention_1pass]", "[3]"), "cascades[0]: expected a cascade name or {cascade: NAME, sizes: {...}}"),
        (SW + "mapping: m.yaml\n", "mapping: invalid mapping file: {dir}/m.yaml: fusion: Input should be 'pass' or 'none'"),
        (SW + "zip:\n  - {d: [64, 128], buffer_bytes: [1048576]}\n", "zip[0]: the lists of a zip group move together"),
        (SW + "zip:\n  - {d: [64], clock: [1]}\n", "zip[0].clock: unknown arch field path"),
        (SW + "vary: {d: [64]}\nderive: {buffer_bytes: \"__import__('os')\"}\n",
         "derive.buffer_bytes: __import__('os'): only numbers, names"),
        (SW + "vary: {d: [64]}\nderive: {buffer_bytes: \"q * 2\"}\n", "derive.buffer_bytes: unknown name(s) q"),
        (SW + "vary: {d: [64]}\nderive: {buffer_bytes: \"d ** 100\"}\n", "exponent 100 is larger than 64"),
        (SW + "vary: {d: [64]}\nderive: {buffer_bytes: \"d - 64\"}\n",
         "derive: at d=64, buffer_bytes=0: invalid architecture"),
        (SW + "vary: {d: [64]}\nderive: {d: \"d\"}\n", "derive.d: 'd' is already a column of the results"),
        (SW + "vary: {d: [64, 128], buffer_bytes: {from: 1, to: 600000, step: 1}}\n",
         "the product has 1200000 points or more, more than 500000"),
        (SW.replace("M: 1024,", "M: 1024, M: 2048,"), "duplicate key 'M'")):
    for extra in ([], ["--dry-run"]):
        case("sweep-spec", ["sweep", "{dir}/s.yaml", "--out", "{dir}/out", *extra], 2, message,
             {"s.yaml": text(body), "m.yaml": text("name: m\nfusion: sideways\n")})
for scheduler, message in (("tls://127.0.0.1:8786", "--scheduler: tls:// addresses are not supported"),
                           ("ucx://127.0.0.1:8786", "--scheduler: ucx:// addresses are not supported"),
                           ("tcp://127.0.0.1:99999", "--scheduler: expected an address like tcp://host:8786"),
                           ("tcp://", "--scheduler: expected an address like tcp://host:8786"),
                           ("tcp://127.0.0.1:1", "--scheduler: cannot connect to tcp://127.0.0.1:1")):
    case("sweep-exec", ["sweep", "{dir}/s.yaml", "--out", "{dir}/out", "--executor", "dask", "--scheduler", scheduler],
         2, message, {"s.yaml": text(SW)})
# journals are data from outside: a bad row is reported with file:line and recomputed (exit 0)
BAD_ROWS = (("not json\n", "not a JSON line"), ('{"key": "x", "row": {}}\n', "key: expected 32 hex digits"),
            ('[1, 2]\n', "expected an object with exactly the fields key and row"),
            ('{"key": "' + "0" * 32 + '", "row": {"status": "ok", "latency_s": NaN}}\n', "not a JSON line (non-finite number NaN)"),
            ('{"key": "' + "0" * 32 + '", "row": {"status": "ok"}}\n', "row: expected the fields of a sweep row"))
STUDY_SAYS = {"row: expected the fields of a sweep row": "row: cascade: expected a name, got None"}
for line, message in BAD_ROWS:
    case("journal", ["sweep", "{dir}/s.yaml", "--out", "{dir}/out", "--executor", "serial", "--quiet"], 0,
         f"{{dir}}/out/journal.jsonl:1: {message}", {"s.yaml": text(SW), "out/journal.jsonl": text(line)})
    case("journal", ["study", "cascades", "--cascades", "attention_1pass", "--archs", "fusemax-cloud", "--lengths", "4K",
                     "--out", "{dir}/out"], 0, f"{{dir}}/out/points.jsonl:1: {STUDY_SAYS.get(message, message)}",
         {"out/points.jsonl": text(line)})
case("journal", ["sweep", "{dir}/s.yaml", "--out", "{dir}/out", "--dry-run"], 2, "{dir}/out/journal.jsonl: is a FIFO",
     {"s.yaml": text(SW), "out/journal.jsonl": {"fifo": True}})

OUT.write_text(json.dumps(cases, indent=1, ensure_ascii=True) + "\n")
print(f"wrote {len(cases)} cases to {OUT}")
