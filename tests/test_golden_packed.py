"""potgen.golden.packed: packed matrix products against the plain golden matmul."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from potgen import golden
from potgen.golden import packed
from potgen.golden.lanes import LaneLayout, unpack
from potgen.golden.packed import PackedPlan, plan_for


@st.composite
def operands(draw):
    m, k, n = (draw(st.integers(1, 24)), draw(st.integers(1, 300)),
               draw(st.integers(1, 24)))
    a_bits, w_bits = draw(st.integers(1, 12)), draw(st.integers(1, 12))
    a_signed, w_signed = draw(st.booleans()), draw(st.booleans())
    seed = draw(st.integers(0, 2 ** 32 - 1))
    rng = np.random.default_rng(seed)

    def matrix(shape, bits, signed):
        lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
        x = rng.integers(lo, hi + 1, shape)
        if rng.random() < 0.3:   # extremes: the largest partial sums
            x[rng.random(shape) < 0.7] = lo if signed and rng.random() < 0.5 else hi
        return x

    return matrix((m, k), a_bits, a_signed), matrix((k, n), w_bits, w_signed)


@given(ops=operands(), method=st.sampled_from(packed.METHODS), data=st.data())
def test_every_method_equals_golden_matmul(ops, method, data):
    a, w = ops
    want = golden.matmul_values(a, w).acc
    bound = int(np.abs(a).sum(axis=1).max() * np.abs(w).max()) if a.size else 0
    bound = max(bound, int(np.abs(w).sum(axis=0).max() * np.abs(a).max()))
    try:
        most = plan_for(bound, method)
    except ValueError:
        return   # no lane of this method holds these sums exactly
    lanes = data.draw(st.integers(1, most.lanes))
    plan = plan_for(bound, method, lanes)
    np.testing.assert_array_equal(packed.packed_matmul_values(a, w, plan), want)


@given(ops=operands())
def test_default_and_hook_equal_golden(ops):
    a, w = ops
    want = golden.matmul_values(a, w).acc
    np.testing.assert_array_equal(packed.packed_matmul_values(a, w), want)
    bound = max(int(np.abs(a).sum(axis=1).max() * np.abs(w).max()),
                int(np.abs(w).sum(axis=0).max() * np.abs(a).max()))
    hooked = packed.exact_matmul(a.astype(np.int64), w.astype(np.int64), bound)
    if hooked is not None:
        np.testing.assert_array_equal(hooked, want)


def test_peel_agrees_with_golden_unpack():
    """The kernel's peel is the golden two's complement unpack of the packed sums."""
    rng = np.random.default_rng(0)
    lanes = rng.integers(-(1 << 10), 1 << 10, (1000, 3))
    spacing = 12
    layout = LaneLayout(3, spacing, True)
    packed_sums = sum(lanes[:, i] << (i * spacing) for i in range(3))
    words = packed_sums.astype(np.int64).view(np.uint64) & np.uint64((1 << 36) - 1)
    peeled = np.stack(packed._peel(packed_sums, 3, spacing), axis=1)
    np.testing.assert_array_equal(peeled, unpack(words, layout))
    np.testing.assert_array_equal(peeled, lanes)


def test_worst_case_sums_stay_exact():
    """Every operand at its extreme: partial sums at the edge of the proved range."""
    k = 1024
    a = np.full((9, k), -8)
    w = np.full((k, 5), -8)
    w[:, 0] = 7
    plan = plan_for(k * 64, "float64")
    assert (plan.lanes, plan.spacing) == (3, 18)
    np.testing.assert_array_equal(packed.packed_matmul_values(a, w, plan), a @ w)
    plan = plan_for(k * 64, "uint64")
    assert (plan.lanes, plan.spacing) == (3, 18)
    np.testing.assert_array_equal(packed.packed_matmul_values(a, w, plan), a @ w)


def test_plan_arithmetic():
    # int4 x int4, K = 1024: B = 2^16, S = 18. float32 holds one lane only.
    plan = plan_for(1 << 16, "float32")
    assert (plan.lanes, plan.spacing) == (1, 18)
    with pytest.raises(ValueError, match=r"2\^24"):
        PackedPlan("float32", 2, 18, 1 << 16)
    assert plan_for(1 << 16, "float64").packed_bound == (1 << 16) * (1 + 2 ** 18 + 2 ** 36)
    with pytest.raises(ValueError, match=r"lanes=4:.*2\^53"):
        PackedPlan("float64", 4, 18, 1 << 16)
    with pytest.raises(ValueError, match="spacing=17: lane sums up to"):
        PackedPlan("float64", 2, 17, 1 << 16)
    with pytest.raises(ValueError, match="4 x 18 bits exceed a 64-bit word"):
        PackedPlan("uint64", 4, 18, 1 << 16)
    with pytest.raises(ValueError, match="method='int128'"):
        PackedPlan("int128", 1, 8, 1)
    with pytest.raises(TypeError, match="lanes=2.0"):
        PackedPlan("float64", 2.0, 18, 1)


def test_select_says_when_packing_pays():
    rng = np.random.default_rng(1)
    # The 4-bit GEMM: plain float32 is already one exact GEMM; packing does not pay.
    a4 = rng.integers(-8, 8, (256, 1024))
    w4 = rng.integers(-8, 8, (1024, 256))
    assert packed.select(a4, w4) is None
    # 8-bit x 8-bit: the plain path needs float64; two float64 lanes halve the GEMM.
    a8 = rng.integers(0, 256, (256, 1024))
    w8 = rng.integers(-128, 128, (1024, 256))
    plan = packed.select(a8, w8)
    assert plan is not None and (plan.method, plan.lanes) == ("float64", 2)
    np.testing.assert_array_equal(packed.packed_matmul_values(a8, w8), a8 @ w8)
    # Too small to be worth a second pass.
    assert packed.select(a8[:1], w8) is None


def test_codes_entry_point_and_errors():
    rng = np.random.default_rng(2)
    acts = rng.integers(0, 16, (7, 40))
    codes = rng.integers(0, 16, (40, 3))
    np.testing.assert_array_equal(packed.packed_matmul(acts, codes, "apot4"),
                                  golden.matmul(acts, codes, "apot4").acc)
    with pytest.raises(ValueError, match="acts has K=40 columns but weights has K=3"):
        packed.packed_matmul_values(acts, codes.T)
    with pytest.raises(ValueError, match="plan is proved for partial sums up to 10"):
        packed.packed_matmul_values(acts, codes, plan_for(10, "float64"))
    with pytest.raises(ValueError, match="need int64 operands"):
        packed.packed_matmul_values(np.array([[2 ** 70]], dtype=object), [[1]])
    with pytest.raises(TypeError, match="plan must be a PackedPlan"):
        packed.packed_matmul_values(acts, codes, plan="float64")
