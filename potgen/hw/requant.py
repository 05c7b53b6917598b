"""Requantization unit: accumulators back to narrow activations, exactly as the golden model.

``out = clamp(zp + ((acc * m + 2^(s-1)) >> s), lo, hi)`` (DESIGN.md section 2,
:func:`potgen.golden.requantize`): an integer multiplier ``m``, a shift ``s >= 0``
(``s = 0``: no rounding term), an arithmetic (flooring) shift, the zero point ``zp``,
and a clamp to the output format's range ``[lo, hi]``; with ReLU ``lo = zp``.

One :class:`Requantizer` serves a whole array row: it has ``lanes`` independent
datapaths (one per array column, each with its own multiplier), all advancing
together, so a systolic array's ``out_acc`` row goes in and a row of activations comes
out ``latency`` cycles later. ``m``, ``s`` and ``zp`` are run-time inputs, per lane
(per output channel) or shared, sampled in the same cycle as the accumulators, so they
may change from one row to the next (e.g. from one column fold to the next).

Rounding without a variable rounding term: with ``x = acc * m``,
``(x + 2^(s-1)) >> s == (x >> s) + bit(s-1) of x`` for ``s >= 1`` (write
``x = q 2^s + r``, ``0 <= r < 2^s``: adding ``2^(s-1)`` carries into ``q`` iff
``r >= 2^(s-1)``, i.e. iff bit ``s - 1`` is set; in two's complement this holds for
negative ``x`` too). Both are read from one shifter: ``y = (2x) >> s`` holds
``x >> (s-1)`` for ``s >= 1`` and ``2x`` for ``s = 0``, and ``(y + 1) >> 1`` is the
rounded result in both cases. Every shift amount the ``shift`` port can carry is exact,
including those beyond the product's width (the result is then 0).
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from .. import bounds
from ..formats import IntFormat, parse_format
from .accumulator import check_acc_bits
from .checks import check_int

__all__ = ["Requantizer", "RELU_MODES", "MAX_LANES", "MAX_MULTIPLIER_BITS",
           "MAX_SHIFT", "OUT_BITS"]

#: Values of ``Requantizer(relu=...)``: off, always on, or chosen by the ``relu`` input.
RELU_MODES = (False, True, "input")
#: Largest ``lanes`` accepted.
MAX_LANES = 256
#: Largest ``multiplier_bits`` accepted.
MAX_MULTIPLIER_BITS = 32
#: Largest ``max_shift`` accepted.
MAX_SHIFT = 127
#: Output widths accepted.
OUT_BITS = range(2, 33)
#: Register stages after: the multiplier, the rounding shift, the clamp (by pipeline).
_STAGE_PLACES = {0: (), 1: ("clamp",), 2: ("multiply", "clamp"),
                 3: ("multiply", "shift", "clamp")}


def _check_out_format(out_fmt) -> IntFormat:
    try:
        fmt = parse_format(out_fmt)
    except (ValueError, TypeError) as e:
        raise type(e)(f"out_fmt: {e}") from None
    if not isinstance(fmt, IntFormat) or fmt.bits not in OUT_BITS:
        raise ValueError(f"out_fmt={str(fmt)!r}: requantized outputs must be intN or uintN "
                         f"with N = {OUT_BITS.start}..{OUT_BITS.stop - 1}")
    return fmt


class Requantizer(wiring.Component):
    """``lanes`` requantization datapaths with the golden model's exact semantics.

    Parameters
    ----------
    acc_bits : int
        Width of the signed accumulators, 2..64.
    out_fmt : str or IntFormat
        Output format, ``intN`` / ``uintN`` (N = 2..32); ``lo`` / ``hi`` are its range.
    lanes : int
        Parallel datapaths, 1..:data:`MAX_LANES` (one per array column).
    per_channel : bool
        ``True``: ``multiplier``, ``shift`` and ``zero_point`` are arrays with one
        element per lane. ``False``: one value shared by every lane (per-tensor).
    multiplier_bits : int
        Width of the unsigned multiplier ``m``, 0..:data:`MAX_MULTIPLIER_BITS`. 0 builds
        no multiplier and no ``multiplier`` input: ``m = 1`` (power-of-two scales).
    max_shift : int
        Largest shift the ``shift`` input must carry, 0..:data:`MAX_SHIFT`; the port is
        ``max_shift.bit_length()`` bits wide (every value it can carry is exact). 0
        builds no ``shift`` input: ``s = 0``.
    relu : ``False``, ``True`` or ``"input"``
        ReLU off, always on (``lo = zp``), or per cycle from the ``relu`` input.
    pipeline : int
        Register stages, 0..3: 0 is combinational; 1 registers the outputs; 2 also the
        products; 3 also the rounded shift.

    Members
    -------
    valid : ``In(1)``
        The inputs hold a row to requantize.
    acc : ``In(ArrayLayout(signed(acc_bits), lanes))``
        Accumulators.
    multiplier : ``In(ArrayLayout(unsigned(M), lanes))`` or ``In(unsigned(M))``
        ``m`` per lane or shared, ``M = multiplier_bits`` (absent for ``M = 0``).
    shift : ``In(ArrayLayout(unsigned(S), lanes))`` or ``In(unsigned(S))``
        ``s`` per lane or shared, ``S = max_shift.bit_length()`` (absent for
        ``max_shift = 0``).
    zero_point : ``In(ArrayLayout(Z, lanes))`` or ``In(Z)``
        ``zp`` per lane or shared, ``Z`` the output format's shape.
    relu : ``In(1)``
        ReLU for this row (only with ``relu="input"``).
    out_valid : ``Out(1)``
        ``valid`` delayed by :attr:`latency`.
    out : ``Out(ArrayLayout(Z, lanes))``
        The requantized values.

    Attributes
    ----------
    latency : int
        Cycles from the inputs to ``out`` (``pipeline``).
    product_shape : Shape
        Exact shape of ``acc * m``.
    """

    def __init__(self, acc_bits, out_fmt, *, lanes=1, per_channel=True, multiplier_bits=16,
                 max_shift=31, relu=False, pipeline=3):
        self._acc_bits = check_acc_bits(acc_bits)
        self._out_format = _check_out_format(out_fmt)
        self._lanes = check_int(lanes, "lanes", 1, MAX_LANES, "parallel datapaths")
        if not isinstance(per_channel, bool):
            raise TypeError(f"per_channel={per_channel!r}: expected True or False")
        self._per_channel = per_channel
        self._multiplier_bits = check_int(multiplier_bits, "multiplier_bits", 0,
                                           MAX_MULTIPLIER_BITS, "0: no multiplier, m = 1")
        self._max_shift = check_int(max_shift, "max_shift", 0, MAX_SHIFT,
                                     "the largest shift s")
        if not any(relu is mode for mode in RELU_MODES):
            raise ValueError(f"relu={relu!r}: allowed values are False, True, 'input'")
        self._relu = relu
        self._pipeline = check_int(pipeline, "pipeline", 0, 3, "register stages")

        out_shape = self.out_shape
        members = {"valid": In(1), "acc": In(data.ArrayLayout(signed(self._acc_bits),
                                                              self._lanes))}

        def parameter(shape):
            return In(data.ArrayLayout(shape, self._lanes) if per_channel else shape)

        if self._multiplier_bits:
            members["multiplier"] = parameter(unsigned(self._multiplier_bits))
        if self._max_shift:
            members["shift"] = parameter(unsigned(self.shift_bits))
        members["zero_point"] = parameter(out_shape)
        if relu == "input":
            members["relu"] = In(1)
        members.update({"out_valid": Out(1),
                        "out": Out(data.ArrayLayout(out_shape, self._lanes))})
        super().__init__(members)

    # --- properties ---

    @property
    def acc_bits(self) -> int:
        return self._acc_bits

    @property
    def out_format(self) -> IntFormat:
        return self._out_format

    @property
    def out_shape(self):
        fmt = self._out_format
        return signed(fmt.bits) if fmt.signed else unsigned(fmt.bits)

    @property
    def lanes(self) -> int:
        return self._lanes

    @property
    def per_channel(self) -> bool:
        return self._per_channel

    @property
    def multiplier_bits(self) -> int:
        return self._multiplier_bits

    @property
    def max_shift(self) -> int:
        return self._max_shift

    @property
    def shift_bits(self) -> int:
        """Width of the ``shift`` input (0 when there is none)."""
        return self._max_shift.bit_length()

    @property
    def relu_mode(self):
        return self._relu

    @property
    def latency(self) -> int:
        return self._pipeline

    @property
    def product_shape(self):
        """Exact shape of ``acc * m`` (``m`` unsigned, at most ``2^multiplier_bits - 1``)."""
        m_max = (1 << self._multiplier_bits) - 1 if self._multiplier_bits else 1
        lo = -(1 << (self._acc_bits - 1)) * m_max
        hi = ((1 << (self._acc_bits - 1)) - 1) * m_max
        return signed(bounds.signed_width(min(lo, -1), max(hi, 0)))

    # --- elaboration ---

    def _lane_parameter(self, port, lane):
        return port[lane] if self._per_channel else port

    def elaborate(self, platform):
        m = Module()
        places = _STAGE_PLACES[self._pipeline]
        fmt = self._out_format
        delayed = {}

        def stage(place, value, name):
            """``value`` registered at ``place`` if the pipeline has a stage there.

            A value shared by several lanes (a per-tensor parameter, ``relu``) is
            registered once.
            """
            if place not in places:
                return value
            key = (id(value), place)
            if key not in delayed:
                reg = Signal.like(value, name=f"{name}_{place}")
                m.d.sync += reg.eq(value)
                delayed[key] = (value, reg)     # keeps ``value`` alive: ids stay unique
            return delayed[key][1]

        def through(value, name, *stops):
            for place in stops:
                value = stage(place, value, name)
            return value

        m.d.comb += self.out_valid.eq(through(self.valid, "valid", "multiply", "shift",
                                              "clamp"))
        product_shape = self.product_shape
        for lane in range(self._lanes):
            product = Signal(product_shape, name=f"product{lane}")
            if self._multiplier_bits:
                m.d.comb += product.eq(self.acc[lane] *
                                       self._lane_parameter(self.multiplier, lane))
            else:
                m.d.comb += product.eq(self.acc[lane])
            product = stage("multiply", product, f"product{lane}")

            # y = (2x) >> s; (y + 1) >> 1 rounds half up (see the module docstring).
            doubled = Signal(signed(product_shape.width + 1), name=f"doubled{lane}")
            m.d.comb += doubled.eq(product << 1)
            if self._max_shift:
                shift = through(self._lane_parameter(self.shift, lane), f"shift{lane}",
                                "multiply")
                doubled = doubled >> shift
            rounded = Signal(product_shape, name=f"rounded{lane}")
            m.d.comb += rounded.eq((doubled + 1) >> 1)
            rounded = stage("shift", rounded, f"rounded{lane}")

            zero_point = through(self._lane_parameter(self.zero_point, lane),
                                 f"zero_point{lane}", "multiply", "shift")
            total = Signal(signed(max(product_shape.width, fmt.bits + 1) + 1),
                           name=f"offset{lane}")
            m.d.comb += total.eq(rounded + zero_point)
            if self._relu is True:
                low = zero_point
            elif self._relu == "input":
                relu = through(self.relu, "relu", "multiply", "shift")
                low = Mux(relu, zero_point, fmt.min_level)
            else:
                low = fmt.min_level
            clamped = Signal(self.out_shape, name=f"clamped{lane}")
            m.d.comb += clamped.eq(Mux(total < low, low,
                                       Mux(total > fmt.max_level, fmt.max_level, total)))
            m.d.comb += self.out[lane].eq(stage("clamp", clamped, f"out{lane}"))
        return m

    def metadata(self) -> dict:
        from .export import signature_ports
        return {
            "kind": "requantizer",
            "acc_bits": self._acc_bits,
            "out": str(self._out_format),
            "lanes": self._lanes,
            "per_channel": self._per_channel,
            "multiplier_bits": self._multiplier_bits,
            "max_shift": self._max_shift,
            "shift_bits": self.shift_bits,
            "relu": self._relu,
            "pipeline": self._pipeline,
            "latency": self.latency,
            "formula": "out = clamp(zp + ((acc * m + 2^(s-1)) >> s), lo, hi); s = 0: no "
                       "rounding term; arithmetic shift; lo = zp with relu",
            "ports": signature_ports(self),
        }
