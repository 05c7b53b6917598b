"""``potgen verilog array``: emit a systolic array as Verilog plus metadata.

::

    potgen verilog array --rows 8 --cols 8 --weight pot4 --act uint8 --k 512 -o array.v
    potgen verilog array --rows 4 --cols 4 --weight pot4 --act uint8 --dataflow ws \\
        --acc-bits exact --weights layer.npy --overflow saturate -o array.v
    potgen verilog array --rows 4 --cols 4 --act uint8 --k 256 \\
        --weight int4 --weight sp2-4 --weight sp2-4 --weight sp2-4 -o msq.v

``--weight`` once gives every column that format; given exactly ``--cols`` times it
gives one format per column (an MSQ mixed array). ``FILE.json`` holds the parameters,
each column's format and product unit, the accumulator bound, every port, the latency
and the host protocol of the dataflow (:class:`potgen.hw.array.SystolicArray`).

:func:`add_array` and :func:`add_accelerator` add the ``array`` and ``accelerator``
kinds to the ``potgen verilog`` sub-commands.
"""

from __future__ import annotations

from . import verilog as base

__all__ = ["add_array", "add_accelerator"]


def add_array(kinds) -> None:
    """Add ``array`` to the sub-parsers of ``potgen verilog`` (its ``KIND`` choices)."""
    from .. import bounds
    from ..hw.array import DATAFLOWS, MAX_DIMENSION
    from ..hw.mac import MAC_SIGN_MODES

    p = kinds.add_parser(
        "array", help="rows x cols systolic array of MAC PEs (output / weight stationary)",
        description="Systolic array: ports clk, rst, act (rows elements), weight (cols "
                    "elements), valid, last (os) or first / psum / psum_overflow (ws), "
                    "out_valid, out_acc (cols elements), out_overflow. The host feeds "
                    "unskewed rows; results leave as deskewed rows. The metadata JSON "
                    "documents the protocol and the latencies.")
    p.add_argument("--rows", type=int, required=True, metavar="R",
                   help=f"array rows, 1..{MAX_DIMENSION}")
    p.add_argument("--cols", type=int, required=True, metavar="C",
                   help=f"array columns, 1..{MAX_DIMENSION}")
    p.add_argument("--weight", required=True, action="append", metavar="FMT",
                   help="weight format of every column; repeat it --cols times for one "
                        "format per column (e.g. int4 multiplier columns and sp2-4 "
                        "shift-add columns)")
    p.add_argument("--act", required=True, metavar="FMT",
                   help="activation format, intN or uintN, N = 2..16")
    p.add_argument("--dataflow", choices=DATAFLOWS, default="os",
                   help="output stationary (os, default) or weight stationary (ws)")
    p.add_argument("--acc-bits", default="auto", metavar="N|auto|METHOD",
                   help="accumulator width: an int, auto (datatype bound over every "
                        "column format, needs --k; the default) or a bound method: "
                        f"{', '.join(bounds.METHODS)}")
    p.add_argument("--k", type=int, metavar="K",
                   help="longest dot product the array runs (for auto / datatype)")
    p.add_argument("--weights", metavar="FILE.npy",
                   help="integer weight levels [K, N] of the layer, for the l1, "
                        "l1_zero_centered and exact bounds")
    base._overflow(p)
    base._pipeline(p, help="register stages in every product unit (default 0)")
    base._unit_options(p)
    p.add_argument("--sign", choices=MAC_SIGN_MODES, default="fold",
                   help="shift-add sign: fold into the adder or negate in the product "
                        "unit (default fold)")
    base._output(p, "array")
    p.set_defaults(func=_run_array)


def _run_array(args) -> int:
    from .. import bounds
    from ..hw.array import SystolicArray

    acc_bits = base._parse_acc_bits(args.acc_bits)
    weights = base._load_weights(args.weights) if args.weights else None
    if weights is not None and weights.ndim != 2:
        raise ValueError(f"--weights {args.weights}: an array needs the layer's levels "
                         f"[K, N], got shape {weights.shape}")
    if acc_bits in ("auto", "datatype") and args.k is None and weights is None:
        raise ValueError(f"--acc-bits {args.acc_bits} needs --k (the longest dot product "
                         "the array runs)")
    if acc_bits in bounds.WEIGHT_METHODS and weights is None:
        raise ValueError(f"--acc-bits {args.acc_bits} needs --weights FILE.npy (integer "
                         "weight levels [K, N])")
    formats = args.weight
    if len(formats) not in (1, args.cols):
        raise ValueError(f"--weight given {len(formats)} times for --cols {args.cols}: "
                         "give it once (every column) or once per column")
    weight = formats[0] if len(formats) == 1 else formats
    array = SystolicArray(args.rows, args.cols, weight, args.act, dataflow=args.dataflow,
                          acc_bits=acc_bits, k=args.k, weights=weights,
                          overflow=args.overflow, pipeline=args.pipeline, unit=args.unit,
                          multiplier=args.multiplier, sign=args.sign)
    return base._emit(array, args)


