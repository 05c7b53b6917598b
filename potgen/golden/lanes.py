"""Packed lanes: several narrow integers in one wide word (BACKGROUND.md section 4).

This module is the exact specification of packed arithmetic that hardware must match
bit for bit. Two uses:

**Lanes in one adder.** A :class:`LaneLayout` puts ``lanes`` values of ``value_bits``
bits into fields of ``width`` bits (``guard_bits = width - value_bits`` spare bits per
lane); lane ``i`` occupies bits ``[i*width, (i+1)*width)`` of a ``word_bits`` word.

* ``encoding="twos"``, signed: ``word = sum_i v_i 2^(i*width) mod 2^word_bits``; each
  lane is sign-extended into the lanes above, so one wrapping adder adds all lanes.
  Unpacking *peels* from the bottom: ``f = signed(x[width-1:0]); x = (x - f) >> width``.
  Reading the fields back as independent two's complement numbers is wrong whenever a
  lower lane is negative. Exact for lane sums in ``[-2^(width-1), 2^(width-1) - 1]``,
  i.e. for up to ``2^guard_bits`` full-range adds.
* ``encoding="twos"``, unsigned: plain fields; exact while every lane sum stays below
  ``2^width``: ``floor((2^width - 1) / (2^value_bits - 1))`` full-range adds.
* ``encoding="offset"`` (offset binary, signed values): lane ``i`` stores
  ``v_i + 2^(value_bits-1)`` (non-negative), so no carry or borrow crosses lanes for up
  to ``floor((2^width - 1) / (2^value_bits - 1))`` adds; after ``n`` adds each field
  holds ``sum v + n * 2^(value_bits-1)``, and decoding subtracts that offset.

:func:`max_safe_adds` gives those counts.

**Products in one multiplier** (the Xilinx WP486 idea, generalised to ``k`` lanes):
``P = (sum_i a_i 2^(i*S)) * c = sum_i (a_i c) 2^(i*S)``. With ``r_i = P[(i+1)S-1 : iS]``,
the product of lane ``i`` is ``signed(r_i) + P[iS - 1]`` (the borrow of the lanes
below; no borrow into lane 0); the top lane is ``(P >> (k-1)S) + P[(k-1)S - 1]``. This
is exact when every product except the top one satisfies ``|a_i c| <= 2^(S-1) - 1``
(:func:`min_spacing`). Without the correction the upper lanes are wrong whenever the
part below them is negative.

Words are Python ints for a single word and ``uint64`` arrays when
``word_bits <= 64`` (``object`` arrays of Python ints otherwise).
"""

from __future__ import annotations

from dataclasses import dataclass
from numbers import Integral

import numpy as np

from ..formats import parse_format
from .arith import _max_abs, as_integers

__all__ = [
    "ENCODINGS", "LaneLayout", "pack", "unpack", "add", "max_safe_adds",
    "pack_operand", "extract_products", "multiply_shared", "min_spacing",
]

#: Lane encodings of a :class:`LaneLayout`.
ENCODINGS = ("twos", "offset")

_INT64_MAX = (1 << 63) - 1


def _check_int(value, name: str, minimum: int) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, Integral):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name}={value}: must be >= {minimum}")
    return int(value)


