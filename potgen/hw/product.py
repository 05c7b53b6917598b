"""Product units: one activation times one weight code, exact.

Two families of unit compute ``act * level(code)`` (DESIGN.md section 4):

* :class:`ShiftAddProduct` serves every power-of-two family (any
  :class:`~potgen.formats.TermFormat`): each field of the code selects a shifted copy
  of the activation (or zero), the terms are summed and the sign is applied. It
  contains no ``*`` at all, so synthesis can never map it onto a DSP block.
* :class:`MultiplierProduct` is the baseline: a multiplier on a DSP block
  (``implementation="dsp"``) or an explicit partial-product array in LUTs
  (``implementation="lut"``). It takes ``intN`` / ``uintN`` weights directly and, for
  comparison, any other format through a decode table.

:func:`product_unit` picks the natural unit for a weight format.

Every unit has the ports ``act`` (signed iff the activation format is ``intN``),
``weight`` (the code, unsigned) and ``product`` (signed, exactly as wide as the
range ``act range x level range`` needs). ``pipeline=N`` registers the output N times
(``clk`` / ``rst`` appear in the Verilog when ``N > 0``).
"""

from __future__ import annotations

import functools

from amaranth.hdl import Cat, Module, Mux, Shape, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .. import bounds
from ..formats import Format, IntFormat, TermFormat, parse_format

__all__ = ["ShiftAddProduct", "MultiplierProduct", "product_unit",
           "ACT_BITS", "PRODUCT_UNITS", "MULTIPLIER_IMPLEMENTATIONS", "SIGN_MODES"]

#: Activation widths every product unit accepts.
ACT_BITS = range(2, 17)
#: Values of ``product_unit(unit=...)``.
PRODUCT_UNITS = ("auto", "shift-add", "multiplier")
#: Values of ``MultiplierProduct(implementation=...)``.
MULTIPLIER_IMPLEMENTATIONS = ("dsp", "lut")
#: Values of ``ShiftAddProduct(sign=...)``.
SIGN_MODES = ("negate", "split")


# --- parameter checks shared by the hardware generators ------------------------------

def check_act_format(act, param: str = "act") -> IntFormat:
    """Parse an activation format: ``intN`` / ``uintN`` with N in 2..16."""
    fmt = _parse(act, param)
    if not isinstance(fmt, IntFormat) or fmt.bits not in ACT_BITS:
        raise ValueError(f"{param}={str(fmt)!r}: activations must be intN or uintN with "
                         f"N = {ACT_BITS.start}..{ACT_BITS.stop - 1}")
    return fmt


def check_weight_format(weight, param: str = "weight") -> Format:
    """Parse a weight format; any format of :mod:`potgen.formats` of at most 16 bits."""
    fmt = _parse(weight, param)
    if fmt.bits > 16:
        raise ValueError(f"{param}={str(fmt)!r}: weight codes of at most 16 bits are "
                         f"supported, got {fmt.bits}")
    return fmt


def check_pipeline(pipeline, param: str = "pipeline") -> int:
    """A register stage count: a non-negative int (bool refused)."""
    if isinstance(pipeline, bool) or not isinstance(pipeline, int):
        raise TypeError(f"{param}={pipeline!r}: expected a non-negative int (register "
                        "stages)")
    if pipeline < 0:
        raise ValueError(f"{param}={pipeline}: register stages must be >= 0")
    return pipeline


def check_choice(value, allowed, param: str):
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"{param}={value!r}: allowed values are "
                         f"{', '.join(map(repr, allowed))}")
    return value


def silence_unused_on_error(init):
    """Decorate a component's ``__init__``: a refused parameter leaves no warning behind.

    Amaranth creates the object before ``__init__`` runs and warns when an object that
    was never elaborated is collected; a constructor that raises ``ValueError`` would
    otherwise add an ``UnusedElaboratable`` warning to its one-line error.
    """
    @functools.wraps(init)
    def wrapper(self, *args, **kwargs):
        try:
            init(self, *args, **kwargs)
        except BaseException:
            self._MustUse__silence = True
            raise
    return wrapper


def _parse(spec, param: str) -> Format:
    try:
        return parse_format(spec)
    except (ValueError, TypeError) as e:
        raise type(e)(f"{param}: {e}") from None


