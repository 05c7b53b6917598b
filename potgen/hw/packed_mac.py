"""A MAC PE with ``k`` lanes sharing one multiplier: ``k`` MACs per cycle per ``MULT18X18D``.

:class:`PackedMacPE` is :class:`~potgen.hw.mac.MacPE` lane-packed: ``k`` activations
times one weight (or ``k`` weights times one activation) per cycle, ``k`` accumulators.
Two ways to accumulate:

``accumulate="lanes"`` (default)
    A :class:`~potgen.hw.packed_product.PackedProduct` extracts the ``k`` exact products
    and ``k`` :class:`~potgen.hw.accumulator.Accumulator` add them: every lane behaves
    exactly like a ``MacPE`` (wrap or saturate, its own sticky overflow flag). The most
    lanes per multiplier (the product spacing).

``accumulate="packed"``
    The multiplier's result is *not* unpacked per product: it is already the packed word
    of the ``k`` lane fields, and one :class:`~potgen.hw.packed_accumulator.PackedAccumulator`
    adds it with a single carry chain; the lanes are unpacked (peel rule) only at the
    output. The lane spacing must then hold a sum of ``k_dot`` fields
    (:class:`~potgen.hw.lanes.MultiplierLanes` with ``terms=k``), so fewer lanes fit
    the 18-bit port. With offset lanes (signed packed operands) one small accumulator
    of the shared operand gives the correction ``offset * sum(c)`` of the lanes below
    the top. Lanes are exact for up to ``k`` additions after a clear; ``overflow`` rises
    on the ``k+1``-th (a packed lane cannot wrap or saturate on its own), so only
    ``overflow="wrap"`` is accepted.

Which to use (``benchmarks/bench_packed.py``, K = 64, LFE5U-85F speed 6, one pipeline
stage): ``"lanes"`` gives the most MACs per ``MULT18X18D`` -- int4 x int4: 2 lanes at
137 MHz against MacPE's 1 at 150 MHz (1.8x the MACs per DSP, 56 instead of 25 logic
cells); int2 x int2: 5 lanes at 135 MHz against 1 at 134 MHz (5x, 156 cells). As a
standalone PE ``"packed"`` is no better: int2 x int2 fits 2 lanes instead of 5, and
the peel and correction of every lane run at the output on every cycle (121 cells for
int4 x int4). Its single-adder accumulation pays only where one unpack stage can serve
many accumulators, which this PE does not do.

``rst`` (synchronous, active high) zeroes the accumulators, the flags and the pipeline's
``valid`` / ``clear``.
"""

from __future__ import annotations

import numpy as np
from amaranth.hdl import Cat, Module, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .. import bounds
from .accumulator import ACC_BITS, OVERFLOW_MODES, Accumulator, check_acc_bits
from .lanes import ARRANGEMENTS, AdderLanes, multiplier_lanes
from .packed_accumulator import PackedAccumulator
from .packed_product import (PackedProduct, constant_multiple, lane_values,
                             packed_multiply, packed_operand, shared_operand)
from .product import (act_shape, check_act_format, check_choice, check_pipeline,
                      check_weight_format, interval_product, silence_unused_on_error)

__all__ = ["PackedMacPE", "ACCUMULATE_MODES"]

#: Values of ``PackedMacPE(accumulate=...)``.
ACCUMULATE_MODES = ("lanes", "packed")


def _check_k(k):
    if k is None:
        return None
    if isinstance(k, (bool, np.bool_)) or not isinstance(k, (int, np.integer)):
        raise TypeError(f"k={k!r}: expected a positive int (the dot-product length)")
    if k <= 0:
        raise ValueError(f"k={k}: the dot-product length must be > 0")
    return int(k)


