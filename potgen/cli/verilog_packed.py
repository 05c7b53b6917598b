"""``potgen verilog packed-product``: several exact products in one multiplier.

::

    potgen verilog packed-product --weight int4 --act int4 -o pp.v
    potgen verilog packed-product --weight int2 --act uint2 --lanes 4 --pipeline 1 -o pp.v
    potgen verilog packed-product --weight int3 --act int3 --arrangement shared-act -o pp.v

Ports: ``act`` [K*A-1:0] (lane i at bits i*A), ``weight`` [W-1:0] (a code), ``product``
[K*P-1:0] (lane i at bits i*P, signed, exact); with ``--arrangement shared-act``
``act`` is one activation and ``weight`` holds K codes. ``--lanes`` defaults to the
most that fit one ECP5 MULT18X18D; too many is an error that says how many fit.
``-o FILE.v`` writes ``FILE.v`` and ``FILE.json`` (the metadata: formats, lanes,
spacing, offset, multiplier operand widths, every port with its lanes, latency, tool
versions); without ``-o`` the Verilog goes to standard output.

:func:`add_packed_product` adds the ``packed-product`` kind to the ``potgen verilog``
sub-commands.
"""

from __future__ import annotations

__all__ = ["add_packed_product", "run_packed_product"]


def _lanes(text: str):
    """``--lanes``: a positive int, or ``auto`` (the most that fit)."""
    text = text.strip().lower()
    if text == "auto":
        return None
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"--lanes {text}: expected a positive int or auto") from None
    if value < 1:
        raise ValueError(f"--lanes {value}: must be >= 1 (or auto)")
    return value


def add_packed_product(kinds) -> None:
    """Add ``packed-product`` to the sub-parsers of ``potgen verilog`` (its ``KIND``s)."""
    from ..hw.lanes import ARRANGEMENTS
    from . import verilog as base

    p = kinds.add_parser(
        "packed-product",
        help="K exact products of narrow operands in one multiplier (MULT18X18D)",
        description="Packed product unit: ports act (K lanes, lane i at bits i*A), weight "
                    "(a code), product (K lanes, lane i at bits i*P, signed, exact); "
                    "with --arrangement shared-act, one act and K weight codes. One "
                    "'*' that yosys maps onto one ECP5 MULT18X18D, with the exact "
                    "correction of the upper lanes.")
    base._formats(p)
    p.add_argument("--lanes", default="auto", metavar="K|auto",
                   help="products per multiplier (default auto: the most that fit the "
                        "18x18 ports)")
    p.add_argument("--arrangement", choices=ARRANGEMENTS, default="shared-weight",
                   help="K activations share one weight (default) or K weights share "
                        "one activation")
    base._pipeline(p, help="register stages: the multiplier result, then the products "
                           "(default 0)")
    base._output(p, "packed_product")
    p.set_defaults(func=run_packed_product)


def run_packed_product(args) -> int:
    """Build the unit from parsed arguments and emit it (exit code)."""
    from ..hw.packed_product import PackedProduct
    from . import verilog as base

    unit = PackedProduct(args.weight, args.act, _lanes(args.lanes),
                         arrangement=args.arrangement, pipeline=args.pipeline)
    return base._emit(unit, args)
