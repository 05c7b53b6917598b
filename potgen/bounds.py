"""Accumulator bounds: the narrowest signed accumulator that can never overflow.

Four methods (DESIGN.md section 3, BACKGROUND.md section 3), from the loosest
knowledge to the most:

``datatype``
    Formats and K only: the exact worst case ``K * extreme(x * w)`` over the extreme
    levels of the two formats (not the loose closed form ``K * 2^N * 2^(M-1)``).
``l1``
    A2Q (Colbert et al., ICCV 2023): ``|partial sum| <= ||q||_1 * 2^(N - 1_signed(x))``
    per output column, from the actual weights.
``l1_zero_centered``
    A2Q+ (ICML 2024): ``+-(||q||_1 / 2) * (x_max - x_min)``, only for columns whose
    positive and negative weight mass are equal; any other column is refused with a
    :class:`BoundError` that names it.
``exact``
    FINN's ``MinimizeAccumulatorWidth``: per column the largest and smallest sum any
    activation vector can produce.

Every method proves a range ``[min, max]`` that holds for *every partial sum* of the
dot product, in any order of accumulation (each docstring says why); ``bits`` is the
smallest signed two's complement width holding that range (accumulators are always
signed). For weight-based methods the bound of a ``[K, N]`` matrix is the union of its
columns' ranges, whose width is the widest column's width; the per-column ranges are
kept as proof data.

Weights are integer *levels* (the values codes decode to, not the codes), shape ``[K]``
or ``[K, N]`` with one column per output channel. All arithmetic is exact Python
integer arithmetic; floats never enter a bound.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from .formats import Format, IntFormat, parse_format

__all__ = ["Bound", "BoundError", "METHODS", "WEIGHT_METHODS", "signed_width", "datatype", "l1",
           "l1_zero_centered", "exact", "compute"]

#: The bound methods, from formats-only to the exact range of the actual weights.
METHODS = ("datatype", "l1", "l1_zero_centered", "exact")

#: Methods that need the actual weights.
WEIGHT_METHODS = ("l1", "l1_zero_centered", "exact")

_INT64_MAX = np.iinfo(np.int64).max


class BoundError(ValueError):
    """A bound method does not apply to the given weights (the message says why)."""


@dataclass(frozen=True)
class Bound:
    """A proved accumulator range and the signed width that holds it.

    Members
    -------
    method : str
        One of :data:`METHODS`.
    bits : int
        Smallest signed two's complement width holding ``[min, max]``.
    min, max : int
        The proved range: every partial sum of every dot product lies in it.
    k : int
        Dot-product length K.
    act : str
        Canonical spec of the activation format.
    weight : str or None
        Canonical spec of the weight format, when one was given.
    column_ranges : tuple of (int, int)
        Weight-based methods: the proved ``(min, max)`` of each output column.
    column_l1 : tuple of int
        ``l1`` / ``l1_zero_centered``: ``||q||_1`` of each column.
    product_range : (int, int) or None
        ``datatype``: smallest and largest single product ``x * w`` of the formats.
    closed_form_bits : int or None
        ``datatype`` with ``intM`` / ``uintM`` weights: A2Q's closed form
        ``P = ceil(alpha + log2(1 + 2^-alpha) + 1)``,
        ``alpha = log2 K + N + M - 1_signed(x) - 1_signed(w)``, for comparison (it
        assumes ``|x| <= 2^(N - 1_signed(x))``, ``|w| <= 2^(M - 1_signed(w))`` and
        is never tighter than ``bits``).
    """

    method: str
    bits: int
    min: int
    max: int
    k: int
    act: str
    weight: str | None = None
    column_ranges: tuple = field(default=(), repr=False)
    column_l1: tuple = field(default=(), repr=False)
    product_range: tuple | None = None
    closed_form_bits: int | None = None

    @property
    def column_bits(self) -> tuple:
        """Signed width of each column's range (weight-based methods)."""
        return tuple(signed_width(lo, hi) for lo, hi in self.column_ranges)

    def to_dict(self) -> dict:
        """``{"bits": .., "min": .., "max": ..}`` with plain ints (JSON ready)."""
        return {"bits": int(self.bits), "min": int(self.min), "max": int(self.max)}