def _resolve_acc_bits(acc_bits, act_fmt, weight_fmt, k, weights, product_bits, product):
    """``(acc_bits, bound, widened, k)`` exactly as :class:`~potgen.hw.mac.MacPE` resolves them."""
    if isinstance(acc_bits, str):
        method = "datatype" if acc_bits == "auto" else acc_bits
        if method not in bounds.METHODS:
            raise ValueError(f"acc_bits={acc_bits!r}: expected an int width "
                             f"{ACC_BITS.start}..{ACC_BITS.stop - 1}, 'auto' or a bound "
                             f"method ({', '.join(bounds.METHODS)})")
        if method in bounds.WEIGHT_METHODS and weights is None:
            raise ValueError(f"acc_bits={acc_bits!r}: the {method} bound needs weights "
                             "(the integer levels this PE multiplies)")
        if method == "datatype" and k is None and weights is None:
            raise ValueError(f"acc_bits={acc_bits!r}: the datatype bound needs k (the "
                             "dot-product length, > 0)")
        bound = bounds.compute(method, act_fmt, weight_fmt, k=k, weights=weights)
        resolved = max(bound.bits, product_bits)
        if resolved > ACC_BITS.stop - 1:
            raise ValueError(f"acc_bits={acc_bits!r}: the {method} bound needs {resolved} "
                             f"bits (range [{bound.min}, {bound.max}]); at most "
                             f"{ACC_BITS.stop - 1} are supported")
        return resolved, bound, resolved > bound.bits, bound.k
    acc_bits = check_acc_bits(acc_bits)
    if weights is not None:
        raise ValueError(f"weights: only used to compute a bound; acc_bits={acc_bits} is "
                         "a fixed width (pass acc_bits='exact', 'l1', ... to use them)")
    if acc_bits < product_bits:
        lo, hi = product
        raise ValueError(f"acc_bits={acc_bits}: the accumulator is narrower than a "
                         f"product ({weight_fmt} x {act_fmt} products span [{lo}, {hi}], "
                         f"{product_bits} signed bits); use acc_bits >= {product_bits}")
    return acc_bits, None, False, k


