"""Floats to codes: quantization, dequantization, scale calibration, the MSQ row split.

A float tensor is ``scale * level`` (DESIGN.md section 1): this module picks the level
for each float and returns the level's canonical *code* in the format
(``fmt.encode``), so hardware and the golden model can take it directly.

Rounding (both decided exactly on ``v = x / scale``, the float64 quotient):

``"nearest"`` (default)
    The nearest level in the linear domain; a value exactly halfway between two
    levels goes to the one of larger magnitude (for intN/uintN: round half away from
    zero); values beyond the range clamp to the extreme levels. Ties are decided by
    comparing ``v`` with the exact midpoints of adjacent levels, so no float rounding
    of distances can flip them. The one tie between levels of *equal* magnitude,
    ``v == 0`` between ``-a`` and ``+a`` in a format without zero (``potN-nz``), goes
    to ``+a``, as QKeras maps 0 to a positive power.
``"log2"``
    QKeras ``quantized_po2`` log-domain rounding, for formats whose levels are a run of
    consecutive powers of two ``2^e_lo .. 2^e_hi`` (optionally with 0): ``potN``,
    ``potN-nz`` and single-set ``upot:`` formats of that shape.
    ``e = round_half_even(log2 |v|)`` clipped to ``[e_lo, e_hi]``, level
    ``sign(v) * 2^e``. ``round(log2 |v|)`` is evaluated exactly (from the binary
    exponent and a comparison of the mantissa with sqrt(1/2)); a tie would need
    ``|v| = 2^(k + 1/2)``, which no float is, so half-even never acts.

    Zero and tiny values. QKeras has no zero: ``0`` maps to ``+2^min_exp`` and any
    ``|x|`` below its epsilon to ``sign(x) * 2^min_exp``. ``potN-nz`` matches that
    exactly: ``0`` (either sign of zero) -> ``+2^e_lo``, a tiny ``v`` ->
    ``sign(v) * 2^e_lo``. With scale ``2^min_exp``, ``potN-nz`` under ``"log2"``
    follows QKeras ``quantized_po2(N)``'s formula (exponents ``-2^(N-2) ..
    2^(N-2) - 1``; QKeras evaluates log2 in float32, which can differ within a few
    ulps of the switching points ``2^(k + 1/2)``).
    ``potN`` has a zero code, which QKeras cannot express; potgen sends
    ``|v| < 2^e_lo / 2`` to 0 -- the linear-domain midpoint between 0 and the smallest
    magnitude, with the tie at exactly ``2^e_lo / 2`` going to the larger magnitude as
    in ``"nearest"`` -- and every other value through the log-domain rule above.

Scales are positive finite floats: one per tensor (``axis=None``) or a 1-D array with
one scale per index of ``axis`` (per output channel).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from .formats import Format, IntFormat, TermFormat, parse_format

__all__ = ["quantize", "dequantize", "calibrate_scale", "msq_split", "MsqSplit",
           "ROUNDINGS", "CALIBRATIONS", "MSE_GRID"]

#: Rounding modes of :func:`quantize`.
ROUNDINGS = ("nearest", "log2")
#: Calibration methods of :func:`calibrate_scale`.
CALIBRATIONS = ("max", "mse")
#: Factors applied to the ``"max"`` scale by the ``"mse"`` search: ``2^(-j/16)`` for
#: j = -8..80, i.e. from sqrt(2) down to 1/32 in sixteenth-octave steps, largest first
#: (a tie between candidates keeps the larger scale: less clipping).
MSE_GRID = 2.0 ** (-np.arange(-8, 81) / 16.0)
MSE_GRID.setflags(write=False)
#: Elements per block of the scale search (small enough to stay in cache).
_BLOCK = 1 << 13

_SQRT_HALF = float(np.sqrt(0.5))
# A mantissa f in [1/2, 1) has log2 f < -1/2 exactly when f < sqrt(1/2). sqrt(1/2) is
# irrational; its float neighbour decides on which side of the float grid it falls.
_SQRT_HALF_IS_ABOVE = Fraction(_SQRT_HALF) ** 2 > Fraction(1, 2)


# --- argument checks --------------------------------------------------------------------

def _floats(name: str, x) -> np.ndarray:
    x = np.asarray(x)
    if x.dtype.kind not in "fiu":
        raise TypeError(f"{name} must be a real numeric array, not dtype {x.dtype}")
    x = x.astype(np.float64)
    if np.isnan(x).any():
        raise ValueError(f"{name} contains NaN; every value must be a number")
    return x


def _axis(axis, ndim: int):
    if axis is None:
        return None
    if isinstance(axis, (bool, np.bool_)) or not isinstance(axis, (int, np.integer)):
        raise TypeError(f"axis must be an int or None, not {type(axis).__name__}")
    if not -ndim <= axis < ndim:
        raise ValueError(f"axis={axis} is out of range for an array of {ndim} dimensions")
    return int(axis) % ndim


def _broadcast_scale(scale, shape: tuple, axis) -> np.ndarray:
    """Check ``scale`` and shape it to broadcast against an array of ``shape``."""
    s = np.asarray(scale)
    if s.dtype.kind not in "fiu":
        raise TypeError(f"scale must be a positive float or a 1-D array of them, not "
                        f"dtype {s.dtype}")
    s = s.astype(np.float64)
    if not (np.isfinite(s).all() and (s > 0).all()):
        bad = s[~(np.isfinite(s) & (s > 0))].ravel()[:4].tolist()
        raise ValueError(f"scale must be positive and finite; got {bad}")
    if s.ndim == 0:
        return s
    if axis is None:
        raise ValueError(f"scale has shape {s.shape}: a per-channel scale needs axis "
                         "(the channel axis); a per-tensor scale must be a scalar")
    if s.ndim != 1 or s.shape[0] != shape[axis]:
        raise ValueError(f"scale must have shape ({shape[axis]},) to match axis {axis} "
                         f"of an array of shape {shape}; got {s.shape}")
    view = [1] * len(shape)
    view[axis] = shape[axis]
    return s.reshape(view)


def _rounding(rounding: str) -> str:
    if rounding not in ROUNDINGS:
        raise ValueError(f"rounding must be one of {', '.join(ROUNDINGS)}; got {rounding!r}")
    return rounding


# --- rounding to levels -----------------------------------------------------------------
#
# A *rounder* maps v = x / scale to the chosen levels as float64 (exact: every level is
# an integer below 2^53). It is built once per (format, rounding) so that the scale
# search can call it on many small blocks without recomputing tables.

def _int_rounder(fmt: IntFormat):
    lo, hi = float(fmt.min_level), float(fmt.max_level)

    def nearest(v):
        v = np.clip(v, lo, hi)
        mag = np.abs(v)
        whole = np.floor(mag)
        # On magnitudes, mag - floor(mag) is exact (the fractional bits of mag fit its
        # own mantissa); on negative values v - floor(v) is not (-0.49999999999999994
        # + 1 rounds to 0.5). A tie (exactly .5) goes up in magnitude: half away from 0.
        whole += (mag - whole) >= 0.5
        return np.copysign(whole, v) + 0.0  # + 0.0 turns -0.0 into 0.0
    return nearest


def _upper_index(a: np.ndarray, mid: np.ndarray) -> np.ndarray:
    """Number of midpoints <= a (``searchsorted(mid, a, side="right")``)."""
    if len(mid) > 16:
        return np.searchsorted(mid, a, side="right")
    # A few comparisons beat a binary search per element for short tables.
    index = np.zeros(a.shape, dtype=np.intp)
    for m in mid:
        index += a >= m
    return index


def _table_rounder(fmt: Format):
    # Midpoints of adjacent levels are exact in float64 (levels < 2^52), and a value
    # equal to a midpoint counts as above it: on non-negative values that is the tie
    # to the larger magnitude.
    if fmt.signed:
        # Signed term formats are symmetric (sign bit times magnitude): round |v| among
        # the magnitudes, then restore the sign; zero of either sign takes +.
        mags = np.unique(np.abs(fmt.representable())).astype(np.float64)
        mid = (mags[:-1] + mags[1:]) / 2.0

        def nearest(v):
            level = mags[_upper_index(np.abs(v), mid)]
            return np.where(v < 0, -level, level)
        return nearest
    levels = fmt.representable().astype(np.float64)
    mid = (levels[:-1] + levels[1:]) / 2.0

    def nearest(v):
        # Unsigned: every level is >= 0, so values below the smallest clamp to it.
        return levels[_upper_index(np.maximum(v, levels[0]), mid)]
    return nearest


def _power_run(fmt: Format):
    """``(e_lo, e_hi, has_zero)`` if fmt's levels are +-2^e_lo..2^e_hi (and maybe 0)."""
    if not isinstance(fmt, TermFormat) or len(fmt.term_sets) != 1:
        return None
    terms = fmt.term_sets[0]
    powers = [t for t in terms if t]
    if not powers:
        return None
    exps = [t.bit_length() - 1 for t in powers]
    if exps != list(range(exps[0], exps[0] + len(exps))):
        return None
    return exps[0], exps[-1], 0 in terms


