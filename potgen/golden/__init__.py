"""The bit-exact NumPy golden model: the specification of potgen's arithmetic.

Hardware, simulations, drivers and the cost model are checked against this package;
it is never checked against them (DESIGN.md section 2). Every function is exact on
integers (int64 where provably safe, Python ints otherwise) and vectorised.

* :mod:`~potgen.golden.arith` -- :class:`AccSpec`, :func:`product`, :func:`dot`,
  :func:`matmul` (accumulator wrap / saturate / error with sticky overflow flags).
* :mod:`~potgen.golden.conv` -- :func:`im2col`, :func:`conv2d`.
* :mod:`~potgen.golden.requant` -- :func:`requantize`, :func:`quantize_multiplier`.
* :mod:`~potgen.golden.lanes` -- packed lanes (pack / unpack with the peel rule / add /
  products in one multiplier); used as ``golden.lanes.pack(...)``.
* :mod:`~potgen.golden.packed` -- the packed exact matmul kernel (several lanes per
  machine word), picked by :func:`matmul` where it is proven exact and faster.
"""

from . import lanes, packed
from .arith import (
    OVERFLOW_MODES, AccSpec, AccumulatorOverflow, MatmulResult, as_integers, dot, matmul,
    matmul_values, product)
from .conv import conv2d, conv_output_size, im2col
from .requant import quantize_multiplier, requantize

__all__ = [
    "OVERFLOW_MODES", "AccSpec", "AccumulatorOverflow", "MatmulResult", "as_integers",
    "product", "dot", "matmul", "matmul_values", "im2col", "conv2d", "conv_output_size",
    "requantize", "quantize_multiplier", "lanes", "packed",
]