# --- exact ranges -----------------------------------------------------------------------

def interval_product(a_lo: int, a_hi: int, b_lo: int, b_hi: int) -> tuple:
    """Exact range of ``a * b`` for a in [a_lo, a_hi], b in [b_lo, b_hi] (bilinear: corners)."""
    corners = (a_lo * b_lo, a_lo * b_hi, a_hi * b_lo, a_hi * b_hi)
    return min(corners), max(corners)


def range_shape(lo: int, hi: int, *, force_signed: bool = False) -> Shape:
    """Smallest shape holding [lo, hi]: unsigned when lo >= 0 unless ``force_signed``."""
    if lo >= 0 and not force_signed:
        return unsigned(max(hi.bit_length(), 1))
    return signed(bounds.signed_width(lo, hi))


def act_shape(fmt: IntFormat) -> Shape:
    return signed(fmt.bits) if fmt.signed else unsigned(fmt.bits)


def _as_signed_value(value):
    """``value`` reinterpreted as a signed value of the same number (one bit wider if unsigned)."""
    if value.shape().signed:
        return value
    return Cat(value, 0).as_signed()


# --- common base -----------------------------------------------------------------------

class _ProductBase(wiring.Component):
    """Ports, exact product range, output pipeline and metadata shared by the units."""

    def _init_common(self, weight_fmt, act_fmt, pipeline):
        self._weight_format = weight_fmt
        self._act_format = act_fmt
        self._pipeline = pipeline
        self._product_range = interval_product(act_fmt.min_level, act_fmt.max_level,
                                               weight_fmt.min_level, weight_fmt.max_level)

    @property
    def weight_format(self) -> Format:
        return self._weight_format

    @property
    def act_format(self) -> IntFormat:
        return self._act_format

    @property
    def pipeline(self) -> int:
        return self._pipeline

    @property
    def latency(self) -> int:
        """Clock cycles from ``act`` / ``weight`` to the output (register stages)."""
        return self._pipeline

    @property
    def product_range(self) -> tuple:
        """Exact ``(min, max)`` of ``act * level`` over every activation and code."""
        return self._product_range

    @property
    def product_shape(self) -> Shape:
        """Signed shape of the ``product`` port: the smallest holding :attr:`product_range`."""
        return signed(bounds.signed_width(*self._product_range))

    def _pipeline_outputs(self, m, pairs):
        """Drive each output port from its value through ``pipeline`` register stages."""
        for port, value in pairs:
            for stage in range(self._pipeline):
                reg = Signal(port.shape(), name=f"{port.name}_stage{stage}")
                m.d.sync += reg.eq(value)
                value = reg
            m.d.comb += port.eq(value)

    def metadata(self) -> dict:
        from .export import signature_ports
        lo, hi = self._product_range
        return {
            "kind": "product",
            "weight": str(self._weight_format),
            "act": str(self._act_format),
            "pipeline": self._pipeline,
            "latency": self.latency,
            "product": {"bits": self.product_shape.width, "min": lo, "max": hi},
            "ports": signature_ports(self),
        }


# --- shift-add --------------------------------------------------------------------------

