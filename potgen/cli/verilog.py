"""``potgen verilog``: emit a processing-element component as Verilog plus metadata.

::

    potgen verilog product --weight apot4 --act int8 -o pe.v
    potgen verilog mac --weight pot4 --act uint8 --acc-bits auto --k 64 -o mac.v
    potgen verilog mac --weight pot4 --act uint8 --acc-bits exact --weights col.npy -o mac.v
    potgen verilog accumulator --input-bits 15 --acc-bits 20 --overflow saturate -o acc.v
    potgen verilog adder-tree --n 8 --input-bits 15 --pipeline 1 -o tree.v
    potgen verilog array --rows 8 --cols 8 --weight pot4 --act uint8 --dataflow os \
        --acc-bits auto --k 64 -o array.v
    potgen verilog accelerator --rows 8 --cols 8 --weight pot4 --act uint8 \
        --k-max 256 --act-slots 4 -o accel.v
    potgen verilog packed-product --weight int4 --act int4 -o pp.v

``-o FILE.v`` writes ``FILE.v`` and ``FILE.json`` (the metadata: parameters, format
specs, every port with width and signedness, latency, the bound method and its proved
range, tool versions); without ``-o`` the Verilog goes to standard output. The top
module is ``--name`` (default ``potgen_<kind>``). Identical options give
byte-identical files.
"""

from __future__ import annotations

import sys

import numpy as np
from amaranth.hdl import signed, unsigned

from .. import bounds
from ..hw import AdderTree, MacPE, product_unit
from ..hw.accumulator import OVERFLOW_MODES, Accumulator
from ..hw.export import emit, write
from ..hw.mac import MAC_SIGN_MODES
from ..hw.product import MULTIPLIER_IMPLEMENTATIONS, PRODUCT_UNITS, SIGN_MODES

KINDS = ("product", "mac", "accumulator", "adder-tree", "array", "accelerator",
         "packed-product")


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "verilog", help="emit a product unit, MAC PE, accumulator, adder tree or systolic array",
        description="Emit one component as a self-contained Verilog file and FILE.json "
                    "metadata. Identical options give byte-identical files.")
    kinds = parser.add_subparsers(dest="kind", metavar="KIND", parser_class=type(parser))
    parser.set_defaults(func=lambda args: _missing_kind(parser))

    p = kinds.add_parser(
        "product", help="act x weight product unit (combinational unless --pipeline)",
        description="Product unit: ports act, weight (a code), product (signed, exact "
                    "width). Shift-add for power-of-two formats, a multiplier for "
                    "intN/uintN.")
    _formats(p)
    _unit_options(p)
    p.add_argument("--sign", choices=SIGN_MODES, default="negate",
                   help="shift-add sign: negate here (product port) or split into "
                        "magnitude and negative ports (default: negate)")
    _pipeline(p)
    _output(p, "product")
    p.set_defaults(func=_run_product)

    p = kinds.add_parser(
        "mac", help="MAC PE: product unit + accumulator",
        description="MAC PE: ports clk, rst, act, weight, valid, clear, acc, overflow "
                    "(DESIGN.md section 4).")
    _formats(p)
    _acc_bits(p)
    p.add_argument("--k", type=int, metavar="K",
                   help="dot-product length for the bound (auto / datatype)")
    p.add_argument("--weights", metavar="FILE.npy",
                   help="integer weight levels [K] or [K, N] for the l1, "
                        "l1_zero_centered and exact bounds")
    _overflow(p)
    _pipeline(p)
    _unit_options(p)
    p.add_argument("--sign", choices=MAC_SIGN_MODES, default="fold",
                   help="shift-add sign: fold into the accumulator's adder or negate in "
                        "the product unit (default: fold, one carry chain fewer)")
    _output(p, "mac")
    p.set_defaults(func=_run_mac)

    p = kinds.add_parser(
        "accumulator", help="signed accumulator with valid / clear and sticky overflow",
        description="Accumulator: ports clk, rst, addend, valid, clear, acc, overflow "
                    "(and negate with --fold-sign).")
    p.add_argument("--input-bits", type=int, required=True, metavar="N",
                   help="width of the signed addend")
    p.add_argument("--acc-bits", required=True, metavar="N|auto",
                   help="accumulator width, or auto: exact for --k additions of the "
                        "full addend range")
    p.add_argument("--k", type=int, metavar="K", help="additions per sum (with auto)")
    _overflow(p)
    p.add_argument("--fold-sign", action="store_true",
                   help="add a negate input that subtracts the addend")
    _output(p, "accumulator")
    p.set_defaults(func=_run_accumulator)

    p = kinds.add_parser(
        "adder-tree", help="balanced adder tree with exact bit growth",
        description="Adder tree: ports inputs (N x input-bits, input i at the low end "
                    "first), sum (exact width).")
    p.add_argument("--n", type=int, required=True, metavar="N", help="number of inputs")
    p.add_argument("--input-bits", type=int, required=True, metavar="BITS",
                   help="width of each input")
    p.add_argument("--unsigned", action="store_true",
                   help="unsigned inputs (default: signed)")
    _pipeline(p, help="register stages spread over the adder levels (default 0)")
    _output(p, "adder_tree")
    p.set_defaults(func=_run_adder_tree)

    from .verilog_array import add_accelerator, add_array
    from .verilog_packed import add_packed_product
    add_array(kinds)
    add_accelerator(kinds)
    add_packed_product(kinds)


