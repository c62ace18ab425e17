"""Measure per-operation two-party costs in SecretFlow SPU (CHEETAH) and write the `spu-cheetah` profile.

Usage: python benchmarks/pi/measure_spu.py [--out archsim/configs/pi/spu-cheetah.yaml]

It creates its own virtual environment (benchmarks/pi/.venv, spu==0.9.5 with its own jax and numpy)
and re-runs itself there. Each operation runs in a fresh process with two parties in one process
(`spu.utils.simulation.Simulator`, 64-bit ring, 18 fractional bits) at two sizes; the rank-0 log line
"Link details: total send bytes S, recv bytes R, send actions A" gives the traffic of that run.
Marginal bytes per element = (bytes at size 2 - bytes at size 1) / (elements 2 - elements 1), which
removes the one-time setup. The sizes are large (16K and 64K elements) because SPU's marginal cost
per element still grows at small sizes (exp: about 420 B between 1K and 4K, 770 between 4K and 16K,
1,070 between 4K and 64K elements), and a model's batches are larger still. Rounds = send actions of the operation applied twice in sequence (a free secret addition
between, so the compiler cannot fold relu(relu(x)) or 1/(1/x)) minus those of one application, at
1K elements (messages per call, the smaller of rank 0's send and receive counts: an upper bound on
rounds; large inputs split messages). Compute seconds per element
are the difference of the reported execution times divided likewise (loopback, so this is compute).

Matmuls are priced per element of the streamed (activation) operand plus the output, at a fixed
second operand: `matmul_secret` is (t x 64) @ (64 x 64), both secret (an attention head);
`matmul_plain` is (t x 768) @ (768 x 768). A weight held by one party alone is rejected by the
simulator under CHEETAH, so that weight is secret-shared, as SPU deployments (the Entropy-Guided
paper's included) run it; its own cost is then part of the per-run intercept, not of the slope.
The one-time setup written as `fixed` is the median intercept over the operations.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
VENV = HERE / ".venv"
VENV_PYTHON = VENV / "bin" / "python"
SPU_VERSION = "0.9.5"
REPO = HERE.parent.parent
DEFAULT_OUT = REPO / "archsim" / "configs" / "pi" / "spu-cheetah.yaml"

# op -> (element sizes of the two runs, what one "element" is)
ELEMENTWISE = ["exp", "recip", "rsqrt", "max", "relu", "compare", "gelu_tanh", "gelu_erf", "sigmoid",
               "softplus", "tanh", "erf", "log", "sqrt", "abs", "mul", "elu"]
SMALL, LARGE = 16384, 65536
ROUNDS_SIZE = 1024
LN_ROW = 768
MATMUL_K, MATMUL_N = 64, 64


def ensure_venv() -> None:
    """Create benchmarks/pi/.venv with spu if missing and re-execute this script inside it."""
    if Path(sys.prefix).resolve() == VENV.resolve():
        return
    if not VENV_PYTHON.exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run([str(VENV_PYTHON), "-m", "pip", "install", "-q", f"spu=={SPU_VERSION}"], check=True)
    os.execv(str(VENV_PYTHON), [str(VENV_PYTHON), __file__, *sys.argv[1:]])


def op_function(op: str, n: int):
    """The jax function and its secret inputs for `op` on about n elements."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.normal(size=(n,)).astype(np.float32)
    y = rng.normal(size=(n,)).astype(np.float32)
    pos = (rng.random(n) * 4 + 0.5).astype(np.float32)
    table = {
        "exp": (jnp.exp, (x,)),
        "recip": (jnp.reciprocal, (pos,)),
        "rsqrt": (jax.lax.rsqrt, (pos,)),
        "sqrt": (jnp.sqrt, (pos,)),
        "log": (jnp.log, (pos,)),
        "max": (jnp.maximum, (x, y)),
        "compare": (lambda a, b: (a > b).astype(jnp.float32), (x, y)),
        "relu": (jax.nn.relu, (x,)),
        "abs": (jnp.abs, (x,)),
        "gelu_tanh": (lambda a: jax.nn.gelu(a, approximate=True), (x,)),
        "gelu_erf": (lambda a: jax.nn.gelu(a, approximate=False), (x,)),
        "sigmoid": (jax.nn.sigmoid, (x,)),
        "softplus": (jax.nn.softplus, (x,)),
        "tanh": (jnp.tanh, (x,)),
        "erf": (jax.scipy.special.erf, (x,)),
        "mul": (lambda a, b: a * b, (x, y)),
        "elu": (jax.nn.elu, (x,)),
    }
    if op in table:
        return table[op]
    if op == "layernorm":
        rows = x.reshape(-1, LN_ROW)

        def layernorm(a):
            mu = jnp.mean(a, axis=1, keepdims=True)
            xc = a - mu
            var = jnp.mean(xc * xc, axis=1, keepdims=True)
            return xc * jax.lax.rsqrt(var + 1e-5)
        return layernorm, (rows,)
    if op == "matmul_wide":
        t = n // LN_ROW
        a = rng.normal(size=(t, LN_ROW)).astype(np.float32)
        w = (rng.normal(size=(LN_ROW, LN_ROW)) / 30).astype(np.float32)
        return (lambda p, q: p @ q, (a, w))
    if op == "matmul_ss":
        t = n // MATMUL_K
        a = rng.normal(size=(t, MATMUL_K)).astype(np.float32)
        b = rng.normal(size=(MATMUL_K, MATMUL_N)).astype(np.float32)
        return (lambda p, q: p @ q, (a, b))
    raise SystemExit(f"measure_spu: unknown op {op!r}")