class PackedMacPE(wiring.Component):
    """``k`` multiply-accumulate lanes on one multiplier.

    On a rising edge, with the latency ``L`` applied to the inputs / ``valid`` /
    ``clear`` path, every lane follows :class:`~potgen.hw.mac.MacPE`: ``clear`` starts a
    new sum (``acc_i <= valid ? product_i : 0``), otherwise ``valid`` adds ``product_i``,
    otherwise ``acc_i`` holds (see the module notes for ``accumulate="packed"``).

    Parameters
    ----------
    weight : str or Format
        Weight format (``intN`` / ``uintN``; other formats through a decode table).
    act : str or IntFormat
        Activation format, ``intN`` / ``uintN``.
    lanes : int or None
        Lanes ``k``; ``None``: the most that fit the multiplier for the chosen
        accumulation.
    acc_bits : int or str
        As for :class:`~potgen.hw.mac.MacPE`: a width, ``"auto"`` (``datatype`` bound,
        needs ``k``) or a bound method.
    k : int or None
        Dot-product length (the bound's K). Required with ``accumulate="packed"``.
    weights : array of int or None
        Weight levels for the weight-based bounds.
    overflow : ``"wrap"`` or ``"saturate"``
        Overflow rule of each lane (``accumulate="lanes"``); ``"packed"`` takes
        ``"wrap"`` only.
    pipeline : int
        Register stages in the product path; ``valid`` / ``clear`` are delayed alike.
    arrangement : ``"shared-weight"`` or ``"shared-act"``
        ``k`` activations with one weight, or ``k`` weights with one activation.
    accumulate : ``"lanes"`` or ``"packed"``
        Per-lane accumulators after exact extraction, or one packed accumulator.

    Members
    -------
    act : ``In(k*A)`` or ``In(A)``
        Activations, lane ``i`` at bits ``[i*A, (i+1)*A)`` (``shared-weight``), or one.
    weight : ``In(W)`` or ``In(k*W)``
        One weight code, or ``k`` codes (``shared-act``).
    valid, clear : ``In(1)``
    acc : ``Out(k*acc_bits)``
        Lane ``i`` at bits ``[i*acc_bits, (i+1)*acc_bits)``, signed.
    overflow : ``Out(k)``
        Bit ``i``: lane ``i``'s sticky overflow flag.

    Attributes
    ----------
    lanes : int
    latency : int
    acc_bits : int
    bound : potgen.bounds.Bound or None
    plan : potgen.hw.lanes.MultiplierLanes
    """

    @silence_unused_on_error
    def __init__(self, weight, act, *, lanes=None, acc_bits="auto", k=None, weights=None,
                 overflow="wrap", pipeline=0, arrangement="shared-weight",
                 accumulate="lanes"):
        weight_fmt = check_weight_format(weight)
        act_fmt = check_act_format(act)
        check_choice(arrangement, ARRANGEMENTS, "arrangement")
        self._accumulate = check_choice(accumulate, ACCUMULATE_MODES, "accumulate")
        self._overflow = check_choice(overflow, OVERFLOW_MODES, "overflow")
        self._pipeline = check_pipeline(pipeline)
        k = _check_k(k)
        product = interval_product(act_fmt.min_level, act_fmt.max_level,
                                   weight_fmt.min_level, weight_fmt.max_level)
        product_bits = bounds.signed_width(*product)
        (self._acc_bits, self._bound, self._bound_widened,
         self._k) = _resolve_acc_bits(acc_bits, act_fmt, weight_fmt, k, weights,
                                      product_bits, product)

        if accumulate == "packed":
            if overflow != "wrap":
                raise ValueError(f"overflow={overflow!r}: accumulate='packed' keeps the "
                                 "lanes in one word, where a lane cannot be clamped on "
                                 "its own; use accumulate='lanes' to saturate")
            if self._k is None:
                raise ValueError("accumulate='packed' needs k (the dot-product length "
                                 "the lane spacing must hold)")
            if self._bound is None:
                need = bounds.datatype(act_fmt, weight_fmt, self._k)
                if self._acc_bits < need.bits:
                    raise ValueError(
                        f"acc_bits={self._acc_bits}: with accumulate='packed' a lane "
                        f"must hold every sum of k={self._k} products, "
                        f"[{need.min}, {need.max}] needs {need.bits} bits")
            self._plan = multiplier_lanes(weight_fmt, act_fmt, lanes,
                                          arrangement=arrangement, terms=self._k)
            plan = self._plan
            self._unit = None
            self._packed_acc = PackedAccumulator(
                AdderLanes(plan.word_layout, self._k, sum_range=plan.lane_range),
                addend_input="word")
            self._shared_acc = None
            if plan.offset and plan.lanes > 1:
                lo, hi = plan.shared_range
                shape = signed(plan.shared_width) if plan.shared_signed else \
                    unsigned(plan.shared_width)
                bits = max(bounds.signed_width(self._k * min(lo, 0), self._k * max(hi, 0)),
                           bounds.signed_width(lo, hi), 2)
                self._shared_acc = Accumulator(shape, bits, "wrap",
                                               addend_range=(lo, hi))
            self._accumulators = []
        else:
            self._unit = PackedProduct(weight_fmt, act_fmt, lanes,
                                       arrangement=arrangement, pipeline=self._pipeline)
            self._plan = self._unit.plan
            self._packed_acc = self._shared_acc = None
            self._accumulators = [
                Accumulator(self._unit.product_shape, self._acc_bits, self._overflow,
                            addend_range=self._unit.product_range)
                for _ in range(self._plan.lanes)]

        n = self._plan.lanes
        if arrangement == "shared-weight":
            members = {"act": In(n * act_fmt.bits), "weight": In(unsigned(weight_fmt.bits))}
        else:
            members = {"act": In(act_shape(act_fmt)), "weight": In(n * weight_fmt.bits)}
        members.update({"valid": In(1), "clear": In(1),
                        "acc": Out(n * self._acc_bits), "overflow": Out(n)})
        super().__init__(members)

    # -- properties --------------------------------------------------------------------
    @property
    def plan(self):
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
    def accumulate(self) -> str:
        return self._accumulate

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
        return self._pipeline

    @property
    def product_range(self) -> tuple:
        return self._plan.product_range

    # -- hardware ----------------------------------------------------------------------
    def _delayed_controls(self, m):
        valid, clear = self.valid, self.clear
        for stage in range(self._pipeline):
            valid_r = Signal(name=f"valid_stage{stage}")
            clear_r = Signal(name=f"clear_stage{stage}")
            m.d.sync += [valid_r.eq(valid), clear_r.eq(clear)]
            valid, clear = valid_r, clear_r
        return valid, clear

    def elaborate(self, platform):
        m = Module()
        valid, clear = self._delayed_controls(m)
        if self._accumulate == "lanes":
            self._elaborate_lanes(m, valid, clear)
        else:
            self._elaborate_packed(m, valid, clear)
        return m

    def _elaborate_lanes(self, m, valid, clear):
        m.submodules.product = unit = self._unit
        m.d.comb += [unit.act.eq(self.act), unit.weight.eq(self.weight)]
        p = self._plan.product_bits
        accs, flags = [], []
        for i, acc in enumerate(self._accumulators):
            m.submodules[f"accumulator{i}"] = acc
            m.d.comb += [acc.addend.eq(unit.product[i * p:(i + 1) * p].as_signed()),
                         acc.valid.eq(valid), acc.clear.eq(clear)]
            accs.append(acc.acc)
            flags.append(acc.overflow)
        m.d.comb += [self.acc.eq(Cat(*accs)), self.overflow.eq(Cat(*flags))]

    def _elaborate_packed(self, m, valid, clear):
        plan = self._plan
        n = plan.lanes
        if plan.arrangement == "shared-weight":
            packed_values = lane_values(self.act, n, act_shape(plan.act))
            shared_value = self.weight
        else:
            packed_values = lane_values(self.weight, n, unsigned(plan.weight.bits))
            shared_value = self.act
        x = packed_operand(m, plan, packed_values)
        c = shared_operand(m, plan, shared_value)
        p = packed_multiply(m, plan, x, c)
        for stage in range(self._pipeline):
            p_reg = Signal.like(p, name=f"packed_result_stage{stage}")
            c_reg = Signal.like(c, name=f"shared_operand_stage{stage}")
            m.d.sync += [p_reg.eq(p), c_reg.eq(c)]
            p, c = p_reg, c_reg

        m.submodules.packed_accumulator = acc = self._packed_acc
        # P modulo 2^(n S) is the packed word of the lane fields (a narrower signed P
        # is sign-extended by the assignment).
        word_bits = acc.layout.word_bits
        m.d.comb += [acc.addend.eq(p if len(p) <= word_bits else p[:word_bits]),
                     acc.valid.eq(valid), acc.clear.eq(clear)]
        r = acc.lanes.sum_bits
        sums = [acc.sums[i * r:(i + 1) * r].as_signed() for i in range(n)]
        correction = None
        if self._shared_acc is not None:
            m.submodules.shared_accumulator = shared = self._shared_acc
            m.d.comb += [shared.addend.eq(c), shared.valid.eq(valid),
                         shared.clear.eq(clear)]
            correction = constant_multiple(shared.acc, plan.offset)
        outs = []
        for i, lane_sum in enumerate(sums):
            out = Signal(signed(self._acc_bits), name=f"acc{i}")
            corrected = correction is not None and i + 1 < n   # the top lane has no offset
            m.d.comb += out.eq(lane_sum - correction if corrected else lane_sum)
            outs.append(out)
        m.d.comb += [self.acc.eq(Cat(*outs)),
                     self.overflow.eq(Cat(*([acc.overflow] * n)))]

    def metadata(self) -> dict:
        from .export import signature_ports
        plan = self._plan
        n = plan.lanes
        lo, hi = plan.product_range
        bound = None
        if self._bound is not None:
            bound = {"method": self._bound.method, **self._bound.to_dict(),
                     "k": int(self._bound.k), "widened_to_product": self._bound_widened}
        elements = {"acc": {"count": n, "width": self._acc_bits, "signed": True},
                    "overflow": {"count": n, "width": 1, "signed": False}}
        if plan.arrangement == "shared-weight":
            elements["act"] = {"count": n, "width": plan.act.bits,
                               "signed": plan.act.signed}
        else:
            elements["weight"] = {"count": n, "width": plan.weight.bits, "signed": False}
        meta = {
            "kind": "packed-mac",
            "weight": str(plan.weight),
            "act": str(plan.act),
            "arrangement": plan.arrangement,
            "accumulate": self._accumulate,
            "lanes": n,
            "pipeline": self._pipeline,
            "latency": self.latency,
            "acc_bits": self._acc_bits,
            "overflow": self._overflow,
            "k": self._k,
            "bound": bound,
            "product": {"bits": plan.product_bits, "min": lo, "max": hi},
            "multipliers": 1,
            "macs_per_multiplier": n,
            "packing": plan.to_dict(),
            "ports": signature_ports(self),
            "port_lanes": elements,
        }
        if self._packed_acc is not None:
            meta["accumulator_lanes"] = self._packed_acc.lanes.to_dict()
        return meta
