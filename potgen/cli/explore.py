"""``potgen explore``: search per-layer formats, activation widths and arrays for a network.

::

    potgen explore digits --json front.json --plot front.png
    potgen explore digits --budget lut=20000,dsp=40 --seed 1 --json f.json --plot f.png
    potgen explore net.npz --device 25k --arrays 4x4,8x8 --dataflows os --json f.json

``NETWORK`` is ``digits`` (the built-in MLP) or ``net.npz`` with ``net.json`` beside it
(``docs/explore.md``). Accuracy comes from the golden model on the test split, cycles
from the accelerator's schedule model (analytic where none exists), resources from
``potgen estimate``'s models. The JSON holds ``pareto``, ``model_vs_sim`` (the cycle
figures against the simulated accelerator), ``mixed_vs_uniform`` and the settings.
"""

from __future__ import annotations

import json
import sys
import time

from ..flow.devices import DEVICES
from ..formats import parse_format

DEFAULT_VALIDATION = "full"


def register(subparsers) -> None:
    from ..explore.search import DEFAULT_ACT_BITS, DEFAULT_ARRAYS, DEFAULT_WEIGHTS
    p = subparsers.add_parser(
        "explore", help="design-space exploration: per-layer formats x array x dataflow",
        description="Search per-layer weight formats (int, pot, apot, sp2 and UPoT term "
                    "sets found per layer), activation widths, array shapes and dataflows "
                    "for a network on an ECP5 device; objectives accuracy (golden model), "
                    "cycles and LUT4 / MULT18X18D / DP16KD. Exhaustive for small spaces, "
                    "NSGA-II (pymoo) otherwise. Prints the Pareto front.")
    p.add_argument("network", metavar="NETWORK",
                   help="'digits' or a .npz file with a .json description beside it")
    p.add_argument("--device", default="85k",
                   help="ECP5 device: " + ", ".join(DEVICES) + " (default 85k)")
    p.add_argument("--speed", type=int, default=6, help="speed grade 6, 7 or 8 (default 6)")
    p.add_argument("--budget", metavar="K=V,...",
                   help="limits beyond the device: lut, ff, dsp, bram, cycles (ceilings), "
                        "accuracy (floor, 0..1), e.g. lut=20000,dsp=40,accuracy=0.95")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of NSGA-II, of the network training and of the simulated "
                        "operands (default 0)")
    space = p.add_argument_group("search space")
    space.add_argument("--weights", default=",".join(DEFAULT_WEIGHTS),
                       help="weight formats tried for every layer (comma-separated; "
                            "default %(default)s)")
    space.add_argument("--upot-bits", default="3,4",
                       help="code widths of the per-layer UPoT term-set search whose best "
                            "format joins each layer's candidates ('none' to skip; "
                            "default 3,4)")
    space.add_argument("--act-bits", default=",".join(map(str, DEFAULT_ACT_BITS)),
                       help="activation widths (default %(default)s)")
    space.add_argument("--arrays", default=",".join(f"{r}x{c}" for r, c in DEFAULT_ARRAYS),
                       help="array shapes ROWSxCOLS (default %(default)s)")
    space.add_argument("--dataflows", default="os,ws", help="os and/or ws (default os,ws)")
    space.add_argument("--batch", type=int, default=16,
                       help="inputs per accelerator run (default 16)")
    space.add_argument("--k-max", type=int, default=None,
                       help="buffer slot depth (default: longest layer K, power of two)")
    algo = p.add_argument_group("search")
    algo.add_argument("--max-exhaustive", type=int, default=4000,
                      help="enumerate spaces up to this size (default 4000)")
    algo.add_argument("--population", type=int, default=100,
                      help="NSGA-II population (default 100; keep it above the expected "
                           "front size)")
    algo.add_argument("--generations", type=int, default=40,
                      help="NSGA-II generations (default 40)")
    algo.add_argument("--validate", choices=("full", "quick", "none"),
                      default=DEFAULT_VALIDATION,
                      help="cycle figures against the simulated accelerator: the full "
                           "case set (about half a minute), one small case, or none")
    out = p.add_argument_group("output")
    out.add_argument("--json", metavar="FILE", help="write the results to FILE")
    out.add_argument("--plot", metavar="FILE.png", help="write accuracy vs cycles / LUT4")
    out.add_argument("--quiet", "-q", action="store_true", help="no table on stdout")
    p.set_defaults(func=run)


def _list(text: str, name: str) -> list:
    items = [t.strip() for t in str(text).split(",") if t.strip()]
    if not items:
        raise ValueError(f"--{name}: empty list")
    return items


def _ints(text: str, name: str) -> tuple:
    out = []
    for item in _list(text, name):
        try:
            out.append(int(item))
        except ValueError:
            raise ValueError(f"--{name}: {item!r} is not an integer") from None
    return tuple(out)


def _arrays(text: str) -> tuple:
    out = []
    for item in _list(text, "arrays"):
        parts = item.lower().split("x")
        if len(parts) != 2 or not all(p.isdigit() for p in parts):
            raise ValueError(f"--arrays: {item!r} is not ROWSxCOLS (e.g. 8x8)")
        out.append((int(parts[0]), int(parts[1])))
    return tuple(out)