# --- shared options -------------------------------------------------------------------

def _formats(p):
    p.add_argument("--weight", required=True, metavar="FMT",
                   help="weight format (pot4, pot4-nz, apot4, sp2-4, upot:..., int4, ...)")
    p.add_argument("--act", required=True, metavar="FMT",
                   help="activation format, intN or uintN, N = 2..16")


def _unit_options(p):
    p.add_argument("--unit", choices=PRODUCT_UNITS, default="auto",
                   help="product unit (default auto: shift-add for power-of-two "
                        "formats, a multiplier for intN/uintN)")
    p.add_argument("--multiplier", choices=MULTIPLIER_IMPLEMENTATIONS, default="dsp",
                   help="multiplier implementation (default dsp)")


def _acc_bits(p):
    p.add_argument("--acc-bits", required=True, metavar="N|auto|METHOD",
                   help="accumulator width: an int, auto (datatype bound, needs --k) or "
                        f"a bound method: {', '.join(bounds.METHODS)}")


def _overflow(p):
    p.add_argument("--overflow", choices=OVERFLOW_MODES, default="wrap",
                   help="accumulator overflow rule (default wrap)")


def _pipeline(p, help="output register stages (default 0)"):
    p.add_argument("--pipeline", type=int, default=0, metavar="N", help=help)


def _output(p, kind):
    p.add_argument("--name", default=f"potgen_{kind}", metavar="NAME",
                   help=f"top module name (default potgen_{kind})")
    p.add_argument("-o", "--output", metavar="FILE.v",
                   help="write FILE.v and FILE.json (default: Verilog to stdout)")


def _missing_kind(parser) -> int:
    raise ValueError(f"{parser.prog}: choose what to emit: {', '.join(KINDS)}")


def _parse_acc_bits(text: str):
    text = text.strip()
    if text.lstrip("-").isdigit():
        return int(text)
    return text.lower()


def _load_weights(path: str) -> np.ndarray:
    try:
        weights = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:
        raise ValueError(f"--weights {path}: cannot read a .npy array ({e})") from None
    if not isinstance(weights, np.ndarray):
        raise ValueError(f"--weights {path}: holds an archive, not a single .npy array")
    if weights.dtype.kind not in "iu":
        raise ValueError(f"--weights {path}: weights must be integer levels, got dtype "
                         f"{weights.dtype}")
    return weights


def _emit(component, args) -> int:
    if args.output:
        verilog_path, json_path, meta = write(component, args.name, args.output)
        ports = " ".join(f"{p['name']}[{p['width']}]" for p in meta["ports"])
        print(f"wrote {verilog_path} and {json_path}: module {meta['name']}, latency "
              f"{meta['latency']}, ports {ports}")
    else:
        text, _ = emit(component, args.name)
        sys.stdout.write(text)
    return 0


# --- commands -------------------------------------------------------------------------

def _run_product(args) -> int:
    unit = product_unit(args.weight, args.act, unit=args.unit, multiplier=args.multiplier,
                        pipeline=args.pipeline, sign=args.sign)
    return _emit(unit, args)


def _run_mac(args) -> int:
    acc_bits = _parse_acc_bits(args.acc_bits)
    weights = _load_weights(args.weights) if args.weights else None
    if acc_bits in ("auto", "datatype") and args.k is None and weights is None:
        raise ValueError(f"--acc-bits {args.acc_bits} needs --k (the dot-product length)")
    if acc_bits in bounds.WEIGHT_METHODS and weights is None:
        raise ValueError(f"--acc-bits {args.acc_bits} needs --weights FILE.npy (integer "
                         "weight levels)")
    pe = MacPE(args.weight, args.act, acc_bits=acc_bits, k=args.k, weights=weights,
               overflow=args.overflow, pipeline=args.pipeline, unit=args.unit,
               multiplier=args.multiplier, sign=args.sign)
    return _emit(pe, args)


def _run_accumulator(args) -> int:
    acc_bits = _parse_acc_bits(args.acc_bits)
    if args.input_bits < 1:
        raise ValueError(f"--input-bits {args.input_bits}: must be >= 1")
    if acc_bits == "auto":
        if args.k is None or args.k <= 0:
            raise ValueError("--acc-bits auto needs --k > 0 (additions per sum)")
        half = 1 << (args.input_bits - 1)
        # With --fold-sign the addend spans +-2^(n-1): -(-2^(n-1)) needs one bit more.
        hi = half if args.fold_sign else half - 1
        acc_bits = bounds.signed_width(-half * args.k, hi * args.k)
    elif not isinstance(acc_bits, int):
        raise ValueError(f"--acc-bits {args.acc_bits}: an accumulator takes an int width "
                         "or auto (with --k)")
    acc = Accumulator(args.input_bits, acc_bits, args.overflow, fold_sign=args.fold_sign)
    return _emit(acc, args)


def _run_adder_tree(args) -> int:
    if args.input_bits < 1:
        raise ValueError(f"--input-bits {args.input_bits}: must be >= 1")
    shape = (unsigned if args.unsigned else signed)(args.input_bits)
    return _emit(AdderTree(args.n, shape, pipeline=args.pipeline), args)