def _round_log2_abs(m: np.ndarray) -> np.ndarray:
    """Exact ``round(log2 m)`` for finite m > 0 (int64)."""
    f, e = np.frexp(m)  # m = f * 2^e, f in [1/2, 1)
    below = (f <= _SQRT_HALF) if not _SQRT_HALF_IS_ABOVE else (f < _SQRT_HALF)
    return e.astype(np.int64) - below


def _log2_rounder(fmt: Format):
    run = _power_run(fmt)
    if run is None:
        raise ValueError(f"rounding='log2' needs a power-of-two format whose levels are "
                         f"consecutive powers of two (potN, potN-nz); got {fmt}")
    e_lo, e_hi, has_zero = run
    zero_below = 2.0 ** e_lo / 2.0
    smallest = float(fmt.min_level)

    def log2(v):
        mag = np.abs(v)
        finite_pos = np.isfinite(mag) & (mag > 0)
        e = np.full(v.shape, e_hi, dtype=np.int64)  # infinities clip to the top
        e[finite_pos] = _round_log2_abs(mag[finite_pos])
        e[mag == 0] = e_lo  # QKeras: log2(0) = -inf, clipped to the smallest exponent
        e = np.clip(e, e_lo, e_hi)
        magnitude = np.ldexp(1.0, e)
        # Zero (either sign) takes +: QKeras's sign(0) + (1 - |sign(0)|) is +1.
        level = np.where(np.signbit(v) & (mag > 0), -magnitude, magnitude)
        if has_zero:
            level = np.where(mag < zero_below, 0.0, level)
        if not fmt.signed:
            # Negative values have no level of their sign: they clamp to the smallest.
            level = np.where(v < 0, smallest, level)
        return level
    return log2


