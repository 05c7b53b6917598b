"""The MAC processing element: a product unit feeding an accumulator (DESIGN.md section 4)."""

from __future__ import annotations

import numpy as np
from amaranth.hdl import Module, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .. import bounds
from .accumulator import ACC_BITS, OVERFLOW_MODES, Accumulator, check_acc_bits
from .product import (MULTIPLIER_IMPLEMENTATIONS, PRODUCT_UNITS, ShiftAddProduct,
                      act_shape, check_act_format, check_choice, check_pipeline,
                      check_weight_format, interval_product, product_unit,
                      silence_unused_on_error)

__all__ = ["MacPE", "MAC_SIGN_MODES"]

#: Values of ``MacPE(sign=...)`` for shift-add units.
MAC_SIGN_MODES = ("fold", "negate")


def _check_k(k):
    if k is None:
        return None
    if isinstance(k, (bool, np.bool_)) or not isinstance(k, (int, np.integer)):
        raise TypeError(f"k={k!r}: expected a positive int (the dot-product length)")
    if k <= 0:
        raise ValueError(f"k={k}: the dot-product length must be > 0")
    return int(k)


class MacPE(wiring.Component):
    """Multiply-accumulate PE: ``acc += act * level(weight)``, wrap or saturate.

    On a rising edge, with the latency ``L`` applied to the ``act`` / ``weight`` /
    ``valid`` / ``clear`` path: ``clear`` starts a new sum (``acc <= valid ? product :
    0``, ``overflow`` <= that addition's flag); otherwise ``valid`` adds the product
    (wrapping or saturating, ``overflow`` sticky); otherwise ``acc`` holds. ``rst``
    (synchronous, active high) zeroes ``acc``, ``overflow`` and the pipeline's
    ``valid`` / ``clear``.

    Parameters
    ----------
    weight : str or Format
        Weight format: a power-of-two family format (shift-add unit) or ``intN`` /
        ``uintN`` (multiplier), up to 16 bits.
    act : str or IntFormat
        Activation format, ``intN`` or ``uintN`` with N = 2..16.
    acc_bits : int or str
        Accumulator width 2..64; ``"auto"`` for the ``datatype`` bound (needs ``k``);
        or a :data:`potgen.bounds.METHODS` name: ``"datatype"`` (needs ``k``), ``"l1"``,
        ``"l1_zero_centered"``, ``"exact"`` (need ``weights``). A bound below the product
        width is widened to it: an accumulator always holds one product.
    k : int or None
        Dot-product length the bound must cover (with ``weights``: must equal their K).
    weights : array of int or None
        The integer weight levels this PE will multiply (``[K]``, or ``[K, N]`` for the
        union over several columns), for the weight-based bounds.
    overflow : ``"wrap"`` or ``"saturate"``
        Overflow rule of the accumulator.
    pipeline : int
        Register stages in the product unit; ``valid`` / ``clear`` are delayed alike.
    unit : ``"auto"``, ``"shift-add"`` or ``"multiplier"``
        Product unit; ``"auto"``: shift-add for power-of-two formats, a multiplier for
        ``intN`` / ``uintN``.
    multiplier : ``"dsp"`` or ``"lut"``
        Multiplier implementation (multiplier units only).
    sign : ``"fold"`` or ``"negate"``
        Where a shift-add unit's sign goes. ``"fold"`` (default) adds or subtracts the
        magnitude product in the accumulator's own carry chain (``acc + (m ^ s) + s``);
        ``"negate"`` negates in the product unit: one more carry chain of the product's
        width, but a cheaper clear (the accumulator loads the product directly). Fold
        is smaller (yosys 0.70 ``synth_ecp5``, 20-bit accumulator: pot4 x uint8 94 LUT4
        + 11 CCU2C against 88 + 19; apot4 x int8 60 + 17 against 59 + 23). Multipliers
        and unsigned weight formats have no sign to place.

    Members
    -------
    act : ``In(signed(A))`` or ``In(unsigned(A))``
        The activation.
    weight : ``In(unsigned(W))``
        The weight code.
    valid : ``In(1)``
        Accumulate this cycle's product.
    clear : ``In(1)``
        Start a new sum.
    acc : ``Out(signed(acc_bits))``
        The accumulator.
    overflow : ``Out(1)``
        Sticky: some exact partial sum since the last ``clear`` left the range of ``acc``.

    Attributes
    ----------
    latency : int
        ``L``: cycles by which ``act`` / ``weight`` / ``valid`` / ``clear`` are delayed
        before the accumulating edge.
    acc_bits : int
        The accumulator width in use.
    bound : potgen.bounds.Bound or None
        The bound that chose ``acc_bits`` (``None`` for an explicit width).
    product_range : (int, int)
        Exact range of one product.
    """

    @silence_unused_on_error
    def __init__(self, weight, act, *, acc_bits="auto", k=None, weights=None,
                 overflow="wrap", pipeline=0, unit="auto", multiplier="dsp", sign="fold"):
        weight_fmt = check_weight_format(weight)
        act_fmt = check_act_format(act)
        check_choice(unit, PRODUCT_UNITS, "unit")
        check_choice(multiplier, MULTIPLIER_IMPLEMENTATIONS, "multiplier")
        self._sign = check_choice(sign, MAC_SIGN_MODES, "sign")
        self._overflow = check_choice(overflow, OVERFLOW_MODES, "overflow")
        self._pipeline = check_pipeline(pipeline)
        self._k = _check_k(k)

        shift_add = unit == "shift-add" or (unit == "auto" and weight_fmt.is_term_format)
        if unit == "shift-add" and not weight_fmt.is_term_format:
            raise ValueError(f"unit='shift-add': weight={str(weight_fmt)!r} is not a "
                             "power-of-two family format; use unit='multiplier'")
        self._fold = shift_add and weight_fmt.signed and sign == "fold"
        self._weight_format, self._act_format = weight_fmt, act_fmt
        # The width checks come before any sub-component exists, so a refused
        # parameter leaves no unelaborated component behind.
        lo, hi = interval_product(act_fmt.min_level, act_fmt.max_level,
                                  weight_fmt.min_level, weight_fmt.max_level)
        product_bits = bounds.signed_width(lo, hi)

        self._bound = None
        self._bound_widened = False
        if isinstance(acc_bits, str):
            method = "datatype" if acc_bits == "auto" else acc_bits
            if method not in bounds.METHODS:
                raise ValueError(f"acc_bits={acc_bits!r}: expected an int width "
                                 f"{ACC_BITS.start}..{ACC_BITS.stop - 1}, 'auto' or a "
                                 f"bound method ({', '.join(bounds.METHODS)})")
            if method in bounds.WEIGHT_METHODS and weights is None:
                raise ValueError(f"acc_bits={acc_bits!r}: the {method} bound needs "
                                 "weights (the integer levels this PE multiplies)")
            if method == "datatype" and self._k is None and weights is None:
                raise ValueError(f"acc_bits={acc_bits!r}: the datatype bound needs k "
                                 "(the dot-product length, > 0)")
            self._bound = bounds.compute(method, act_fmt, weight_fmt, k=self._k,
                                         weights=weights)
            self._k = self._bound.k
            resolved = max(self._bound.bits, product_bits)
            self._bound_widened = resolved > self._bound.bits
            if resolved > ACC_BITS.stop - 1:
                raise ValueError(f"acc_bits={acc_bits!r}: the {method} bound needs "
                                 f"{resolved} bits (range [{self._bound.min}, "
                                 f"{self._bound.max}]); at most {ACC_BITS.stop - 1} "
                                 "are supported")
            self._acc_bits = resolved
        else:
            self._acc_bits = check_acc_bits(acc_bits)
            if weights is not None:
                raise ValueError(f"weights: only used to compute a bound; "
                                 f"acc_bits={acc_bits} is a fixed width (pass "
                                 "acc_bits='exact', 'l1', ... to use them)")
            if self._acc_bits < product_bits:
                raise ValueError(
                    f"acc_bits={self._acc_bits}: the accumulator is narrower than a "
                    f"product ({weight_fmt} x {act_fmt} products span [{lo}, {hi}], "
                    f"{product_bits} signed bits); use acc_bits >= {product_bits}")

        self._unit = product_unit(weight_fmt, act_fmt, unit=unit, multiplier=multiplier,
                                  pipeline=self._pipeline,
                                  sign="split" if self._fold else "negate")
        if self._fold:
            self._accumulator = Accumulator(
                self._unit.magnitude_shape, self._acc_bits, self._overflow,
                addend_range=self._unit.magnitude_range, fold_sign=True)
        else:
            self._accumulator = Accumulator(
                self._unit.product_shape, self._acc_bits, self._overflow,
                addend_range=self._unit.product_range)

        super().__init__({
            "act": In(act_shape(act_fmt)),
            "weight": In(unsigned(weight_fmt.bits)),
            "valid": In(1),
            "clear": In(1),
            "acc": Out(signed(self._acc_bits)),
            "overflow": Out(1),
        })

    @property
    def weight_format(self):
        return self._weight_format

    @property
    def act_format(self):
        return self._act_format

    @property
    def acc_bits(self) -> int:
        return self._acc_bits

    @property
    def bound(self):
        return self._bound

    @property
    def k(self):
        return self._k

    @property
    def overflow_mode(self) -> str:
        return self._overflow

    @property
    def latency(self) -> int:
        return self._unit.latency

    @property
    def product_range(self) -> tuple:
        return self._unit.product_range

    @property
    def product_unit(self):
        """The product unit instance (its own ``metadata()`` describes it)."""
        return self._unit

    @property
    def accumulator(self) -> Accumulator:
        return self._accumulator

    @property
    def sign(self):
        """``"fold"`` / ``"negate"`` for a signed shift-add unit, else ``None``."""
        if isinstance(self._unit, ShiftAddProduct) and self._weight_format.signed:
            return "fold" if self._fold else "negate"
        return None

    def elaborate(self, platform):
        m = Module()
        m.submodules.product = unit = self._unit
        m.submodules.accumulator = acc = self._accumulator
        m.d.comb += [unit.act.eq(self.act), unit.weight.eq(self.weight)]

        valid, clear = self.valid, self.clear
        for stage in range(self.latency):
            valid_r = Signal(name=f"valid_stage{stage}")
            clear_r = Signal(name=f"clear_stage{stage}")
            m.d.sync += [valid_r.eq(valid), clear_r.eq(clear)]
            valid, clear = valid_r, clear_r

        if self._fold:
            m.d.comb += [acc.addend.eq(unit.magnitude), acc.negate.eq(unit.negative)]
        else:
            m.d.comb += acc.addend.eq(unit.product)
        m.d.comb += [
            acc.valid.eq(valid),
            acc.clear.eq(clear),
            self.acc.eq(acc.acc),
            self.overflow.eq(acc.overflow),
        ]
        return m

    def metadata(self) -> dict:
        from .export import signature_ports
        unit_meta = {key: value for key, value in self._unit.metadata().items()
                     if key != "ports"}
        lo, hi = self.product_range
        bound = None
        if self._bound is not None:
            bound = {"method": self._bound.method, **self._bound.to_dict(),
                     "k": int(self._bound.k), "widened_to_product": self._bound_widened}
        return {
            "kind": "mac",
            "weight": str(self._weight_format),
            "act": str(self._act_format),
            "unit": unit_meta["unit"],
            "multiplier": unit_meta.get("implementation"),
            "sign": self.sign,
            "pipeline": self._pipeline,
            "latency": self.latency,
            "acc_bits": self._acc_bits,
            "overflow": self._overflow,
            "k": self._k,
            "bound": bound,
            "product": {"bits": self._unit.product_shape.width, "min": lo, "max": hi},
            "product_unit": unit_meta,
            "ports": signature_ports(self),
        }
