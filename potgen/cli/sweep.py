"""``potgen sweep CONFIG.toml``: synthesize the cartesian product of PE parameters.

::

    potgen sweep synth/pe_comparison.toml
    potgen sweep my.toml --out results/ --jobs 2 --no-cache

The configuration format is documented in :mod:`potgen.flow.sweep`. Writes
``results.json``, ``results.csv``, ``results.md`` and plots into the configured
output directory (or ``--out``) and prints the table.
"""

from __future__ import annotations

import sys
import time

from ..flow import summary
from ..flow.sweep import load_config, points, run_sweep, write_results


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "sweep", help="synthesize a parameter sweep from a TOML file",
        description="Synthesize the cartesian product of formats x activation bits x "
                    "accumulator widths x pipeline depth x device given in a TOML "
                    "file; write JSON, CSV, a Markdown table and plots.")
    p.add_argument("config", metavar="CONFIG.toml", help="sweep description")
    p.add_argument("--out", metavar="DIR",
                   help="output directory (default: [output] dir of the config)")
    p.add_argument("--jobs", "-j", type=int, metavar="N",
                   help="parallel tool runs (default: the available cores)")
    p.add_argument("--no-cache", action="store_true",
                   help="run the tools even when cached reports exist")
    p.add_argument("--no-plots", action="store_true", help="skip the matplotlib plots")
    p.add_argument("--dry-run", action="store_true",
                   help="list the points of the sweep and stop")
    p.add_argument("--quiet", "-q", action="store_true",
                   help="no table on stdout and no progress bar")
    p.set_defaults(func=run)


def run(args) -> int:
    config = load_config(args.config)
    if args.no_plots:
        config.plots = False
    if args.jobs is not None and args.jobs < 1:
        raise ValueError(f"--jobs {args.jobs}: must be >= 1")
    pts = points(config)
    if args.dry_run:
        for spec, device in pts:
            print(f"{spec.label:24} act={spec.act:6} acc={spec.acc_bits!s:6} k={spec.k:<5} "
                  f"pipeline={spec.pipeline} {device}")
        print(f"{len(pts)} points")
        return 0
    start = time.monotonic()
    reports = run_sweep(config, jobs=args.jobs, cache=not args.no_cache,
                        progress=False if args.quiet else None)
    paths = write_results(config, reports, args.out)
    if not args.quiet:
        sys.stdout.write(summary.format_table(reports))
        cached = sum(1 for r in reports if r.get("cached"))
        print(f"{len(reports)} designs in {time.monotonic() - start:.1f} s"
              + (f" ({cached} from the cache)" if cached else ""))
        print("wrote " + ", ".join(str(p) for p in paths))
    return 0
