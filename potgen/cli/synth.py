"""``potgen synth``: synthesize PEs for ECP5 and compare them (the main job).

::

    potgen synth                                   # the default PE family on LFE5U-85F
    potgen synth --designs pot4,int8-lut --acc-bits 32
    potgen synth --formats apot4,int4 --act uint4,uint8 --json pe.json --csv pe.csv
    potgen synth --designs pot4 --sign both        # fold vs negate of the sign
    potgen synth --kind array --rows 8 --cols 8 --weight pot4 --act uint8 --json a.json
    potgen synth --kind array --rows 16 --cols 16 --weight pot4,int8-dsp --dataflow os,ws

Without selection options it runs :data:`potgen.flow.designs.DEFAULT_PE_FAMILY`: MAC
PEs with uint8 activations and the datatype-bound accumulator for K = 64, for int8
and int4 on a DSP and in LUTs and for pot4, pot4-nz, apot4, sp2-4, pot5 and apot5
on the shift-add unit. Each is synthesized by yosys and placed and routed by nextpnr
inside a timing harness (:mod:`potgen.flow.synth`); runs go in parallel and are
cached. The table gives each design's comb cells, LUT4, CCU2C, FF, MULT18X18D and
Fmax, and its area and Fmax relative to the int8 LUT-multiplier PE (``--reference``)
synthesized with the same activation and accumulator choice.

``--kind array`` synthesizes whole ``--rows x --cols`` systolic arrays of the PE
(:class:`~potgen.hw.array.SystolicArray`, ``--dataflow os`` and/or ``ws``) inside the
same timing harness, so the Fmax is register to register; ``--weight`` names the PE
as ``--designs`` does. Array ratios are taken against the reference design at the
same size and dataflow (``--reference int8-dsp`` for the DSP array). Arrays run one at
a time: a large one takes the whole machine (:func:`potgen.flow.designs.synthesize_specs`).
"""

from __future__ import annotations

import sys
import time

from ..flow import designs as _designs
from ..flow import summary
from ..flow.devices import DEVICES
from ..flow.synth import DEFAULT_FREQ_MHZ, flow_options


def _split(values):
    """Comma-separated items of repeated options; commas inside ``{...}`` (upot sets) stay."""
    out = []
    for value in values or []:
        depth, item = 0, ""
        for ch in value:
            depth += (ch == "{") - (ch == "}")
            if ch == "," and depth == 0:
                out.append(item.strip())
                item = ""
            else:
                item += ch
        out.append(item.strip())
    return [item for item in out if item]


def add_design_options(group, *, verb: str) -> None:
    """The design-selection options shared by ``potgen synth`` and ``potgen estimate``."""
    group.add_argument("--designs", "--weight", action="append", metavar="LIST",
                       help="comma-separated design names: a weight format, with -dsp or "
                            "-lut for a multiplier (int8-dsp, int8-lut, pot4, apot4, "
                            "pot4-lut, upot:{0,1,4,8}+{0,2})")
    group.add_argument("--formats", action="append", metavar="LIST",
                       help="comma-separated weight formats; intN/uintN expand to both "
                            "-dsp and -lut")
    group.add_argument("--act", action="append", metavar="LIST",
                       help="activation formats (intN, uintN; a bare N means uintN); "
                            "default uint8")
    group.add_argument("--acc-bits", action="append", metavar="LIST",
                       help="accumulator widths: N or auto (datatype bound for --k); "
                            "default auto")
    group.add_argument("--k", type=int, default=64,
                       help="dot-product length for the datatype bound (default 64)")
    group.add_argument("--overflow", choices=("wrap", "saturate"), default="wrap",
                       help="accumulator overflow rule (default wrap)")
    group.add_argument("--pipeline", type=int, default=0, metavar="N",
                       help="register stages in the product unit (default 0)")
    group.add_argument("--sign", choices=("fold", "negate", "both"), default="fold",
                       help="sign handling of signed shift-add MACs: fold into the "
                            "accumulator, negate in the product unit, or both (default "
                            "fold)")
    group.add_argument("--kind", choices=_designs.KINDS, default="mac",
                       help=f"{verb} MAC PEs, only their product units, or only their "
                            "accumulators (default mac)")
    group.add_argument("--reference", default=_designs.REFERENCE_DESIGN, metavar="NAME",
                       help="design the ratios are relative to (default "
                            f"{_designs.REFERENCE_DESIGN}; 'none' for no ratios)")
    group.add_argument("--rows", type=int, metavar="R",
                       help="--kind array: array rows (1..256)")
    group.add_argument("--cols", type=int, metavar="C",
                       help="--kind array: array columns (1..256)")
    group.add_argument("--dataflow", action="append", metavar="LIST",
                       help="--kind array: comma-separated dataflows, os and/or ws "
                            "(default os)")


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "synth", help="synthesize PEs for ECP5 and compare area and Fmax",
        description="Synthesize MAC PEs (or product units) with yosys and nextpnr for "
                    "Lattice ECP5 and print their resources and Fmax, relative to the "
                    "int8 LUT-multiplier PE. Without selection options: the default PE "
                    "family (" + ", ".join(_designs.DEFAULT_PE_FAMILY) + ") with uint8 "
                    "activations and the datatype-bound accumulator for K = 64.")
    add_design_options(p.add_argument_group("designs"), verb="synthesize")
    flow = p.add_argument_group("flow")
    flow.add_argument("--device", default="85k",
                      help="ECP5 device: " + ", ".join(DEVICES) + " (default 85k)")
    flow.add_argument("--package", help="package (default CABGA381)")
    flow.add_argument("--speed", type=int, default=6, help="speed grade 6, 7 or 8 "
                      "(default 6)")
    flow.add_argument("--seed", type=int, default=1, help="nextpnr seed (default 1)")
    flow.add_argument("--freq", type=float, default=DEFAULT_FREQ_MHZ, metavar="MHZ",
                      help=f"clock constraint for nextpnr (default {DEFAULT_FREQ_MHZ:g}; "
                           "the achieved Fmax is reported)")
    flow.add_argument("--no-place", action="store_true",
                      help="stop after yosys: resources only, no Fmax")
    flow.add_argument("--jobs", "-j", type=int, metavar="N",
                      help="parallel tool runs (default: the available cores)")
    flow.add_argument("--no-cache", action="store_true",
                      help="run the tools even when a cached report exists")
    flow.add_argument("--build-dir", metavar="DIR",
                      help="keep each run's Verilog, netlist and logs under DIR")
    out = p.add_argument_group("output")
    out.add_argument("--json", metavar="FILE", help='write {"reports": [...]} to FILE')
    out.add_argument("--csv", metavar="FILE", help="write the flat table to FILE")
    out.add_argument("--markdown", metavar="FILE", help="write a Markdown table to FILE")
    out.add_argument("--quiet", "-q", action="store_true",
                     help="no table on stdout and no progress bar")
    p.set_defaults(func=run)