def _need(v: int) -> int:
    # Signed width of one value: v >= 0 needs its magnitude bits plus a sign bit;
    # v < 0 needs as many as ~v = -v - 1 (since -2^(P-1) <= v <=> -v - 1 <= 2^(P-1) - 1).
    return (v if v >= 0 else ~v).bit_length() + 1


def signed_width(lo, hi) -> int:
    """Smallest P with ``-2^(P-1) <= lo`` and ``hi <= 2^(P-1) - 1``.

    Parameters
    ----------
    lo, hi : int
        The range, ``lo <= hi`` (Python or NumPy integers).

    Returns
    -------
    int
        The width, at least 1 (a 1-bit signed value holds -1 and 0).
    """
    lo, hi = _as_int("lo", lo), _as_int("hi", hi)
    if lo > hi:
        raise ValueError(f"signed_width: lo={lo} is above hi={hi}; need lo <= hi")
    return max(_need(lo), _need(hi))


def _as_int(name, v) -> int:
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, not {type(v).__name__} ({v!r})")
    return int(v)


def _act_format(act_fmt) -> IntFormat:
    fmt = parse_format(act_fmt)
    if not isinstance(fmt, IntFormat):
        # Every proof below uses x_min <= 0 <= x_max, which intN / uintN guarantee.
        raise ValueError(f"act_fmt: activations are intN or uintN (DESIGN.md 1), "
                         f"got {str(fmt)!r}")
    return fmt


def _check_k(k) -> int:
    if isinstance(k, (bool, np.bool_)) or not isinstance(k, (int, np.integer)):
        raise TypeError(f"k must be a positive integer, not {type(k).__name__} ({k!r})")
    if k <= 0:
        raise ValueError(f"k must be a positive integer (the dot-product length), got {k}")
    return int(k)


def _weights_2d(weights) -> np.ndarray:
    """Validate integer weight levels and return them as an int64 ``[K, N]`` array."""
    w = np.asarray(weights)
    if w.size == 0:
        raise ValueError(f"weights are empty (shape {w.shape}); need K >= 1 and N >= 1")
    if w.dtype.kind not in "iu":
        raise TypeError(f"weights must be integer levels (an integer array), not dtype "
                        f"{w.dtype}; convert exact levels with .astype(np.int64)")
    if w.ndim not in (1, 2):
        raise ValueError(f"weights must have shape [K] or [K, N], got shape {w.shape}")
    if w.dtype.kind == "u" and int(w.max()) > _INT64_MAX:
        raise ValueError(f"weights: value {int(w.max())} does not fit int64")
    w = w.astype(np.int64)
    if int(w.min()) == np.iinfo(np.int64).min:
        raise ValueError("weights: value -2^63 has no int64 magnitude")
    return w.reshape(w.shape[0], -1)


def _column_masses(w: np.ndarray) -> tuple:
    """Per column: (sum of positive weights, sum of |negative weights|) as Python ints."""
    pos = np.where(w > 0, w, 0)
    neg = np.where(w < 0, -w, 0)
    max_abs = int(np.abs(w).max())
    if max_abs * w.shape[0] > _INT64_MAX:
        # Exact even when an int64 column sum would wrap (object arrays hold Python ints).
        pos, neg = pos.astype(object), neg.astype(object)
    return ([int(v) for v in pos.sum(axis=0)], [int(v) for v in neg.sum(axis=0)])


def _union(method, ranges, k, act, **proof) -> Bound:
    lo = min(r[0] for r in ranges)
    hi = max(r[1] for r in ranges)
    return Bound(method, signed_width(lo, hi), lo, hi, k, str(act),
                 column_ranges=tuple(ranges), **proof)