@dataclass(frozen=True)
class LaneLayout:
    """How lanes sit in a packed word.

    Parameters
    ----------
    lanes : int
        Number of lanes, >= 1.
    width : int
        Bits per lane (field width, including guard bits), >= 1.
    signed : bool
        Whether lane values are signed.
    encoding : str
        ``"twos"`` (two's complement / plain unsigned fields) or ``"offset"`` (offset
        binary; signed values only).
    value_bits : int or None
        Width of the values that are packed, 1..``width``; ``None`` means ``width``
        (no guard bits).

    Members
    -------
    word_bits : int
        ``lanes * width``.
    guard_bits : int
        ``width - value_bits``.
    value_min, value_max : int
        Range of the values :func:`pack` accepts.
    """

    lanes: int
    width: int
    signed: bool = True
    encoding: str = "twos"
    value_bits: int | None = None

    def __post_init__(self):
        _check_int(self.lanes, "lanes", 1)
        _check_int(self.width, "width", 1)
        if not isinstance(self.signed, (bool, np.bool_)):
            raise TypeError(f"signed must be a bool, not {type(self.signed).__name__}")
        if self.encoding not in ENCODINGS:
            raise ValueError(f"encoding={self.encoding!r}: allowed "
                             f"{', '.join(map(repr, ENCODINGS))}")
        if self.encoding == "offset" and not self.signed:
            raise ValueError("encoding='offset' is for signed lanes; unsigned lanes are "
                             "plain fields (encoding='twos')")
        value_bits = self.width if self.value_bits is None else self.value_bits
        _check_int(value_bits, "value_bits", 1)
        if value_bits > self.width:
            raise ValueError(f"value_bits={value_bits} exceeds the lane width "
                             f"{self.width}")
        object.__setattr__(self, "value_bits", int(value_bits))
        object.__setattr__(self, "signed", bool(self.signed))

    @property
    def word_bits(self) -> int:
        return self.lanes * self.width

    @property
    def guard_bits(self) -> int:
        return self.width - self.value_bits

    @property
    def value_min(self) -> int:
        return -(1 << (self.value_bits - 1)) if self.signed else 0

    @property
    def value_max(self) -> int:
        if self.signed:
            return (1 << (self.value_bits - 1)) - 1
        return (1 << self.value_bits) - 1


def max_safe_adds(layout: LaneLayout) -> int:
    """How many packed words of full-range values can be summed and still unpack exactly.

    ``2^guard_bits`` for signed two's complement lanes (the negative extreme
    ``-2^(value_bits-1)`` reaches ``-2^(width-1)`` after that many adds);
    ``floor((2^width - 1) / (2^value_bits - 1))`` for unsigned and offset-binary lanes
    (every stored field is at most ``2^value_bits - 1``).
    """
    if not isinstance(layout, LaneLayout):
        raise TypeError(f"layout must be a LaneLayout, not {type(layout).__name__}")
    if layout.signed and layout.encoding == "twos":
        return 1 << layout.guard_bits
    return ((1 << layout.width) - 1) // ((1 << layout.value_bits) - 1)


def _words(words, layout: LaneLayout, name: str) -> np.ndarray:
    """Packed words as uint64 (``word_bits <= 64``) or object arrays, range-checked."""
    w = as_integers(words, name)
    if w.size:
        lo, hi = int(w.min()), int(w.max())
        if lo < 0 or hi >= 1 << layout.word_bits:
            bad = lo if lo < 0 else hi
            raise ValueError(f"{name}: word {bad} is outside 0..2^{layout.word_bits}-1 "
                             f"({layout.lanes} lanes x {layout.width} bits)")
    if layout.word_bits <= 64:
        return w.astype(np.uint64)
    return w.astype(object)


def _result(words: np.ndarray):
    """A 0-d result as a Python int, arrays unchanged."""
    return int(words.item()) if words.ndim == 0 else words


