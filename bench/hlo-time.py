#!/usr/bin/env python3
"""Time the XLA programs TensorFlow compiled, with an XLA runtime of its own (jaxlib's): benchmark-only.

    python bench/hlo-time.py --dump DIR [--runs N] [--warmup N] [--module REGEX] [--out DIR]

DIR is a folder written by TensorFlow under XLA_FLAGS=--xla_dump_to=DIR (scripts/gpu-check.sh writes one, as does
`XLA_FLAGS="--xla_dump_to=DIR --xla_dump_hlo_as_proto" node --import tsx bench/compiled-steps.ts --modes xla`).
For each XLA-compiled module there (each compiled step is one, `module_NNNN.lea_xla_<hash>...`, numbered in the
order TensorFlow compiled them) it takes the HLO as it was before XLA's optimisations:
`<module>.before_optimizations.hlo.pb` (--xla_dump_hlo_as_proto: an HloProto around the HloModuleProto, every
constant whole) or else `<module>.before_optimizations.txt` (the text prints large constants as `{...}` unless
--xla_dump_large_constants is set too; such a module still compiles, with placeholder values the parser puts there,
and is flagged). It converts the module to StableHLO, compiles it for the runtime's default device (the GPU where
jaxlib's CUDA plugin finds one, else the CPU), fills every parameter with values of its shape and dtype (floats
uniform in [0.01, 1), integers and booleans zero, a valid index for any gather or scatter), runs it --warmup times,
then times --runs calls, each blocked until its results are ready, and prints per module: its parameters (count,
bytes), the compile seconds, and the median and minimum ms per call. That is the compiled program's time on that
device through jaxlib, without TensorFlow's runtime around it (no executor, no argument handling, no tfjs; compare
with bench/compiled-steps.ts's xla rows, which include all of that and the step's host-side draws). It writes the
table as JSON to --out (default $OUT, else bench/results/). Exits 2 when DIR has no module (or none matches
--module), 1 when a module does not parse or compile (the message names the file), 3 when jax is missing.

The API path (jaxlib 0.10.2): the text through xla_client.hlo.hlo_module_from_text and
HloModule.as_serialized_hlo_module_proto, or the HloModuleProto unwrapped from the dumped HloProto; then
jaxlib._jax.mlir.hlo_to_stablehlo(proto bytes) -> Client.compile_and_load(StableHLO bytes, [device],
CompileOptions()) -> LoadedExecutable.execute. TensorFlow 2.21's HLO loads in jaxlib 0.10.2 both ways.

Install (pinned in tools/requirements-hlo.txt; not a run-time dependency, nothing here installs it on import):
    python3 -m venv .tools/hlo-venv && .tools/hlo-venv/bin/pip install -r tools/requirements-hlo.txt      # CPU
    .tools/hlo-venv/bin/pip install -r tools/requirements-hlo.txt "jax[cuda12]==0.10.2"  # NVIDIA, CUDA 12 driver
    .tools/hlo-venv/bin/pip install -r tools/requirements-hlo.txt "jax[cuda13]==0.10.2"  # NVIDIA, CUDA 13 driver
(scripts/setup-hlo.sh [cpu|cuda12|cuda13] does the same.) The CUDA extras bring their own CUDA and cuDNN wheels, so
they work where TensorFlow's GPU wheel does not (another CUDA major on the driver), given a recent enough driver.
"""

import argparse
import datetime
import glob
import json
import os
import re
import statistics
import sys
import time

INSTALL = (
    "python3 -m venv .tools/hlo-venv && .tools/hlo-venv/bin/pip install -r tools/requirements-hlo.txt "
    '(add "jax[cuda12]==0.10.2" or "jax[cuda13]==0.10.2" on an NVIDIA machine), '
    "then run this script with .tools/hlo-venv/bin/python"
)
SUFFIXES = (".before_optimizations.hlo.pb", ".before_optimizations.txt")