class ShiftAddProduct(_ProductBase):
    """Shift-add product unit for a power-of-two family weight format.

    Field ``i`` of the code selects a term of the set ``S_i`` (``weight.fields[i].table``,
    saturated past the end of the set); the unit forms ``act << log2(term)`` (or zero)
    for each field, sums the terms into the *magnitude product* ``act * |level|`` and
    applies the sign bit. No ``*`` is used: only multiplexers, adders and a negation.
    A field whose terms are consecutive powers of two (every ``potN`` field) selects
    its term with a logarithmic shifter, any other field with a multiplexer of the
    shifted copies.

    Parameters
    ----------
    weight : str or TermFormat
        Weight format (``potN``, ``potN-nz``, ``apotN``, ``sp2-N``, ``upot:...``).
    act : str or IntFormat
        Activation format, ``intN`` or ``uintN`` with N = 2..16.
    pipeline : int
        Register stages on the output (0: combinational).
    sign : ``"negate"`` or ``"split"``
        ``"negate"`` applies the sign here (conditional negation) and outputs
        ``product``. ``"split"`` outputs the magnitude product and the sign bit
        separately, so an accumulator can fold the sign into its adder
        (``acc + (m ^ s) + s``) and save this unit's negation adder.

    Members
    -------
    act : ``In(signed(A))`` or ``In(unsigned(A))``
        The activation.
    weight : ``In(unsigned(W))``
        The weight code.
    product : ``Out(signed(P))``
        ``act * level(weight)``, exact (``sign="negate"`` only).
    magnitude : ``Out(shape)``
        ``act * |level(weight)|``, exact (``sign="split"`` only).
    negative : ``Out(1)``
        The code's sign bit (``sign="split"`` only); the product is ``-magnitude`` when
        it is set.

    Attributes
    ----------
    latency : int
        Register stages between the inputs and the outputs.
    product_range : (int, int)
        Exact range of the product.
    magnitude_range : (int, int)
        Exact range of the magnitude product.
    """

    @silence_unused_on_error
    def __init__(self, weight, act, *, pipeline=0, sign="negate"):
        weight_fmt = check_weight_format(weight)
        if not isinstance(weight_fmt, TermFormat):
            raise ValueError(f"weight={str(weight_fmt)!r}: ShiftAddProduct needs a "
                             "power-of-two family format (potN, potN-nz, apotN, sp2-N, "
                             "upot:...); use MultiplierProduct for intN / uintN")
        act_fmt = check_act_format(act)
        self._init_common(weight_fmt, act_fmt, check_pipeline(pipeline))
        self._sign = check_choice(sign, SIGN_MODES, "sign")
        term_lo = sum(s[0] for s in weight_fmt.term_sets)
        self._magnitude_range = interval_product(act_fmt.min_level, act_fmt.max_level,
                                                 term_lo, weight_fmt.max_term_sum)
        members = {"act": In(act_shape(act_fmt)), "weight": In(unsigned(weight_fmt.bits))}
        if self._sign == "negate":
            members["product"] = Out(self.product_shape)
        else:
            members["magnitude"] = Out(self.magnitude_shape)
            members["negative"] = Out(1)
        super().__init__(members)

    @property
    def sign(self) -> str:
        return self._sign

    @property
    def magnitude_range(self) -> tuple:
        return self._magnitude_range

    @property
    def magnitude_shape(self) -> Shape:
        """Shape of ``act * |level|``: signed iff the activation is signed."""
        return range_shape(*self._magnitude_range, force_signed=self._act_format.signed)

    def elaborate(self, platform):
        m = Module()
        fmt, act_fmt = self._weight_format, self._act_format
        terms = []
        for index, field in enumerate(fmt.fields):
            lo, hi = interval_product(act_fmt.min_level, act_fmt.max_level,
                                      field.terms[0], field.terms[-1])
            term = Signal(range_shape(lo, hi, force_signed=act_fmt.signed),
                          name=f"term{index}")
            shifts = field.shifts
            offset = _affine_shift_offset(shifts)
            if field.width == 0:
                if shifts[0] is not None:
                    m.d.comb += term.eq(self.act << shifts[0])
            elif offset is not None:
                selector = self.weight[field.offset:field.offset + field.width]
                m.d.comb += term.eq(_barrel_term(self.act, selector, offset,
                                                 zero_at_0=shifts[0] is None))
            else:
                selector = self.weight[field.offset:field.offset + field.width]
                # One case per distinct shift: saturated indexes share their case, and
                # a zero term needs none (a comb signal defaults to 0).
                by_shift = {}
                for value, shift in enumerate(shifts):
                    if shift is not None:
                        by_shift.setdefault(shift, []).append(value)
                with m.Switch(selector):
                    for shift, values in by_shift.items():
                        with m.Case(*values):
                            m.d.comb += term.eq(self.act << shift)
            terms.append(term)

        magnitude = Signal(self.magnitude_shape, name="magnitude_sum")
        m.d.comb += magnitude.eq(_balanced_sum(terms))
        negative = self.weight[fmt.sign_bit] if fmt.signed else 0

        if self._sign == "negate":
            product = Signal(self.product_shape, name="signed_product")
            m.d.comb += product.eq(Mux(negative, -magnitude, magnitude))
            self._pipeline_outputs(m, [(self.product, product)])
        else:
            self._pipeline_outputs(m, [(self.magnitude, magnitude),
                                       (self.negative, negative)])
        return m

    def metadata(self) -> dict:
        meta = super().metadata()
        lo, hi = self._magnitude_range
        meta.update({
            "unit": "shift-add",
            "sign": self._sign,
            "magnitude": {"bits": self.magnitude_shape.width,
                          "signed": self.magnitude_shape.signed, "min": lo, "max": hi},
            "term_sets": [list(s) for s in self._weight_format.term_sets],
        })
        return meta


