"""potgen.golden.lanes: packed lanes against unpacked arithmetic, exhaustively where the
input space is small."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from potgen.golden import lanes
from potgen.golden.lanes import LaneLayout


def signed_field(x, lo, width):
    """Bits [lo, lo + width) of the integer x, read as two's complement."""
    field = (int(x) >> lo) & ((1 << width) - 1)
    return field - (1 << width) if field >> (width - 1) else field


@st.composite
def layouts(draw, max_lanes=6, max_width=24):
    signed = draw(st.booleans())
    encoding = draw(st.sampled_from(["twos", "offset"])) if signed else "twos"
    width = draw(st.integers(1, max_width))
    value_bits = draw(st.integers(1, width))
    return LaneLayout(draw(st.integers(1, max_lanes)), width, signed, encoding, value_bits)


def lane_values(layout, count):
    edge = st.sampled_from([layout.value_min, layout.value_max, 0])
    value = st.one_of(edge, st.integers(layout.value_min, layout.value_max))
    return st.lists(st.lists(value, min_size=layout.lanes, max_size=layout.lanes),
                    min_size=count, max_size=count)


# --- layouts ---------------------------------------------------------------------------

def test_layout_derived_values():
    layout = LaneLayout(4, 8, value_bits=6)
    assert (layout.word_bits, layout.guard_bits) == (32, 2)
    assert (layout.value_min, layout.value_max) == (-32, 31)
    assert LaneLayout(3, 5).value_bits == 5
    assert lanes.max_safe_adds(layout) == 4                                  # 2^G
    assert lanes.max_safe_adds(LaneLayout(4, 8, False, value_bits=6)) == 4   # 255 // 63
    assert lanes.max_safe_adds(LaneLayout(4, 8, True, "offset", 4)) == 17    # 255 // 15
    assert lanes.max_safe_adds(LaneLayout(2, 8)) == 1


@pytest.mark.parametrize("args, error, words", [
    ((0, 8), ValueError, "lanes=0"),
    ((2, 0), ValueError, "width=0"),
    ((True, 8), TypeError, "lanes must be an int"),
    ((2, 8, True, "ones"), ValueError, "'ones'"),
    ((2, 8, False, "offset"), ValueError, "signed lanes"),
    ((2, 8, True, "twos", 9), ValueError, "value_bits=9 exceeds the lane width 8"),
    ((2, 8, True, "twos", 0), ValueError, "value_bits=0"),
    ((2, 8, "yes"), TypeError, "signed must be a bool"),
])
def test_layout_validation(args, error, words):
    with pytest.raises(error, match=words):
        LaneLayout(*args)


# --- pack / unpack ---------------------------------------------------------------------

def test_worked_example_peel_rule():
    layout = LaneLayout(2, 8)
    word = lanes.pack([-1, 1], layout)
    assert word == 0x00FF                   # -1 + 1 * 2^8
    assert signed_field(word, 8, 8) == 0    # the upper field read alone is wrong
    assert lanes.unpack(word, layout).tolist() == [-1, 1]


def test_pack_representations():
    assert isinstance(lanes.pack([1, 2], LaneLayout(2, 8)), int)
    words = lanes.pack([[1, 2], [-3, 4]], LaneLayout(2, 32))
    assert words.dtype == np.uint64 and words.tolist() == [1 + (2 << 32), (4 << 32) - 3]
    wide = lanes.pack([[1, -1, 1]], LaneLayout(3, 30))
    assert wide.dtype == object and wide.tolist() == [(1 - (1 << 30) + (1 << 60)) % 2 ** 90]
    assert lanes.unpack(wide, LaneLayout(3, 30)).tolist() == [[1, -1, 1]]
    offset = LaneLayout(2, 8, True, "offset", 4)
    assert lanes.pack([-8, 7], offset) == 0 + (15 << 8)


@given(st.data())
def test_pack_unpack_round_trip(data):
    layout = data.draw(layouts())
    values = np.array(data.draw(lane_values(layout, data.draw(st.integers(1, 5)))),
                      dtype=object)
    words = lanes.pack(values, layout)
    assert (words.dtype == np.uint64) == (layout.word_bits <= 64)
    assert lanes.unpack(words, layout).tolist() == values.tolist()
    single = lanes.pack(values[0], layout)
    assert isinstance(single, int) and 0 <= single < 2 ** layout.word_bits
    assert lanes.unpack(single, layout).tolist() == values[0].tolist()
    # The word is the documented sum, modulo 2^word_bits.
    offset = (1 << (layout.value_bits - 1)) if layout.encoding == "offset" else 0
    expected = sum((int(v) + offset) << (i * layout.width) for i, v in enumerate(values[0]))
    assert single == expected % 2 ** layout.word_bits


