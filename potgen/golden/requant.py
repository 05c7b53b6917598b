"""Requantization: accumulators back to narrow activations (DESIGN.md section 2).

``out = clamp(zp + ((acc * m + 2^(s-1)) >> s), lo, hi)`` with an integer multiplier
``m``, a shift ``s >= 0`` (``s = 0``: no rounding term), an arithmetic (flooring) right
shift, and an optional ReLU (``lo = max(lo, zp)``). The rounding term makes the shift
round half up: ``(x + 2^(s-1)) >> s == floor(x / 2^s + 1/2)``.

Float scales become ``(m, s)`` pairs with :func:`quantize_multiplier`; a power-of-two
scale ``2^-s`` becomes ``m = 1``.
"""

from __future__ import annotations

import math
from fractions import Fraction
from numbers import Integral, Real

import numpy as np

from .arith import _max_abs, as_integers

__all__ = ["requantize", "quantize_multiplier"]

_INT64_MAX = (1 << 63) - 1


def _channel_param(value, name: str, channels: int | None) -> np.ndarray:
    """A per-tensor scalar or a 1-D per-channel array (last axis of ``acc``)."""
    arr = as_integers(value, name)
    if arr.ndim == 0:
        return arr
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a scalar or a 1-D per-channel array, got "
                         f"shape {arr.shape}")
    if channels is None or arr.shape[0] != channels:
        raise ValueError(f"{name} has {arr.shape[0]} per-channel values but acc's last "
                         f"axis has {channels if channels is not None else 'no'} channels")
    return arr


def requantize(acc, multiplier, shift, zero_point=0, lo=None, hi=None,
               relu: bool = False) -> np.ndarray:
    """Golden requantization, exact for any integer inputs.

    Parameters
    ----------
    acc : array-like of int
        Accumulator values; per-channel parameters run along its last axis.
    multiplier : int or 1-D array of int
        ``m`` (any integer; a PoT scale has ``m = 1``).
    shift : int or 1-D array of int
        ``s >= 0``.
    zero_point : int or 1-D array of int
        Output zero point ``zp``.
    lo, hi : int, 1-D array of int, or None
        Output clamp bounds (``None``: unbounded on that side); ``lo <= hi``.
    relu : bool
        Clamp below at the zero point: ``lo = zp`` when ``lo`` is None, else
        ``max(lo, zp)``.

    Returns
    -------
    numpy.ndarray
        Same shape as ``acc``; int64 when every result fits, else Python ints (object).

    Notes
    -----
    int64 arithmetic is used only when ``max|acc| * max|m| + 2^(s_max - 1) + max|zp|``
    is below 2^63 and ``s_max <= 62``, which bounds every intermediate; otherwise the
    same formula runs on Python ints.
    """
    a = as_integers(acc, "acc")
    channels = a.shape[-1] if a.ndim else None
    m = _channel_param(multiplier, "multiplier", channels)
    s = _channel_param(shift, "shift", channels)
    zp = _channel_param(zero_point, "zero_point", channels)
    if s.size and int(s.min()) < 0:
        raise ValueError(f"shift must be >= 0, got {int(s.min())}")
    if not isinstance(relu, (bool, np.bool_)):
        raise TypeError(f"relu must be a bool, not {type(relu).__name__}")
    lo = None if lo is None else _channel_param(lo, "lo", channels)
    hi = None if hi is None else _channel_param(hi, "hi", channels)
    if relu:
        lo = zp if lo is None else np.maximum(lo, zp)
    if lo is not None and hi is not None and np.any(lo > hi):
        raise ValueError(f"lo must be <= hi (after relu), got lo={lo.tolist()} "
                         f"hi={hi.tolist()}")

    s_max = int(s.max()) if s.size else 0
    bound = _max_abs(a) * _max_abs(m) + (1 << max(s_max - 1, 0)) + _max_abs(zp)
    if bound <= _INT64_MAX and s_max <= 62:
        a, m, s, zp = (x.astype(np.int64) for x in (a, m, s, zp))
        rounding = (np.int64(1) << s) >> 1  # 2^(s-1), and 0 for s = 0
    else:
        a, m, s, zp = (x.astype(object) for x in (a, m, s, zp))
        rounding = (1 << s) >> 1
    out = np.asarray(zp + ((a * m + rounding) >> s))
    for bound_value, clamp in ((lo, np.maximum), (hi, np.minimum)):
        if bound_value is not None:
            if bound_value.dtype == object or out.dtype == object:
                out, bound_value = out.astype(object), bound_value.astype(object)
            out = np.asarray(clamp(out, bound_value))
    if out.dtype == object:
        return as_integers(out, "requantized")
    return out


