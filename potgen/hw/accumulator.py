"""A signed accumulator with ``valid`` / ``clear``, wrap or saturate, and a sticky overflow flag.

Semantics on each rising edge (DESIGN.md section 4, the MAC PE's accumulator):

* ``clear`` starts a new sum: ``acc <= valid ? addend : 0`` and the overflow flag is
  reloaded from that single addition;
* otherwise ``valid`` adds the addend (wrapping modulo ``2^acc_bits`` or saturating at
  the range ends) and the flag becomes ``overflow | (the exact sum left the range)``;
* otherwise ``acc`` and ``overflow`` hold.

The flag is the golden model's: once set it stays set, and before it is first set the
accumulator holds the exact partial sum, so "the exact ``acc + addend`` left the range"
is the same as "some exact prefix sum left the range" (:func:`potgen.golden.dot`).
"""

from __future__ import annotations

from amaranth.hdl import Const, Module, Mux, Shape, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .. import bounds
from .checks import check_signed_shape
from .product import check_choice, silence_unused_on_error

__all__ = ["Accumulator", "OVERFLOW_MODES", "ACC_BITS"]

#: Values of ``overflow=``.
OVERFLOW_MODES = ("wrap", "saturate")
#: Accumulator widths accepted.
ACC_BITS = range(2, 65)


def check_acc_bits(acc_bits, param: str = "acc_bits") -> int:
    if isinstance(acc_bits, bool) or not isinstance(acc_bits, int):
        raise TypeError(f"{param}={acc_bits!r}: expected an int width "
                        f"{ACC_BITS.start}..{ACC_BITS.stop - 1}")
    if acc_bits not in ACC_BITS:
        raise ValueError(f"{param}={acc_bits}: accumulator width must be "
                         f"{ACC_BITS.start}..{ACC_BITS.stop - 1}")
    return acc_bits


def _shape_range(shape: Shape) -> tuple:
    if shape.signed:
        return -(1 << (shape.width - 1)), (1 << (shape.width - 1)) - 1
    return 0, (1 << shape.width) - 1


