"""Instant resource and Fmax estimates of potgen components, in the synthesis report schema.

:func:`estimate` answers in about a millisecond what :func:`potgen.flow.synth.synthesize`
answers in seconds: the report of a component (a MAC PE, a product unit, an
accumulator or an adder tree) on Lattice ECP5, with the same keys (DESIGN.md section
6), so the two compare key by key. No tool runs.

The model
---------
Each component is described by *features read from its structure* (see
:func:`features` and ``docs/estimate.md``): for a shift-add unit, how many inputs the
function of each bit of each term has (its candidate activation bits, the field's
selector and, where they merge into it, the accumulator's sign and valid gating) and
the widths of the adders summing the terms; for a LUT multiplier, the partial-product
array (AND bits, rows, signed rows, the compressor tree's summand bits and full
adders); for an accumulator, its width, carry cells, folded-sign gating and
saturation; for an adder tree, its carry chains and compressor trees per
register-to-register segment. A MAC PE has its product unit's features plus its
accumulator's.

Per component kind (*group*: ``mac/shift-add``, ``mac/multiplier-lut``,
``mac/multiplier-dsp``, ``product/...``, ``accumulator``, ``adder-tree``) the comb
cells, CCU2C, PFUMX and L6MUX21 counts are linear in the group's features, with
coefficients fitted by least squares (relative error) to synthesis reports
(:mod:`potgen.flow.fit_estimate`) and shipped in ``potgen/data/estimate_model.json``
with their provenance and residuals; LUT4 is what remains of the comb cells.
**Flip-flops are not estimated but counted**: every register of a potgen component is
known (accumulator and overflow flag, pipeline stages with ``valid`` / ``clear``,
adder-tree stages), and so are the timing harness's; MULT18X18D blocks are counted
from the multiplier's operand widths.

Fmax is ``1000 / t`` with ``t`` the delay of the slowest register-to-register segment,
linear in the segment's LUT levels, compressor levels, carry-chain bits and DSP blocks
(:data:`DELAY_FEATURES`), fitted to the same reports at speed grade 6 on the LFE5U-85F
(per group where there are enough reports) and scaled by fitted factors for the other
speed grades and devices. nextpnr itself varies by about +-5% from seed to seed; the
residuals are in the model file and in ``docs/estimate.md``. :func:`extrapolation`
names the features of a design that lie outside the fit data.
"""

from __future__ import annotations

import functools
import importlib.resources
import json
import math
import time
from pathlib import Path

from amaranth.lib import wiring

from .. import bounds
from ..formats import IntFormat
from .devices import check_package, check_speed, device as _device
from .report import RESOURCE_KEYS

__all__ = ["estimate", "extrapolation", "features", "model_group", "segments",
           "load_model", "component_from_design", "MODEL_FILE", "FITTED_RESOURCES",
           "DELAY_FEATURES"]

#: The shipped model, inside the package.
MODEL_FILE = "estimate_model.json"
#: Resource keys the model predicts (lut4 = comb_cells - the others).
FITTED_RESOURCES = ("comb_cells", "ccu2c", "pfumx", "l6mux")
#: Features of a register-to-register segment's delay.
DELAY_FEATURES = ("const", "lut_levels", "compress_levels", "carry_bits", "dsp")


# --- model file ----------------------------------------------------------------------

@functools.cache
def _shipped_model() -> dict:
    text = importlib.resources.files("potgen").joinpath("data", MODEL_FILE).read_text()
    return json.loads(text)


def load_model(model=None) -> dict:
    """The model: the shipped one (None), a dict, or a JSON file's path."""
    if model is None:
        return _shipped_model()
    if isinstance(model, dict):
        return model
    if isinstance(model, (str, Path)):
        with open(model) as f:
            return json.load(f)
    raise TypeError(f"model: expected None, a dict or a path to a model JSON file, "
                    f"got {type(model).__name__}")


