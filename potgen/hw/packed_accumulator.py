"""Several lane accumulators in one carry chain, with the unpack stage.

:class:`PackedAccumulator` keeps ``n`` lane sums in one ``n * W``-bit register and adds a
packed addend word with one wide adder. The layout (an
:class:`~potgen.hw.lanes.AdderLanes`) proves that no lane sum ever leaves its field for
the number of additions it was made for, so nothing is unpacked until the sums are
read: the combinational unpack stage turns the word into ``n`` signed lane sums,
exactly as :func:`potgen.golden.lanes.unpack` does.

Encodings (BACKGROUND.md section 4):

* two's complement, signed: the word is ``sum_i s_i 2^(iW) mod 2^(nW)``; unpacking
  *peels* from the bottom, ``f = signed(x[W-1:0]); x = (x - f) >> W``. In hardware the
  peel is a ripple of lane incrementers: lane ``i`` is ``signed((x_i + c_i) mod 2^W)``
  with ``c_0 = 0`` and ``c_{i+1} = 1`` exactly when ``x_i + c_i >= 2^(W-1)`` (``x_i``
  the raw field), because ``(x - f) >> W = (x >> W) + x[W-1]``.
* unsigned: plain fields.
* offset binary: each lane stores ``v + 2^(B-1)`` (the inverted sign bit of a
  ``B``-bit addend: packing costs nothing); after ``j`` additions a field holds
  ``sum + j 2^(B-1)`` and the unpack stage subtracts ``j 2^(B-1)``, ``j`` coming from
  the add counter.

Addends arrive either as ``n`` lane values (``addend_input="lanes"``) or as a packed
word (``"word"``), e.g. the result of a packed multiplier, which already *is* the two's
complement packing of its lane products. Packing two's complement lanes in hardware
needs one more adder (``sum_i v_i 2^(iW)`` borrows across lanes), so with lane inputs
offset binary is the one-adder choice.

Clear / valid follow :class:`~potgen.hw.accumulator.Accumulator`: ``clear`` starts a new
sum (``word <= valid ? addend : 0``), otherwise ``valid`` adds, otherwise the word holds.
The sticky ``overflow`` flag rises on an addition beyond the ``adds`` the layout was
proved for: while it is low every lane sum is exact; once it is high a lane may have
carried into the next and the sums are unspecified (packed lanes cannot wrap or
saturate independently -- that would take one adder per lane).
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .lanes import AdderLanes
from .product import check_choice, silence_unused_on_error

__all__ = ["PackedAccumulator", "ADDEND_INPUTS", "peel", "pack_lanes"]

#: Values of ``PackedAccumulator(addend_input=...)``.
ADDEND_INPUTS = ("lanes", "word")


def peel(m, word, lanes: int, width: int) -> list:
    """Signed lane values of a two's complement packed word (the peel rule in hardware).

    Returns ``lanes`` signals of ``signed(width)``, lane 0 first.
    """
    out = []
    carry = Const(0, 1)
    for i in range(lanes):
        raw = word[i * width:(i + 1) * width]
        total = Signal(width + 1, name=f"peel{i}_sum")
        m.d.comb += total.eq(raw + carry)
        lane = Signal(signed(width), name=f"peel{i}")
        m.d.comb += lane.eq(total[:width])
        out.append(lane)
        if i + 1 < lanes:
            # The lane above gets 1 when this lane's value was negative (the peel's
            # "- f") or when raw + carry wrapped past 2^W - 1 (then the value is 0).
            nxt = Signal(name=f"peel{i + 1}_carry")
            m.d.comb += nxt.eq(total[width] | total[width - 1])
            carry = nxt
    return out


def pack_lanes(m, layout, values) -> Signal:
    """The packed word of ``values`` (one per lane) in ``layout``'s encoding.

    Offset binary and unsigned lanes are concatenations; two's complement signed lanes
    are the exact sum ``sum_i v_i 2^(iW) mod 2^(nW)`` (one adder).
    """
    width, b = layout.width, layout.value_bits
    word = Signal(layout.word_bits, name="packed_addend")
    if layout.encoding == "offset":
        fields = [Cat(v[:b - 1], ~v[b - 1], Const(0, width - b)) for v in values]
        m.d.comb += word.eq(Cat(*fields))
    elif not layout.signed:
        m.d.comb += word.eq(Cat(*(Cat(v, Const(0, width - b)) for v in values)))
    else:
        # v = low - s 2^(B-1) with low the B-1 low bits and s the sign bit: the low
        # parts concatenate, the signs form one word that is subtracted.
        lows = Cat(*(Cat(v[:b - 1], Const(0, width - b + 1)) for v in values))
        signs = Cat(*(Cat(Const(0, b - 1), v[b - 1], Const(0, width - b)) for v in values))
        m.d.comb += word.eq(lows - signs)
    return word


class PackedAccumulator(wiring.Component):
    """``n`` lane accumulators in one wide adder, unpacked to ``n`` signed lane sums.

    Parameters
    ----------
    lanes : potgen.hw.lanes.AdderLanes
        The layout and what it is proved for (see :func:`potgen.hw.lanes.adder_lanes`,
        :func:`~potgen.hw.lanes.product_adder_lanes`,
        :meth:`~potgen.hw.lanes.AdderLanes.for_layout`).
    addend_input : ``"lanes"`` or ``"word"``
        ``"lanes"``: ``addend`` holds ``n`` values, lane ``i`` at bits ``[i*B, (i+1)*B)``.
        ``"word"``: ``addend`` is a packed word of ``n*W`` bits in the layout's encoding
        (:func:`potgen.golden.lanes.pack`, or a packed multiplier's result reduced
        modulo ``2^(nW)``).

    Members
    -------
    addend : ``In(n*B)`` or ``In(n*W)``
        The lane values to add (``B``-bit, signed iff the layout is), or a packed word.
    valid : ``In(1)``
        Add the addend on this edge.
    clear : ``In(1)``
        Start a new sum on this edge (``word <= valid ? addend : 0``).
    word : ``Out(n*W)``
        The packed accumulator.
    sums : ``Out(n*R)``
        Lane ``i`` at bits ``[i*R, (i+1)*R)``: the signed lane sum, ``R`` the signed
        width of the proved sum range (exact while ``overflow`` is low).
    overflow : ``Out(1)``
        Sticky: more than ``lanes.adds`` additions since the last clear.

    Attributes
    ----------
    latency : int
        0: ``word`` and ``sums`` show an addition right after the edge that takes it.
    count_shape : Shape
        The add counter (saturates one past ``lanes.adds``).
    """

    @silence_unused_on_error
    def __init__(self, lanes, *, addend_input="lanes"):
        if not isinstance(lanes, AdderLanes):
            raise TypeError(f"lanes={lanes!r}: expected a potgen.hw.lanes.AdderLanes "
                            "(see adder_lanes / product_adder_lanes)")
        self._lanes = lanes
        self._addend_input = check_choice(addend_input, ADDEND_INPUTS, "addend_input")
        layout = lanes.layout
        addend_bits = (layout.value_bits if addend_input == "lanes" else layout.width)
        super().__init__({
            "addend": In(layout.lanes * addend_bits),
            "valid": In(1),
            "clear": In(1),
            "word": Out(layout.word_bits),
            "sums": Out(layout.lanes * lanes.sum_bits),
            "overflow": Out(1),
        })

    @property
    def lanes(self) -> AdderLanes:
        return self._lanes

    @property
    def layout(self):
        return self._lanes.layout

    @property
    def addend_input(self) -> str:
        return self._addend_input

    @property
    def latency(self) -> int:
        return 0

    @property
    def count_shape(self):
        return unsigned((self._lanes.adds + 1).bit_length())

    def elaborate(self, platform):
        m = Module()
        lanes, layout = self._lanes, self._lanes.layout
        n, width = layout.lanes, layout.width
        if self._addend_input == "lanes":
            b = layout.value_bits
            values = [self.addend[i * b:(i + 1) * b] for i in range(n)]
            addend = pack_lanes(m, layout, values)
        else:
            addend = self.addend

        count = Signal(self.count_shape, name="adds")
        base = Mux(self.clear, 0, self.word)
        base_count = Mux(self.clear, 0, count)
        exceeded = base_count == lanes.adds
        with m.If(self.valid):
            m.d.sync += [
                self.word.eq(base + addend),   # the one carry chain, modulo 2^(nW)
                count.eq(Mux(exceeded, base_count, base_count + 1)),
                self.overflow.eq(exceeded | (self.overflow & ~self.clear)),
            ]
        with m.Elif(self.clear):
            m.d.sync += [self.word.eq(0), count.eq(0), self.overflow.eq(0)]

        r = lanes.sum_bits
        outs = []
        if layout.encoding == "offset":
            # Subtract count * 2^(B-1) from every field (the counter is exact while
            # overflow is low).
            offset = Signal(range((lanes.adds << (layout.value_bits - 1)) + 1),
                            name="offset_total")
            m.d.comb += offset.eq(count << (layout.value_bits - 1))
            for i in range(n):
                lane = Signal(signed(r), name=f"sum{i}")
                m.d.comb += lane.eq(self.word[i * width:(i + 1) * width] - offset)
                outs.append(lane)
        elif layout.signed:
            outs = peel(m, self.word, n, width)
        else:
            outs = [self.word[i * width:(i + 1) * width] for i in range(n)]
        m.d.comb += self.sums.eq(Cat(*(_resize(m, v, r, i) for i, v in enumerate(outs))))
        return m

    def metadata(self) -> dict:
        from .export import signature_ports
        layout = self._lanes.layout
        addend_bits = layout.value_bits if self._addend_input == "lanes" else layout.width
        elements = {"sums": {"count": layout.lanes, "width": self._lanes.sum_bits,
                             "signed": True}}
        if self._addend_input == "lanes":
            elements["addend"] = {"count": layout.lanes, "width": addend_bits,
                                  "signed": layout.signed}
        return {
            "kind": "packed-accumulator",
            "lanes": self._lanes.to_dict(),
            "addend_input": self._addend_input,
            "latency": self.latency,
            "ports": signature_ports(self),
            "port_lanes": elements,
        }


def _resize(m, value, bits: int, index: int):
    """``value`` as a ``signed(bits)`` signal (exact: the proved sum range fits)."""
    out = Signal(signed(bits), name=f"lane_sum{index}")
    m.d.comb += out.eq(value)
    return out