@given(st.data())
def test_add_matches_unpacked_adds_within_the_safe_count(data):
    layout = data.draw(layouts(max_lanes=5, max_width=20))
    count = data.draw(st.integers(1, min(lanes.max_safe_adds(layout), 40)))
    values = np.array(data.draw(lane_values(layout, count)), dtype=object)
    total = lanes.add(lanes.pack(values, layout), layout)
    assert lanes.unpack(total, layout, count=count).tolist() == values.sum(axis=0).tolist()


@pytest.mark.parametrize("layout", [LaneLayout(5, 20, value_bits=16),        # 100-bit words
                                    LaneLayout(4, 16, value_bits=13),        # exactly 64
                                    LaneLayout(5, 20, True, "offset", 16)])
def test_add_wide_words_with_negative_lanes(layout):
    rng = np.random.default_rng(layout.word_bits)
    n = lanes.max_safe_adds(layout)
    values = rng.integers(layout.value_min, layout.value_max + 1, (n, 300, layout.lanes))
    values[:, :100] = layout.value_min                     # the extreme negative sums
    total = lanes.add(lanes.pack(values, layout), layout)
    np.testing.assert_array_equal(lanes.unpack(total, layout, count=n), values.sum(axis=0))


def test_safe_add_counts_are_tight():
    layout = LaneLayout(3, 8, value_bits=5)                       # G = 3: 8 adds
    n = lanes.max_safe_adds(layout)
    low = np.full((n + 1, 3), layout.value_min)
    assert lanes.unpack(lanes.add(lanes.pack(low[:n], layout), layout), layout).tolist() \
        == [n * layout.value_min] * 3                             # -128: still exact
    assert lanes.unpack(lanes.add(lanes.pack(low, layout), layout), layout).tolist() \
        != [(n + 1) * layout.value_min] * 3
    offset = LaneLayout(3, 8, True, "offset", 5)                  # 255 // 31 = 8 adds
    n = lanes.max_safe_adds(offset)
    high = np.full((n + 1, 3), offset.value_max)
    assert lanes.unpack(lanes.add(lanes.pack(high[:n], offset), offset), offset,
                        count=n).tolist() == [n * offset.value_max] * 3
    assert lanes.unpack(lanes.add(lanes.pack(high, offset), offset), offset,
                        count=n + 1).tolist() != [(n + 1) * offset.value_max] * 3


def test_reading_fields_without_peeling_is_wrong_exactly_below_negative_parts():
    layout = LaneLayout(4, 8)
    rng = np.random.default_rng(1)
    values = rng.integers(-128, 128, (2000, 4))
    words = lanes.pack(values, layout)
    naive = np.array([[signed_field(w, 8 * i, 8) for i in range(4)] for w in words.tolist()])
    weights = 1 << (8 * np.arange(4))
    below = np.stack([(values[:, :i] * weights[:i]).sum(axis=1) for i in range(4)], axis=1)
    np.testing.assert_array_equal(naive != values, below < 0)
    assert (naive != values)[:, 1:].mean() > 0.45   # upper lanes: wrong about half the time
    np.testing.assert_array_equal(lanes.unpack(words, layout), values)


def test_pack_unpack_validation():
    layout = LaneLayout(2, 8, value_bits=4)
    with pytest.raises(ValueError, match=r"values\[1\] = 8 is outside the 4-bit lane range -8..7"):
        lanes.pack([0, 8], layout)
    with pytest.raises(ValueError, match=r"shape \[..., 2\]"):
        lanes.pack([1, 2, 3], layout)
    with pytest.raises(ValueError, match="outside 0..2\\^16-1"):
        lanes.unpack(1 << 16, layout)
    with pytest.raises(ValueError, match="outside"):
        lanes.unpack(-1, layout)
    with pytest.raises(ValueError, match="count=0"):
        lanes.unpack(0, layout, count=0)
    with pytest.raises(TypeError, match="LaneLayout"):
        lanes.pack([1, 2], (2, 8))