# --- structure ---------------------------------------------------------------------------

def _width(lo: int, hi: int, force_signed: bool = False) -> int:
    if lo >= 0 and not force_signed:
        return max(hi.bit_length(), 1)
    return bounds.signed_width(lo, hi)


def _product(a_lo, a_hi, b_lo, b_hi):
    corners = (a_lo * b_lo, a_lo * b_hi, a_hi * b_lo, a_hi * b_hi)
    return min(corners), max(corners)


def _add_width(a: tuple, b: tuple) -> tuple:
    """Amaranth's shape of ``a + b`` for ``(width, signed)`` operands."""
    (wa, sa), (wb, sb) = a, b
    if sa == sb:
        return max(wa, wb) + 1, sa
    wa += not sa
    wb += not sb
    return max(wa, wb) + 1, True


def _balanced_widths(operands: list, cap: int) -> list:
    """Widths of the adders of the generators' balanced sum, capped at ``cap`` bits
    (synthesis drops the sum bits nobody reads)."""
    widths = []
    values = list(operands)
    while len(values) > 1:
        paired = []
        for i in range(0, len(values), 2):
            if i + 1 == len(values):
                paired.append(values[i])
                continue
            width, sign = _add_width(values[i], values[i + 1])
            width = min(width, cap)
            widths.append(width)
            paired.append((width, sign))
        values = paired
    return widths


def _bit_candidates(act_bits: int, act_signed: bool, shifts, term_bits: int) -> list:
    """``(values, data inputs)`` of each bit of a shift-add term: how many distinct
    values it selects from (activation bits and 0) and how many of them are
    activation bits."""
    distinct = sorted({s for s in shifts if s is not None})
    zero = any(s is None for s in shifts)
    out = []
    for j in range(term_bits):
        cands = {None} if zero else set()
        for s in distinct:
            i = j - s
            if i < 0:
                cands.add(None)
            elif i < act_bits:
                cands.add(i)
            else:
                # Above the activation: its sign bit, or 0 for an unsigned one.
                cands.add(act_bits - 1 if act_signed else None)
        out.append((len(cands), len(cands - {None})))
    return out


class _Block:
    """Features, flip-flops and delay segments of one component, from its structure."""

    def __init__(self):
        self.features = {}
        self.ff = 0
        self.mult18 = 0
        # Register-to-register segments: dicts of DELAY_FEATURES (without const).
        self.segments = []

    def add(self, name, value):
        self.features[name] = self.features.get(name, 0) + value


#: Input-count buckets of the per-bit functions of a shift-add unit: a function of k
#: inputs fits one LUT4 up to k = 4 and needs wide LUTs (LUT4s joined by PFUMX /
#: L6MUX21) beyond; the delay-driven mapper builds the critical ones that way.
_K_BUCKETS = ((4, "sa_k4"), (5, "sa_k5"), (6, "sa_k6"), (7, "sa_k7"))


def _k_bucket(k: int):
    for top, name in _K_BUCKETS:
        if k <= top:
            return name
    return None


def _macc(spans: list, width: int, block: _Block, prefix: str, *,
          three_operand: bool = True) -> int:
    """Features of a multi-operand sum (yosys $macc); ``spans`` are the operands'
    (first, last) columns. Returns the compressor levels.

    Three operands take one row of full adders and a carry chain, which the mapper
    packs tightly (``<prefix>_3op``: the width; only with ``three_operand``, the
    multiplier's rows are all priced as a tree). More take a tree of full adders
    (``<prefix>_fa`` of them over ``<prefix>_bits`` summand bits), which the
    delay-driven mapper duplicates into wide LUTs as it grows.
    """
    heights = [0] * width
    for first, last in spans:
        for c in range(first, min(last, width - 1) + 1):
            heights[c] += 1
    if three_operand and len(spans) <= 3:
        block.add(f"{prefix}_3op", width)
        return 1
    block.add(f"{prefix}_bits", sum(heights))
    block.add(f"{prefix}_fa", sum(max(h - 2, 0) for h in heights))
    tallest = max(heights) if heights else 0
    return math.ceil(math.log(max(tallest / 2, 1), 1.5))