def add_accelerator(kinds) -> None:
    """Add ``accelerator`` to the sub-parsers of ``potgen verilog``.

    ::

        potgen verilog accelerator --rows 8 --cols 8 --weight pot4 --act uint8 \\
            --k-max 256 --act-slots 4 -o accel.v

    ``FILE.json`` holds the command set, the argument fields, the buffer shapes, the
    timing parameters of the cycle model and every port (see ``docs/accelerator.md``).
    """
    from .. import bounds
    from ..hw.accelerator import MAX_ACT_SLOTS, MAX_DOUT_LANES, MAX_K, MAX_WEIGHT_SLOTS
    from ..hw.array import MAX_DIMENSION

    p = kinds.add_parser(
        "accelerator", help="GEMM accelerator: systolic array, slot buffers, requantizer, "
                            "load / compute / drain engines, command streams",
        description="Accelerator: ports clk, rst, cmd (stream of 32-bit commands), din "
                    "(stream of 32-bit operand words), dout (stream of result words), "
                    "busy, error, cycles. The metadata JSON documents the command set, "
                    "the word layouts and the timing; potgen.runtime drives it.")
    p.add_argument("--rows", type=int, required=True, metavar="R",
                   help=f"array rows, 1..{MAX_DIMENSION}")
    p.add_argument("--cols", type=int, required=True, metavar="C",
                   help=f"array columns, 1..{MAX_DIMENSION}")
    p.add_argument("--weight", required=True, action="append", metavar="FMT",
                   help="weight format of every column; repeat it --cols times for one "
                        "format per column (an MSQ mixed array)")
    p.add_argument("--act", required=True, metavar="FMT",
                   help="activation format, intN or uintN, N = 2..16")
    p.add_argument("--dataflow", choices=("os",), default="os",
                   help="output stationary (the only dataflow of the accelerator top)")
    p.add_argument("--acc-bits", default="auto", metavar="N|auto|METHOD",
                   help="accumulator width: an int, auto (datatype bound for --k-total; "
                        f"the default) or a bound method: {', '.join(bounds.METHODS)}")
    p.add_argument("--k-max", type=int, default=64, metavar="K",
                   help=f"steps per buffer slot, 1..{MAX_K} (default 64)")
    p.add_argument("--k-total", type=int, metavar="K",
                   help="longest dot product the accumulator bound covers (default "
                        "--k-max); longer K than --k-max is streamed in chunks")
    p.add_argument("--weights", metavar="FILE.npy",
                   help="integer weight levels [K, N], for the l1, l1_zero_centered and "
                        "exact bounds")
    p.add_argument("--out", default="uint8", metavar="FMT",
                   help="requantized output format, intN / uintN (default uint8)")
    base._overflow(p)
    base._pipeline(p, help="register stages in every product unit (default 0)")
    p.add_argument("--multiplier-bits", type=int, default=16, metavar="N",
                   help="width of the requantization multiplier m, 1..32 (default 16)")
    p.add_argument("--max-shift", type=int, default=31, metavar="S",
                   help="largest requantization shift, 0..127 (default 31)")
    p.add_argument("--requant-pipeline", type=int, default=3, metavar="N",
                   help="requantizer register stages, 0..3 (default 3: after the "
                        "multiplier, the shift and the clamp)")
    p.add_argument("--act-slots", type=int, default=4, metavar="N",
                   help=f"activation buffer slots, 1..{MAX_ACT_SLOTS} (default 4; 8 keeps a "
                        "16 x 16 array busy)")
    p.add_argument("--weight-slots", type=int, default=2, metavar="N",
                   help=f"weight buffer slots, 1..{MAX_WEIGHT_SLOTS} (default 2)")
    p.add_argument("--dout-lanes", type=int, default=1, metavar="N",
                   help=f"results per dout word, 1..{MAX_DOUT_LANES} (default 1)")
    base._output(p, "accelerator")
    p.set_defaults(func=_run_accelerator)


def _run_accelerator(args) -> int:
    from .. import bounds
    from ..hw.accelerator import Accelerator

    acc_bits = base._parse_acc_bits(args.acc_bits)
    weights = base._load_weights(args.weights) if args.weights else None
    if weights is not None and weights.ndim != 2:
        raise ValueError(f"--weights {args.weights}: an accelerator needs the layer's "
                         f"levels [K, N], got shape {weights.shape}")
    if acc_bits in bounds.WEIGHT_METHODS and weights is None:
        raise ValueError(f"--acc-bits {args.acc_bits} needs --weights FILE.npy (integer "
                         "weight levels [K, N])")
    formats = args.weight
    if len(formats) not in (1, args.cols):
        raise ValueError(f"--weight given {len(formats)} times for --cols {args.cols}: "
                         "give it once (every column) or once per column")
    weight = formats[0] if len(formats) == 1 else formats
    accelerator = Accelerator(
        args.rows, args.cols, weight, args.act, dataflow=args.dataflow, acc_bits=acc_bits,
        k_max=args.k_max, k_total_max=args.k_total, weights=weights,
        out_fmt=args.out, overflow=args.overflow, pipeline=args.pipeline,
        multiplier_bits=args.multiplier_bits, max_shift=args.max_shift,
        requant_pipeline=args.requant_pipeline, act_slots=args.act_slots,
        weight_slots=args.weight_slots, dout_lanes=args.dout_lanes)
    return base._emit(accelerator, args)
