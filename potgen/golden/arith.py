"""Exact products, dot products and matrix products with accumulator semantics.

This is the arithmetic every product unit, MAC PE and array is checked against
(DESIGN.md section 2). Activations are integer *values*; weights are *codes* of a
:mod:`potgen.formats` format, decoded to their exact integer levels.

Exactness and speed
-------------------
Results are exact integers: ``int64`` arrays, or NumPy ``object`` arrays of Python ints
where a value may not fit ``int64``. Nothing ever wraps silently: every choice of a
narrower or floating representation is justified by a bound computed from the data.

Matrix products take the fastest representation that is provably exact (the proof is
in :func:`matmul_values`), and accumulator overflow is screened with matrix products so
that only the outputs that *can* overflow are scanned sequentially over ``k``.
"""

from __future__ import annotations

from dataclasses import dataclass
from numbers import Integral
from typing import NamedTuple

import numpy as np

from ..formats import parse_format

__all__ = [
    "OVERFLOW_MODES", "AccSpec", "AccumulatorOverflow", "MatmulResult",
    "as_integers", "product", "dot", "matmul", "matmul_values",
]

#: Accumulator overflow rules (DESIGN.md section 2).
OVERFLOW_MODES = ("wrap", "saturate", "error")

_INT64_MAX = (1 << 63) - 1
#: Integers of magnitude below these are exact in float32 / float64 (24 / 53-bit mantissa).
_F32_EXACT = 1 << 24
_F64_EXACT = 1 << 53
#: Candidate outputs scanned together (arrays of this length stay in cache).
_SCAN_CHUNK = 1 << 16


# --- integer arrays -----------------------------------------------------------------

def as_integers(values, name: str) -> np.ndarray:
    """Convert integer array-like data to an exact integer array.

    Parameters
    ----------
    values : array-like of int
        NumPy integer arrays, Python ints, (nested) lists of ints, or object arrays of
        ints. Booleans and floats are refused, even when their values are integral:
        the golden model never guesses.
    name : str
        Parameter name used in error messages.

    Returns
    -------
    numpy.ndarray
        ``int64`` when every value lies in ``[-(2^63 - 1), 2^63 - 1]`` (the symmetric
        range, so negation and absolute values are safe), otherwise an ``object`` array
        of Python ints.

    Raises
    ------
    TypeError
        When the data are not integers.
    """
    try:
        arr = np.asarray(values)
    except OverflowError:
        arr = np.array(values, dtype=object)
    if arr.dtype.kind in "fc" and not isinstance(values, np.ndarray):
        # NumPy turns [2**63, -1] into float64; the Python ints are exact, keep them.
        arr = np.array(values, dtype=object)
    kind = arr.dtype.kind
    if kind == "b":
        raise TypeError(f"{name} must be integers, not booleans")
    if kind in "iu":
        if arr.dtype.itemsize == 8 and arr.size:
            if kind == "u" and int(arr.max()) > _INT64_MAX:
                return arr.astype(object)
            if kind == "i" and int(arr.min()) == -_INT64_MAX - 1:
                return arr.astype(object)
        return arr.astype(np.int64, copy=False)
    if kind == "O":
        flat = arr.ravel()
        for x in flat:
            if isinstance(x, (bool, np.bool_)) or not isinstance(x, Integral):
                raise TypeError(f"{name} must be integers, found {type(x).__name__} "
                                f"value {x!r}")
        ints = [int(x) for x in flat]
        if all(-_INT64_MAX <= x <= _INT64_MAX for x in ints):
            return np.array(ints, dtype=np.int64).reshape(arr.shape)
        out = np.empty(arr.shape, dtype=object)
        out.ravel()[:] = ints
        return out
    raise TypeError(f"{name} must be integers, not {arr.dtype}")


def _max_abs(arr: np.ndarray) -> int:
    """Largest magnitude in an integer array, as a Python int (0 when empty)."""
    if arr.size == 0:
        return 0
    return max(-int(arr.min()), int(arr.max()))


