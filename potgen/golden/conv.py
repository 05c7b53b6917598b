"""2-D convolution as im2col followed by the golden matrix product.

The convolution computes ``sum (a - zero_point) * w`` over the receptive field, with
padded positions holding the zero point so they contribute exactly zero. Lowering to
a matrix product fixes the reduction order that accumulator semantics (saturation,
sticky overflow flags) depend on: ``k`` runs over ``(c, r, s)`` in row-major order,
i.e. ``k = (c * R + r) * S + s``, the order of ``codes.reshape(Cout, Cin * R * S)``.
"""

from __future__ import annotations

from numbers import Integral

import numpy as np

from ..formats import parse_format
from .arith import (
    AccSpec, AccumulatorOverflow, MatmulResult, _check_acc, _max_abs, as_integers,
    matmul_values)

__all__ = ["im2col", "conv2d", "conv_output_size"]

_INT64_MAX = (1 << 63) - 1


def _pair(value, name: str, minimum: int) -> tuple:
    """An int or an (h, w) pair of ints, each >= ``minimum``."""
    items = value if isinstance(value, (tuple, list)) else (value, value)
    if len(items) != 2:
        raise ValueError(f"{name} must be an int or an (h, w) pair, got {value!r}")
    out = []
    for v in items:
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, Integral):
            raise TypeError(f"{name} must be an int or an (h, w) pair of ints, "
                            f"got {value!r}")
        if v < minimum:
            raise ValueError(f"{name}={value!r}: each value must be >= {minimum}")
        out.append(int(v))
    return tuple(out)


def _scalar_int(value, name: str) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, Integral):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    return int(value)


def conv_output_size(input_size, kernel_size, stride=1, padding=0) -> tuple:
    """Output height and width ``(Ho, Wo)`` of a convolution.

    ``Ho = (H + 2 * pad_h - R) // stride_h + 1`` (likewise for the width).

    Parameters
    ----------
    input_size : (int, int)
        ``(H, W)``.
    kernel_size, stride, padding : int or (int, int)
        ``(R, S)``; strides >= 1; paddings >= 0 (added on both sides).

    Raises
    ------
    ValueError
        When the padded input is smaller than the kernel.
    """
    h, w = _pair(input_size, "input_size", 1)
    r, s = _pair(kernel_size, "kernel_size", 1)
    sh, sw = _pair(stride, "stride", 1)
    ph, pw = _pair(padding, "padding", 0)
    if h + 2 * ph < r or w + 2 * pw < s:
        raise ValueError(f"kernel {r}x{s} is larger than the padded input "
                         f"{h + 2 * ph}x{w + 2 * pw} (input {h}x{w}, padding {ph},{pw})")
    return (h + 2 * ph - r) // sh + 1, (w + 2 * pw - s) // sw + 1


def _as_nchw(acts, name: str) -> tuple:
    a = as_integers(acts, name)
    if a.ndim == 3:
        return a[None], True
    if a.ndim != 4:
        raise ValueError(f"{name} must have shape [N, C, H, W] or [C, H, W], got {a.shape}")
    return a, False


def im2col(acts, kernel_size, stride=1, padding=0, pad_value=0) -> np.ndarray:
    """Unfold convolution windows into the rows of a matrix.

    Parameters
    ----------
    acts : array-like of int, shape [N, C, H, W] or [C, H, W]
        Activation values (a 3-D input is one image, N = 1).
    kernel_size : int or (int, int)
        ``(R, S)``.
    stride : int or (int, int)
        ``(stride_h, stride_w)``, each >= 1.
    padding : int or (int, int)
        ``(pad_h, pad_w)`` added on both sides, each >= 0.
    pad_value : int
        Value of padded positions (a convolution with an input zero point pads with the
        zero point).

    Returns
    -------
    numpy.ndarray, shape [N * Ho * Wo, C * R * S]
        Row ``m = (n * Ho + ho) * Wo + wo`` holds the window of output pixel
        ``(n, ho, wo)``; column ``k = (c * R + r) * S + s`` holds input
        ``[n, c, ho * stride_h + r - pad_h, wo * stride_w + s - pad_w]`` (or
        ``pad_value`` outside the input). Multiplying by
        ``weights.reshape(Cout, C * R * S).T`` gives the convolution. ``(Ho, Wo)`` is
        :func:`conv_output_size`.
    """
    a, _ = _as_nchw(acts, "acts")
    pad_value = _scalar_int(pad_value, "pad_value")
    n, c, h, w = a.shape
    r, s = _pair(kernel_size, "kernel_size", 1)
    sh, sw = _pair(stride, "stride", 1)
    ph, pw = _pair(padding, "padding", 0)
    ho, wo = conv_output_size((h, w), (r, s), (sh, sw), (ph, pw))
    if a.dtype != object and abs(pad_value) > _INT64_MAX:
        a = a.astype(object)
    padded = np.full((n, c, h + 2 * ph, w + 2 * pw), pad_value, dtype=a.dtype)
    padded[:, :, ph:ph + h, pw:pw + w] = a
    # windows[n, c, y, x, r, s] = padded[n, c, y + r, x + s]
    windows = np.lib.stride_tricks.sliding_window_view(padded, (r, s), axis=(2, 3))
    windows = windows[:, :, : (ho - 1) * sh + 1 : sh, : (wo - 1) * sw + 1 : sw]
    return windows.transpose(0, 2, 3, 1, 4, 5).reshape(n * ho * wo, c * r * s)


