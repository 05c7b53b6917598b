"""Benchmark: the golden matmul against a plain NumPy int64 matmul of decoded levels.

A 256x1024x256 GEMM of seeded random uint8 activations and apot4 weight codes. The
reference is ``np.matmul`` on int64 arrays of the activations and the decoded levels
(prepared outside the timed region, which favours the reference); the golden model is
timed end to end (validation, decoding, bound, product). Every result is checked
against the reference before any figure is written.

Usage::

    python benchmarks/bench_golden_matmul.py [--json PATH] [--repeats N] [--seed S]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

from potgen import golden
from potgen.formats import parse_format

DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "golden_matmul.json"
GOAL_SPEEDUP = 10.0


def best_time(fn, repeats: int) -> tuple:
    """(best wall-clock seconds over ``repeats`` runs, last result)."""
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def saturating_reference(acts: np.ndarray, levels: np.ndarray, acc: golden.AccSpec):
    """Clamp after every addition, k ascending, vectorised over all outputs."""
    total = np.zeros((acts.shape[0], levels.shape[1]), dtype=np.int64)
    exact = np.zeros_like(total)
    flags = np.zeros(total.shape, dtype=bool)
    for k in range(acts.shape[1]):
        step = np.outer(acts[:, k], levels[k])
        exact += step
        flags |= (exact < acc.min) | (exact > acc.max)
        total = np.clip(total + step, acc.min, acc.max)
    return total, flags


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON,
                        help=f"output file (default {DEFAULT_JSON})")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per case")
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--m", type=int, default=256)
    parser.add_argument("--k", type=int, default=1024)
    parser.add_argument("--n", type=int, default=256)
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error(f"--repeats={args.repeats}: must be >= 1")

    fmt = parse_format("apot4")
    rng = np.random.default_rng(args.seed)
    acts = rng.integers(0, 256, (args.m, args.k), dtype=np.uint8)
    codes = rng.integers(0, 1 << fmt.bits, (args.k, args.n), dtype=np.uint8)
    acts64, levels64 = acts.astype(np.int64), fmt.decode(codes)

    seconds, speedup = {}, {}
    seconds["reference_int64"], expected = best_time(
        lambda: np.matmul(acts64, levels64), args.repeats)

    cases = {
        "golden_exact": None,
        "golden_wrap32": golden.AccSpec(32, "wrap"),
        # Narrow enough that the screen flags outputs and the sequential scan runs.
        "golden_saturate16": golden.AccSpec(16, "saturate"),
    }
    notes = {}
    for name, acc in cases.items():
        seconds[name], result = best_time(
            lambda: golden.matmul(acts, codes, fmt, acc), args.repeats)
        if acc is None or acc.overflow == "wrap":
            wanted = expected if acc is None else (
                (expected - acc.min) % (1 << acc.bits) + acc.min)
            if not (np.array_equal(result.acc, wanted) and not result.overflow.any()):
                print(f"{name}: result differs from the int64 reference", file=sys.stderr)
                return 1
        else:
            sat, flags = saturating_reference(acts64, levels64, acc)
            if not (np.array_equal(result.acc, sat) and np.array_equal(result.overflow, flags)):
                print(f"{name}: result differs from the sequential reference",
                      file=sys.stderr)
                return 1
            notes[name] = f"{int(flags.sum())} of {flags.size} outputs overflow"
        speedup[name] = seconds["reference_int64"] / seconds[name]

    report = {
        "benchmark": "golden_matmul",
        "shape": {"m": args.m, "k": args.k, "n": args.n},
        "act": "uint8", "weight": str(fmt), "seed": args.seed, "repeats": args.repeats,
        "seconds": seconds,
        "speedup_vs_int64": speedup,
        "goal_speedup": GOAL_SPEEDUP,
        "meets_goal": all(speedup[k] >= GOAL_SPEEDUP
                          for k in ("golden_exact", "golden_wrap32")),
        "notes": notes,
        "environment": {"python": platform.python_version(), "numpy": np.__version__,
                        "machine": platform.machine(), "cpus": os.cpu_count()},
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    for name, value in seconds.items():
        extra = f"  {speedup[name]:7.1f}x" if name in speedup else ""
        print(f"{name:20s} {value * 1e3:9.2f} ms{extra}")
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