def _int_array_for(bound: int, arr: np.ndarray) -> np.ndarray:
    """``arr`` as int64 when every intermediate is bounded by ``bound`` < 2^63, else object."""
    if bound <= _INT64_MAX:
        return arr.astype(np.int64, copy=False)
    return arr.astype(object)


# --- accumulator specification ----------------------------------------------------

@dataclass(frozen=True)
class AccSpec:
    """A signed two's complement accumulator and what happens when it overflows.

    Parameters
    ----------
    bits : int
        Accumulator width, 2..64.
    overflow : str
        ``"wrap"`` (two's complement modulo ``2**bits``), ``"saturate"`` (clamp to
        ``[min, max]`` after every addition, ``k`` ascending) or ``"error"`` (raise
        :class:`AccumulatorOverflow` when a partial sum leaves the range).

    Members
    -------
    min, max : int
        ``-2**(bits-1)`` and ``2**(bits-1) - 1``.
    """

    bits: int
    overflow: str = "wrap"

    def __post_init__(self):
        if isinstance(self.bits, (bool, np.bool_)) or not isinstance(self.bits, Integral):
            raise TypeError(f"AccSpec bits must be an int, not {type(self.bits).__name__}")
        if not 2 <= self.bits <= 64:
            raise ValueError(f"AccSpec bits={self.bits}: allowed 2..64")
        object.__setattr__(self, "bits", int(self.bits))
        if self.overflow not in OVERFLOW_MODES:
            raise ValueError(f"AccSpec overflow={self.overflow!r}: allowed "
                             f"{', '.join(map(repr, OVERFLOW_MODES))}")

    @property
    def min(self) -> int:
        return -(1 << (self.bits - 1))

    @property
    def max(self) -> int:
        return (1 << (self.bits - 1)) - 1


class AccumulatorOverflow(ArithmeticError, ValueError):
    """A partial sum left the accumulator range under ``AccSpec(overflow="error")``.

    It is a ``ValueError`` too, so the command line reports it as bad input (exit 2).

    Members
    -------
    position : tuple of int
        Index of the output whose accumulation overflowed (``(m, n)`` for ``matmul``).
    index : int or tuple of int
        Reduction index ``k`` after whose product the partial sum left the range
        (``(c, r, s)`` for ``conv2d``).
    partial_sum : int
        The exact offending partial sum.
    acc : AccSpec
    """

    def __init__(self, position, index, partial_sum: int, acc: AccSpec):
        self.position, self.index, self.partial_sum, self.acc = (
            tuple(position), index, partial_sum, acc)
        super().__init__(
            f"accumulator overflow at output {list(self.position)}: partial sum "
            f"{partial_sum} after reduction index {index} leaves the {acc.bits}-bit "
            f"range [{acc.min}, {acc.max}]")


class MatmulResult(NamedTuple):
    """Accumulators and sticky overflow flags of a matrix product.

    Members
    -------
    acc : numpy.ndarray
        Accumulator values after the overflow rule (int64; ``object`` only for exact
        sums beyond int64 when no :class:`AccSpec` is given).
    overflow : numpy.ndarray of bool
        True where some exact prefix sum ``sum_{k<=j} a[m,k] * w[k,n]`` left the
        accumulator range (always False without an :class:`AccSpec`).
    """

    acc: np.ndarray
    overflow: np.ndarray


def _check_acc(acc) -> AccSpec | None:
    if acc is not None and not isinstance(acc, AccSpec):
        raise TypeError(f"acc must be an AccSpec or None, not {type(acc).__name__}")
    return acc


# --- products -------------------------------------------------------------------------

def product(acts, codes, fmt) -> np.ndarray:
    """Exact products ``act * level(code)`` with NumPy broadcasting.

    Parameters
    ----------
    acts : array-like of int
        Activation values.
    codes : array-like of int
        Codes of ``fmt``.
    fmt : Format or str
        Weight format (any :mod:`potgen.formats` format or spec string).

    Returns
    -------
    numpy.ndarray
        int64 when ``max|act| * max|level|`` fits int64, else an object array.
    """
    fmt = parse_format(fmt)
    a = as_integers(acts, "acts")
    w = fmt.decode(codes)
    try:
        np.broadcast_shapes(a.shape, w.shape)
    except ValueError:
        raise ValueError(f"acts shape {a.shape} and codes shape {w.shape} do not "
                         "broadcast") from None
    bound = _max_abs(a) * _max_abs(w)
    return _int_array_for(bound, a) * _int_array_for(bound, w)