def _rounder(fmt: Format, rounding: str):
    """Function ``v -> levels`` (float64) for ``v = x / scale``."""
    if rounding == "log2":
        return _log2_rounder(fmt)
    if isinstance(fmt, IntFormat):
        return _int_rounder(fmt)
    return _table_rounder(fmt)


# --- public API -------------------------------------------------------------------------

def quantize(x, fmt, scale, axis=None, rounding="nearest") -> np.ndarray:
    """Quantize floats to codes of ``fmt``: ``x ~ scale * fmt.decode(codes)``.

    Parameters
    ----------
    x : array of float
        Values to quantize (NaN is refused; +-inf clamp to the extreme levels).
    fmt : Format or str
        Target format.
    scale : float or 1-D array of float
        Positive finite scale(s); a 1-D array holds one scale per index of ``axis``.
    axis : int or None
        Channel axis of a per-channel ``scale``.
    rounding : {"nearest", "log2"}
        See the module docstring; ``"log2"`` only for potN / potN-nz-like formats.

    Returns
    -------
    ndarray of int64
        Canonical codes, shape of ``x``.
    """
    fmt = parse_format(fmt)
    rounding = _rounding(rounding)
    x = _floats("x", x)
    s = _broadcast_scale(scale, x.shape, _axis(axis, x.ndim))
    with np.errstate(over="ignore"):  # a quotient beyond float range clamps anyway
        v = x / s
    return fmt.encode(_rounder(fmt, rounding)(v).astype(np.int64))


def dequantize(codes, fmt, scale, axis=None) -> np.ndarray:
    """Codes back to floats: ``scale * fmt.decode(codes)`` (float64).

    Parameters
    ----------
    codes : array of int
        Codes of ``fmt``.
    fmt : Format or str
        Their format.
    scale : float or 1-D array of float
        As in :func:`quantize`.
    axis : int or None
        Channel axis of a per-channel ``scale``.
    """
    fmt = parse_format(fmt)
    levels = fmt.decode(codes)
    s = _broadcast_scale(scale, levels.shape, _axis(axis, levels.ndim))
    return levels.astype(np.float64) * s


def _channels(x: np.ndarray, axis) -> np.ndarray:
    """x as ``[C, n]``: one row per channel (C = 1 for per-tensor)."""
    if axis is None:
        return x.reshape(1, -1)
    return np.moveaxis(x, axis, 0).reshape(x.shape[axis], -1)