def _shift_add_block(unit, *, critical: bool = True, gated: bool = False) -> _Block:
    """Features of a shift-add unit.

    ``critical``: its logic is on the slowest path, where the delay-driven mapper
    builds each bit's function from wide LUTs (else it maps for area). ``gated``: a
    single-term unit whose bits go straight into a sign-folding accumulator, whose
    per-bit gating (negate, valid) then joins each bit's function.
    """
    from ..hw.product import _affine_shift_offset  # the generator's own choice of shifter
    fmt, act_fmt = unit.weight_format, unit.act_format
    a_bits, a_signed = act_fmt.bits, act_fmt.signed
    block = _Block()
    operands, select_levels = [], 0
    for field in fmt.fields:
        lo, hi = _product(act_fmt.min_level, act_fmt.max_level,
                          field.terms[0], field.terms[-1])
        if lo == hi == 0:
            continue
        term_bits = _width(lo, hi, force_signed=a_signed)
        operands.append((term_bits, a_signed))
        if field.width == 0:
            continue
        candidates = _bit_candidates(a_bits, a_signed, field.shifts, term_bits)
        barrel = _affine_shift_offset(field.shifts) is not None
        for n, data in candidates:
            # Inputs of the bit's function: its data bits, the field's selector when
            # there is a choice, and the accumulator's negate / valid when gated.
            k = data + (field.width if n > 1 else 0) + (2 if gated else 0)
            if critical:
                bucket = _k_bucket(k)
                if bucket:
                    block.add(bucket, 1)
                else:
                    # Too wide for one LUT: a multiplexer tree of LUT4s and PFUMX /
                    # L6MUX21, about one cell per two-input multiplexer.
                    block.add("sa_k8", 1)
                    block.add("sa_wide", n - 1)
            elif barrel:
                block.add("sa_barrel", math.ceil(math.log2(n)) if n > 1 else 0)
            else:
                block.add("sa_mux", n - 1)
        widest = max(n for n, _ in candidates)
        select_levels = max(select_levels, math.ceil(math.log2(max(widest, 2))))
    magnitude = unit.magnitude_shape.width
    compress = 0
    if len(operands) > 2:
        compress = _macc([(0, magnitude - 1 if sgn else w - 1) for w, sgn in operands],
                         magnitude, block, "sa_macc")
        add_levels = 1
    else:
        adders = _balanced_widths(operands, magnitude)
        block.add("sa_add", sum(adders))
        add_levels = len(adders)
    segment = {"lut_levels": select_levels + add_levels, "compress_levels": compress,
               "carry_bits": magnitude if len(operands) > 1 else 0, "dsp": 0}
    if unit.sign == "negate" and fmt.signed:
        block.add("negate", unit.product_shape.width)
        segment["lut_levels"] += 1
        segment["carry_bits"] += unit.product_shape.width
    block.segments.append(segment)
    return block


def _decode_features(fmt, block: _Block) -> int:
    """Adds the decode feature of a term format fed to a multiplier; its LUT levels."""
    if isinstance(fmt, IntFormat):
        return 0
    parts = [max(s[-1].bit_length(), 1) for s in fmt.term_sets if s[-1]]
    magnitude = max(fmt.max_term_sum.bit_length(), 1)
    adders = _balanced_widths([(w, False) for w in parts], magnitude)
    level_bits = _width(fmt.min_level, fmt.max_level)
    block.add("decode", sum(parts) + sum(adders) + (level_bits if fmt.signed else 0))
    return 1 + (len(parts) - 1).bit_length() + int(fmt.signed)


