"""Product units in Amaranth simulation against ``potgen.golden.product``."""

import numpy as np
import pytest
from amaranth.back import rtlil
from hypothesis import given
from hypothesis import strategies as st

from amaranth_sim import (act_formats, collect_unelaborated, drive,  # noqa: F401 (fixture)
                          product_vectors, term_formats, weight_formats)
from potgen import bounds, golden
from potgen.formats import parse_format
from potgen.hw import MultiplierProduct, ShiftAddProduct, product_unit

# Width, metadata and bad-input tests build components without elaborating them.
pytestmark = pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")


def simulate_unit(unit, acts, codes):
    """Outputs of ``unit`` for each (act, code), undoing the pipeline latency."""
    latency = unit.latency
    pad = max(latency - 1, 0)
    inputs = {"act": list(acts) + [0] * pad, "weight": list(codes) + [0] * pad}
    outputs = ["product"] if hasattr(unit, "product") else ["magnitude", "negative"]
    out = drive(unit, inputs, outputs, clocked=latency > 0)
    return {name: values[pad:] if latency else values for name, values in out.items()}


def check_against_golden(unit, acts, codes):
    fmt = unit.weight_format
    expected = golden.product(acts, codes, fmt)
    out = simulate_unit(unit, acts, codes)
    if "product" in out:
        got = out["product"]
    else:
        # sign="split": the product is -magnitude when the sign bit is set.
        got = np.where(out["negative"] == 1, -out["magnitude"], out["magnitude"])
        np.testing.assert_array_equal(out["magnitude"], acts * np.abs(fmt.decode(codes)))
    bad = np.nonzero(got != expected)[0]
    assert bad.size == 0, (
        f"{unit.__class__.__name__}({fmt}, {unit.act_format}): first mismatches "
        f"(act, code, got, expected): "
        f"{[(int(acts[i]), int(codes[i]), int(got[i]), int(expected[i])) for i in bad[:5]]}")


def exact_product_range(weight_fmt, act_fmt):
    levels = np.asarray(weight_fmt.levels(), dtype=np.int64)
    corners = np.outer([act_fmt.min_level, act_fmt.max_level], levels)
    return int(corners.min()), int(corners.max())


# --- Hypothesis: every family, widths, signedness, pipeline ------------------------------

@given(weight=term_formats(), act=act_formats(), pipeline=st.integers(0, 2),
       sign=st.sampled_from(["negate", "split"]), seed=st.integers(0, 2 ** 32 - 1))
def test_shift_add_matches_golden(weight, act, pipeline, sign, seed):
    unit = ShiftAddProduct(weight, act, pipeline=pipeline, sign=sign)
    acts, codes = product_vectors(act, weight, np.random.default_rng(seed))
    check_against_golden(unit, acts, codes)


@given(weight=weight_formats(), act=act_formats(), pipeline=st.integers(0, 2),
       implementation=st.sampled_from(["dsp", "lut"]), seed=st.integers(0, 2 ** 32 - 1))
def test_multiplier_matches_golden(weight, act, pipeline, implementation, seed):
    unit = MultiplierProduct(weight, act, implementation=implementation, pipeline=pipeline)
    acts, codes = product_vectors(act, weight, np.random.default_rng(seed))
    check_against_golden(unit, acts, codes)


@given(weight=weight_formats(), act=act_formats(bits=(2, 16)))
def test_product_width_is_exact(weight, act):
    """P is the smallest signed width holding every product (no wasted bit)."""
    unit = product_unit(weight, act)
    lo, hi = exact_product_range(weight, act)
    assert unit.product_range == (lo, hi)
    assert unit.product_shape.signed
    assert unit.product_shape.width == bounds.signed_width(lo, hi)
    assert len(unit.product) == bounds.signed_width(lo, hi)


# --- exhaustive: every 8-bit activation x every code of the small formats ----------------

EXHAUSTIVE_TERM = ["pot2", "pot3", "pot4", "pot2-nz", "pot3-nz", "pot4-nz", "apot3", "apot4",
                   "sp2-3", "sp2-4", "upot:{0,1}+{0,2}+{0,4,8}", "upot:u{0,1,4,8}+{0,2}"]


@pytest.mark.parametrize("act", ["int8", "uint8"])
@pytest.mark.parametrize("weight", EXHAUSTIVE_TERM)
def test_shift_add_exhaustive_8bit(weight, act):
    weight, act = parse_format(weight), parse_format(act)
    acts, codes = product_vectors(act, weight, None, limit=1 << 20)
    assert acts.size == (1 << 8) * (1 << weight.bits)
    check_against_golden(ShiftAddProduct(weight, act), acts, codes)
    check_against_golden(ShiftAddProduct(weight, act, sign="split"), acts, codes)


@pytest.mark.parametrize("act", ["int8", "uint8"])
@pytest.mark.parametrize("weight", ["int4", "uint4", "apot4"])
@pytest.mark.parametrize("implementation", ["dsp", "lut"])
def test_multiplier_exhaustive_8bit(weight, act, implementation):
    weight, act = parse_format(weight), parse_format(act)
    acts, codes = product_vectors(act, weight, None, limit=1 << 20)
    check_against_golden(MultiplierProduct(weight, act, implementation=implementation),
                         acts, codes)


# --- structure -------------------------------------------------------------------------

def mul_cells(unit):
    return rtlil.convert(unit).count("cell $mul ")


@pytest.mark.parametrize("weight", ["pot4", "pot5-nz", "apot5", "sp2-6",
                                    "upot:{0,1,4,8}+{0,2}+{0,16}", "upot:u{1,2,4}"])
