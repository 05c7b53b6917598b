"""Benchmark: the digits networks end to end on generated accelerators (issue 6's table).

For every network and weight format: train (seeded), quantize, run the whole test split
through the accelerator on the chosen back end (Verilator by default) with
:func:`potgen.cli.run.run_digits`, which checks every layer's outputs against the
golden model. Writes the ``out.json`` statistics of each run into one JSON file and
prints a Markdown table (accuracy, float accuracy, bit-exactness, cycles,
utilisation, wall time).

Usage::

    python benchmarks/bench_digits.py [--json PATH] [--networks mlp,cnn]
        [--weights pot4,apot4,sp2-4,int8,msq:0.5] [--rows 8 --cols 8] [--dataflow os]
        [--backend verilator] [--samples N]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "digits.json"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON)
    parser.add_argument("--networks", default="mlp,cnn")
    parser.add_argument("--weights", default="pot4,apot4,sp2-4,int8,msq:0.5")
    parser.add_argument("--rows", type=int, default=8)
    parser.add_argument("--cols", type=int, default=8)
    parser.add_argument("--dataflow", default="os", choices=("os", "ws"))
    parser.add_argument("--backend", default="verilator")
    parser.add_argument("--samples", type=int, default=None)
    args = parser.parse_args(argv)

    from potgen.cli.run import run_digits

    runs = []
    for network in args.networks.split(","):
        for weight in args.weights.split(","):
            start = time.perf_counter()
            stats = run_digits(weight, "uint8", rows=args.rows, cols=args.cols,
                               dataflow=args.dataflow, backend=args.backend,
                               samples=args.samples, network=network)
            stats["wall_seconds"] = round(time.perf_counter() - start, 2)
            runs.append(stats)
            print(f"{network} {weight}: {stats['accuracy']:.2%} bit_exact={stats['bit_exact']} "
                  f"{stats['cycles']} cycles", file=sys.stderr)

    report = {"benchmark": "digits", "python": platform.python_version(),
              "machine": platform.machine(), "args": {k: str(v) for k, v in vars(args).items()},
              "runs": runs, "all_bit_exact": all(r["bit_exact"] for r in runs)}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    print("| network | weights | accuracy | float | golden | bit-exact | images | cycles | "
          "utilisation | wall s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in runs:
        print(f"| {r['network']} | {r['weight']} | {r['accuracy']:.2%} | "
              f"{r['float_accuracy']:.2%} | {r['golden_accuracy']:.2%} | "
              f"{'yes' if r['bit_exact'] else 'NO'} | {r['samples']} | {r['cycles']:,} | "
              f"{r['utilization']:.1%} | {r['wall_seconds']} |")
    print(f"wrote {args.json}", file=sys.stderr)
    return 0 if report["all_bit_exact"] else 1


if __name__ == "__main__":
    sys.exit(main())