def _multiplier_block(unit) -> _Block:
    fmt, act_fmt = unit.weight_format, unit.act_format
    block = _Block()
    decode_levels = _decode_features(fmt, block)
    level_shape = unit.level_shape
    out_bits = unit.product_shape.width
    if unit.implementation == "dsp":
        # Signed operands of the MULT18X18D: an unsigned one needs a zero sign bit.
        a = act_fmt.bits + (not act_fmt.signed)
        b = level_shape.width + (not level_shape.signed)
        block.mult18 = math.ceil(a / 18) * math.ceil(b / 18)
        block.segments.append({"lut_levels": decode_levels, "compress_levels": 0,
                               "carry_bits": 0, "dsp": 1})
        return block
    # The generator's partial-product array: one row per bit of the narrower operand
    # b, each row the wider operand a gated by that bit; synthesis sums the rows with
    # a compressor tree (yosys $macc) and one carry chain.
    a = (act_fmt.bits, act_fmt.signed)
    b = (level_shape.width, level_shape.signed)
    if b[0] > a[0]:
        a, b = b, a
    (a_bits, a_signed), (rows, b_signed) = a, b
    # Rows of two operands are one carry chain. More go through a compressor tree,
    # whose delay-driven mapping grows faster than its size with the row count, and
    # much faster when the rows are signed (sign-extended over every column above
    # them: synthesis of int8 x int8 takes 1.5-3x the cells of uint8 x int8).
    block.add("mul_out", out_bits)
    and_bits = rows * a_bits
    if rows <= 2:
        block.add("mul_and2", and_bits)
        compress = 0
    else:
        spans = [(i, out_bits - 1 if a_signed else i + a_bits - 1) for i in range(rows)]
        compress = _macc(spans, out_bits, block, "mul", three_operand=False)
        block.add("mul_and", and_bits)
        block.add("mul_and_rows", and_bits * rows)
        if a_signed:
            block.add("mul_and_signed", and_bits)
            block.add("mul_and_rows_signed", and_bits * rows)
    block.add("mul_neg", out_bits if b_signed else 0)
    block.segments.append({"lut_levels": decode_levels + 1, "compress_levels": compress,
                           "carry_bits": out_bits, "dsp": 0})
    return block


def _product_block(unit, *, critical: bool = True, gated: bool = False) -> _Block:
    """Features of a product unit (see :func:`_shift_add_block` for the flags)."""
    from ..hw.product import ShiftAddProduct
    if isinstance(unit, ShiftAddProduct):
        block = _shift_add_block(unit, critical=critical, gated=gated)
        if unit.sign == "negate":
            stage_bits = unit.product_shape.width
        else:
            # The magnitude, and the sign bit travelling beside it.
            stage_bits = unit.magnitude_shape.width + int(unit.weight_format.signed)
    else:
        block = _multiplier_block(unit)
        stage_bits = unit.product_shape.width
    # Every bit of a stage is a flip-flop, even one that is always 0 (the low bits
    # of a product whose levels are all even, the sign of a product that is never
    # negative): reset-initialised, synthesis keeps them (yosys 0.70, checked).
    block.ff = unit.pipeline * stage_bits
    return block


