"""Benchmark: the Verilator back end's simulation speed and build time.

Figures (each GEMM checked bit for bit against ``golden.matmul`` before it counts):

* ``speed``: simulated clock cycles per wall-clock second of :class:`VerilatorBackend`
  on pot4 x uint8 accelerators (16 x 16 and 8 x 8) running one large GEMM, and of
  :class:`AmaranthBackend` and :class:`VerilatorBackend` on a small (4 x 4) array for
  comparison (Amaranth on a GEMM of 8 x 16 x 8, as it runs some ten cycles per second). The wall time is
  the back end's ``run`` (words through the pipe, simulation, results back), not the
  driver's encoding and decoding; ``cycles_per_cpu_second`` divides by the harness
  process's own CPU time instead, which does not depend on the machine's load.
* ``build``: seconds to get a back end for the 16 x 16 accelerator with nothing cached
  (Verilator's run-time library compiled too; the benchmark uses a fresh temporary
  cache unless ``--user-cache``), for the 8 x 8 one with the run-time library cached,
  and for the 16 x 16 one again (a cache hit).
* ``many_small``: the digits network's pattern, many small GEMMs, with one persistent
  harness process against one process per program.

Usage::

    python benchmarks/bench_verilator_backend.py [--json PATH] [--small N] [--user-cache]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from potgen import golden
from potgen.formats import parse_format
from potgen.hw.accelerator import Accelerator
from potgen.hw.export import emit
from potgen.runtime import AcceleratorDriver, Backend
from potgen.runtime.amaranth_backend import AmaranthBackend
from potgen.runtime.verilator_backend import VerilatorBackend

DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "verilator_backend.json"


def _cpu_seconds(pid) -> float:
    """User + system CPU seconds of process ``pid`` so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class TimedBackend(Backend):
    """Wraps a back end; sums the wall time of its ``run`` calls and, for a persistent
    Verilator harness, the CPU time the harness spent in them."""

    def __init__(self, backend):
        self.backend, self.seconds, self.cpu_seconds = backend, 0.0, 0.0

    def run(self, program):
        pid = getattr(self.backend, "pid", None)
        cpu = _cpu_seconds(pid) if pid else None
        start = time.perf_counter()
        result = self.backend.run(program)
        self.seconds += time.perf_counter() - start
        if cpu is not None:
            self.cpu_seconds += _cpu_seconds(pid) - cpu
        return result


def _driver(meta, timed):
    return AcceleratorDriver(meta, timed)


def _operands(rng, M, K, N):
    return rng.integers(0, 256, (M, K)), rng.integers(0, 16, (K, N))


def _check(meta, acts, codes, result):
    spec = golden.AccSpec(meta["acc_bits"], meta["overflow"])
    expected = golden.matmul(acts, codes, parse_format(meta["weight"]), spec)
    if not np.array_equal(result.acc, expected.acc):
        raise SystemExit("result differs from golden.matmul: the figure is void")


def speed(backend, meta, M, K, N, seed=0) -> dict:
    rng = np.random.default_rng(seed)
    acts, codes = _operands(rng, M, K, N)
    if isinstance(backend, VerilatorBackend):
        # Start the harness first, so that its CPU time can be read around the GEMM.
        backend.run(_driver(meta, backend).program(acts[:1], codes[:, :1]))
    timed = TimedBackend(backend)
    before = getattr(backend, "simulated_cycles", None)
    result = _driver(meta, timed).gemm(acts, codes)
    _check(meta, acts, codes, result)
    simulated = (backend.simulated_cycles - before) if before is not None else result.cycles
    out = {"gemm": [M, K, N], "cycles": int(result.cycles),
           "simulated_cycles": int(simulated), "seconds": round(timed.seconds, 4),
           "cycles_per_second": round(simulated / timed.seconds),
           "macs_per_second": round(M * K * N / timed.seconds)}
    if timed.cpu_seconds > 0:
        # On a shared machine the wall time includes waiting for a core; the harness's
        # own CPU time gives the speed of an unloaded core.
        out["harness_cpu_seconds"] = round(timed.cpu_seconds, 4)
        out["cycles_per_cpu_second"] = round(simulated / timed.cpu_seconds)
    return out