# --- exact matrix products ------------------------------------------------------------

def _partial_sum_bound(a: np.ndarray, w: np.ndarray, max_a: int, max_w: int) -> int:
    """An upper bound on ``sum_k |a[m,k] * w[k,n]|`` over all (m, n).

    It bounds every sum of any subset of one output's products, in particular every
    prefix sum and every intermediate of any summation order.
    """
    k = a.shape[1]
    bound = k * max_a * max_w
    if bound == 0:
        return 0
    # Row / column L1 norms tighten the bound when the data are sparse or skewed.
    if a.dtype != object and k * max_a <= _INT64_MAX:
        bound = min(bound, int(np.abs(a).sum(axis=1).max()) * max_w)
    if w.dtype != object and k * max_w <= _INT64_MAX:
        bound = min(bound, int(np.abs(w).sum(axis=0).max()) * max_a)
    return bound


def _product_shape(a: np.ndarray, w: np.ndarray) -> tuple:
    """Shape of ``a @ w`` for 2-D operands or equal-length stacks of them."""
    return a.shape[:-1] + (w.shape[-1],)


def _exact_matmul(a: np.ndarray, w: np.ndarray, bound: int) -> np.ndarray:
    """``a @ w`` exactly, given ``bound`` >= every ``sum_k |a[m,k] w[k,n]|``.

    ``a`` and ``w`` are 2-D, or stacks ``[B, M, K]`` and ``[B, K, N]``.
    """
    if bound == 0:
        return np.zeros(_product_shape(a, w), dtype=np.int64)
    if a.ndim == 2 and w.ndim == 2:
        # Several lanes per float64 mantissa, only where potgen.golden.packed proves the
        # packing exact and measures it faster; imported late (packed imports arith).
        from .packed import exact_matmul as packed_exact_matmul
        packed = packed_exact_matmul(a, w, bound)
        if packed is not None:
            return packed
    if bound < _F32_EXACT:
        return np.matmul(a.astype(np.float32), w.astype(np.float32)).astype(np.int64)
    if bound < _F64_EXACT:
        return np.matmul(a.astype(np.float64), w.astype(np.float64)).astype(np.int64)
    return _limb_matmul(a, w, bound)