def _accumulator_block(acc) -> _Block:
    block = _Block()
    bits = acc.acc_bits
    total = acc.sum_shape.width
    addend = acc.addend.shape()
    block.add("acc_bits", bits)
    block.add("acc_carry", -(-total // 2))
    saturate = acc.overflow_mode == "saturate"
    if acc.fold_sign:
        block.add("acc_fold", addend.width + (not addend.signed))
    if saturate:
        # With the sign folded, the clear rides on the adder; otherwise the clear and
        # the saturation select per bit need a wider function (a LUT5: 3 cells).
        block.add("acc_sat_fold" if acc.fold_sign else "acc_sat", bits)
    block.ff = bits + 1
    block.segments.append({"lut_levels": 1 + int(acc.fold_sign) + 2 * saturate,
                           "compress_levels": 0, "carry_bits": total, "dsp": 0})
    return block


def _adder_tree_block(tree) -> _Block:
    """Features of an adder tree: per register-to-register segment, each sub-tree of
    two operands is one carry chain, of more a compressor tree ($macc)."""
    block = _Block()
    lo, hi = tree.input_range
    signed = tree.input_shape.signed

    def width(count):
        return _width(count * lo, count * hi, signed)

    # Nodes: (inputs summed, operands of the current segment's sub-tree as counts).
    nodes = [(1, [1])] * tree.n
    stages = list(tree.stage_levels)
    level, ff = 0, 0

    def close(nodes):
        """End a segment: account each node's sub-tree; its delay features."""
        segment = {"lut_levels": 0, "compress_levels": 0, "carry_bits": 0, "dsp": 0}
        for count, operands in nodes:
            if len(operands) < 2:
                continue
            out = width(count)
            if len(operands) == 2:
                block.add("tree_add", out)
                levels = 0
            else:
                spans = [(0, out - 1 if signed else width(c) - 1) for c in operands]
                levels = _macc(spans, out, block, "tree_macc")
            segment["lut_levels"] = 1
            segment["compress_levels"] = max(segment["compress_levels"], levels)
            segment["carry_bits"] = max(segment["carry_bits"], out)
        return segment

    while True:
        while stages and stages[0] == level:
            stages.pop(0)
            block.segments.append(close(nodes))
            ff += sum(width(c) for c, _ in nodes)
            nodes = [(c, [c]) for c, _ in nodes]
        if len(nodes) == 1:
            break
        level += 1
        paired = []
        for i in range(0, len(nodes), 2):
            if i + 1 == len(nodes):
                paired.append(nodes[i])
                continue
            (ca, oa), (cb, ob) = nodes[i], nodes[i + 1]
            paired.append((ca + cb, oa + ob))
        nodes = paired
    last = close(nodes)
    if last["lut_levels"] or not block.segments:
        block.segments.append(last)
    block.ff = ff
    return block


def _block(component) -> tuple:
    """``(group, _Block)`` of a potgen component."""
    from ..hw import AdderTree, Accumulator, MacPE, MultiplierProduct, ShiftAddProduct
    if isinstance(component, MacPE):
        unit, acc = component.product_unit, component.accumulator
        combinational = component.latency == 0
        # A single-term unit's bits meet the folded sign's gating in one function;
        # registered, the unit is off the accumulator's critical loop and the mapper
        # builds it for area.
        single = isinstance(unit, ShiftAddProduct) and \
            sum(1 for f in unit.weight_format.fields if f.width) == 1
        prod = _product_block(unit, critical=combinational,
                              gated=single and acc.fold_sign and combinational)
        accb = _accumulator_block(acc)
        block = _Block()
        for part in (prod, accb):
            for name, value in part.features.items():
                block.add(name, value)
        block.mult18 = prod.mult18
        block.ff = accb.ff + prod.ff + 2 * component.latency  # valid, clear travel along
        if not combinational:
            block.segments = prod.segments + accb.segments
        else:
            block.segments = [{key: prod.segments[0][key] + accb.segments[0][key]
                               for key in prod.segments[0]}] + accb.segments
        return f"mac/{_unit_kind(unit)}", block
    if isinstance(component, (ShiftAddProduct, MultiplierProduct)):
        return f"product/{_unit_kind(component)}", _product_block(component)
    if isinstance(component, Accumulator):
        return "accumulator", _accumulator_block(component)
    if isinstance(component, AdderTree):
        return "adder-tree", _adder_tree_block(component)
    raise TypeError(f"component: {type(component).__name__} is not a component the "
                    "estimate models; allowed: MacPE, ShiftAddProduct, "
                    "MultiplierProduct, Accumulator, AdderTree (or a DesignSpec)")


def _unit_kind(unit) -> str:
    from ..hw import ShiftAddProduct
    if isinstance(unit, ShiftAddProduct):
        return "shift-add"
    return f"multiplier-{unit.implementation}"


def model_group(component) -> str:
    """The model group of a component: ``mac/shift-add``, ``accumulator``, ..."""
    return _block(component)[0]


def features(component) -> dict:
    """The structural features of a component (see the module documentation)."""
    return dict(_block(component)[1].features)


def segments(component) -> list:
    """Register-to-register segments: ``[{"lut_levels", "compress_levels",
    "carry_bits", "dsp"}]``."""
    return [dict(s) for s in _block(component)[1].segments]


# --- designs ---------------------------------------------------------------------------

def component_from_design(design: dict):
    """Rebuild the component a report's ``design`` describes.

    Works for reports of :class:`~potgen.flow.designs.DesignSpec` designs (``potgen
    synth``, ``potgen sweep``: they record ``name``, ``act``, ``kind``, ...) and of
    adder trees (their ``metadata()``). ``ValueError`` for anything else.
    """
    from ..hw import AdderTree
    from .designs import KINDS, DesignSpec
    if not isinstance(design, dict):
        raise TypeError(f"design: expected a report's design dict, got {design!r}")
    kind = design.get("kind")
    if kind == "adder-tree" and isinstance(design.get("input"), dict):
        shape = design["input"]
        from amaranth.hdl import signed, unsigned
        return AdderTree(int(design["n"]), (signed if shape["signed"] else unsigned)(
            int(shape["bits"])), pipeline=int(design.get("pipeline") or 0),
            input_range=(int(shape["min"]), int(shape["max"])))
    if kind in KINDS and isinstance(design.get("name"), str):
        kw = dict(act=design.get("act", "uint8"), kind=kind,
                  pipeline=int(design.get("pipeline") or 0))
        if kind != "product":
            kw.update(acc_bits=int(design["acc_bits"]), k=int(design.get("k") or 64),
                      overflow=design.get("overflow") or "wrap",
                      sign=design.get("sign") or "fold")
        return DesignSpec(design["name"], **kw).build()
    raise ValueError(f"design: cannot rebuild a component from {design!r}; expected a "
                     "DesignSpec report's design (name, act, kind, ...) or an adder "
                     "tree's metadata")


def _silence(component) -> None:
    """Mark a component built only to be measured (and the units inside it) as used:
    it is never elaborated, and Amaranth would warn about it when it is collected."""
    for obj in (component, getattr(component, "product_unit", None),
                getattr(component, "accumulator", None)):
        if obj is not None:
            obj._MustUse__silence = True


def _jsonable(obj):
    return json.loads(json.dumps(obj, default=str, sort_keys=True))


def _resolve(target, design):
    """``(component, design dict)`` for a component, a DesignSpec or a design dict."""
    from .designs import DesignSpec
    if isinstance(target, DesignSpec):
        component = target.build()
        _silence(component)
        base = target.design(component)
    elif isinstance(target, dict):
        component = component_from_design(target)
        _silence(component)
        base = dict(target)
    elif isinstance(target, wiring.Component):
        component, base = target, {}
    else:
        raise TypeError(f"component_or_design: expected a potgen component, a DesignSpec "
                        f"or a report's design dict, got {type(target).__name__}")
    if design is not None and not isinstance(design, dict):
        raise TypeError(f"design: expected a dict of parameters, got {design!r}")
    meta = {}
    if not isinstance(target, dict) and callable(getattr(component, "metadata", None)):
        # As the synthesis flow records it: the parameters, not the port list.
        meta = {k: v for k, v in component.metadata().items() if k != "ports"}
    meta.setdefault("component", type(component).__name__)
    meta.update(base)
    meta.update(design or {})
    return component, _jsonable(meta)


# --- evaluation ----------------------------------------------------------------------------

def _linear(coefficients: dict, values: dict) -> float:
    return sum(c * (1.0 if name == "const" else values.get(name, 0))
               for name, c in coefficients.items())


def _harness(component, clocked: bool) -> dict:
    """Cells of the :class:`~potgen.flow.harness.TimingHarness` around the block, counted
    from its documented structure: the input shift register (every input bit, and the
    reset when the block has registers to reset), the output capture and the
    registered tree of 4-input XORs."""
    inputs = outputs = 0
    from amaranth.hdl import Value
    for _, member, value in component.signature.flatten(component):
        width = len(Value.cast(value))
        if member.flow == wiring.In:
            inputs += width
        else:
            outputs += width
    ff, luts, width = inputs + int(clocked) + outputs, 0, outputs
    while width > 1:
        groups = -(-width // 4)
        luts += groups - (1 if width % 4 == 1 else 0)
        ff += groups
        width = groups
    return {"lut4": luts, "ff": ff}


def _resources(group_model: dict, values: dict, ff: int, mult18: int) -> dict:
    fitted = {}
    for key in FITTED_RESOURCES:
        coefficients = group_model["coefficients"][key]
        fitted[key] = max(int(round(_linear(coefficients, values))), 0)
    for key in ("ccu2c", "pfumx", "l6mux"):
        fitted[key] = min(fitted[key], fitted["comb_cells"])
    out = {key: 0 for key in RESOURCE_KEYS}
    out.update(fitted)
    out["lut4"] = max(fitted["comb_cells"] - fitted["ccu2c"] - fitted["pfumx"]
                      - fitted["l6mux"], 0)
    out["comb_cells"] = out["lut4"] + out["ccu2c"] + out["pfumx"] + out["l6mux"]
    out["lut4_sites"] = out["lut4"] + 2 * out["ccu2c"]
    out["ff"] = ff
    out["mult18"] = mult18
    return out


def _segment_delay(coefficients: dict, segment: dict) -> float:
    return coefficients.get("const", 0.0) + sum(coefficients.get(k, 0.0) * segment[k]
                                                for k in DELAY_FEATURES if k != "const")


def _describe(segment: dict) -> str:
    parts = [f"{segment['lut_levels']} LUT levels"]
    if segment["compress_levels"]:
        parts.append(f"{segment['compress_levels']} compressor levels")
    if segment["carry_bits"]:
        parts.append(f"{segment['carry_bits']}-bit carry chain")
    if segment["dsp"]:
        parts.append("MULT18X18D")
    return " + ".join(parts)


def extrapolation(component_or_design, *, model=None) -> list:
    """Features of a design outside the range the model was fitted on.

    Returns lines such as ``"sa_wide = 420 (fitted 0..212)"``; empty when every
    feature lies inside the fit data, where the residuals in the model file describe
    the estimate's accuracy. Outside it the estimate extrapolates linearly.
    """
    mdl = load_model(model)
    component, _ = _resolve(component_or_design, None)
    group, block = _block(component)
    ranges = mdl["resources"].get(group, {}).get("feature_ranges", {})
    out = []
    for name, value in sorted(block.features.items()):
        lo, hi = ranges.get(name, (0, 0))
        if not lo <= value <= hi:
            out.append(f"{name} = {value:g} (fitted {lo:g}..{hi:g})")
    return out


def estimate(component_or_design, *, device="85k", package=None, speed=6, design=None,
             model=None) -> dict:
    """Estimate a component's synthesis report without running any tool.

    Parameters
    ----------
    component_or_design : wiring.Component, DesignSpec or dict
        A :class:`~potgen.hw.MacPE`, :class:`~potgen.hw.ShiftAddProduct`,
        :class:`~potgen.hw.MultiplierProduct`, :class:`~potgen.hw.Accumulator` or
        :class:`~potgen.hw.AdderTree`; a :class:`~potgen.flow.designs.DesignSpec`; or
        a synthesis report's ``design`` dict (to estimate what was synthesized).
    device : str
        ``"12k"``, ``"25k"``, ``"45k"`` or ``"85k"``.
    package : str or None
        Package (default: the device's first).
    speed : int
        Speed grade 6, 7 or 8.
    design : dict or None
        Parameters merged into the report's ``design`` (as for ``synthesize``).
    model : None, dict or path
        The model (default: the one shipped in ``potgen/data``).

    Returns
    -------
    dict
        A report with the keys of :func:`~potgen.flow.synth.synthesize`'s. The
        resources are the block's own; ``design_resources`` adds the timing harness
        (counted exactly); ``utilization`` holds the estimated BELs against the
        device's limits; ``critical_path`` lists the estimated slowest segment;
        ``tools`` names the model and the tool versions it was calibrated with;
        ``seconds`` is the time the estimate took.
    """
    start = time.perf_counter()
    dev = _device(device)
    pkg = check_package(dev, package)
    spd = check_speed(speed)
    mdl = load_model(model)
    component, meta = _resolve(component_or_design, design)
    group, block = _block(component)
    groups = mdl["resources"]
    if group not in groups:
        raise ValueError(f"component: the model has no {group!r} group (model groups: "
                         f"{', '.join(sorted(groups))}); refit it with "
                         "`python -m potgen.flow.fit_estimate`")
    resources = _resources(groups[group], block.features, block.ff, block.mult18)

    harness = _harness(component, clocked=block.ff > 0)
    design_resources = dict(resources)
    design_resources["lut4"] += harness["lut4"]
    design_resources["ff"] += harness["ff"]
    design_resources["comb_cells"] += harness["lut4"]
    design_resources["lut4_sites"] += harness["lut4"]

    timing = mdl["fmax"]
    coefficients = timing["groups"].get(group, timing["coefficients"])
    delays = [_segment_delay(coefficients, s) for s in block.segments]
    worst = max(range(len(delays)), key=delays.__getitem__)
    scale = timing["speed_scale"].get(str(spd), 1.0) * \
        timing["device_scale"].get(dev.part, 1.0)
    fmax = min(1000.0 / delays[worst] * scale, timing["harness_limit_mhz"] * scale)
    in_block = 1000.0 / delays[worst] < timing["harness_limit_mhz"]
    path_ns = 1000.0 / fmax

    limits = {"TRELLIS_COMB": ("lut4_sites", dev.lut4), "TRELLIS_FF": ("ff", dev.ff),
              "MULT18X18D": ("mult18", dev.mult18), "DP16KD": ("dp16kd", dev.dp16kd)}
    utilization = {bel: {"used": design_resources[key], "available": limit}
                   for bel, (key, limit) in limits.items() if design_resources[key]}
    provenance = mdl["provenance"]
    return {
        "design": meta,
        "device": dev.part,
        "package": pkg,
        "speed": spd,
        "seed": provenance.get("seed"),
        "harness": True,
        "resources": resources,
        "design_resources": design_resources,
        "utilization": utilization,
        "fmax_mhz": round(fmax, 1),
        "freq_target_mhz": None,
        "critical_path": [{"type": "estimate", "from": None, "to": None,
                           "segment": _describe(block.segments[worst]),
                           "delay_ns": round(path_ns, 3)}],
        "critical_path_ns": round(path_ns, 3),
        "critical_path_in_block": in_block,
        "tools": {"estimate": f"potgen-estimate-{mdl['version']} ({group})",
                  "yosys": provenance["tools"].get("yosys"),
                  "nextpnr": provenance["tools"].get("nextpnr")},
        "seconds": round(time.perf_counter() - start, 4),
        "seconds_by_step": {"estimate": round(time.perf_counter() - start, 4)},
        "cached": False,
        "cache_key": None,
        "build_dir": None,
    }