def many_small(verilog, meta, count, seed=1) -> dict:
    rng = np.random.default_rng(seed)
    gemms = [_operands(rng, 8, 16, 8) for _ in range(count)]
    out = {"gemms": count, "gemm": [8, 16, 8]}
    for persistent in (True, False):
        with VerilatorBackend((verilog, meta), persistent=persistent) as backend:
            timed = TimedBackend(backend)
            driver = _driver(meta, timed)
            for acts, codes in gemms:
                _check(meta, acts, codes, driver.gemm(acts, codes))
        key = "persistent" if persistent else "process_per_program"
        out[key] = {"seconds": round(timed.seconds, 4),
                    "ms_per_gemm": round(1000 * timed.seconds / count, 3)}
    out["speedup"] = round(out["process_per_program"]["seconds"]
                           / out["persistent"]["seconds"], 2)
    return out


def build(design, report, key, **options):
    """A back end for ``design``, its build time recorded under ``report["build"][key]``."""
    start = time.perf_counter()
    backend = VerilatorBackend(design, **options)
    report["build"][key] = {"seconds": round(time.perf_counter() - start, 3),
                            "compiled": not backend.build.cached}
    print("build", key, report["build"][key], flush=True)
    return backend


def run(report, args):
    designs = {R: emit(Accelerator(R, R, "pot4", "uint8", k_max=64), f"bench_acc{R}")
               for R in (16, 8)}
    # First build: nothing cached (unless --user-cache); second: the run-time library
    # cached, the design new; third: the same design again, a cache hit.
    order = (("16x16_cold", 16), ("8x8_runtime_cached", 8), ("16x16_cache_hit", 16))
    backends = {}
    for key, R in order:
        backends[key] = build(designs[R], report, key)
    for key, R in (("16x16_cache_hit", 16), ("8x8_runtime_cached", 8)):
        meta = designs[R][1]
        with backends[key] as backend:
            report["speed"][f"verilator_{R}x{R}"] = speed(backend, meta, 256, 64, 256)
        print(R, report["speed"][f"verilator_{R}x{R}"], flush=True)
    backends["16x16_cold"].close()

    small = Accelerator(4, 4, "pot4", "uint8", k_max=16)
    report["speed"]["amaranth_4x4"] = speed(AmaranthBackend(small), small.metadata(),
                                            8, 16, 8)
    print("amaranth", report["speed"]["amaranth_4x4"], flush=True)
    with build(emit(small, "bench_acc4"), report, "4x4") as backend:
        # A GEMM long enough that the pipe's per-program cost does not dominate.
        report["speed"]["verilator_4x4"] = speed(backend, backend.metadata, 256, 16, 256)
    report["verilator_vs_amaranth_4x4"] = round(
        report["speed"]["verilator_4x4"]["cycles_per_second"]
        / report["speed"]["amaranth_4x4"]["cycles_per_second"])

    report["many_small_8x8"] = many_small(*designs[8], args.small)
    print("many small", report["many_small_8x8"], flush=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON,
                        help=f"output file (default {DEFAULT_JSON})")
    parser.add_argument("--small", type=int, default=200,
                        help="small GEMMs in the persistent-process comparison")
    parser.add_argument("--user-cache", action="store_true",
                        help="build in the user's cache (default: a fresh temporary one, "
                             "so that the build times are cold)")
    args = parser.parse_args(argv)

    report = {"benchmark": "verilator_backend", "python": sys.version.split()[0],
              "machine": platform.machine(), "cpus": os.cpu_count(), "speed": {},
              "build": {}}
    with tempfile.TemporaryDirectory(prefix="potgen-bench-") as tmp:
        if not args.user_cache:
            # Nothing cached: the first build compiles Verilator's run-time library too.
            os.environ["POTGEN_CACHE_DIR"] = tmp
        run(report, args)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=1, sort_keys=True) + "\n")
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