# --- products in one multiplier -----------------------------------------------------------

def all_combinations(*ranges):
    grids = np.meshgrid(*[np.arange(lo, hi + 1) for lo, hi in ranges], indexing="ij")
    return [g.ravel() for g in grids]


@pytest.mark.parametrize("act_range, lanes_k", [((-8, 7), 2), ((0, 15), 2), ((-8, 7), 3)])
def test_shared_multiply_exhaustive_4bit(act_range, lanes_k):
    *acts, c = all_combinations(*([act_range] * lanes_k), (-8, 7))
    acts = np.stack(acts, axis=-1)
    products = lanes.multiply_shared(acts, c, 8)
    np.testing.assert_array_equal(products, acts * c[:, None])


def test_naive_extraction_is_wrong_whenever_the_low_product_is_negative():
    a, b, c = all_combinations((-8, 7), (-8, 7), (-8, 7))
    p = lanes.pack_operand(np.stack([b, a], axis=-1), 8) * c      # (a * 2^8 + b) * c
    naive_high = p >> 8                                           # signed(P[..:8]), no borrow
    wrong = naive_high != a * c
    np.testing.assert_array_equal(wrong, b * c < 0)
    assert wrong.sum() == 16 * (2 * 8 * 7)                        # b*c < 0 cases x all a
    corrected = lanes.extract_products(p, 2, 8)
    np.testing.assert_array_equal(corrected, np.stack([b * c, a * c], axis=-1))


def test_int8_pairs_exhaustively_and_the_naive_error_count():
    # All 2^24 (a, b, c): corrected extraction exact; naive wrong in 8,323,072 cases.
    b, c = all_combinations((-128, 127), (-128, 127))
    naive_wrong = 0
    for a in range(-128, 128):
        p = (a * (1 << 16) + b) * c
        out = lanes.extract_products(p, 2, 16)
        assert np.array_equal(out[:, 0], b * c) and np.array_equal(out[:, 1], a * c), a
        naive_wrong += int(np.count_nonzero((p >> 16) != a * c))
    assert naive_wrong == 8_323_072


def test_spacing_must_hold_every_lane_but_the_top():
    # lane 0: 3 * 20 = 60 <= 127; the top lane may be as wide as it needs.
    assert lanes.multiply_shared([3, 1000], 20, 8).tolist() == [60, 20000]
    with pytest.raises(ValueError, match="lane 0 product magnitude 128 exceeds 2\\^7-1 = 127"):
        lanes.multiply_shared([[1, 0], [-8, 0]], [1, -16], 8)
    with pytest.raises(ValueError, match="spacing=1"):
        lanes.multiply_shared([1, 2], 3, 1)
    with pytest.raises(ValueError, match="broadcast"):
        lanes.multiply_shared([[1, 2], [3, 4]], [1, 2, 3], 8)


def test_min_spacing_examples_and_tightness():
    assert lanes.min_spacing("int4", "int4") == 8
    assert lanes.min_spacing("uint4", "int4") == 8
    assert lanes.min_spacing("int8", "int8") == 16
    assert lanes.min_spacing("uint4", "apot4") == 9       # 15 * 10 = 150
    assert lanes.min_spacing("uint4", "int4", terms=4) == 10
    # At min_spacing every pair works; one bit less fails for the extreme pair.
    *acts, c = all_combinations((0, 15), (0, 15), (-10, 10))
    acts = np.stack(acts, axis=-1)
    s = lanes.min_spacing("uint4", "apot4")
    np.testing.assert_array_equal(lanes.multiply_shared(acts, c, s), acts * c[:, None])
    with pytest.raises(ValueError, match="too small"):
        lanes.multiply_shared(acts, c, s - 1)


def test_shared_multiply_beyond_int64():
    rng = np.random.default_rng(5)
    acts = rng.integers(-2 ** 15, 2 ** 15, (50, 4))
    c = rng.integers(-2 ** 15, 2 ** 15, 50)
    products = lanes.multiply_shared(acts, c, 32)                 # P spans ~130 bits
    assert products.tolist() == (acts.astype(object) * c.astype(object)[:, None]).tolist()
    assert lanes.pack_operand([1, -1], 8).tolist() == 1 - 256