def _acts(values):
    acts = []
    for value in _split(values) or ["uint8"]:
        acts.append(f"uint{value}" if value.isdigit() else value)
    return acts


def specs_from_args(args) -> list:
    """The :class:`~potgen.flow.designs.DesignSpec` list the options select."""
    names = []
    for name in _split(args.designs):
        names.append(name)
    for fmt in _split(args.formats):
        names += _designs.expand_format(fmt)
    if not names:
        names = list(_designs.DEFAULT_PE_FAMILY)
    accs = [_designs.parse_acc_bits(v) for v in _split(args.acc_bits)] or ["auto"]
    if args.k <= 0:
        raise ValueError(f"--k {args.k}: the dot-product length must be > 0")
    if args.pipeline < 0:
        raise ValueError(f"--pipeline {args.pipeline}: register stages must be >= 0")
    signs = ["fold", "negate"] if args.sign == "both" else [args.sign]
    array = _array_options(args)
    specs, seen = [], set()
    for act in _acts(args.act):
        for acc in accs:
            for name in names:
                for sign in signs:
                    for shape in array:
                        spec = _designs.DesignSpec(name, act=act, kind=args.kind,
                                                   acc_bits=acc, k=args.k,
                                                   overflow=args.overflow,
                                                   pipeline=args.pipeline, sign=sign,
                                                   **shape)
                        # The label ignores the sign where there is none to place,
                        # so --sign both runs multipliers and unsigned formats once.
                        key = (spec.label, spec.act, spec.acc_bits)
                        if key not in seen:
                            seen.add(key)
                            specs.append(spec)
    return specs


def _array_options(args) -> list:
    """``DesignSpec`` keyword sets of the array options (``[{}]`` for a PE kind)."""
    rows, cols = getattr(args, "rows", None), getattr(args, "cols", None)
    dataflows = _split(getattr(args, "dataflow", None))
    if args.kind != "array":
        given = [f"--{name}" for name, v in (("rows", rows), ("cols", cols),
                                             ("dataflow", dataflows)) if v]
        if given:
            raise ValueError(f"{', '.join(given)}: only with --kind array (--kind is "
                             f"{args.kind})")
        return [{}]
    missing = [f"--{name}" for name, v in (("rows", rows), ("cols", cols)) if v is None]
    if missing:
        raise ValueError(f"--kind array needs {' and '.join(missing)} (the array size, "
                         "1..256 each)")
    for flow in dataflows:
        if flow not in _designs.ARRAY_DATAFLOWS:
            raise ValueError(f"--dataflow {flow}: allowed: "
                             f"{', '.join(_designs.ARRAY_DATAFLOWS)}")
    return [{"rows": rows, "cols": cols, "dataflow": flow}
            for flow in dict.fromkeys(dataflows or ["os"])]


def add_ratios(reports, reference) -> None:
    """Ratios to ``reference``; arrays only against the reference of their own size."""
    groups = {}
    for r in reports:
        d = r.get("design", {})
        groups.setdefault((d.get("rows"), d.get("cols"), d.get("dataflow")), []).append(r)
    for group in groups.values():
        summary.add_ratios(group, reference)


def run(args) -> int:
    specs = specs_from_args(args)
    options = dict(device=args.device, package=args.package, speed=args.speed,
                   seed=args.seed, freq_mhz=args.freq, place=not args.no_place)
    flow_options(**options)  # every bad option is reported before anything runs
    if args.jobs is not None and args.jobs < 1:
        raise ValueError(f"--jobs {args.jobs}: must be >= 1")
    reference = None if args.reference.lower() == "none" else \
        _designs.DesignSpec(args.reference).name

    start = time.monotonic()
    reports = _designs.synthesize_specs(specs, jobs=args.jobs,
                                        progress=None if not args.quiet else False,
                                        build_dir=args.build_dir,
                                        cache=not args.no_cache, **options)
    wall = time.monotonic() - start
    add_ratios(reports, reference)

    summary.write_reports(reports, json_path=args.json, csv_path=args.csv,
                          markdown_path=args.markdown)
    if not args.quiet:
        sys.stdout.write(summary.format_table(reports))
        cached = sum(1 for r in reports if r.get("cached"))
        sys.stdout.write(f"{len(reports)} designs in {wall:.1f} s"
                         + (f" ({cached} from the cache)" if cached else "") + "\n")
    return 0
