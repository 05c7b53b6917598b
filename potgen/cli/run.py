"""``potgen run``: run GEMMs and the digits network on a generated accelerator.

::

    potgen run gemm --acts A.npy --codes W.npy --weight pot4 --act uint8 \\
        --rows 8 --cols 8 --dataflow os --backend verilator --out C.npy --json stats.json
    potgen run digits --weight pot4 --json out.json

``gemm`` builds an accelerator for the operands (accumulator width from a bound over
``K``), runs ``C = A @ decode(W)`` through :class:`potgen.runtime.AcceleratorDriver` on
the chosen back end, writes the raw accumulators to ``--out`` and the cycles,
utilisation and a bit-for-bit comparison with :func:`potgen.golden.matmul` to
``--json``. ``digits`` trains the built-in MLP (:mod:`potgen.networks.digits`),
quantizes it, runs every layer of the whole test split on the accelerator (hidden
layers requantized on chip, the last layer's accumulators read raw) and compares each
layer's outputs with the golden model's.

The back end is the emitted Verilog under Verilator by default; ``amaranth`` runs
Amaranth's simulator (small arrays). A back end that finds a mismatch with the golden
model makes the command exit 1 after writing its JSON.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

from .. import bounds, golden
from ..formats import parse_format
from ..runtime.backends import BACKENDS, DEFAULT_BACKEND

__all__ = ["register", "run_gemm", "run_digits"]

#: Every back end ``potgen run`` accepts: the direct ones and the board ones.
RUN_BACKENDS = BACKENDS + ("uart-sim", "board")


def _common(p) -> None:
    p.add_argument("--rows", type=int, default=8, metavar="R", help="array rows (default 8)")
    p.add_argument("--cols", type=int, default=8, metavar="C",
                   help="array columns (default 8)")
    p.add_argument("--dataflow", choices=("os", "ws"), default="os",
                   help="output stationary (default) or weight stationary")
    p.add_argument("--backend", choices=RUN_BACKENDS, default=DEFAULT_BACKEND,
                   help=f"where the accelerator runs (default {DEFAULT_BACKEND})")
    p.add_argument("--board", metavar="NAME", help="board of the uart-sim / board back ends")
    p.add_argument("--port", metavar="DEV", help="serial port of the board back end")
    p.add_argument("--json", metavar="FILE", help="write the statistics here")


def register(subparsers) -> None:
    p = subparsers.add_parser("run", help="run a GEMM or the digits network on an accelerator",
                              description=__doc__.split("\n\n")[0])
    jobs = p.add_subparsers(dest="job", metavar="JOB", parser_class=type(p))
    p.set_defaults(func=lambda args: p.error("choose a job: gemm or digits"))

    g = jobs.add_parser("gemm", help="C = A @ W on the accelerator, raw accumulators")
    g.add_argument("--acts", required=True, metavar="A.npy",
                   help="activation values [M, K] (integers of --act)")
    g.add_argument("--codes", required=True, metavar="W.npy",
                   help="weight codes [K, N] (codes of --weight)")
    g.add_argument("--weight", required=True, metavar="FMT", help="weight format")
    g.add_argument("--act", required=True, metavar="FMT", help="activation format")
    g.add_argument("--acc-bits", default="datatype", metavar="N|METHOD",
                   help="accumulator width or a bound method over the given K (and weights "
                        f"for l1 / exact): {', '.join(bounds.METHODS)} (default datatype)")
    g.add_argument("--out", metavar="C.npy", help="write the raw accumulators [M, N] here")
    _common(g)
    g.set_defaults(func=_gemm_command)

    d = jobs.add_parser("digits", help="the built-in digits MLP on the accelerator, whole "
                        "test split, bit-exact against the golden model")
    d.add_argument("--weight", default="pot4", metavar="FMT",
                   help="weight format of every layer (default pot4); msq:F[:U:S] for an "
                        "MSQ split")
    d.add_argument("--act", default="uint8", metavar="FMT",
                   help="activation format (default uint8)")
    d.add_argument("--samples", type=int, metavar="N",
                   help="first N test images (default: the whole test split, 450)")
    d.add_argument("--network", choices=("mlp", "cnn"), default="mlp",
                   help="the MLP (default) or the CNN (its convolution runs as an im2col GEMM)")
    d.add_argument("--hidden", type=int, default=32,
                   help="MLP hidden units (default 32); the CNN has hidden / 4 channels")
    d.add_argument("--seed", type=int, default=0, help="split and training seed (default 0)")
    _common(d)
    d.set_defaults(func=_digits_command)


def _load_npy(path: str, name: str) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise ValueError(f"--{name} {path}: no such file") from None
    except (OSError, ValueError) as e:
        raise ValueError(f"--{name} {path}: not a NumPy .npy array ({e})") from None


def _acc_bits(spec: str, act_fmt, weight_fmt, levels) -> int:
    if spec.isdigit():
        return int(spec)
    if spec not in bounds.METHODS:
        raise ValueError(f"--acc-bits {spec!r}: expected an int or one of "
                         f"{', '.join(bounds.METHODS)}")
    return bounds.compute(spec, act_fmt, weight_fmt, k=levels.shape[0], weights=levels).bits


#: Deepest operand buffer slot ``potgen run`` builds; longer ``K`` streams in chunks.
MAX_SLOT_DEPTH = 256


def _accelerator(rows, cols, weight, act, *, dataflow, acc_bits, m, k, out_fmt="uint8"):
    """The accelerator ``potgen run`` builds for GEMMs up to ``m x k``.

    Output-stationary: slots of ``min(K, 256)`` steps (``K`` beyond that streams in
    chunks), eight activation slots on 16 rows and more so that ``din`` keeps up, and up
    to four results per ``dout`` word so that short-``K`` layers (a convolution's
    im2col GEMM has ``K = 10``) are not bound by the drain (4x fewer cycles for the
    digits CNN's convolution by the cycle model).
    Weight-stationary: a slot holds ``min(M, 256)`` activation rows (at least ``rows``,
    the preload), four partial-sum tiles and a ``dout`` word per result row, the
    settings of docs/accelerator.md's WS figures.
    """
    from ..hw.accelerator import Accelerator
    params = dict(dataflow=dataflow, acc_bits=acc_bits, out_fmt=out_fmt, k_total_max=k)
    if dataflow == "os":
        params.update(k_max=min(k, MAX_SLOT_DEPTH), act_slots=8 if rows >= 16 else 4,
                      dout_lanes=min(cols, 4))
    else:
        params.update(k_max=max(rows, min(m, MAX_SLOT_DEPTH)), psum_tiles=4,
                      dout_lanes=cols)
    return Accelerator(rows, cols, weight, act, **params)


def _check_backend(args) -> None:
    """Refuse back-end options before anything is built."""
    if args.backend in BACKENDS:
        return
    if not args.board:
        raise ValueError(f"--backend {args.backend} needs --board NAME")
    from ..boards import board
    board(args.board)
    if args.backend == "board" and not args.port:
        raise ValueError("--backend board needs --port DEVICE (e.g. /dev/ttyUSB0)")


def _backend(args, accelerator):
    _check_backend(args)
    if args.backend in BACKENDS:
        from ..runtime.backends import make_backend
        return make_backend(args.backend, accelerator)
    from ..boards.backends import make_board_backend
    return make_board_backend(args.backend, accelerator, board=args.board, port=args.port)



def _write_json(path, stats: dict) -> None:
    if path:
        target = Path(path)
        tmp = target.with_name(target.name + ".tmp")
        tmp.write_text(json.dumps(stats, indent=2) + "\n")
        tmp.replace(target)


def run_gemm(acts, codes, weight, act, *, rows=8, cols=8, dataflow="os",
             backend="verilator", acc_bits="datatype", args=None) -> tuple:
    """Run one GEMM; ``(acc [M, N], stats dict)``. ``args`` carries board options."""
    weight_fmt, act_fmt = parse_format(weight), parse_format(act)
    acts = golden.as_integers(acts, "acts")
    codes = golden.as_integers(codes, "codes")
    if acts.ndim != 2 or codes.ndim != 2 or acts.shape[1] != codes.shape[0]:
        raise ValueError(f"--acts [M, K] = {list(acts.shape)} and --codes [K, N] = "
                         f"{list(codes.shape)} do not form a GEMM")
    if codes.size and (codes.min() < 0 or codes.max() >= 1 << weight_fmt.bits):
        raise ValueError(f"--codes: values {int(codes.min())}..{int(codes.max())} are not "
                         f"codes of {weight_fmt} (0..{(1 << weight_fmt.bits) - 1})")
    opts = args or _Options(backend)
    _check_backend(opts)
    levels = weight_fmt.decode(codes)
    bits = _acc_bits(str(acc_bits), act_fmt, weight_fmt, levels)
    M, K = acts.shape
    N = codes.shape[1]
    accelerator = _accelerator(rows, cols, weight_fmt, act_fmt, dataflow=dataflow,
                               acc_bits=bits, m=M, k=K)
    from ..runtime import AcceleratorDriver
    driver = AcceleratorDriver(accelerator, _backend(opts, accelerator))
    start = time.perf_counter()
    result = driver.gemm(acts, codes)
    seconds = time.perf_counter() - start
    expected = golden.matmul(acts, codes, weight_fmt, golden.AccSpec(bits, "wrap"))
    macs = M * K * N
    stats = {
        "job": "gemm", "shape": [M, K, N], "weight": str(weight_fmt), "act": str(act_fmt),
        "rows": rows, "cols": cols, "dataflow": dataflow, "backend": opts.backend,
        "acc_bits": bits, "cycles": int(result.cycles), "macs": macs,
        "utilization": macs / (rows * cols * result.cycles) if result.cycles else 0.0,
        "tiles": int(result.tiles),
        "bit_exact": bool(np.array_equal(result.acc, expected.acc)
                          and np.array_equal(result.overflow, expected.overflow)),
        "seconds": round(seconds, 3),
    }
    return result.acc, stats


def _column_formats(weight, q, cols: int):
    """The accelerator's weight format: one format, or MSQ's columns (uniform ones first).

    MSQ gives ``round(F * cols)`` columns to the SP2 format, at least one of each format
    a layer uses, and the driver places each layer's channels onto the columns of their
    format (:func:`potgen.runtime.driver.column_map`).
    """
    from ..networks.quantized import parse_layer_format
    kind, value = parse_layer_format(weight)
    if kind == "uniform":
        return value
    fraction, uniform, sp2 = value
    used = {f for layer in q.layers for f in layer.formats}
    if len(used) == 2 and cols < 2:
        raise ValueError(f"--weight {weight}: an MSQ array needs at least 2 columns "
                         "(one per format)")
    n_sp2 = round(fraction * cols)
    if sp2 in used:
        n_sp2 = max(n_sp2, 1)
    if uniform in used:
        n_sp2 = min(n_sp2, cols - 1)
    return [uniform] * (cols - n_sp2) + [sp2] * n_sp2


class _Options:
    def __init__(self, backend, board=None, port=None):
        self.backend, self.board, self.port = backend, board, port


def run_digits(weight="pot4", act="uint8", *, rows=8, cols=8, dataflow="os",
               backend="verilator", samples=None, network="mlp", hidden=32, seed=0,
               args=None, progress=None) -> dict:
    """The digits MLP on the accelerator; returns the ``out.json`` statistics."""
    from ..networks import digits
    from ..runtime import AcceleratorDriver, RequantParams

    opts = args or _Options(backend)
    _check_backend(opts)
    net = digits.load(network, seed=seed, hidden=hidden)
    q = digits.quantize(net, weight, act)
    x, y = net.split("test")
    if samples is not None:
        if isinstance(samples, bool) or not isinstance(samples, int) \
                or not 1 <= samples <= len(y):
            raise ValueError(f"--samples {samples!r}: must be 1..{len(y)}")
        x, y = x[:samples], y[:samples]
    weight_fmt = _column_formats(weight, q, cols)
    k = max(layer.k for layer in q.layers)
    m = max(layer.gemm_shape(len(y))[0] for layer in q.layers)
    accelerator = _accelerator(rows, cols, weight_fmt, q.act_format, dataflow=dataflow,
                               acc_bits=q.acc_bits, m=m, k=k, out_fmt=q.act_format)
    driver = AcceleratorDriver(accelerator, _backend(opts, accelerator))

    layers = []
    exact = True
    start = time.perf_counter()

    def on_accelerator(acts, layer, index):
        nonlocal exact
        requant = None if layer.is_last else RequantParams(
            multiplier=layer.multiplier, shift=layer.shift, zero_point=0, relu=layer.relu)
        result = driver.gemm(acts, layer.codes, requant,
                             channel_formats=None if layer.uniform_format else layer.formats)
        expected = q.golden_layer(acts, layer, index)
        same = bool(np.array_equal(result.acc, expected))
        exact = exact and same
        M, K, N = acts.shape[0], layer.k, layer.n
        layers.append({"shape": [M, K, N], "cycles": int(result.cycles),
                       "tiles": int(result.tiles), "bit_exact": same,
                       "utilization": M * K * N / (rows * cols * result.cycles)})
        if progress:
            progress(index, len(q.layers))
        return result.acc

    predictions = q.predict(x, on_accelerator)
    cycles = sum(layer["cycles"] for layer in layers)
    macs = sum(int(np.prod(layer["shape"])) for layer in layers)
    return {
        "job": "digits", "network": net.name, "weight": str(weight), "act": str(q.act_format),
        "rows": rows, "cols": cols, "dataflow": dataflow, "backend": opts.backend,
        "acc_bits": q.acc_bits,
        "accuracy": float(np.mean(predictions == y)),
        "float_accuracy": float(np.mean(np.argmax(net.forward(x), axis=1) == y)),
        "golden_accuracy": float(np.mean(q.predict(x) == y)),
        "bit_exact": exact, "samples": int(len(y)), "cycles": cycles, "macs": macs,
        "utilization": macs / (rows * cols * cycles) if cycles else 0.0,
        "layers": layers, "seconds": round(time.perf_counter() - start, 3),
    }


def _gemm_command(args) -> int:
    acts = _load_npy(args.acts, "acts")
    codes = _load_npy(args.codes, "codes")
    acc, stats = run_gemm(acts, codes, args.weight, args.act, rows=args.rows, cols=args.cols,
                          dataflow=args.dataflow, backend=args.backend,
                          acc_bits=args.acc_bits, args=args)
    if args.out:
        target = Path(args.out)
        with open(target.with_name(target.name + ".tmp"), "wb") as f:
            np.save(f, acc)
        target.with_name(target.name + ".tmp").replace(target)
    _write_json(args.json, stats)
    print(f"gemm {stats['shape'][0]}x{stats['shape'][1]}x{stats['shape'][2]} on "
          f"{args.rows}x{args.cols} {args.dataflow} ({args.backend}): {stats['cycles']} "
          f"cycles, utilisation {stats['utilization']:.1%}, "
          f"{'bit-exact' if stats['bit_exact'] else 'MISMATCH with the golden model'}")
    return 0 if stats["bit_exact"] else 1


def _digits_command(args) -> int:
    def progress(index, total):
        print(f"layer {index + 1}/{total} done", file=sys.stderr)

    stats = run_digits(args.weight, args.act, rows=args.rows, cols=args.cols,
                       dataflow=args.dataflow, backend=args.backend, samples=args.samples,
                       network=args.network, hidden=args.hidden, seed=args.seed, args=args,
                       progress=progress)
    _write_json(args.json, stats)
    print(f"digits {stats['weight']} x {stats['act']} on {args.rows}x{args.cols} "
          f"{args.dataflow} ({args.backend}): accuracy {stats['accuracy']:.2%} (float "
          f"{stats['float_accuracy']:.2%}), {stats['samples']} images, {stats['cycles']} "
          f"cycles, utilisation {stats['utilization']:.1%}, "
          f"{'bit-exact' if stats['bit_exact'] else 'MISMATCH with the golden model'}")
    return 0 if stats["bit_exact"] else 1
