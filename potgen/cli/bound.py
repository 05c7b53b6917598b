"""``potgen bound``: accumulator widths by every bound method (DESIGN.md section 3).

::

    potgen bound --k 512 --act uint8 --weight int8
    potgen bound --act uint8 --weight pot4 --weights w.npy --json bounds.json

Prints a table (method, bits, min, max). ``datatype`` needs only the formats and K;
``l1``, ``l1_zero_centered`` and ``exact`` appear when ``--weights`` gives the integer
weight levels (a ``.npy`` file, shape [K] or [K, N]). ``--json`` prints a JSON object
keyed by method name instead (or, with a file name, writes it there and still prints
the table): ``{"bits": N, "min": .., "max": ..}`` per method, or ``{"error": "why"}``
for a method that does not apply to the weights.
"""

from __future__ import annotations

import json
import sys

import numpy as np

from .. import bounds
from ..formats import IntFormat, parse_format


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "bound", help="accumulator width by each bound method",
        description="Smallest signed accumulator width that never overflows, by each "
                    "method: datatype (formats and K), and with --weights: l1 (A2Q), "
                    "l1_zero_centered (A2Q+), exact (FINN range).")
    p.add_argument("--k", type=int, metavar="K",
                   help="dot-product length (may be omitted with --weights)")
    p.add_argument("--act", required=True, metavar="FMT",
                   help="activation format: intN or uintN")
    p.add_argument("--weight", required=True, metavar="FMT",
                   help="weight format spec (int8, pot4, apot4, sp2-4, upot:...)")
    p.add_argument("--weights", metavar="FILE.npy",
                   help="integer weight levels, shape [K] or [K, N] (columns = outputs)")
    p.add_argument("--json", nargs="?", const="-", metavar="FILE",
                   help="JSON keyed by method; to stdout, or to FILE")
    p.set_defaults(func=run)


def _load_weights(path: str) -> np.ndarray:
    try:
        w = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:
        raise ValueError(f"--weights {path}: cannot read a .npy array ({e})") from None
    if not isinstance(w, np.ndarray):
        raise ValueError(f"--weights {path}: holds an archive, not a single .npy array")
    if w.dtype.kind not in "iu":
        raise ValueError(f"--weights {path}: weights must be integer levels, got dtype "
                         f"{w.dtype}; save exact levels with .astype(np.int64)")
    if w.ndim not in (1, 2) or w.size == 0:
        raise ValueError(f"--weights {path}: shape must be [K] or [K, N] with K, N >= 1, "
                         f"got {w.shape}")
    return w


def compute_all(k, act, weight, weights=None) -> dict:
    """Every applicable method's bound, or its refusal: method -> Bound | BoundError."""
    results = {}
    for method in bounds.METHODS:
        if method in bounds.WEIGHT_METHODS and weights is None:
            continue
        try:
            results[method] = bounds.compute(method, act, weight, k=k, weights=weights)
        except bounds.BoundError as e:
            results[method] = e
    return results


def _table(results: dict, k: int, act: str, weight: str, columns) -> str:
    head = f"K={k}  act={act}  weight={weight}"
    if columns is not None:
        head += f"  weights: {columns} column{'s' if columns != 1 else ''}"
    rows = [("method", "bits", "min", "max")]
    notes = []
    for method, r in results.items():
        if isinstance(r, Exception):
            rows.append((method, "-", "-", "-"))
            notes.append(str(r))
        else:
            rows.append((method, str(r.bits), str(r.min), str(r.max)))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = [head] + ["  ".join([row[0].ljust(widths[0])] +
                                [row[i].rjust(widths[i]) for i in range(1, 4)])
                      for row in rows]
    return "\n".join(lines + notes)


def run(args) -> int:
    act = parse_format(args.act)
    if not isinstance(act, IntFormat):
        raise ValueError(f"--act {args.act}: activations are intN or uintN")
    weight = parse_format(args.weight)
    if args.k is not None and args.k <= 0:
        raise ValueError(f"--k must be a positive integer (the dot-product length), got "
                         f"{args.k}")
    weights = None
    if args.weights is not None:
        weights = _load_weights(args.weights)
        if args.k is not None and args.k != weights.shape[0]:
            raise ValueError(f"--k {args.k} does not match K = {weights.shape[0]} of "
                             f"--weights {args.weights} (shape {weights.shape})")
        try:
            weight.encode(weights)
        except ValueError as e:
            raise ValueError(f"--weights {args.weights}: not representable in --weight "
                             f"{weight}: {e}") from None
    elif args.k is None:
        raise ValueError("--k is required unless --weights gives the weights")
    k = args.k if args.k is not None else weights.shape[0]

    results = compute_all(k, act, weight, weights)
    payload = {m: ({"error": str(r)} if isinstance(r, Exception) else r.to_dict())
               for m, r in results.items()}
    text = json.dumps(payload, indent=2) + "\n"
    if args.json == "-":
        sys.stdout.write(text)
        return 0
    if args.json is not None:
        try:
            with open(args.json, "w") as f:
                f.write(text)
        except OSError as e:
            raise ValueError(f"--json {args.json}: cannot write ({e.strerror})") from None
    columns = None if weights is None else (1 if weights.ndim == 1 else weights.shape[1])
    print(_table(results, k, str(act), str(weight), columns))
    return 0