def pack(values, layout: LaneLayout):
    """Pack lane values into words.

    Parameters
    ----------
    values : array-like of int, shape [..., lanes]
        The last axis holds the lanes (lane 0 at the least significant end), each in
        ``[layout.value_min, layout.value_max]``.
    layout : LaneLayout

    Returns
    -------
    int or numpy.ndarray
        A Python int for a single word (1-D ``values``); otherwise an array of shape
        ``values.shape[:-1]``, ``uint64`` when ``word_bits <= 64`` else ``object``.
    """
    if not isinstance(layout, LaneLayout):
        raise TypeError(f"layout must be a LaneLayout, not {type(layout).__name__}")
    v = as_integers(values, "values")
    if v.ndim == 0 or v.shape[-1] != layout.lanes:
        raise ValueError(f"values must have shape [..., {layout.lanes}] (last axis = "
                         f"lanes), got {v.shape}")
    if v.size:
        out = (v < layout.value_min) | (v > layout.value_max)
        if out.any():
            index = tuple(int(i) for i in np.argwhere(out)[0])
            raise ValueError(f"values[{', '.join(map(str, index))}] = {v[index]} is "
                             f"outside the {layout.value_bits}-bit lane range "
                             f"{layout.value_min}..{layout.value_max}")
    if layout.encoding == "offset":
        v = v + (1 << (layout.value_bits - 1))
    shape = v.shape[:-1]
    v = v.reshape(-1, layout.lanes)  # 2-D inside: no NumPy scalars, no overflow warnings
    if layout.word_bits <= 64:
        # uint64 arithmetic is modulo 2^64: sign extension of negative lanes into the
        # lanes above is exactly the two's complement of the sum.
        u = v.astype(np.int64).view(np.uint64)
        word = np.zeros(len(v), dtype=np.uint64)
        for i in range(layout.lanes):
            word += u[:, i] << np.uint64(i * layout.width)
        if layout.word_bits < 64:
            word &= np.uint64((1 << layout.word_bits) - 1)
    else:
        o = v.astype(object)
        word = np.zeros(len(v), dtype=object)
        for i in range(layout.lanes):
            word = word + (o[:, i] << (i * layout.width))
        word = word % (1 << layout.word_bits)
    word = word.reshape(shape)
    return _result(word)


def unpack(words, layout: LaneLayout, count: int = 1) -> np.ndarray:
    """Unpack words into lane values (the inverse of :func:`pack`, also after adds).

    Parameters
    ----------
    words : int or array-like of int
        Packed words, ``0 <= word < 2^word_bits``.
    layout : LaneLayout
    count : int
        Number of packed words summed into each word (offset-binary decoding subtracts
        ``count * 2^(value_bits-1)``; two's complement lanes ignore it).

    Returns
    -------
    numpy.ndarray, shape [..., lanes]
        Lane values: signed two's complement lanes by the peel rule
        (``f = signed(x[width-1:0]); x = (x - f) >> width``), unsigned lanes as plain
        fields, offset lanes as field minus offset. int64 (``object`` only for 64-bit
        unsigned lanes).
    """
    if not isinstance(layout, LaneLayout):
        raise TypeError(f"layout must be a LaneLayout, not {type(layout).__name__}")
    count = _check_int(count, "count", 1)
    x = _words(words, layout, "words")
    shape = x.shape
    x = x.reshape(-1)  # 1-D inside: no NumPy scalars, no overflow warnings
    width = layout.width
    wide = x.dtype == object
    mask = (1 << width) - 1
    word_mask = (1 << layout.word_bits) - 1
    const = (lambda n: n) if wide else np.uint64
    lanes = []
    for i in range(layout.lanes):
        low = x & const(mask)
        last = i + 1 == layout.lanes
        if layout.signed and layout.encoding == "twos":
            if wide:
                f = np.where(low >= 1 << (width - 1), low - (1 << width), low)
                if not last:
                    x = ((x - f) & word_mask) >> width
                lanes.append(f.astype(np.int64))
            else:
                f = low.astype(np.int64)  # width 64: the cast is the two's complement
                if width < 64:
                    f = np.where(low >= np.uint64(1 << (width - 1)), f - (1 << width), f)
                if not last:
                    # (x - f) is divisible by 2^width; uint64 wraps modulo 2^64, and
                    # the mask reduces modulo 2^word_bits, which 2^64 is a multiple of.
                    x = ((x - f.view(np.uint64)) & np.uint64(word_mask)) >> np.uint64(width)
                lanes.append(f)
        else:
            if not last:
                x = x >> const(width)
            field = low.astype(object) if width == 64 else low.astype(np.int64)
            if layout.encoding == "offset":
                field = field - count * (1 << (layout.value_bits - 1))
            lanes.append(field)
    out = np.stack(lanes, axis=-1).reshape(shape + (layout.lanes,))
    return as_integers(out, "lanes") if out.dtype == object else out