def _affine_shift_offset(shifts):
    """``c`` if every non-zero term of a field is ``2^(index + c)`` and only index 0 may be zero.

    Such a field (every ``potN`` / ``potN-nz`` field, many ``sp2`` and ``upot`` fields) is a
    variable shift ``act << (index + c)``: a logarithmic shifter needs fewer LUTs than
    a multiplexer over ``2^width`` shifted copies (yosys 0.70 ``synth_ecp5``, uint8
    activations: pot4 65 LUT4 instead of 81, pot5 134 instead of 158, pot4-nz 52
    instead of 86; never more).
    """
    if len(shifts) < 2:
        return None
    start = 1 if shifts[0] is None else 0
    offset = shifts[start] - start if shifts[start] is not None else None
    if offset is None:
        return None
    if any(shifts[i] != i + offset for i in range(start, len(shifts))):
        return None
    return offset


def _barrel_term(act, selector, offset, *, zero_at_0):
    """``act << (selector + offset)``, or 0 for ``selector == 0`` when ``zero_at_0``."""
    shifted = act << selector
    if offset > 0:
        shifted = shifted << offset
    elif offset < 0:
        # offset == -1 (index 1 selects the term 1): drop the always-zero LSB of a
        # shift by >= 1; index 0 is the zero term then, gated below.
        shifted = shifted[-offset:]
        if act.shape().signed:
            shifted = shifted.as_signed()
    if zero_at_0:
        return Mux(selector == 0, 0, shifted)
    return shifted


def _balanced_sum(values):
    """Sum as a balanced tree of two-input adders (shallower than a chain)."""
    values = list(values)
    if not values:
        return 0
    while len(values) > 1:
        values = [values[i] + values[i + 1] if i + 1 < len(values) else values[i]
                  for i in range(0, len(values), 2)]
    return values[0]


# --- multiplier -------------------------------------------------------------------------

class MultiplierProduct(_ProductBase):
    """Multiplier product unit: the baseline the shift-add units are compared with.

    ``intN`` / ``uintN`` codes are the weight's two's complement / unsigned bits and go
    straight into the multiplier. Any other format is first decoded to its level (a
    table per field of a term format, then the sign) and then multiplied.

    Parameters
    ----------
    weight : str or Format
        Weight format: ``intN`` / ``uintN`` (N = 2..16), or any other format for
        comparison.
    act : str or IntFormat
        Activation format, ``intN`` or ``uintN`` with N = 2..16.
    implementation : ``"dsp"`` or ``"lut"``
        ``"dsp"`` writes ``act * level`` (yosys maps it onto a MULT18X18D on ECP5);
        ``"lut"`` builds sign-extended partial products summed by an adder tree, with
        no ``*``, so every synthesis flow keeps it in LUTs and carry chains.
    pipeline : int
        Register stages on the output (0: combinational).

    Members
    -------
    act : ``In(signed(A))`` or ``In(unsigned(A))``
        The activation.
    weight : ``In(unsigned(W))``
        The weight code.
    product : ``Out(signed(P))``
        ``act * level(weight)``, exact.

    Attributes
    ----------
    latency : int
        Register stages between the inputs and ``product``.
    product_range : (int, int)
        Exact range of the product.
    """

    @silence_unused_on_error
    def __init__(self, weight, act, *, implementation="dsp", pipeline=0):
        weight_fmt = check_weight_format(weight)
        act_fmt = check_act_format(act)
        self._init_common(weight_fmt, act_fmt, check_pipeline(pipeline))
        self._implementation = check_choice(implementation, MULTIPLIER_IMPLEMENTATIONS,
                                            "implementation")
        super().__init__({
            "act": In(act_shape(act_fmt)),
            "weight": In(unsigned(weight_fmt.bits)),
            "product": Out(self.product_shape),
        })

    @property
    def implementation(self) -> str:
        return self._implementation

    @property
    def level_shape(self) -> Shape:
        """Shape of the decoded weight level fed to the multiplier."""
        fmt = self._weight_format
        if isinstance(fmt, IntFormat):
            return act_shape(fmt)
        return range_shape(fmt.min_level, fmt.max_level)

    def elaborate(self, platform):
        m = Module()
        fmt = self._weight_format
        if isinstance(fmt, IntFormat):
            level = self.weight.as_signed() if fmt.signed else self.weight
        else:
            level = Signal(self.level_shape, name="level")
            m.d.comb += level.eq(decode_term_level(m, fmt, self.weight))

        product = Signal(self.product_shape, name="exact_product")
        if self._implementation == "dsp":
            m.d.comb += product.eq(self.act * level)
        else:
            m.d.comb += product.eq(_partial_product_multiply(self.act, level))
        self._pipeline_outputs(m, [(self.product, product)])
        return m

    def metadata(self) -> dict:
        meta = super().metadata()
        meta.update({"unit": "multiplier", "implementation": self._implementation,
                     "level_bits": self.level_shape.width,
                     "level_signed": self.level_shape.signed})
        return meta