@pytest.mark.parametrize("sign", ["negate", "split"])
def test_shift_add_has_no_multiplier(weight, sign):
    assert mul_cells(ShiftAddProduct(weight, "int12", sign=sign, pipeline=1)) == 0


@pytest.mark.parametrize("weight", ["int8", "uint5", "apot4", "pot4"])
def test_lut_multiplier_has_no_multiplier_and_dsp_has_one(weight):
    assert mul_cells(MultiplierProduct(weight, "int8", implementation="lut")) == 0
    assert mul_cells(MultiplierProduct(weight, "int8", implementation="dsp")) == 1


def test_worked_widths():
    # uint8 x pot4: [-255*64, 255*64] = [-16320, 16320] fits signed 15 bits
    # ([-16384, 16383]); int8 x apot4: [-1280, 1280] -> 12; int8 x pot4 -> 15.
    unit = ShiftAddProduct("pot4", "uint8")
    assert unit.product_range == (-16320, 16320) and len(unit.product) == 15
    unit = ShiftAddProduct("pot4", "int8")
    assert unit.product_range == (-8192, 8192) and len(unit.product) == 15
    unit = ShiftAddProduct("apot4", "int8")
    assert unit.product_range == (-1280, 1280) and len(unit.product) == 12
    # int8 x int8: -128 * -128 = 16384 needs 16 bits, not 15.
    assert len(MultiplierProduct("int8", "int8").product) == 16
    # sign="split": the magnitude of uint8 x pot4 is unsigned 14 bits.
    split = ShiftAddProduct("pot4", "uint8", sign="split")
    assert split.magnitude.shape() == ShiftAddProduct("pot4", "uint8").magnitude_shape
    assert (len(split.magnitude), split.magnitude.shape().signed) == (14, False)


def test_ports_and_signedness():
    unit = ShiftAddProduct("apot4", "int8")
    assert unit.act.shape().signed and len(unit.act) == 8
    assert not unit.weight.shape().signed and len(unit.weight) == 4
    unit = MultiplierProduct("int4", "uint6")
    assert not unit.act.shape().signed and not unit.weight.shape().signed


def test_product_unit_choice():
    assert isinstance(product_unit("apot4", "int8"), ShiftAddProduct)
    assert isinstance(product_unit("int4", "int8"), MultiplierProduct)
    unit = product_unit("apot4", "int8", unit="multiplier", multiplier="lut")
    assert isinstance(unit, MultiplierProduct) and unit.implementation == "lut"
    assert product_unit("pot3", "int4", pipeline=2).latency == 2


def test_metadata():
    meta = ShiftAddProduct("apot4", "uint8", pipeline=1).metadata()
    assert meta["kind"] == "product" and meta["unit"] == "shift-add"
    assert (meta["weight"], meta["act"], meta["latency"]) == ("apot4", "uint8", 1)
    assert meta["product"] == {"bits": 13, "min": -2550, "max": 2550}
    assert meta["term_sets"] == [[0, 1, 4, 8], [0, 2]]
    assert [p["name"] for p in meta["ports"]] == ["act", "weight", "product"]
    meta = MultiplierProduct("int4", "int8", implementation="lut").metadata()
    assert (meta["unit"], meta["implementation"], meta["level_bits"]) == ("multiplier", "lut", 4)


# --- bad input ---------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, error, words", [
    (dict(weight="int4", act="int8"), ValueError, ["weight='int4'", "MultiplierProduct"]),
    (dict(weight="pot4", act="pot4"), ValueError, ["act='pot4'", "intN or uintN"]),
    (dict(weight="pot4", act="int17"), ValueError, ["act='int17'", "2..16"]),
    (dict(weight="pot4", act="int1"), ValueError, ["act", "int1"]),
    (dict(weight="pot9", act="int8"), ValueError, ["weight", "pot9"]),
    (dict(weight=4, act="int8"), TypeError, ["weight", "string"]),
    (dict(weight="pot4", act="int8", pipeline=-1), ValueError, ["pipeline=-1", ">= 0"]),
    (dict(weight="pot4", act="int8", pipeline=1.5), TypeError, ["pipeline=1.5", "int"]),
    (dict(weight="pot4", act="int8", pipeline=True), TypeError, ["pipeline=True"]),
    (dict(weight="pot4", act="int8", sign="fold"), ValueError,
     ["sign='fold'", "'negate'", "'split'"]),
])
def test_shift_add_bad_input(kwargs, error, words):
    with pytest.raises(error) as info:
        ShiftAddProduct(**kwargs)
    for word in words:
        assert word in str(info.value)


@pytest.mark.parametrize("kwargs, error, words", [
    (dict(weight="int8", act="int8", implementation="dsp48"), ValueError,
     ["implementation='dsp48'", "'dsp'", "'lut'"]),
    (dict(weight="int32", act="int8"), ValueError, ["weight='int32'", "16 bits"]),
    (dict(weight="int8", act="uint20"), ValueError, ["act='uint20'", "2..16"]),
    (dict(weight="int8", act="int8", pipeline=-2), ValueError, ["pipeline=-2"]),
])
def test_multiplier_bad_input(kwargs, error, words):
    with pytest.raises(error) as info:
        MultiplierProduct(**kwargs)
    for word in words:
        assert word in str(info.value)


def test_product_unit_bad_input():
    with pytest.raises(ValueError, match="unit='barrel'"):
        product_unit("pot4", "int8", unit="barrel")
    with pytest.raises(ValueError, match="multiplier='dsp18'"):
        product_unit("int4", "int8", multiplier="dsp18")
    with pytest.raises(ValueError, match="weight='int4'"):
        product_unit("int4", "int8", unit="shift-add")