def _max_scales(rows: np.ndarray, fmt: Format) -> np.ndarray:
    # The smallest scale at which no value clips: the largest positive value lands on
    # max_level and the most negative on min_level (so int8 maps a positive extreme to
    # 127, a negative one to -128). A channel with nothing to fit (all zero, or only
    # negative values under an unsigned format) gets scale 1.
    s = np.zeros(rows.shape[0])
    if fmt.max_level > 0:
        s = np.maximum(s, np.max(np.maximum(rows, 0.0), axis=1) / fmt.max_level)
    if fmt.min_level < 0:
        s = np.maximum(s, np.min(np.minimum(rows, 0.0), axis=1) / fmt.min_level)
    return np.where((s > 0) & np.isfinite(s), s, 1.0)


def _blocks(shape: tuple):
    """``(row slice, column slice)`` blocks of about ``_BLOCK`` elements of ``[C, n]``."""
    rows, cols = shape
    row_step, col_step = max(1, _BLOCK // cols), min(cols, _BLOCK)
    for r in range(0, rows, row_step):
        for c in range(0, cols, col_step):
            yield slice(r, r + row_step), slice(c, c + col_step)


def _squared_errors(rows: np.ndarray, scales: np.ndarray, rounder) -> np.ndarray:
    """Sum of squared quantization errors of each row of ``rows`` ``[C, n]``."""
    out = np.zeros(rows.shape[0])
    for r, c in _blocks(rows.shape):
        sub, s = rows[r, c], scales[r, None]
        d = sub - rounder(sub / s) * s
        out[r] += np.einsum("ij,ij->i", d, d)
    return out


def _mse_search(rows: np.ndarray, base: np.ndarray, rounder) -> np.ndarray:
    """Per row, the scale of ``base * MSE_GRID`` with the least squared error."""
    errors = np.zeros((len(MSE_GRID), rows.shape[0]))
    # Blocks outside, candidates inside: each block stays in cache for the whole grid.
    for r, c in _blocks(rows.shape):
        sub, b = rows[r, c], base[r, None]
        for j, factor in enumerate(MSE_GRID):
            s = b * factor
            d = sub - rounder(sub / s) * s
            errors[j, r] += np.einsum("ij,ij->i", d, d)
    return base * MSE_GRID[np.argmin(errors, axis=0)]


def calibrate_scale(x, fmt, method="max", axis=None, rounding="nearest"):
    """Choose quantization scale(s) for ``x`` in ``fmt``.

    Parameters
    ----------
    x : array of float
        Finite values (a weight tensor, or sample activations).
    fmt : Format or str
        Target format.
    method : {"max", "mse"}
        ``"max"``: the smallest scale at which nothing clips -- ``max(x)`` maps to
        ``fmt.max_level`` and ``min(x)`` to ``fmt.min_level`` (for symmetric formats:
        ``max|x|`` to the largest level magnitude). ``"mse"``: among ``max_scale *
        MSE_GRID`` (sqrt(2) down to 1/32 of the max scale in 2^(1/16) steps), the one
        with the smallest squared quantization error over the whole channel (every
        candidate is tried: the error is not unimodal in the scale for PoT formats;
        the evaluation is vectorised over cache-sized blocks).
    axis : int or None
        ``None``: one scale for the tensor; otherwise one per index of ``axis``.
    rounding : {"nearest", "log2"}
        Rounding the ``"mse"`` search quantizes with.

    Returns
    -------
    float or ndarray of float64
        A float for ``axis=None``, else shape ``(x.shape[axis],)``. A channel with
        nothing to fit (all zeros) gets scale 1.
    """
    fmt = parse_format(fmt)
    rounding = _rounding(rounding)
    if method not in CALIBRATIONS:
        raise ValueError(f"method must be one of {', '.join(CALIBRATIONS)}; got {method!r}")
    x = _floats("x", x)
    if not np.isfinite(x).all():
        raise ValueError("x contains infinities; calibration needs finite values")
    if x.size == 0:
        raise ValueError(f"x is empty (shape {x.shape}); nothing to calibrate")
    axis = _axis(axis, x.ndim)
    rows = _channels(x, axis)
    scales = _max_scales(rows, fmt)
    if method == "mse":
        scales = _mse_search(rows, scales, _rounder(fmt, rounding))
    return float(scales[0]) if axis is None else scales


@dataclass(frozen=True, eq=False)
class MsqSplit:
    """A weight matrix split row by row between a uniform and an SP2 format (MSQ).

    Members
    -------
    sp2_rows : ndarray of bool, shape [rows]
        True where the row is quantized with ``sp2_format``.
    scales : ndarray of float64, shape [rows]
        Each row's scale in its assigned format.
    uniform_format, sp2_format : Format
        The two formats.
    uniform_codes : ndarray of int64, shape [rows - n_sp2, cols]
        Codes of the uniform rows, in ascending row order.
    sp2_codes : ndarray of int64, shape [n_sp2, cols]
        Codes of the SP2 rows, in ascending row order.
    row_errors : ndarray of float64, shape [rows]
        Squared error of each row under its assigned format.
    error : float
        Total squared error, ``row_errors.sum()``.
    """

    sp2_rows: np.ndarray
    scales: np.ndarray
    uniform_format: Format
    sp2_format: Format
    uniform_codes: np.ndarray
    sp2_codes: np.ndarray
    row_errors: np.ndarray
    error: float

    def dequantize(self) -> np.ndarray:
        """The quantized matrix as floats, shape [rows, cols]."""
        rows = self.sp2_rows.shape[0]
        cols = self.uniform_codes.shape[1]
        out = np.empty((rows, cols))
        for mask, codes, fmt in ((~self.sp2_rows, self.uniform_codes, self.uniform_format),
                                 (self.sp2_rows, self.sp2_codes, self.sp2_format)):
            out[mask] = fmt.decode(codes) * self.scales[mask][:, None]
        return out


def msq_split(weights, sp2_fraction, uniform="int4", sp2="sp2-4",
              scale_method="mse") -> MsqSplit:
    """MSQ's row split: which rows go to SP2 so that the total squared error is least.

    Every row is quantized under both formats with its own scale
    (:func:`calibrate_scale` per row, nearest rounding); exactly
    ``n = round(sp2_fraction * rows)`` rows (Python's ``round``: halves to even) take
    SP2, the rest the uniform format. The total error is ``sum(e_uniform) +
    sum over SP2 rows of (e_sp2 - e_uniform)``, so the optimum takes the n rows with
    the smallest ``e_sp2 - e_uniform`` (ties: lower row index first).

    Parameters
    ----------
    weights : array of float, shape [rows, cols]
        Rows are output channels (the PyTorch ``[out, in]`` convention).
    sp2_fraction : float
        Share of the rows quantized with ``sp2``, 0..1.
    uniform, sp2 : Format or str
        The two formats (default ``int4`` and ``sp2-4``).
    scale_method : {"max", "mse"}
        Per-row scale calibration.
    """
    w = _floats("weights", weights)
    if w.ndim != 2 or w.size == 0:
        raise ValueError(f"weights must be a non-empty [rows, cols] matrix, got shape "
                         f"{w.shape}")
    if not np.isfinite(w).all():
        raise ValueError("weights contain infinities; need finite values")
    if isinstance(sp2_fraction, (bool, np.bool_)) or not isinstance(
            sp2_fraction, (int, float, np.integer, np.floating)):
        raise TypeError(f"sp2_fraction must be a number in [0, 1], not "
                        f"{type(sp2_fraction).__name__}")
    if not 0 <= sp2_fraction <= 1:
        raise ValueError(f"sp2_fraction must be in [0, 1] (share of rows in SP2), got "
                         f"{sp2_fraction}")
    if scale_method not in CALIBRATIONS:
        raise ValueError(f"scale_method must be one of {', '.join(CALIBRATIONS)}; got "
                         f"{scale_method!r}")
    ufmt, sfmt = parse_format(uniform), parse_format(sp2)
    rows = w.shape[0]
    n_sp2 = round(float(sp2_fraction) * rows)

    u_scales = calibrate_scale(w, ufmt, scale_method, axis=0)
    s_scales = calibrate_scale(w, sfmt, scale_method, axis=0)
    u_err = _squared_errors(w, u_scales, _rounder(ufmt, "nearest"))
    s_err = _squared_errors(w, s_scales, _rounder(sfmt, "nearest"))
    chosen = np.argsort(s_err - u_err, kind="stable")[:n_sp2]
    mask = np.zeros(rows, dtype=bool)
    mask[chosen] = True

    scales = np.where(mask, s_scales, u_scales)
    u_codes = quantize(w[~mask], ufmt, u_scales[~mask], axis=0)
    s_codes = quantize(w[mask], sfmt, s_scales[mask], axis=0)
    row_errors = np.where(mask, s_err, u_err)
    for a in (mask, scales, u_codes, s_codes, row_errors):
        a.setflags(write=False)
    return MsqSplit(mask, scales, ufmt, sfmt, u_codes, s_codes, row_errors,
                    float(row_errors.sum()))