def elements(op: str, n: int) -> int:
    """Elements that one marginal cost unit refers to: input elements, or for a matmul
    the elements of the streamed operand plus the output (the weight operand is fixed)."""
    if op == "matmul_ss":
        t = n // MATMUL_K
        return t * MATMUL_K + t * MATMUL_N
    if op == "matmul_wide":
        return 2 * n
    return n


def chained(fn, arity: int, times: int):
    """fn once or twice in sequence, with a free secret addition after the first application
    (so the compiler cannot simplify relu(relu(x)) or 1/(1/x)). Takes one extra secret input."""
    if arity == 1:
        once = lambda a, extra: fn(a) + extra  # noqa: E731
        return once if times == 1 else (lambda a, extra: fn(once(a, extra)))
    once = lambda a, b, extra: fn(a, b) + extra  # noqa: E731
    return once if times == 1 else (lambda a, b, extra: fn(once(a, b, extra), b))


def macs_per_element(op: str) -> float:
    """Multiply-accumulates per cost element of a matmul (the model prices matmul compute per MAC)."""
    return {"matmul_ss": MATMUL_K * MATMUL_N / (MATMUL_K + MATMUL_N), "matmul_wide": LN_ROW * LN_ROW / (2 * LN_ROW)}.get(op, 1.0)


def run_one(op: str, n: int) -> None:
    """Child process: run op once on n elements; the parent reads the log on stderr."""
    import spu.libspu as libspu
    import spu.utils.simulation as spsim

    cfg = libspu.RuntimeConfig(protocol=libspu.ProtocolKind.CHEETAH, field=libspu.FieldType.FM64,
                               fxp_fraction_bits=18)
    cfg.enable_hal_profile = True
    sim = spsim.Simulator(2, cfg)
    name, _, times = op.partition("@")
    fn, args = op_function(name, n)
    if times:  # for the matmuls: (t x k) @ (k x k), then + extra, then @ (k x k) again
        import numpy as np

        first = np.asarray(args[0])
        out_shape = first.shape if not name.startswith("matmul") else (first.shape[0], args[1].shape[1])
        extra = np.full(out_shape, 0.01, dtype=np.float32)
        fn = chained(fn, len(args), int(times))
        args = (*args, extra)
    spsim.sim_jax(sim, fn)(*args)


LINK = re.compile(r"Link details: total send bytes (\d+), recv bytes (\d+), send actions (\d+), recv actions (\d+)")
EXEC = re.compile(r"execution took ([0-9.e+-]+)s")