def datatype(act_fmt, weight_fmt, k) -> Bound:
    """The exact worst case from the formats and K alone.

    The extreme single products are taken over the corners
    ``{x_min, x_max} x {w_min, w_max}`` (a product is bilinear, so its extremes are at
    corners); the bound is ``[K * p_min, K * p_max]``. Since ``x = 0`` is an
    activation level, ``p_min <= 0 <= p_max``, so every partial sum of at most K
    products lies in the range too. The range is reached (every weight and activation
    at the extreme corner), so no narrower width is safe for these formats.

    Examples: K = 512, uint8 x int8: ``[-16711680, 16581120]``, 25 bits (A2Q's closed
    form says 26); uint8 x pot4: ``[-8355840, 8355840]``, 24 bits.

    Parameters
    ----------
    act_fmt : Format or str
        Activation format (``intN`` / ``uintN``).
    weight_fmt : Format or str
        Weight format (any).
    k : int
        Dot-product length, >= 1.
    """
    act = _act_format(act_fmt)
    wfmt = parse_format(weight_fmt)
    k = _check_k(k)
    corners = [x * w for x in (act.min_level, act.max_level)
               for w in (wfmt.min_level, wfmt.max_level)]
    p_min, p_max = min(corners), max(corners)
    closed = None
    if isinstance(wfmt, IntFormat):
        # A2Q: P = ceil(alpha + log2(1 + 2^-alpha) + 1) with 2^alpha = R below; that
        # equals signed_width(-R, R) (see l1 for the proof), computed here exactly.
        r = k << (act.bits - int(act.signed) + wfmt.bits - int(wfmt.signed))
        closed = signed_width(-r, r)
    lo, hi = k * p_min, k * p_max
    return Bound("datatype", signed_width(lo, hi), lo, hi, k, str(act), str(wfmt),
                 product_range=(p_min, p_max), closed_form_bits=closed)


def l1(act_fmt, weights) -> Bound:
    """A2Q's L1 bound: ``|partial sum| <= ||q||_1 * 2^(N - 1_signed(x))`` per column.

    Holds for every partial sum in any order: ``|sum_i q_i x_i| <= sum_i |q_i| |x_i|``
    and ``|x| <= 2^(N - 1_signed(x))`` for an N-bit input.

    Equivalence with A2Q's float formula. Let ``R = ||q||_1 * 2^(N - 1_signed(x))``
    and ``alpha = log2 ||q||_1 + N - 1_signed(x) = log2 R``. Then
    ``alpha + log2(1 + 2^-alpha) = log2(2^alpha + 2^alpha * 2^-alpha) = log2(R + 1)``,
    so A2Q's ``P = ceil(alpha + log2(1 + 2^-alpha) + 1) = ceil(log2(R + 1)) + 1``.
    The smallest signed width holding ``[-R, R]`` is the smallest P with
    ``R <= 2^(P-1) - 1``, i.e. ``2^(P-1) >= R + 1``, i.e. ``P - 1 >= log2(R + 1)``:
    the same ``ceil(log2(R + 1)) + 1``. So ``bits`` here is A2Q's P, computed without
    floating point. (Example: uint8 inputs and P = 16 allow ``||q||_1 <= 127``.)

    Parameters
    ----------
    act_fmt : Format or str
        Activation format (``intN`` / ``uintN``).
    weights : array of int, shape [K] or [K, N]
        Weight levels, one column per output channel.
    """
    act = _act_format(act_fmt)
    w = _weights_2d(weights)
    pos, neg = _column_masses(w)
    norms = [p + n for p, n in zip(pos, neg)]
    x_bound = 1 << (act.bits - int(act.signed))
    return _union("l1", [(-q * x_bound, q * x_bound) for q in norms], w.shape[0], act,
                  column_l1=tuple(norms))


def l1_zero_centered(act_fmt, weights) -> Bound:
    """A2Q+'s bound for zero-centred weights: ``+-(||q||_1 / 2) * (x_max - x_min)``.

    Valid only where each column's positive mass ``P`` and negative mass ``M``
    (``sum |q_i|`` over negative ``q_i``) are each at most ``||q||_1 / 2``, i.e.
    ``P == M``. Why it then bounds every partial sum: a prefix with positive mass
    ``P' <= P`` and negative mass ``M' <= M`` sums to at most
    ``P' x_max - M' x_min <= P x_max - M x_min = (||q||_1 / 2)(x_max - x_min)`` because
    ``x_max >= 0 >= x_min``; the lower end is symmetric. Without the condition the
    formula is wrong: ``q = [5, -1]`` with uint4 inputs would promise +-45 (a 7-bit
    accumulator, +-63) while ``5 * 15 = 75``.

    Parameters
    ----------
    act_fmt : Format or str
        Activation format (``intN`` / ``uintN``).
    weights : array of int, shape [K] or [K, N]
        Weight levels, one column per output channel.

    Raises
    ------
    BoundError
        Naming the first column whose positive and negative masses differ.
    """
    act = _act_format(act_fmt)
    w = _weights_2d(weights)
    pos, neg = _column_masses(w)
    for col, (p, n) in enumerate(zip(pos, neg)):
        if p != n:
            half = f"{(p + n) // 2}{'.5' if (p + n) % 2 else ''}"
            raise BoundError(
                f"l1_zero_centered (A2Q+) does not apply: column {col} has positive "
                f"weight mass {p} and negative mass {n}; A2Q+ needs each <= "
                f"||q||_1/2 = {half}, i.e. equal masses")
    span = act.max_level - act.min_level
    return _union("l1_zero_centered", [(-p * span, p * span) for p in pos], w.shape[0],
                  act, column_l1=tuple(p + n for p, n in zip(pos, neg)))