def fail(message, code=1):
    print(f"hlo-time: {message}", file=sys.stderr)
    sys.exit(code)


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dump", required=True, help="folder written with XLA_FLAGS=--xla_dump_to=DIR")
    p.add_argument("--runs", type=int, default=20, help="timed calls per module (default 20)")
    p.add_argument("--warmup", type=int, default=3, help="untimed calls first (default 3)")
    p.add_argument("--module", default="", help="only modules whose file name matches this regular expression")
    p.add_argument("--out", default=os.environ.get("OUT") or "bench/results", help="folder for the JSON")
    a = p.parse_args()
    if a.runs < 1 or a.warmup < 0:
        fail("--runs must be at least 1 and --warmup at least 0", 2)
    return a


def find_modules(dump, pattern):
    """{module stem: file}, the proto where both were dumped (it holds every constant; the text may elide them)."""
    if not os.path.isdir(dump):
        fail(f"{dump} is not a folder", 2)
    found = {}
    for suffix in reversed(SUFFIXES):  # the proto, listed first in SUFFIXES, wins
        for f in glob.glob(os.path.join(glob.escape(dump), "*" + suffix)):
            stem = os.path.basename(f)[: -len(suffix)]
            found[stem] = f
    if not found:
        fail(
            f"no HLO modules in {dump} (looked for *{SUFFIXES[0]} and *{SUFFIXES[1]}; "
            "run the program with XLA_FLAGS=--xla_dump_to=DIR and an XLA-compiled step)",
            2,
        )
    chosen = {s: f for s, f in sorted(found.items()) if re.search(pattern, s)}
    if not chosen:
        fail(f"no module in {dump} matches --module {pattern!r} (modules: {', '.join(sorted(found))})", 2)
    return chosen


def import_runtime():
    # The dump flags of the TensorFlow run must not make jaxlib dump its own modules into the same folder.
    flags = os.environ.get("XLA_FLAGS", "")
    kept = [f for f in flags.split() if not f.startswith("--xla_dump")]
    if kept != flags.split():
        os.environ["XLA_FLAGS"] = " ".join(kept)
    try:
        import jax
        import jaxlib
        import numpy as np
        from jax._src.lib import xla_client as xc
        from jax._src.lib import _jax
    except ImportError as err:
        fail(f"needs jax and jaxlib ({err}); install them: {INSTALL}", 3)
    return jax, jaxlib, np, xc, _jax


def _fields(data):
    """The top-level fields of a serialized protobuf message: [(number, wire type, value or payload bytes)]."""
    out, i = [], 0

    def varint():
        nonlocal i
        shift = value = 0
        while True:
            byte = data[i]
            i += 1
            value |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                return value

    while i < len(data):
        key = varint()
        number, wire = key >> 3, key & 7
        if wire == 0:
            out.append((number, wire, varint()))
        elif wire == 1 or wire == 5:
            size = 8 if wire == 1 else 4
            out.append((number, wire, data[i : i + size]))
            i += size
        elif wire == 2:
            size = varint()
            out.append((number, wire, data[i : i + size]))
            i += size
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
    if i != len(data):
        raise ValueError("truncated protobuf message")
    return out


def module_proto(data):
    """An HloModuleProto's bytes: XLA's dump writes an HloProto (hlo_module = 1, buffer_assignment = 3) around it."""
    fields = _fields(data)
    if fields and {n for n, _, _ in fields} <= {1, 3}:
        inner = [v for n, w, v in fields if n == 1 and w == 2]
        if len(inner) == 1:
            return bytes(inner[0])
    return data  # already an HloModuleProto (it has entry_computation_name = 2, computations = 3, ...)


def load(path, xc, _jax):
    """The module as StableHLO bytecode, its parameter shapes and the number of constants elided in its text."""
    try:
        if path.endswith(".txt"):
            with open(path, encoding="utf-8") as fh:
                text = fh.read()
            elided = text.count("constant({...})")
            proto = xc.hlo.hlo_module_from_text(text).as_serialized_hlo_module_proto()
        else:
            with open(path, "rb") as fh:
                proto = module_proto(fh.read())
            elided = 0
        shape = xc.XlaComputation(proto).program_shape()
        params = shape.parameter_shapes()
        stablehlo = _jax.mlir.hlo_to_stablehlo(proto)
    except Exception as err:  # the runtime's parse and conversion errors have no common type
        fail(f"{path} does not load as an HLO module: {type(err).__name__}: {str(err)[:2000]}")
    for i, p in enumerate(params):
        if p.is_tuple():
            fail(f"{path}: parameter {i} is a tuple ({p}); only array parameters are supported")
    return stablehlo, params, elided


