"""Parameter checks shared by the hardware generators.

Each raises ``TypeError`` / ``ValueError`` naming the parameter, the bad value and what
is allowed, so a generator refuses bad input in ``__init__``, before any elaboration.
"""

from __future__ import annotations

from numbers import Integral

from amaranth.hdl import Shape, ShapeCastable, signed

__all__ = ["check_int", "check_signed_shape"]


def check_int(value, param: str, lo: int, hi: int, what: str) -> int:
    """An int in ``lo..hi`` (bool refused); ``what`` says what the value means."""
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise TypeError(f"{param}={value!r}: expected an int {lo}..{hi} ({what})")
    if not lo <= value <= hi:
        raise ValueError(f"{param}={value}: must be {lo}..{hi} ({what})")
    return int(value)


def check_signed_shape(shape, param: str) -> Shape:
    """An int (a signed width) or a plain :class:`~amaranth.hdl.Shape` of width >= 1."""
    expected = "expected an int (signed width) or a Shape such as signed(8)"
    if isinstance(shape, bool):
        raise TypeError(f"{param}={shape!r}: {expected}")
    if isinstance(shape, int):
        if shape < 1:
            raise ValueError(f"{param}={shape}: width must be >= 1")
        return signed(shape)
    if isinstance(shape, ShapeCastable) and not isinstance(shape, Shape):
        raise TypeError(f"{param}={shape!r}: {expected}, not a layout or enum")
    try:
        shape = Shape.cast(shape)
    except TypeError:
        raise TypeError(f"{param}={shape!r}: {expected}") from None
    if shape.width < 1:
        raise ValueError(f"{param}={shape!r}: width must be >= 1")
    return shape