def measure(op: str, n: int) -> dict:
    """Bytes (send + recv of rank 0), send actions and execution seconds of one run."""
    proc = subprocess.run([sys.executable, __file__, "--one", op, str(n)], capture_output=True, text=True)
    log = proc.stdout + proc.stderr
    link = LINK.findall(log)
    took = EXEC.findall(log)
    if proc.returncode != 0 or not link:
        raise SystemExit(f"measure_spu: {op} at {n} failed:\n{log[-2000:]}")
    send, recv, actions, recv_actions = map(int, link[-1])
    return {"bytes": send + recv, "actions": actions, "recv_actions": recv_actions,
            "seconds": float(took[-1]) if took else 0.0}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--one", nargs=2, metavar=("OP", "N"), help=argparse.SUPPRESS)
    parser.add_argument("--venv-only", action="store_true", help="only create benchmarks/pi/.venv")
    args = parser.parse_args()
    ensure_venv()
    if args.venv_only:
        return 0
    if args.one:
        run_one(args.one[0], int(args.one[1]))
        return 0
    import jax
    import spu

    raw_path = HERE / "spu_raw_measurements.json"
    raw = json.loads(raw_path.read_text()) if raw_path.exists() else {}
    ops = ELEMENTWISE + ["layernorm", "matmul_ss", "matmul_wide"]
    for index, op in enumerate(ops, 1):
        if op in raw:
            continue
        print(f"[{index}/{len(ops)}] {op}", flush=True)
        small, large = {"matmul_ss": (256 * MATMUL_K, 1024 * MATMUL_K),
                        "layernorm": (16 * LN_ROW, 64 * LN_ROW),
                        "matmul_wide": (32 * LN_ROW, 128 * LN_ROW)}.get(op, (SMALL, LARGE))
        raw[op] = {"small": measure(op, small), "large": measure(op, large),
                   "elements": [elements(op, small), elements(op, large)]}
        raw_path.write_text(json.dumps(raw, indent=1, sort_keys=True))  # resume point
    for index, op in enumerate(ops, 1):
        if "rounds_once" in raw[op]:
            continue
        print(f"[{index}/{len(ops)}] {op}: rounds", flush=True)
        n = {"matmul_ss": 16 * MATMUL_K, "layernorm": 2 * LN_ROW, "matmul_wide": 2 * LN_ROW}.get(op, ROUNDS_SIZE)
        raw[op]["rounds_once"] = measure(op + "@1", n)
        raw[op]["rounds_twice"] = measure(op + "@2", n)
        raw_path.write_text(json.dumps(raw, indent=1, sort_keys=True))
    write_profile(args.out, raw, jax.__version__, spu.__version__ if hasattr(spu, "__version__") else SPU_VERSION)
    print(f"wrote {args.out}")
    return 0


def write_profile(out: Path, raw: dict, jax_version: str, spu_version: str) -> None:
    """Write the backend profile YAML (plain text, as the spu venv has no yaml library)."""
    lines = [
        "# Generated by benchmarks/pi/measure_spu.py; do not edit by hand (rerun the script).",
        "kind: private-inference",
        "name: spu-cheetah",
        "description: SecretFlow SPU, two parties, protocol CHEETAH, 64-bit ring, 18 fractional bits (measured on loopback)",
        f"source: measured by benchmarks/pi/measure_spu.py on {datetime.date.today().isoformat()}",
        "measured:",
        f"  date: '{datetime.date.today().isoformat()}'",
        f"  spu: '{spu_version}'",
        f"  jax: '{jax_version}'",
        f"  python: '{platform.python_version()}'",
        f"  machine: '{platform.machine()} {os.cpu_count()} cpus'",
        f"  sizes: [{SMALL}, {LARGE}]",
        "ops:",
    ]
    setup_bytes: list[float] = []
    setup_actions: list[int] = []
    for op, r in sorted(raw.items()):
        e1, e2 = r["elements"]
        per_byte = (r["large"]["bytes"] - r["small"]["bytes"]) / (e2 - e1)
        per_s = (r["large"]["seconds"] - r["small"]["seconds"]) / (e2 - e1)
        if per_s <= 0:  # timing noise: bound by the whole large run instead
            per_s = r["large"]["seconds"] / e2
        per_s /= macs_per_element(op)  # seconds per MAC for the matmuls
        # Messages of the second call; lazy setup inside it shows in one direction only, so the
        # smaller of the send and receive differences.
        rounds = max(1, min(r["rounds_twice"]["actions"] - r["rounds_once"]["actions"],
                            r["rounds_twice"]["recv_actions"] - r["rounds_once"]["recv_actions"]))
        setup_bytes.append(r["small"]["bytes"] - per_byte * e1)
        setup_actions.append(r["rounds_once"]["actions"] - rounds)
        name = {"matmul_ss": "matmul_secret", "matmul_wide": "matmul_plain"}.get(op, op)
        lines.append(f"  {name}: {{bytes_per_element: {per_byte:.1f}, rounds: {rounds}, "
                     f"seconds_per_element: {per_s:.3e}}}")
    # The one-time setup (OT and HE keys): the intercept of bytes and messages, median over the ops.
    setup_bytes.sort()
    setup_actions.sort()
    lines.append("fixed: {bytes: %d, rounds: %d, seconds: 0.0}" % (
        setup_bytes[len(setup_bytes) // 2], setup_actions[len(setup_actions) // 2]))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