class Accumulator(wiring.Component):
    """Signed accumulator: wrap or saturate, sticky overflow flag.

    Parameters
    ----------
    addend_shape : int or Shape
        Shape of the ``addend`` port; an int means ``signed(n)``.
    acc_bits : int
        Width of the signed accumulator, 2..64. It must hold every single addend (an
        accumulator narrower than one addend is refused).
    overflow : ``"wrap"`` or ``"saturate"``
        ``"wrap"``: two's complement modulo ``2^acc_bits``. ``"saturate"``: clamp to
        ``[-2^(acc_bits-1), 2^(acc_bits-1) - 1]`` after every addition.
    addend_range : (int, int) or None
        The values the addend actually takes, when narrower than its shape's range (a
        product unit's exact range). Sizes the internal sum; the addend must stay in it.
        ``None``: the whole range of ``addend_shape``.
    fold_sign : bool
        Add a ``negate`` input: when it is high the addend is subtracted, as
        ``acc + (addend ^ s) + s`` in the same carry chain. A shift-add product unit with
        ``sign="split"`` feeds it and needs no negation adder of its own.

    Members
    -------
    addend : ``In(addend_shape)``
        The value to add.
    negate : ``In(1)``
        Subtract ``addend`` instead of adding it (only with ``fold_sign=True``).
    valid : ``In(1)``
        Add the addend on this edge.
    clear : ``In(1)``
        Start a new sum on this edge (``acc <= valid ? addend : 0``).
    acc : ``Out(signed(acc_bits))``
        The accumulator.
    overflow : ``Out(1)``
        Sticky: some exact partial sum since the last ``clear`` left the range of ``acc``.

    Attributes
    ----------
    latency : int
        0: ``acc`` shows an addition right after the edge that takes it.
    sum_shape : Shape
        Exact shape of ``acc + addend`` before wrapping or saturation.
    """

    @silence_unused_on_error
    def __init__(self, addend_shape, acc_bits, overflow="wrap", *, addend_range=None,
                 fold_sign=False):
        self._addend_shape = check_signed_shape(addend_shape, "addend_shape")
        self._acc_bits = check_acc_bits(acc_bits)
        self._overflow = check_choice(overflow, OVERFLOW_MODES, "overflow")
        if not isinstance(fold_sign, bool):
            raise TypeError(f"fold_sign={fold_sign!r}: expected True or False")
        self._fold_sign = fold_sign
        shape_lo, shape_hi = _shape_range(self._addend_shape)
        if addend_range is None:
            lo, hi = shape_lo, shape_hi
        else:
            pair = tuple(addend_range) if isinstance(addend_range, (tuple, list)) else ()
            if len(pair) != 2 or not all(isinstance(v, int) and not isinstance(v, bool)
                                         for v in pair):
                raise TypeError(f"addend_range={addend_range!r}: expected a pair of ints "
                                "(min, max)")
            lo, hi = pair
            if not shape_lo <= lo <= hi <= shape_hi:
                raise ValueError(f"addend_range={addend_range!r}: must satisfy min <= max "
                                 f"inside the range of addend_shape={self._addend_shape!r} "
                                 f"[{shape_lo}, {shape_hi}]")
        if fold_sign:
            lo, hi = min(lo, -hi), max(hi, -lo)
        self._addend_range = (lo, hi)
        need = bounds.signed_width(lo, hi)
        if self._acc_bits < need:
            raise ValueError(
                f"acc_bits={self._acc_bits}: the accumulator is narrower than one addend "
                f"({'+-' if fold_sign else ''}[{lo}, {hi}] needs {need} signed bits); "
                f"use acc_bits >= {need}")
        self._acc_lo = -(1 << (self._acc_bits - 1))
        self._acc_hi = (1 << (self._acc_bits - 1)) - 1
        members = {"addend": In(self._addend_shape)}
        if fold_sign:
            members["negate"] = In(1)
        members.update({"valid": In(1), "clear": In(1),
                        "acc": Out(signed(self._acc_bits)), "overflow": Out(1)})
        super().__init__(members)

    @property
    def acc_bits(self) -> int:
        return self._acc_bits

    @property
    def overflow_mode(self) -> str:
        return self._overflow

    @property
    def fold_sign(self) -> bool:
        return self._fold_sign

    @property
    def addend_range(self) -> tuple:
        """Range of the signed addend (``+-`` the port's range with ``fold_sign``)."""
        return self._addend_range

    @property
    def latency(self) -> int:
        return 0

    @property
    def sum_shape(self) -> Shape:
        lo, hi = self._addend_range
        return signed(bounds.signed_width(self._acc_lo + lo, self._acc_hi + hi))

    def elaborate(self, platform):
        m = Module()
        exact = Signal(self.sum_shape, name="exact_sum")
        if self._fold_sign:
            # Widen an unsigned addend by one zero bit so that ~x means -x - 1.
            addend = self.addend
            if not self._addend_shape.signed:
                addend = Signal(signed(self._addend_shape.width + 1), name="addend_signed")
                m.d.comb += addend.eq(self.addend)
            # acc - x == acc + ~x + 1: the XOR and the carry-in ride on the adder itself.
            # A clear starts from 0 through the same adder (loading -x directly would
            # need a second carry chain), and an idle clear adds a zero addend, so the
            # register always loads the adder's result: gating the addend with valid
            # shares the LUT of its XOR, and no zeroing multiplexer is needed.
            subtract = self.negate & self.valid
            term = Mux(self.valid, Mux(self.negate, ~addend, addend), 0)
            m.d.comb += exact.eq(Mux(self.clear, 0, self.acc) + term + subtract)
        else:
            m.d.comb += exact.eq(self.acc + self.addend)

        width, top = self.sum_shape.width, self._acc_bits - 1
        if width > self._acc_bits:
            # The exact sum fits acc_bits iff its bits above the accumulator's sign bit
            # all copy that sign bit.
            high = exact[top:]
            out_of_range = ~(high.all() | ~high.any())
        else:
            out_of_range = Const(0, 1)
        wrapped = exact[:self._acc_bits].as_signed()
        if self._overflow == "saturate":
            limit = Mux(exact[-1], self._acc_lo, self._acc_hi)
            result = Mux(out_of_range, limit, wrapped)
        else:
            result = wrapped

        # A single addend always fits (checked in __init__), so a clear resets the flag.
        if self._fold_sign:
            with m.If(self.valid | self.clear):
                m.d.sync += [
                    self.acc.eq(result),
                    self.overflow.eq(~self.clear & (self.overflow | out_of_range)),
                ]
        else:
            # Loading the addend on a clear costs one LUT per bit; gating the adder's
            # acc operand instead would cost that plus the zeroing multiplexer
            # (yosys 0.70 synth_ecp5, 20-bit accumulator: 23 LUT4 instead of 43).
            with m.If(self.clear):
                m.d.sync += [self.acc.eq(Mux(self.valid, self.addend, 0)),
                             self.overflow.eq(0)]
            with m.Elif(self.valid):
                m.d.sync += [self.acc.eq(result),
                             self.overflow.eq(self.overflow | out_of_range)]
        return m

    def metadata(self) -> dict:
        from .export import signature_ports
        lo, hi = self._addend_range
        return {
            "kind": "accumulator",
            "addend": {"bits": self._addend_shape.width,
                       "signed": self._addend_shape.signed, "min": lo, "max": hi},
            "acc_bits": self._acc_bits,
            "overflow": self._overflow,
            "fold_sign": self._fold_sign,
            "latency": self.latency,
            "ports": signature_ports(self),
        }