def inputs(params, device, jax, np):
    rng = np.random.default_rng(0)
    out = []
    for p in params:
        dtype = np.dtype(p.numpy_dtype())
        dims = tuple(p.dimensions())
        if np.issubdtype(dtype, np.floating) or np.issubdtype(dtype, np.complexfloating):
            value = rng.uniform(0.01, 1.0, dims).astype(dtype)
        else:
            value = np.zeros(dims, dtype)
        out.append(jax.device_put(value, device))
    return out


def compile_module(stablehlo, device, xc):
    client = device.client
    options = xc.CompileOptions()
    if hasattr(client, "compile_and_load"):
        return client.compile_and_load(stablehlo, [device], options)
    return client.compile(stablehlo, options)  # older jaxlib: compile returned a loaded executable


def main():
    a = parse_args()
    modules = find_modules(a.dump, a.module)
    jax, jaxlib, np, xc, _jax = import_runtime()
    device = jax.devices()[0]
    where = f"{device.platform} ({device.device_kind})"
    runtime = f"jaxlib {jaxlib.__version__}"
    label = f"the compiled program's time on {where} through {runtime}, without TensorFlow's runtime around it"
    print(f"hlo-time: {len(modules)} module(s) from {a.dump}; {label}; {a.warmup} warm-up and {a.runs} timed calls")
    print(f"{'module':<58} {'params':>6} {'MB':>8} {'compile s':>9} {'median ms':>10} {'min ms':>9}")
    rows = []
    for stem, path in modules.items():
        stablehlo, params, elided = load(path, xc, _jax)
        nbytes = sum(int(np.prod(p.dimensions())) * np.dtype(p.numpy_dtype()).itemsize for p in params)
        t0 = time.perf_counter()
        try:
            exe = compile_module(stablehlo, device, xc)
        except Exception as err:
            fail(f"{path} does not compile on {where}: {type(err).__name__}: {str(err)[:2000]}")
        compile_s = time.perf_counter() - t0
        args = inputs(params, device, jax, np)
        for _ in range(a.warmup):
            jax.block_until_ready(exe.execute(args))
        ms = []
        for _ in range(a.runs):
            t0 = time.perf_counter()
            jax.block_until_ready(exe.execute(args))
            ms.append((time.perf_counter() - t0) * 1000)
        flops = None
        try:
            cost = exe.cost_analysis()
            cost = cost[0] if isinstance(cost, list) else cost
            flops = float(cost.get("flops")) if cost and cost.get("flops") is not None else None
        except Exception:
            pass
        row = {
            "module": stem,
            "file": os.path.basename(path),
            "params": len(params),
            "paramBytes": nbytes,
            "device": where,
            "compileSeconds": compile_s,
            "medianMs": statistics.median(ms),
            "minMs": min(ms),
            "ms": ms,
            "flops": flops,
            "elidedConstants": elided,
        }
        rows.append(row)
        name = stem.replace("__XlaMustCompile_true_", "")
        name = name if len(name) <= 58 else name[:55] + "..."
        note = f"  ({elided} large constants elided in the text: placeholders; dump as proto)" if elided else ""
        print(
            f"{name:<58} {len(params):>6} {nbytes / 1e6:>8.2f} {compile_s:>9.2f} {row['medianMs']:>10.3f} "
            f"{row['minMs']:>9.3f}{note}"
        )
    os.makedirs(a.out, exist_ok=True)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H-%M-%S")
    file = os.path.join(a.out, f"hlo-time-{stamp}.json")
    result = {
        "label": label,
        "runtime": runtime,
        "jax": jax.__version__,
        "platformVersion": getattr(device.client, "platform_version", None),
        "device": where,
        "dump": os.path.abspath(a.dump),
        "warmup": a.warmup,
        "runs": a.runs,
        "inputs": "floats uniform in [0.01, 1), integers and booleans zero",
        "modules": rows,
    }
    with open(file, "w", encoding="utf-8") as fh:
        json.dump(result, fh, indent=2)
    print(f"wrote {file}")


if __name__ == "__main__":
    main()