def _digits(x: np.ndarray, width: int, bits: int) -> list:
    """Split ``x`` (``|x| < 2**bits``) into ``(shift, digit)`` pairs, ``x = sum d << s``.

    Lower digits are unsigned ``width``-bit fields; the top digit takes the sign (an
    arithmetic shift), so every digit has magnitude at most ``2**width``.
    """
    count = max(1, -(-bits // width))
    out = []
    for j in range(count):
        d = x >> (j * width)
        if j < count - 1:
            d = d & ((1 << width) - 1)
        out.append((j * width, d.astype(np.int64)))
    return out


def _limb_matmul(a: np.ndarray, w: np.ndarray, bound: int) -> np.ndarray:
    """Exact ``a @ w`` beyond float64's exact range, from float64-exact digit products.

    Both operands are split into digits small enough that every digit product matrix
    is float64-exact (``K * 2**(la + lw) < 2**53``); the digit products are recombined
    with shifts. When the result fits int64 the recombination runs in uint64, i.e.
    modulo 2^64: the true sum has magnitude <= ``bound`` < 2^63, so its residue read as
    int64 is the sum itself, whatever the intermediate values. Otherwise it runs on
    Python ints.
    """
    k = a.shape[-1]
    budget = 53 - k.bit_length()
    if budget < 2:
        # K >= 2^51: no digit split is float64-exact; Python ints are.
        return np.matmul(a.astype(object), w.astype(object))
    bits_a, bits_w = _max_abs(a).bit_length(), _max_abs(w).bit_length()
    if bits_w < budget:
        width_a, width_w = budget - bits_w, bits_w
    elif bits_a < budget:
        width_a, width_w = bits_a, budget - bits_a
    else:
        width_a = budget // 2
        width_w = budget - width_a
    digits_a, digits_w = _digits(a, width_a, bits_a), _digits(w, width_w, bits_w)
    if bound <= _INT64_MAX:
        total = np.zeros(_product_shape(a, w), dtype=np.uint64)
        for shift_a, da in digits_a:
            for shift_w, dw in digits_w:
                shift = shift_a + shift_w
                if shift >= 64:
                    continue  # contributes 0 modulo 2^64
                part = _exact_matmul(da, dw, k * _max_abs(da) * _max_abs(dw))
                total += part.view(np.uint64) * np.uint64(1 << shift)
        return total.view(np.int64)
    total = np.zeros(_product_shape(a, w), dtype=object)
    for shift_a, da in digits_a:
        for shift_w, dw in digits_w:
            part = _exact_matmul(da, dw, k * _max_abs(da) * _max_abs(dw))
            total = total + part.astype(object) * (1 << (shift_a + shift_w))
    return total


def _wrap(values: np.ndarray, bits: int) -> np.ndarray:
    """Two's complement reduction of exact integers to ``bits`` bits (int64 result)."""
    half = 1 << (bits - 1)
    if values.dtype == object:
        return ((values + half) % (1 << bits) - half).astype(np.int64)
    if bits == 64:
        return values.astype(np.int64, copy=True)
    # uint64 arithmetic is modulo 2^64, which 2^bits divides: the residue is exact.
    u = np.ascontiguousarray(values, dtype=np.int64).view(np.uint64)
    u = (u + np.uint64(half)) & np.uint64((1 << bits) - 1)
    return u.astype(np.int64) - half


def _sign_split(x: np.ndarray):
    """Non-negative parts ``(max(x, 0), max(-x, 0))``, or None for an all-zero part."""
    pos = np.maximum(x, 0)
    neg = np.maximum(-x, 0)
    return (pos if pos.any() else None), (neg if neg.any() else None)


def _screen(a: np.ndarray, w: np.ndarray, bound: int):
    """Exact ``(hi, lo)`` with ``hi = sum_k max(0, a w)`` and ``lo = sum_k min(0, a w)``.

    Every partial sum of output (m, n) lies in ``[lo, hi]``, and ``hi + lo`` is the sum.
    2-D operands or stacks, as for :func:`_exact_matmul`.
    """
    a_pos, a_neg = _sign_split(a)
    w_pos, w_neg = _sign_split(w)
    shape = _product_shape(a, w)

    def total(pairs):
        out = np.zeros(shape, dtype=np.int64 if bound <= _INT64_MAX else object)
        for x, y in pairs:
            if x is not None and y is not None:
                out = out + _exact_matmul(x, y, bound)
        return out

    hi = total([(a_pos, w_pos), (a_neg, w_neg)])
    lo = -total([(a_pos, w_neg), (a_neg, w_pos)])
    return hi, lo


class _Screen(NamedTuple):
    exact: np.ndarray       # the exact sums
    suspect: np.ndarray     # some partial sum may leave the range
    certain: np.ndarray     # some block-boundary partial sum does leave the range
    start: np.ndarray       # first k of the first suspect block (-1: none)
    start_sum: np.ndarray   # exact partial sum before ``start``


def _block_screen(a: np.ndarray, w: np.ndarray, acc: AccSpec, bound: int) -> _Screen:
    """Which outputs can overflow, from exact block sums (matrix products only).

    ``k`` is cut into at most 32 blocks. With ``P`` the exact partial sum before a block
    and ``lo_b``, ``hi_b`` the sums of the block's negative and positive products, every
    partial sum inside the block lies in ``[P + lo_b, P + hi_b]``. An output none of
    whose blocks leaves the range cannot overflow; before its first suspect block the
    saturating accumulator equals the exact partial sum, so a scan can start there.
    The blocks' products run as stacked matrix products (few library calls: many small
    multithreaded GEMM calls are slow on a busy machine).
    """
    (m, k_count), n = a.shape, w.shape[1]
    size = max(8, -(-k_count // 32))
    blocks = -(-k_count // size)
    # Zero padding to whole blocks adds zero products, which change no partial sum.
    a_pad = np.zeros((m, blocks * size), dtype=a.dtype)
    a_pad[:, :k_count] = a
    w_pad = np.zeros((blocks * size, n), dtype=w.dtype)
    w_pad[:k_count] = w
    a_blocks = a_pad.reshape(m, blocks, size).transpose(1, 0, 2)    # [B, M, size]
    w_blocks = w_pad.reshape(blocks, size, n)                       # [B, size, N]
    block_bound = min(bound, size * _max_abs(a) * _max_abs(w))
    group = max(1, (1 << 22) // max(m * n, 1))                    # bounded memory
    dtype = np.int64 if bound <= _INT64_MAX else object
    prefix = np.zeros((m, n), dtype=dtype)
    suspect = np.zeros((m, n), dtype=bool)
    certain = np.zeros((m, n), dtype=bool)
    start = np.full((m, n), -1, dtype=np.int64)
    start_sum = np.zeros((m, n), dtype=dtype)
    for g0 in range(0, blocks, group):
        his, los = _screen(a_blocks[g0:g0 + group], w_blocks[g0:g0 + group], block_bound)
        for j, (hi, lo) in enumerate(zip(his, los)):
            out = (prefix + hi > acc.max) | (prefix + lo < acc.min)
            new = out & ~suspect
            start[new] = (g0 + j) * size
            start_sum[new] = prefix[new]
            suspect |= out
            prefix = prefix + (hi + lo)
            certain |= (prefix > acc.max) | (prefix < acc.min)
    return _Screen(prefix, suspect, certain, start, start_sum)


def _scan_candidates(a, w, rows, cols, start, start_sum, acc: AccSpec, bound: int):
    """Sequential accumulation of the outputs ``(rows[i], cols[i])`` from ``start[i]``.

    Each begins at ``k = start[i]`` with the exact partial sum ``start_sum[i]`` (no
    partial sum before it can leave the range). A loop over ``k`` (never over outputs),
    each step vectorised across a chunk of outputs small enough to stay in cache;
    chunks group outputs of similar ``start``. Returns the sticky flags and, for
    ``saturate``, the saturated sums; under ``error`` raises
    :class:`AccumulatorOverflow` for the first overflowing output in row-major order
    (``rows, cols`` must be in row-major order).
    """
    k_count = a.shape[1]
    count = len(rows)
    flags = np.zeros(count, dtype=bool)
    saturate, error = acc.overflow == "saturate", acc.overflow == "error"
    saturated = np.zeros(count, dtype=np.int64) if saturate else None
    first_k = np.full(count, -1, dtype=np.int64) if error else None
    first_sum = np.zeros(count, dtype=object) if error else None
    max_product = _max_abs(a) * _max_abs(w)
    # Exact partial sums stay within `bound`; a saturating state plus one product
    # within 2^(bits-1) + max_product, and there are candidates only if acc.max < bound.
    sum_bound = bound + max_product + 1
    if sum_bound < 1 << 31:
        dtype = np.int32
    elif sum_bound <= _INT64_MAX:
        dtype = np.int64
    else:
        dtype = object
    a_t = np.ascontiguousarray(a.T).astype(dtype)
    w_k = np.ascontiguousarray(w).astype(dtype)
    lo, hi = acc.min, acc.max
    # Sorted by start, the outputs already started at step k are a prefix of a chunk.
    order = np.argsort(start, kind="stable")
    for chunk_start in range(0, count, _SCAN_CHUNK):
        idx = order[chunk_start:chunk_start + _SCAN_CHUNK]
        r, c, ks = rows[idx], cols[idx], start[idx]
        exact = start_sum[idx].astype(dtype)
        state = exact.copy() if saturate else None
        highest, lowest = exact.copy(), exact.copy()
        f_k = np.full(len(idx), -1, dtype=np.int64) if error else None
        f_sum = np.zeros(len(idx), dtype=dtype) if error else None
        for k in range(int(ks[0]), k_count):
            active = len(idx) if k >= ks[-1] else int(np.searchsorted(ks, k, "right"))
            p = a_t[k][r[:active]] * w_k[k][c[:active]]
            e = exact[:active]
            e += p
            if error:
                new = ((e > hi) | (e < lo)) & (f_k[:active] < 0)
                if new.any():
                    f_k[:active][new] = k
                    f_sum[:active][new] = e[new]
            np.maximum(highest[:active], e, out=highest[:active])
            np.minimum(lowest[:active], e, out=lowest[:active])
            if saturate:
                s = state[:active]
                s += p
                if dtype is object:
                    state[:active] = np.minimum(np.maximum(s, lo), hi)
                else:
                    np.clip(s, lo, hi, out=s)
        flags[idx] = (highest > hi) | (lowest < lo)
        if saturate:
            saturated[idx] = state.astype(np.int64)
        if error:
            first_k[idx] = f_k
            first_sum[idx] = f_sum.astype(object)
    if error and flags.any():
        i = int(np.argmax(flags))
        raise AccumulatorOverflow((int(rows[i]), int(cols[i])), int(first_k[i]),
                                  int(first_sum[i]), acc)
    return flags, saturated


def matmul_values(acts, weights, acc: AccSpec | None = None) -> MatmulResult:
    """Exact ``acts @ weights`` of integer values under an accumulator rule.

    :func:`matmul` with weights given as integer levels instead of codes (used by
    :func:`matmul`, :func:`potgen.golden.conv2d` and the bounds).

    Parameters
    ----------
    acts : array-like of int, shape [M, K]
    weights : array-like of int, shape [K, N]
    acc : AccSpec or None
        ``None``: exact sums, no flags. Otherwise see :class:`AccSpec`; the flags
        report every output with some exact prefix sum outside ``[acc.min, acc.max]``.

    Returns
    -------
    MatmulResult

    Notes
    -----
    **Why the fast paths are exact.** Let ``B >= sum_k |a[m,k] w[k,n]|`` for every
    (m, n) (computed from the data: ``K max|a| max|w|`` tightened by row / column L1
    norms). A BLAS GEMM forms each output from the products ``a[m,k] w[k,n]`` by
    additions (or fused multiply-adds) in some order and grouping; every operand and
    every intermediate result is then the sum of a subset of one output's products, an
    integer of magnitude ``<= B``. If ``B < 2^24`` (float32) or ``B < 2^53`` (float64),
    every such integer -- and every input, since ``max|a|, max|w| <= B`` -- is exactly
    representable, so no rounding ever happens and the result is exact. (GEMM
    libraries do not use Strassen-type algorithms, which form differences of inputs.)
    Beyond ``2^53`` the operands are split into digits whose products are float64-exact
    and recombined with shifts (int64 when ``B < 2^63``, else Python ints).

    **Overflow screening.** If ``B`` fits the accumulator range nothing can overflow.
    Otherwise ``k`` is cut into blocks; every partial sum inside a block lies in
    ``[P + sum_block min(0, a w), P + sum_block max(0, a w)]`` with ``P`` the exact
    partial sum before the block. All three come from exact matrix products of the
    positive and negative parts of ``acts`` and ``weights``. Outputs whose intervals all
    fit cannot overflow; under ``wrap`` an output with a block-boundary sum outside the
    range certainly overflows. Only the remaining outputs are scanned sequentially over
    ``k`` (a loop over ``k`` vectorised across those outputs), each from its first
    suspect block, where the saturating accumulator still equals the exact sum.
    """
    acc = _check_acc(acc)
    a = as_integers(acts, "acts")
    w = as_integers(weights, "weights")
    if a.ndim != 2 or w.ndim != 2:
        raise ValueError(f"matmul needs acts [M, K] and weights [K, N]; got shapes "
                         f"{a.shape} and {w.shape}")
    if a.shape[1] != w.shape[0]:
        raise ValueError(f"matmul: acts has K={a.shape[1]} columns but weights has "
                         f"K={w.shape[0]} rows")
    bound = _partial_sum_bound(a, w, _max_abs(a), _max_abs(w))
    shape = (a.shape[0], w.shape[1])
    no_flags = np.zeros(shape, dtype=bool)
    if acc is None:
        return MatmulResult(_exact_matmul(a, w, bound), no_flags)
    if acc.min <= -bound and bound <= acc.max:
        return MatmulResult(_exact_matmul(a, w, bound).astype(np.int64), no_flags)

    screen = _block_screen(a, w, acc, bound)
    flags = screen.certain.copy()
    # Under wrap, outputs certain to overflow need no scan: their flag is known and
    # their value is the wrapped exact sum. Saturate needs the sequence; error the
    # first offending partial sum.
    scan = screen.suspect & ~screen.certain if acc.overflow == "wrap" else screen.suspect
    rows, cols = np.nonzero(scan)
    scanned_flags, saturated = _scan_candidates(
        a, w, rows, cols, screen.start[rows, cols], screen.start_sum[rows, cols], acc, bound)
    flags[rows, cols] |= scanned_flags
    if acc.overflow == "wrap":
        return MatmulResult(_wrap(screen.exact, acc.bits), flags)
    # Unscanned outputs never left the range, so their exact sum is the result; under
    # error nothing overflowed (or it raised), so every exact sum fits.
    values = np.zeros(shape, dtype=np.int64)
    values[~scan] = screen.exact[~scan].astype(np.int64)
    if acc.overflow == "saturate":
        values[rows, cols] = saturated
    else:
        values[rows, cols] = screen.exact[rows, cols].astype(np.int64)
    return MatmulResult(values, flags)


def matmul(acts, codes, fmt, acc: AccSpec | None = None) -> MatmulResult:
    """Golden matrix product ``acts @ levels(codes)`` with accumulator semantics.

    Parameters
    ----------
    acts : array-like of int, shape [M, K]
        Activation values.
    codes : array-like of int, shape [K, N]
        Weight codes of ``fmt``.
    fmt : Format or str
        Weight format.
    acc : AccSpec or None
        ``None``: exact sums and all-False flags. ``wrap``: the exact sum modulo
        ``2**bits`` (two's complement). ``saturate``: clamp after every addition,
        ``k`` ascending. ``error``: raise :class:`AccumulatorOverflow` when some
        prefix sum leaves the range (naming the output and the partial sum).

    Returns
    -------
    MatmulResult
        ``acc`` [M, N] and sticky ``overflow`` flags [M, N]: True iff some exact prefix
        sum ``sum_{k<=j} a[m,k] w[k,n]`` left ``[acc.min, acc.max]`` (same definition
        for wrap and saturate; under saturate it is the exact prefix up to the first
        clamp, which is what the hardware can flag).

    Notes
    -----
    Vectorised and exact; see :func:`matmul_values` for the proof of the fast paths.
    """
    fmt = parse_format(fmt)
    w = fmt.decode(codes)
    if w.ndim != 2:
        raise ValueError(f"matmul needs codes of shape [K, N], got {w.shape}")
    return matmul_values(acts, w, acc)


def dot(acts, codes, fmt, acc: AccSpec | None = None) -> tuple:
    """Golden dot product ``sum_k acts[k] * level(codes[k])``.

    Parameters
    ----------
    acts : array-like of int, shape [K]
    codes : array-like of int, shape [K]
    fmt : Format or str
    acc : AccSpec or None
        As for :func:`matmul`.

    Returns
    -------
    (int, bool)
        The accumulator value and the sticky overflow flag.
    """
    a = as_integers(acts, "acts")
    codes = np.asarray(codes)
    if a.ndim != 1 or codes.ndim != 1:
        raise ValueError(f"dot needs 1-D acts and codes, got shapes {a.shape} and "
                         f"{codes.shape}")
    if a.shape != codes.shape:
        raise ValueError(f"dot: acts has {a.shape[0]} elements but codes has "
                         f"{codes.shape[0]}")
    result = matmul(a[None, :], codes[:, None], fmt, acc)
    return int(result.acc[0, 0]), bool(result.overflow[0, 0])