def conv2d(acts, codes, fmt, stride=1, padding=0, zero_point=0,
           acc: AccSpec | None = None) -> MatmulResult:
    """Golden 2-D convolution (cross-correlation, as in deep-learning frameworks).

    ``out[n, co, y, x] = sum_{c, r, s} (a[n, c, y*sh + r - ph, x*sw + s - pw] - zero_point)
    * level(codes[co, c, r, s])``, with padded positions equal to ``zero_point`` (they
    contribute zero), accumulated in ``(c, r, s)`` order under ``acc``.

    Parameters
    ----------
    acts : array-like of int, shape [N, C, H, W] or [C, H, W]
        Activation values.
    codes : array-like of int, shape [Cout, C, R, S]
        Weight codes of ``fmt``.
    fmt : Format or str
        Weight format.
    stride, padding : int or (int, int)
        As for :func:`im2col`.
    zero_point : int
        Input zero point (per tensor).
    acc : AccSpec or None
        Accumulator rule, as for :func:`potgen.golden.matmul`.

    Returns
    -------
    MatmulResult
        ``acc`` and ``overflow`` of shape [N, Cout, Ho, Wo] (``[Cout, Ho, Wo]`` for a
        3-D input).

    Raises
    ------
    AccumulatorOverflow
        Under ``overflow="error"``, for the first overflowing output in row-major order
        of the output tensor: ``position`` ``(n, co, y, x)`` (``(co, y, x)`` for a 3-D
        input), ``index`` the kernel tap ``(c, r, s)`` after which its partial sum left
        the range.
    """
    fmt = parse_format(fmt)
    acc = _check_acc(acc)
    a, single = _as_nchw(acts, "acts")
    zero_point = _scalar_int(zero_point, "zero_point")
    w = fmt.decode(codes)
    if w.ndim != 4:
        raise ValueError(f"codes must have shape [Cout, Cin, R, S], got {w.shape}")
    cout, cin, r, s = w.shape
    n, c, h, width = a.shape
    if cin != c:
        raise ValueError(f"codes have Cin={cin} input channels but acts have C={c}")
    ho, wo = conv_output_size((h, width), (r, s), stride, padding)
    cols = im2col(a, (r, s), stride, padding, pad_value=zero_point)
    if zero_point:
        if cols.dtype != object and _max_abs(cols) + abs(zero_point) > _INT64_MAX:
            cols = cols.astype(object)
        cols = cols - zero_point
    weights = w.reshape(cout, cin * r * s).T
    if acc is not None and acc.overflow == "error":
        # Report the first overflowing output in the order of the output tensor
        # [N, Cout, Ho, Wo], not in the order of the lowered matrix product.
        result = matmul_values(cols, weights, AccSpec(acc.bits, "wrap"))
        flags = result.overflow.reshape(n, ho, wo, cout).transpose(0, 3, 1, 2)
        if flags.any():
            img, co, y, x = (int(i) for i in np.argwhere(flags)[0])
            row = (img * ho + y) * wo + x
            prefix = np.cumsum(cols[row].astype(object) * weights[:, co].astype(object))
            k = int(np.argmax((prefix < acc.min) | (prefix > acc.max)))
            position = (co, y, x) if single else (img, co, y, x)
            index = tuple(int(i) for i in np.unravel_index(k, (cin, r, s)))
            raise AccumulatorOverflow(position, index, int(prefix[k]), acc)
    else:
        result = matmul_values(cols, weights, acc)

    def image(x):
        x = x.reshape(n, ho, wo, cout).transpose(0, 3, 1, 2)
        return np.ascontiguousarray(x[0] if single else x)

    return MatmulResult(image(result.acc), image(result.overflow))
