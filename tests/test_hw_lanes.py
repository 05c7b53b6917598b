"""potgen.hw.lanes: lane layouts for multipliers and adders, checked against the golden
lane functions and plain integer arithmetic."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from amaranth_sim import int_formats, term_formats
from potgen import bounds
from potgen.golden import lanes as golden_lanes
from potgen.golden.lanes import LaneLayout
from potgen.hw.lanes import (PORT_BITS, AdderLanes, MultiplierLanes, adder_lanes,
                             field_bits, max_multiplier_lanes, multiplier_lanes,
                             product_adder_lanes)

FORMATS = [f"{kind}{bits}" for bits in (2, 3, 4) for kind in ("uint", "int")]

#: Products per MULT18X18D (rows: activation, columns: weight, in FORMATS order), as the
#: module documentation states them.
TABLE = {
    "uint2": [5, 5, 4, 4, 3, 3],
    "int2": [5, 5, 4, 4, 3, 3],
    "uint3": [4, 4, 3, 3, 3, 3],
    "int3": [4, 4, 3, 3, 3, 3],
    "uint4": [3, 3, 3, 3, 2, 2],
    "int4": [3, 3, 3, 3, 2, 2],
}


def exhaustive_lane_inputs(plan):
    """Every combination of packed values and shared values of a small plan."""
    packed = np.arange(plan.packed_range[0], plan.packed_range[1] + 1)
    shared = np.arange(plan.shared_range[0], plan.shared_range[1] + 1)
    grids = np.meshgrid(*([packed] * plan.lanes), shared, indexing="ij")
    flat = [g.ravel() for g in grids]
    return np.stack(flat[:-1], axis=-1), flat[-1]


# --- products in one multiplier ---------------------------------------------------------

def test_lane_table_matches_documentation():
    for act, row in TABLE.items():
        for weight, expected in zip(FORMATS, row):
            for arrangement in ("shared-weight", "shared-act"):
                assert max_multiplier_lanes(weight, act, arrangement=arrangement) == \
                    expected, (weight, act, arrangement)


def test_goals():
    for a in ("int4", "uint4"):
        for w in ("int4", "uint4"):
            assert multiplier_lanes(w, a).lanes >= 2
    for a in ("int2", "uint2"):
        for w in ("int2", "uint2"):
            assert multiplier_lanes(w, a).lanes >= 3


@pytest.mark.parametrize("weight", FORMATS)
@pytest.mark.parametrize("act", FORMATS)
@pytest.mark.parametrize("arrangement", ["shared-weight", "shared-act"])
def test_products_exhaustive(weight, act, arrangement):
    """Pack, multiply, extract, correct: every lane combination, every shared value."""
    plan = multiplier_lanes(weight, act, arrangement=arrangement)
    values, shared = exhaustive_lane_inputs(plan)
    np.testing.assert_array_equal(plan.products(values, shared), values * shared[:, None])
    # The widths the hardware uses hold every value.
    result = plan.multiply(values, shared)
    assert plan.result_range[0] <= result.min() and result.max() <= plan.result_range[1]
    assert plan.packed_width <= PORT_BITS and plan.shared_width <= PORT_BITS
    assert int(plan.pack(values).max()) < 1 << plan.packed_width


@pytest.mark.parametrize("weight, act", [("int4", "int4"), ("int2", "int2"),
                                         ("int3", "uint3")])
def test_fields_are_golden_extract_products(weight, act):
    """Signed fields follow potgen.golden.lanes.multiply_shared on the offset lanes (the
    top lane without offset)."""
    plan = multiplier_lanes(weight, act)
    assert plan.fields_signed
    values, shared = exhaustive_lane_inputs(plan)
    fields = plan.extract(plan.multiply(values, shared))
    golden = golden_lanes.multiply_shared(values + plan.lane_offsets, shared, plan.spacing)
    np.testing.assert_array_equal(fields, golden)


def test_unsigned_fields_are_golden_unpack():
    plan = multiplier_lanes("uint4", "uint4")
    assert not plan.fields_signed and plan.offset == 0 and plan.spacing == 8
    values, shared = exhaustive_lane_inputs(plan)
    result = plan.multiply(values, shared)
    np.testing.assert_array_equal(golden_lanes.unpack(result, plan.word_layout),
                                  values * shared[:, None])


@given(act=int_formats((2, 8)), weight=st.one_of(int_formats((2, 8)), term_formats()),
       arrangement=st.sampled_from(["shared-weight", "shared-act"]),
       seed=st.integers(0, 2 ** 32 - 1), data=st.data())
def test_products_any_formats(act, weight, arrangement, seed, data):
    most = max_multiplier_lanes(weight, act, arrangement=arrangement)
    if most == 0:
        with pytest.raises(ValueError, match="not even one lane"):
            multiplier_lanes(weight, act, arrangement=arrangement)
        return
    lanes = data.draw(st.integers(1, most))
    plan = multiplier_lanes(weight, act, lanes, arrangement=arrangement)
    rng = np.random.default_rng(seed)
    p_lo, p_hi = plan.packed_range
    s_lo, s_hi = plan.shared_range
    count = 400
    values = rng.integers(p_lo, p_hi + 1, (count, lanes))
    shared = rng.integers(s_lo, s_hi + 1, count)
    # The extremes, where borrows and offsets matter most.
    values[:4] = [[p_lo] * lanes, [p_hi] * lanes, [p_lo, p_hi] * (lanes // 2) +
                  [p_lo] * (lanes % 2), [p_hi, p_lo] * (lanes // 2) + [p_hi] * (lanes % 2)]
    shared[:4] = [s_lo, s_hi, s_lo, s_hi]
    np.testing.assert_array_equal(plan.products(values, shared), values * shared[:, None])


@given(act=int_formats((2, 6)), weight=int_formats((2, 6)), terms=st.integers(2, 64),
       seed=st.integers(0, 2 ** 32 - 1))
def test_packed_sums_of_terms(act, weight, terms, seed):
    """With terms = K the summed multiplier results unpack to the exact lane sums."""
    plan = multiplier_lanes(weight, act, terms=terms)
    rng = np.random.default_rng(seed)
    values = rng.integers(plan.packed_range[0], plan.packed_range[1] + 1,
                          (terms, plan.lanes))
    shared = rng.integers(plan.shared_range[0], plan.shared_range[1] + 1, terms)
    if rng.random() < 0.5:   # the worst case: every term at one corner
        values[:] = plan.packed_range[int(rng.integers(2))]
        shared[:] = plan.shared_range[int(rng.integers(2))]
    layout = plan.word_layout
    words = [int(p) % (1 << layout.word_bits) for p in plan.multiply(values, shared)]
    total = golden_lanes.add(words, layout)
    sums = golden_lanes.unpack(total, layout) - int(shared.sum()) * plan.lane_offsets
    np.testing.assert_array_equal(sums, (values * shared[:, None]).sum(axis=0))


def test_spacing_and_lanes_are_minimal_and_maximal():
    for act in FORMATS:
        for weight in FORMATS:
            plan = multiplier_lanes(weight, act)
            with pytest.raises(ValueError, match=f"spacing={plan.spacing - 1}"):
                MultiplierLanes(weight, act, plan.lanes, plan.spacing - 1)
            with pytest.raises(ValueError, match=f"lanes={plan.lanes + 1}"):
                MultiplierLanes(weight, act, plan.lanes + 1, plan.spacing)


def test_worked_numbers():
    plan = multiplier_lanes("int4", "int4")
    assert (plan.lanes, plan.spacing, plan.offset) == (2, 8, 8)
    assert plan.field_range == (-120, 105) and plan.product_range == (-56, 64)
    assert (plan.packed_width, plan.shared_width, plan.shared_signed) == (12, 4, True)
    assert plan.product_bits == 8
    plan = multiplier_lanes("uint2", "uint2")
    assert (plan.lanes, plan.spacing, plan.packed_width) == (5, 4, 18)
    plan = multiplier_lanes("int2", "int2")
    assert (plan.lanes, plan.spacing, plan.packed_width, plan.offset) == (5, 4, 18, 2)
    # A power-of-two weight through its level: pot4 levels reach +-64 (8 signed bits).
    plan = multiplier_lanes("pot4", "int4")
    assert (plan.shared_width, plan.spacing, plan.lanes) == (8, 11, 2)
    # The packed MAC's spacing holds K products: int4 x int4, K = 64.
    plan = multiplier_lanes("int4", "int4", terms=64)
    assert plan.lane_range == (-7680, 6720) and plan.spacing == 14 and plan.lanes == 2
    assert field_bits(0, 225) == 8 and field_bits(-120, 105) == 8 and field_bits(-1, 0) == 2


def test_multiplier_refusals_name_the_numbers():
    with pytest.raises(ValueError) as info:
        multiplier_lanes("int4", "int4", 3)
    assert str(info.value) == ("lanes=3: 3 lanes of int4 x int4 at spacing 8 need a "
                               "(3-1)*8+4 = 20-bit packed operand; the multiplier port "
                               "has 18 bits (at most 2 lanes fit)")
    with pytest.raises(ValueError, match=r"spacing=7: int4 x int4 lanes hold one field "
                                         r"in \[-120, 105\].*spacing >= 8"):
        MultiplierLanes("int4", "int4", 2, 7)
    with pytest.raises(ValueError, match="arrangement='diagonal'"):
        multiplier_lanes("int4", "int4", arrangement="diagonal")
    with pytest.raises(ValueError, match="activations are intN or uintN"):
        multiplier_lanes("int4", "pot4")
    with pytest.raises(ValueError, match="shared int16 operand needs 16 bits.*has 12"):
        multiplier_lanes("int16", "int4", 1, port_bits=12)
    with pytest.raises(TypeError, match="lanes=2.0"):
        multiplier_lanes("int4", "int4", 2.0)
    with pytest.raises(ValueError, match="lanes=0"):
        multiplier_lanes("int4", "int4", 0)
    with pytest.raises(ValueError, match="not even one lane"):
        multiplier_lanes("int12", "int12", port_bits=8)


def test_golden_procedure_checks_its_inputs():
    plan = multiplier_lanes("int4", "uint4")
    with pytest.raises(ValueError, match=r"shape \[\.\.\., 2\]"):
        plan.products([[1, 2, 3]], [1])
    with pytest.raises(ValueError, match=r"uint4 lanes take values in \[0, 15\]"):
        plan.products([[16, 0]], [1])
    with pytest.raises(ValueError, match=r"int4 values are in \[-8, 7\]"):
        plan.products([[1, 2]], [8])


# --- lanes in one adder -----------------------------------------------------------------

def test_adder_lanes_worked_numbers():
    lanes = adder_lanes((-56, 64), 64, word_bits=36)
    assert (lanes.lanes, lanes.width, lanes.guard_bits) == (2, 14, 6)
    assert lanes.sum_range == (-3584, 4096) and lanes.sum_bits == 14
    lanes = adder_lanes((0, 225), 16, word_bits=48)
    assert not lanes.signed and (lanes.lanes, lanes.width) == (4, 12)
    lanes = adder_lanes((-8, 7), 16, lanes=3, encoding="offset")
    # Offset fields hold sum + 16 * 8 <= 112 + 128 = 240 < 2^8.
    assert (lanes.width, lanes.word_bits, lanes.encoding) == (8, 24, "offset")


@given(lo=st.integers(-300, 0), span=st.integers(1, 600), adds=st.integers(1, 300),
       encoding=st.sampled_from(["twos", "offset"]), seed=st.integers(0, 2 ** 32 - 1))
def test_adder_lanes_are_exact_and_minimal(lo, span, adds, encoding, seed):
    """The chosen width unpacks every partial sum exactly (golden add / unpack), and one
    bit less is refused."""
    hi = lo + span
    if encoding == "offset" and lo >= 0:
        encoding = "twos"
    lanes = adder_lanes((lo, hi), adds, lanes=3, encoding=encoding)
    layout = lanes.layout
    rng = np.random.default_rng(seed)
    values = rng.integers(lo, hi + 1, (adds, 3))
    values[:, int(rng.integers(3))] = lo if rng.random() < 0.5 else hi   # an extreme lane
    partial = np.cumsum(values, axis=0)
    words = golden_lanes.pack(values, layout)
    running = np.cumsum(words.astype(object)) % (1 << layout.word_bits)
    for j in sorted({0, adds // 2, adds - 1}):
        got = golden_lanes.unpack(int(running[j]), layout, count=j + 1)
        np.testing.assert_array_equal(got, partial[j])
    if layout.width > layout.value_bits:
        smaller = LaneLayout(3, layout.width - 1, layout.signed, layout.encoding,
                             layout.value_bits)
        with pytest.raises(ValueError, match="below what the bound requires"):
            AdderLanes(smaller, adds, lanes.addend_range, lanes.sum_range)


def test_product_adder_lanes_from_k_and_from_a_bound():
    lanes = product_adder_lanes("int4", "int4", k=64, word_bits=36)
    assert lanes.sum_range == (-3584, 4096) and lanes.method == "datatype"
    rng = np.random.default_rng(3)
    weights = rng.integers(-2, 3, (200, 4))
    bound = bounds.exact("uint4", weights)
    lanes = product_adder_lanes("uint4", "int4", bound=bound, word_bits=64)
    assert lanes.adds == 200 and lanes.method == "exact"
    assert lanes.sum_range == (bound.min, bound.max)
    assert lanes.width == bounds.signed_width(bound.min, bound.max)
    # The exact bound of these small weights is narrower than the datatype bound.
    assert lanes.width < product_adder_lanes("uint4", "int4", k=200, word_bits=64).width


def test_adder_refusals_name_the_numbers():
    layout = LaneLayout(2, 12, True, "twos", 8)
    with pytest.raises(ValueError) as info:
        AdderLanes(layout, 64, (-56, 64))
    assert str(info.value) == ("lane width 12 (4 guard bits over 8-bit values) is below "
                               "what the bound requires: signed lane sums in [-3584, 4096] "
                               "(64 adds) needs 14 bits (6 guard bits)")
    with pytest.raises(ValueError, match="unsigned lanes cannot hold the negative sums"):
        AdderLanes(LaneLayout(2, 12, False), 4, sum_range=(-1, 10))
    with pytest.raises(ValueError, match=r"offset-binary fields up to 2040"):
        AdderLanes(LaneLayout(2, 10, True, "offset", 8), 8)
    with pytest.raises(ValueError, match=r"addend_range=\[-200, 0\]: outside"):
        AdderLanes(layout, 2, (-200, 0))
    with pytest.raises(ValueError, match="lanes=3: 3 lanes of 14 bits need 42 bits; "
                                         "word_bits=36 holds 2"):
        adder_lanes((-56, 64), 64, lanes=3, word_bits=36)
    with pytest.raises(ValueError, match="word_bits=10: one lane needs 14 bits"):
        adder_lanes((-56, 64), 64, word_bits=10)
    with pytest.raises(ValueError, match="encoding='offset'.*never negative"):
        adder_lanes((0, 9), 4, lanes=2, encoding="offset")
    with pytest.raises(ValueError, match="needs lanes or word_bits"):
        adder_lanes((0, 9), 4)
    with pytest.raises(ValueError, match="exactly one of k"):
        product_adder_lanes("int4", "int4", lanes=2)
    with pytest.raises(ValueError, match="bound is for act=uint8"):
        product_adder_lanes("int4", "int4", bound=bounds.datatype("uint8", "int4", 4),
                            lanes=2)
    with pytest.raises(TypeError, match="LaneLayout"):
        AdderLanes("2x12", 4)


def test_for_layout_uses_max_safe_adds():
    layout = LaneLayout(4, 8, True, "twos", 5)
    lanes = AdderLanes.for_layout(layout)
    assert lanes.adds == golden_lanes.max_safe_adds(layout) == 8
    assert lanes.to_dict()["guard_bits"] == 3