def quantize_multiplier(real_scale, bits: int = 16, max_shift: int | None = None) -> tuple:
    """Integer ``(m, s)`` with ``m * 2^-s`` the closest approximation of a real scale.

    Among all pairs with ``0 <= m < 2^bits`` and ``0 <= s`` (``<= max_shift`` when
    given), the value ``m * 2^-s`` nearest to ``real_scale`` is chosen, computed exactly
    (a float is a dyadic rational). Ties go to the larger value. The pair is then
    reduced (``m`` halved and ``s`` decremented while ``m`` is even and ``s > 0``), so a
    power-of-two scale ``2^-s`` gives ``m = 1``.

    Why one shift suffices: the grids ``{m 2^-s}`` are nested, so the finest grid on
    which the rounded multiplier still fits (``round(x 2^s) < 2^bits``, largest such
    ``s``) is closest; beyond it only ``m = 2^bits - 1`` is allowed, which is never
    nearer (with ``y = x 2^(s+1) in [2^bits - 1/2, 2^bits)``, the error on the coarser
    grid is ``2^bits - y <= 1/2``, on the finer one ``y - (2^bits - 1) >= 1/2``).

    Parameters
    ----------
    real_scale : float or Fraction
        The scale to approximate, > 0 and finite.
    bits : int
        Multiplier width (unsigned), >= 1.
    max_shift : int or None
        Largest allowed shift (a hardware shifter's limit), >= 0.

    Returns
    -------
    (int, int)
        ``(m, s)``.

    Raises
    ------
    ValueError
        For a non-positive or non-finite scale, a scale too large for ``bits`` (it
        would need ``m >= 2^bits`` at ``s = 0``), or one that rounds to ``m = 0``
        within ``max_shift``.
    """
    if isinstance(bits, (bool, np.bool_)) or not isinstance(bits, Integral) or bits < 1:
        raise ValueError(f"bits={bits!r}: must be an int >= 1")
    if max_shift is not None and (isinstance(max_shift, (bool, np.bool_))
                                  or not isinstance(max_shift, Integral) or max_shift < 0):
        raise ValueError(f"max_shift={max_shift!r}: must be None or an int >= 0")
    if isinstance(real_scale, (bool, np.bool_)) or not isinstance(real_scale, Real):
        raise TypeError(f"real_scale must be a real number, not "
                        f"{type(real_scale).__name__}")
    if isinstance(real_scale, (float, np.floating)):
        if not math.isfinite(real_scale):
            raise ValueError(f"real_scale={real_scale!r}: must be finite and > 0")
        real_scale = float(real_scale)  # exact, also for float16 / float32
    x = Fraction(real_scale)
    if x <= 0:
        raise ValueError(f"real_scale={real_scale!r}: must be > 0")
    limit = 1 << bits

    def rounded(shift: int) -> int:
        y = x * (1 << shift)
        return math.floor(y + Fraction(1, 2))  # ties to the larger value

    # 2^e <= x < 2^(e+1); at s = bits - 1 - e, x 2^s lies in [2^(bits-1), 2^bits),
    # and unless it rounds up to 2^bits that is the largest s whose multiplier fits.
    e = x.numerator.bit_length() - x.denominator.bit_length()
    if Fraction(2) ** e > x:
        e -= 1
    shift = bits - 1 - e
    if shift < 0 or rounded(shift) >= limit:
        shift -= 1
    if shift < 0:
        raise ValueError(f"real_scale={real_scale!r} is too large for a {bits}-bit "
                         f"multiplier with shift >= 0 (largest {limit - 1})")
    if max_shift is not None and shift > max_shift:
        shift = int(max_shift)
    m = rounded(shift)
    if m == 0:
        raise ValueError(f"real_scale={real_scale!r} rounds to 0 with shift <= "
                         f"{max_shift}; allow a larger max_shift")
    while m % 2 == 0 and shift > 0:
        m //= 2
        shift -= 1
    return m, shift