def add(words, layout: LaneLayout, axis: int = 0):
    """Wrapping word addition: sum packed words along ``axis`` modulo ``2^word_bits``.

    One wide adder adds every lane at once. The lanes unpack exactly when at most
    :func:`max_safe_adds` words of full-range values were summed (decode offset lanes
    with ``unpack(..., count=n)``).

    Parameters
    ----------
    words : array-like of int
        Packed words, at least 1-D.
    layout : LaneLayout
    axis : int
        Axis to sum over.

    Returns
    -------
    int or numpy.ndarray
        The summed word(s), in the same representation as :func:`pack`.
    """
    if not isinstance(layout, LaneLayout):
        raise TypeError(f"layout must be a LaneLayout, not {type(layout).__name__}")
    x = _words(words, layout, "words")
    if x.ndim == 0:
        raise ValueError("add needs at least a 1-D array of words to sum")
    if x.dtype == object:
        total = np.asarray(np.sum(x, axis=axis) % (1 << layout.word_bits), dtype=object)
    else:
        total = np.sum(x, axis=axis, dtype=np.uint64)  # wraps modulo 2^64
        if layout.word_bits < 64:
            total = total & np.uint64((1 << layout.word_bits) - 1)
    return _result(np.asarray(total))


# --- products in one multiplier -------------------------------------------------------

def _check_spacing(spacing) -> int:
    return _check_int(spacing, "spacing", 2)


def pack_operand(acts, spacing: int) -> np.ndarray:
    """The packed multiplier operand ``X = sum_i a_i 2^(i*spacing)`` (exact, signed).

    Parameters
    ----------
    acts : array-like of int, shape [..., k]
        Lane values, lane 0 at the least significant end.
    spacing : int
        Lane spacing ``S`` in bits, >= 2.

    Returns
    -------
    numpy.ndarray, shape [...]
        int64 when it provably fits, else Python ints.
    """
    spacing = _check_spacing(spacing)
    a = as_integers(acts, "acts")
    if a.ndim == 0 or a.shape[-1] < 1:
        raise ValueError(f"acts must have shape [..., k] with k >= 1, got {a.shape}")
    k = a.shape[-1]
    bound = _max_abs(a) * (1 << ((k - 1) * spacing + 1))
    a = a.astype(np.int64) if bound <= _INT64_MAX else a.astype(object)
    total = np.zeros(a.shape[:-1], dtype=a.dtype)
    for i in range(k):
        total = total + a[..., i] * (1 << (i * spacing))
    return np.asarray(total)


def extract_products(packed, lanes: int, spacing: int) -> np.ndarray:
    """Lane products out of a shared multiplier's result, with the borrow correction.

    Lane ``i < lanes - 1`` is ``signed(P[(i+1)S-1 : iS]) + P[iS-1]`` (no borrow term for
    lane 0); the top lane is ``(P >> (lanes-1)S) + P[(lanes-1)S-1]`` (arithmetic shift,
    all remaining bits). This is what the hardware computes; it equals the true lane
    values of ``P = sum_i p_i 2^(iS)`` whenever every lane below the top satisfies
    ``|p_i| <= 2^(S-1) - 1`` (then the part below lane ``i`` is negative exactly when
    bit ``iS - 1`` of ``P`` is set, which is the borrow ``r_i`` lost).

    Parameters
    ----------
    packed : array-like of int
        Multiplier results ``P`` (any shape).
    lanes : int
        Number of lanes ``k``, >= 1.
    spacing : int
        Lane spacing ``S``, >= 2.

    Returns
    -------
    numpy.ndarray, shape packed.shape + (lanes,)
    """
    lanes = _check_int(lanes, "lanes", 1)
    spacing = _check_spacing(spacing)
    p = as_integers(packed, "packed")
    if p.dtype != object and (lanes - 1) * spacing >= 63:
        p = p.astype(object)  # shifts of 63 or more bits: stay with Python ints
    mask, half = (1 << spacing) - 1, 1 << (spacing - 1)
    out = []
    for i in range(lanes):
        shift = i * spacing
        borrow = (p >> (shift - 1)) & 1 if i else 0
        if i + 1 < lanes:
            field = (p >> shift) & mask
            value = np.where(field >= half, field - (1 << spacing), field)
        else:
            value = p >> shift
        out.append(np.asarray(value + borrow))
    result = np.stack(out, axis=-1)
    return as_integers(result, "products") if result.dtype == object else result