def exact(act_fmt, weights) -> Bound:
    """FINN's exact range, per column; the bound is the union (the widest column).

    ``acc_max = sum_i q_i * (q_i > 0 ? x_max : x_min)`` and
    ``acc_min = sum_i q_i * (q_i > 0 ? x_min : x_max)``: the largest and smallest sums
    any activation vector can produce, both reached. They bound every *partial* sum
    too, in any order, when ``x_min <= 0 <= x_max`` -- always true for intN / uintN
    activations: each term's largest value ``max(q x_max, q x_min)`` is then >= 0 (and
    its smallest <= 0), so leaving terms out can only move a sum toward 0.

    Parameters
    ----------
    act_fmt : Format or str
        Activation format (``intN`` / ``uintN``).
    weights : array of int, shape [K] or [K, N]
        Weight levels, one column per output channel.
    """
    act = _act_format(act_fmt)
    w = _weights_2d(weights)
    pos, neg = _column_masses(w)
    x_lo, x_hi = act.min_level, act.max_level
    ranges = [(p * x_lo - n * x_hi, p * x_hi - n * x_lo) for p, n in zip(pos, neg)]
    return _union("exact", ranges, w.shape[0], act)


def compute(method, act_fmt, weight_fmt, k=None, weights=None) -> Bound:
    """The bound of one method, with every input checked.

    Parameters
    ----------
    method : str
        One of :data:`METHODS`.
    act_fmt : Format or str
        Activation format (``intN`` / ``uintN``).
    weight_fmt : Format, str or None
        Weight format; required for ``datatype``. When given together with
        ``weights``, every weight must be one of its levels.
    k : int or None
        Dot-product length; may be omitted when ``weights`` is given (then
        ``weights.shape[0]``), must equal it otherwise.
    weights : array of int or None
        Weight levels ``[K]`` or ``[K, N]``; required for the weight-based methods.

    Raises
    ------
    ValueError / TypeError
        Unknown method, missing or inconsistent inputs, unrepresentable weights.
    BoundError
        ``l1_zero_centered`` on weights whose column masses differ.
    """
    if method not in METHODS:
        raise ValueError(f"unknown bound method {method!r}; allowed: {', '.join(METHODS)}")
    wfmt = None if weight_fmt is None else parse_format(weight_fmt)
    w = None
    if weights is not None:
        w = _weights_2d(weights)
        if k is not None and _check_k(k) != w.shape[0]:
            raise ValueError(f"k={k} does not match the weights' K = {w.shape[0]} "
                             f"(shape {np.shape(weights)})")
        k = w.shape[0]
        if wfmt is not None:
            _check_representable(w, wfmt)
    if method == "datatype":
        if wfmt is None:
            raise ValueError("datatype bound needs weight_fmt (the weight format)")
        if k is None:
            raise ValueError("datatype bound needs k (the dot-product length) or weights")
        return datatype(act_fmt, wfmt, k)
    if w is None:
        raise ValueError(f"{method} bound needs weights (integer levels, [K] or [K, N])")
    bound = {"l1": l1, "l1_zero_centered": l1_zero_centered, "exact": exact}[method](
        act_fmt, w)
    return bound if wfmt is None else replace(bound, weight=str(wfmt))


def _check_representable(w: np.ndarray, fmt: Format) -> None:
    try:
        fmt.encode(w)
    except ValueError as e:
        raise ValueError(f"weights not representable in {fmt}: {e}") from None

