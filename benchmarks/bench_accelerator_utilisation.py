"""Benchmark: accelerator utilisation on large GEMMs (issue 6, item 8), from the cycle model.

Two parts, written to one JSON file:

``model``
    Utilisation ``M K N / (rows cols cycles)`` of large pot4 x uint8 GEMMs on 8 x 8 and
    16 x 16 accelerators, ``cycles`` being the accelerator's busy-cycle counter over the
    whole program (loads, drains and the final flush included), from the exact cycle
    model :func:`potgen.runtime.cycles.gemm_cycles`, raw and requantized, with the
    breakdown (steps, ``din`` words, ``dout`` words, cycles without a step) and the
    slot configuration. The goal is >= 90%.
``simulation``
    The model against the Amaranth simulation of the same accelerator on mid-size
    GEMMs (several row blocks, K chunks, requantized): results checked bit-exact
    against ``golden.matmul`` / ``golden.requantize``, and the simulated ``cycles``
    counter against the model (the model's error must be 0).

Usage::

    python benchmarks/bench_accelerator_utilisation.py [--json PATH] [--no-sim]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "accelerator_utilisation.json"
GOAL = 0.90

#: (rows, accelerator parameters) of the modelled designs.
DESIGNS = [
    (8, {"k_max": 256, "act_slots": 4}),
    (8, {"k_max": 256, "act_slots": 2}),
    (16, {"k_max": 256, "act_slots": 8}),
    (16, {"k_max": 256, "act_slots": 8, "dout_lanes": 2}),
    (16, {"k_max": 256, "act_slots": 4}),
    (8, {"k_max": 128, "k_total_max": 512, "act_slots": 8, "weight_slots": 4}),
]
SHAPES = [(256, 256, 256), (512, 256, 512), (128, 512, 256), (64, 64, 64)]

#: Mid-size simulated cases: (rows, cols, parameters, M, K, N, requant).
SIM_CASES = [
    (4, 4, {"k_max": 16, "k_total_max": 32, "act_slots": 4, "dout_lanes": 2},
     24, 32, 20, False),
    (4, 4, {"k_max": 16, "k_total_max": 32, "act_slots": 4, "dout_lanes": 2},
     24, 32, 20, True),
    (8, 8, {"k_max": 64, "act_slots": 4}, 48, 64, 48, False),
]


def model_part() -> list:
    from potgen.runtime.cycles import gemm_cycles, model_metadata
    rows = []
    for size, params in DESIGNS:
        meta = model_metadata(size, size, "pot4", "uint8", **params)
        for M, K, N in SHAPES:
            if K > meta["k_total_max"]:
                continue
            for requant in (False, True):
                start = time.perf_counter()
                b = gemm_cycles(meta, M, K, N, requant=requant)
                seconds = time.perf_counter() - start
                rows.append({
                    "rows": size, "cols": size, "weight": "pot4", "act": "uint8",
                    "parameters": params, "shape": [M, K, N], "requant": requant,
                    "cycles": b.total, "steps": b.compute, "din_words": b.load,
                    "dout_words": b.drain, "cycles_without_step": b.stall,
                    "utilisation": round(b.utilisation, 4),
                    "meets_goal": b.utilisation >= GOAL, "model_seconds": round(seconds, 4),
                })
                print(f"{size:2d}x{size:<2d} {params!s:70s} {M:4d}x{K:4d}x{N:<4d} "
                      f"{'requant' if requant else 'raw    '} {b.total:8d} cycles "
                      f"{b.utilisation:7.2%}", flush=True)
    return rows


def simulation_part() -> list:
    from potgen import golden
    from potgen.hw.accelerator import Accelerator
    from potgen.runtime import AcceleratorDriver, RequantParams
    from potgen.runtime.amaranth_backend import AmaranthBackend
    from potgen.runtime.cycles import gemm_cycles

    out = []
    rng = np.random.default_rng(2026)
    for rows, cols, params, M, K, N, requant in SIM_CASES:
        acc = Accelerator(rows, cols, "pot4", "uint8", **params)
        driver = AcceleratorDriver(acc, AmaranthBackend(acc))
        acts = rng.integers(0, 256, (M, K))
        codes = rng.integers(0, 16, (K, N))
        raw = golden.matmul(acts, codes, "pot4", golden.AccSpec(acc.acc_bits, "wrap"))
        req = None
        if requant:
            req = RequantParams(rng.integers(1, 1 << 12, N), rng.integers(4, 16, N),
                                rng.integers(0, 32, N), relu=False)
        start = time.perf_counter()
        result = driver.gemm(acts, codes, req)
        seconds = time.perf_counter() - start
        expected = raw.acc if req is None else golden.requantize(
            raw.acc, req.multiplier, req.shift, req.zero_point, lo=0, hi=255)
        exact = bool(np.array_equal(result.acc, expected))
        model = gemm_cycles(acc.metadata(), M, K, N, requant=requant)
        out.append({
            "rows": rows, "cols": cols, "parameters": params, "shape": [M, K, N],
            "requant": requant, "bit_exact": exact, "simulated_cycles": result.cycles,
            "model_cycles": model.total,
            "model_error": (model.total - result.cycles) / result.cycles,
            "utilisation": round(M * K * N / (rows * cols * result.cycles), 4),
            "simulation_seconds": round(seconds, 2),
        })
        print(f"sim {rows}x{cols} {M}x{K}x{N} {'requant' if requant else 'raw'}: "
              f"bit_exact={exact} cycles sim {result.cycles} model {model.total} "
              f"({seconds:.1f} s)", flush=True)
        if not exact:
            raise SystemExit("simulation result differs from the golden model")
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON)
    parser.add_argument("--no-sim", action="store_true",
                        help="skip the Amaranth simulations (model only)")
    args = parser.parse_args(argv)
    import amaranth
    results = {
        "benchmark": "accelerator_utilisation",
        "goal_utilisation": GOAL,
        "python": platform.python_version(),
        "amaranth": amaranth.__version__,
        "model": model_part(),
        "simulation": [] if args.no_sim else simulation_part(),
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