def multiply_shared(acts, weight, spacing: int) -> np.ndarray:
    """``k`` products ``a_i * c`` from one multiplication of a packed operand.

    Computes ``P = pack_operand(acts, spacing) * weight`` and extracts the lanes with
    :func:`extract_products` -- the exact bit-level procedure the hardware follows.

    Parameters
    ----------
    acts : array-like of int, shape [..., k]
        Lane operands (last axis = lanes).
    weight : array-like of int
        The shared operand ``c``, broadcast against ``acts.shape[:-1]``.
    spacing : int
        Lane spacing ``S``, >= 2.

    Returns
    -------
    numpy.ndarray, shape [..., k]
        The lane products (equal to ``acts * weight[..., None]``).

    Raises
    ------
    ValueError
        When a product below the top lane has ``|a_i c| > 2^(S-1) - 1``: the spacing is
        too small for these operands (see :func:`min_spacing`).
    """
    spacing = _check_spacing(spacing)
    a = as_integers(acts, "acts")
    c = as_integers(weight, "weight")
    if a.ndim == 0:
        raise ValueError(f"acts must have shape [..., k], got {a.shape}")
    try:
        shape = np.broadcast_shapes(a.shape[:-1], c.shape)
    except ValueError:
        raise ValueError(f"weight shape {c.shape} does not broadcast against acts "
                         f"shape {a.shape[:-1]} (acts without the lane axis)") from None
    if shape != a.shape[:-1]:
        raise ValueError(f"weight shape {c.shape} would broadcast acts {a.shape} to "
                         f"{shape}; weight must broadcast to {a.shape[:-1]}")
    k = a.shape[-1]
    limit = (1 << (spacing - 1)) - 1
    lower_a = a[..., :-1]
    if _max_abs(lower_a) * _max_abs(c) > limit:
        # Some operands could be too large: find an actual offending product.
        magnitude = np.abs(lower_a.astype(object)) * np.abs(c.astype(object))[..., None]
        too_big = magnitude > limit
        if too_big.any():
            index = tuple(int(i) for i in np.argwhere(too_big)[0])
            raise ValueError(f"spacing={spacing} is too small: lane {index[-1]} product "
                             f"magnitude {magnitude[index]} exceeds 2^{spacing - 1}-1 = "
                             f"{limit}; only the top lane may be wider (see min_spacing)")
    x = pack_operand(a, spacing)
    bound = _max_abs(x) * _max_abs(c)
    if bound <= _INT64_MAX:
        p = x.astype(np.int64) * c.astype(np.int64)
    else:
        p = x.astype(object) * c.astype(object)
    return extract_products(p, k, spacing)


def min_spacing(act_fmt, weight_fmt, terms: int = 1) -> int:
    """Smallest lane spacing for shared products of two formats.

    Every lane below the top must hold ``terms`` accumulated products within
    ``|v| <= 2^(S-1) - 1``: ``S = (terms * max|act| * max|weight|).bit_length() + 1``.

    Parameters
    ----------
    act_fmt, weight_fmt : Format or str
        Operand formats (``weight_fmt`` may be any potgen format; its levels count).
    terms : int
        Products accumulated per lane before extraction, >= 1.

    Examples
    --------
    int4 x int4: 8; uint4 x int4: 8; int8 x int8: 16.
    """
    terms = _check_int(terms, "terms", 1)
    act, weight = parse_format(act_fmt), parse_format(weight_fmt)
    return (terms * act.max_abs * weight.max_abs).bit_length() + 1