def _progress(total, desc):
    from tqdm import tqdm
    return tqdm(total=total, desc=desc, file=sys.stderr, leave=False)


def _table(pareto: list) -> str:
    head = ["accuracy", "cycles", "latency_us", "lut4", "dsp", "bram", "array", "layers"]
    rows = [[f"{p['accuracy']:.4f}", str(p["cycles"]), f"{p['latency_us']:.1f}",
             str(p["resources"]["lut4"]), str(p["resources"]["mult18"]),
             str(p["resources"]["dp16kd"]),
             f"{p['array']['rows']}x{p['array']['cols']}-{p['array']['dataflow']}",
             " ".join(f"{x['weight']}/a{x['act_bits']}" for x in p["layers"])]
            for p in pareto]
    widths = [max(len(r[i]) for r in [head] + rows) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip()
             for r in [head] + rows]
    return "\n".join(lines)


def run(args) -> int:
    from ..explore.hardware import DEFAULT_SIM_CASES, model_vs_sim
    from ..explore.network import load_network
    from ..explore.search import (
        Explorer,
        SearchSpace,
        mixed_vs_uniform,
        parse_budget,
        upot_candidates,
    )
    from ..flow.devices import check_speed, device

    start = time.perf_counter()
    dev = device(args.device)
    check_speed(args.speed)
    budget = parse_budget(args.budget)
    weights = [str(parse_format(w)) for w in _list(args.weights, "weights")]
    upot_bits = () if args.upot_bits.strip().lower() == "none" else _ints(args.upot_bits,
                                                                          "upot-bits")
    act_bits = _ints(args.act_bits, "act-bits")
    arrays = _arrays(args.arrays)
    dataflows = tuple(_list(args.dataflows, "dataflows"))
    if args.seed < 0:
        raise ValueError(f"--seed={args.seed}: must be >= 0")
    network = load_network(args.network, seed=args.seed)

    upot = [()] * len(network.layers)
    if upot_bits:
        bar = _progress(None, "UPoT term sets")
        upot = upot_candidates(network, upot_bits, progress=lambda: bar.update(1))
        bar.close()
    space = SearchSpace(weights=tuple(tuple(weights) + tuple(u) for u in upot),
                        act_bits=act_bits, arrays=arrays, dataflows=dataflows)
    explorer = Explorer(network, space, device=dev.key, speed=args.speed, budget=budget,
                        batch=args.batch, k_max=args.k_max)
    explorer.check_budget()

    bar = _progress(min(space.size, args.max_exhaustive) if space.size
                    <= args.max_exhaustive else args.population * args.generations,
                    "search")
    result = explorer.search(seed=args.seed, max_exhaustive=args.max_exhaustive,
                             population=args.population, generations=args.generations,
                             progress=bar.update)
    bar.close()

    if args.validate == "none":
        validation = {"skipped": True}
    else:
        cases = DEFAULT_SIM_CASES if args.validate == "full" else DEFAULT_SIM_CASES[:1]
        bar = _progress(len(cases), "model vs simulation")
        validation = model_vs_sim(cases, seed=args.seed, progress=lambda: bar.update(1))
        bar.close()

    report = {
        "network": {"name": network.name, "source": network.info.get("source"),
                    "layers": [{"name": layer.name, "kind": layer.kind,
                                "gemm": list(layer.gemm_shape(args.batch))}
                               for layer in network.layers],
                    "float_accuracy": network.float_accuracy(),
                    "test_samples": len(network.y_test)},
        "device": dev.part,
        "speed": args.speed,
        "budget": budget.describe(),
        "space": {"size": space.size, "weights": [list(w) for w in space.weights],
                  "act_bits": list(space.act_bits),
                  "arrays": [f"{r}x{c}" for r, c in space.arrays],
                  "dataflows": list(space.dataflows), "upot_bits": list(upot_bits)},
        "search": {"method": result.method, "evaluations": result.evaluations,
                   "accuracy_evaluations": result.accuracy_evaluations,
                   "infeasible": result.infeasible, **result.settings},
        "pareto": result.pareto,
        "model_vs_sim": validation,
        "mixed_vs_uniform": mixed_vs_uniform(result.evaluated),
        "energy_proxy_note": "energy_proxy is a relative switching-work figure (units of "
                             "one LUT4 toggle; weights in potgen.explore.cost."
                             "ENERGY_WEIGHTS), not a measurement",
        "seconds": round(time.perf_counter() - start, 1),
    }
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1, sort_keys=False)
            f.write("\n")
    if args.plot:
        from ..explore.plot import plot_front
        plot_front(result.evaluated, result.pareto, args.plot,
                   title=f"{network.name} on {dev.part}: {len(result.pareto)} Pareto points "
                         f"of {result.evaluations} evaluated ({result.method})")
    if not args.quiet:
        print(_table(result.pareto))
        if "max_relative_cycle_error" in validation:
            print(f"cycle figures vs simulation: max relative error "
                  f"{validation['max_relative_cycle_error']:.2%} (analytic model "
                  f"{validation['analytic_max_relative_cycle_error']:.2%})")
    return 0