def decode_term_level(m, fmt: TermFormat, code):
    """Level of a term-format code: one small constant table per field, then the sign.

    Decoding field by field keeps the table at ``sum 2^width_i`` entries instead of
    ``2^bits``, which matters for 10..16-bit ``upot:`` codes.
    """
    parts = []
    for index, field in enumerate(fmt.fields):
        part = Signal(range(field.terms[-1] + 1), name=f"field{index}_term")
        if field.width == 0:
            m.d.comb += part.eq(field.table[0])
        else:
            with m.Switch(code[field.offset:field.offset + field.width]):
                for value, term in enumerate(field.table):
                    if term:
                        with m.Case(value):
                            m.d.comb += part.eq(term)
        parts.append(part)
    magnitude = _balanced_sum(parts)
    if fmt.signed:
        return Mux(code[fmt.sign_bit], -magnitude, magnitude)
    return magnitude


def _partial_product_multiply(a, b):
    """``a * b`` without ``*``: one sign-extended partial product per bit of the narrower operand.

    For a two's complement multiplier operand the partial product of its MSB has weight
    ``-2^(n-1)`` and is subtracted. The partial products are summed by a balanced tree.
    """
    if len(b) > len(a):
        a, b = b, a
    n = len(b)
    signed_b = b.shape().signed
    a = _as_signed_value(a)
    partials = []
    for i in range(n):
        partial = Mux(b[i], a, 0) << i
        partials.append(-partial if signed_b and i == n - 1 else partial)
    return _balanced_sum(partials)


# --- choice -------------------------------------------------------------------------------

def product_unit(weight, act, *, unit="auto", multiplier="dsp", pipeline=0,
                 sign="negate"):
    """The product unit for a weight format.

    Parameters
    ----------
    weight, act : str or Format
        Weight and activation formats.
    unit : ``"auto"``, ``"shift-add"`` or ``"multiplier"``
        ``"auto"`` picks :class:`ShiftAddProduct` for power-of-two family formats and
        :class:`MultiplierProduct` for ``intN`` / ``uintN``.
    multiplier : ``"dsp"`` or ``"lut"``
        Implementation when a multiplier is used.
    pipeline : int
        Output register stages.
    sign : ``"negate"`` or ``"split"``
        Sign handling of a shift-add unit (see :class:`ShiftAddProduct`); a multiplier
        always outputs the signed product.
    """
    check_choice(unit, PRODUCT_UNITS, "unit")
    check_choice(multiplier, MULTIPLIER_IMPLEMENTATIONS, "multiplier")
    weight_fmt = check_weight_format(weight)
    if unit == "auto":
        unit = "shift-add" if weight_fmt.is_term_format else "multiplier"
    if unit == "shift-add":
        return ShiftAddProduct(weight_fmt, act, pipeline=pipeline, sign=sign)
    return MultiplierProduct(weight_fmt, act, implementation=multiplier,
                             pipeline=pipeline)
