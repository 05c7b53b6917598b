"""potgen.golden.arith: products, matmul fast paths, accumulator rules and flags.

Every property compares against an independent reference: Python-int object matmuls
for exact sums, and a scalar Python loop for wrap / saturate / flags / error.
"""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from potgen import golden
from potgen.formats import parse_format
from potgen.golden import arith
from potgen.golden import AccSpec, AccumulatorOverflow, MatmulResult

WEIGHT_SPECS = ["pot3", "pot4", "pot6", "pot4-nz", "apot3", "apot4", "apot5", "apot6",
                "apot7", "sp2-3", "sp2-4", "sp2-8", "upot:{0,1,4,8}+{0,2}",
                "upot:u{0,1}+{0,2}", "upot:{0,1}+{0,4}+{0,16,32}", "int2", "int4", "int8",
                "int16", "int32", "uint4", "uint8", "uint32"]
ACT_SPECS = ["uint2", "uint4", "uint8", "int4", "int8", "int16", "uint16", "int32"]


def ref_exact(a, w):
    """Exact matmul on Python ints."""
    return np.matmul(np.asarray(a).astype(object), np.asarray(w).astype(object))


def ref_accumulate(a, w, acc):
    """Scalar reference: (wrap, saturate, flags, first overflow) with plain Python ints."""
    a, w = np.asarray(a).tolist(), np.asarray(w).tolist()
    m_count, k_count, n_count = len(a), len(w), len(w[0]) if w else 0
    wrap = np.zeros((m_count, n_count), dtype=object)
    sat = np.zeros((m_count, n_count), dtype=object)
    flags = np.zeros((m_count, n_count), dtype=bool)
    first = None
    for m in range(m_count):
        for n in range(n_count):
            exact = s = 0
            for k in range(k_count):
                p = a[m][k] * w[k][n]
                exact += p
                s = min(max(s + p, acc.min), acc.max)
                if not acc.min <= exact <= acc.max:
                    if not flags[m, n] and first is None:
                        first = ((m, n), k, exact)
                    flags[m, n] = True
            wrap[m, n] = (exact - acc.min) % (1 << acc.bits) + acc.min
            sat[m, n] = s
    return wrap, sat, flags, first



@st.composite
def gemm(draw, max_m=6, max_k=24, max_n=6, act_specs=ACT_SPECS, weight_specs=WEIGHT_SPECS,
         extremes=True):
    """(acts, codes, fmt) with values drawn towards the format extremes."""
    act = parse_format(draw(st.sampled_from(act_specs)))
    fmt = parse_format(draw(st.sampled_from(weight_specs)))
    m = draw(st.integers(1, max_m))
    k = draw(st.integers(1, max_k))
    n = draw(st.integers(1, max_n))
    edge = [act.min_level, act.max_level, act.min_level + 1, act.max_level - 1, 0]
    act_values = (st.one_of(st.sampled_from(edge), st.integers(act.min_level, act.max_level))
                  if extremes else st.integers(act.min_level, act.max_level))
    acts = np.array(draw(st.lists(act_values, min_size=m * k, max_size=m * k)),
                    dtype=np.int64).reshape(m, k)
    top = (1 << fmt.bits) - 1
    codes = np.array(draw(st.lists(st.integers(0, top), min_size=k * n, max_size=k * n)),
                     dtype=np.int64).reshape(k, n)
    return acts, codes, fmt


# --- AccSpec and the exception -----------------------------------------------------------

def test_accspec_range_and_defaults():
    acc = AccSpec(8)
    assert (acc.bits, acc.overflow, acc.min, acc.max) == (8, "wrap", -128, 127)
    assert AccSpec(64, "saturate").min == -2 ** 63
    assert AccSpec(2, "error").max == 1
    with pytest.raises(Exception):
        acc.bits = 9  # frozen


@pytest.mark.parametrize("bits, overflow, error, words", [
    (1, "wrap", ValueError, "bits=1"),
    (65, "wrap", ValueError, "2..64"),
    (True, "wrap", TypeError, "bool"),
    ("8", "wrap", TypeError, "str"),
    (8.0, "wrap", TypeError, "float"),
    (8, "clamp", ValueError, "'clamp'"),
])
def test_accspec_validation(bits, overflow, error, words):
    with pytest.raises(error, match=words):
        AccSpec(bits, overflow)


def test_accumulator_overflow_is_arithmetic_and_value_error():
    assert issubclass(AccumulatorOverflow, ArithmeticError)
    assert issubclass(AccumulatorOverflow, ValueError)


# --- integers and products -------------------------------------------------------------

def test_as_integers_keeps_exact_values_and_refuses_non_integers():
    big = golden.as_integers([2 ** 63, -1], "x")
    assert big.dtype == object and big.tolist() == [2 ** 63, -1]
    assert golden.as_integers(np.array([2 ** 64 - 1], dtype=np.uint64), "x").tolist() == [
        2 ** 64 - 1]
    # -2^63 has no int64 negation, so it is kept as a Python int.
    assert golden.as_integers(np.array([-2 ** 63]), "x").dtype == object
    assert golden.as_integers(np.array([3], dtype=np.uint8), "x").dtype == np.int64
    with pytest.raises(TypeError, match="acts must be integers"):
        golden.as_integers([1.0, 2.0], "acts")
    with pytest.raises(TypeError, match="booleans"):
        golden.as_integers([True], "acts")
    with pytest.raises(TypeError, match="float"):
        golden.as_integers(np.array([1, 2.5], dtype=object), "acts")


def test_product_worked_example():
    # apot4 codes: 0b0111 = 3 + ... field0 index 3 -> 8, field1 index 1 -> 2: 10;
    # the sign bit (code 8 + ...) negates.
    fmt = parse_format("apot4")
    assert fmt.levels()[7] == 10 and fmt.levels()[15] == -10
    out = golden.product([[255], [-128]], [7, 15, 0], "apot4")
    assert out.tolist() == [[2550, -2550, 0], [-1280, 1280, 0]]
    assert out.dtype == np.int64


@given(gemm(max_m=5, max_k=5, max_n=1))
def test_product_matches_python_ints(case):
    acts, codes, fmt = case
    levels = fmt.decode(codes)[:, 0]
    expected = [[int(a) * int(w) for a, w in zip(row, levels)] for row in acts]
    assert golden.product(acts, codes[:, 0], fmt).tolist() == expected


def test_product_beyond_int64_uses_python_ints():
    out = golden.product([2 ** 40, -(2 ** 62)], [2 ** 31, 2 ** 31 - 1], "int32")
    assert out.dtype == object
    assert out.tolist() == [2 ** 40 * -(2 ** 31), -(2 ** 62) * (2 ** 31 - 1)]


def test_product_rejects_bad_shapes_and_codes():
    with pytest.raises(ValueError, match="broadcast"):
        golden.product([1, 2, 3], [1, 2], "int4")
    with pytest.raises(ValueError, match="out of range"):
        golden.product([1], [16], "int4")


# --- exact sums: every fast path ---------------------------------------------------------

@given(gemm())
def test_matmul_equals_exact_matmul(case):
    acts, codes, fmt = case
    expected = ref_exact(acts, fmt.decode(codes))
    result = golden.matmul(acts, codes, fmt)
    assert isinstance(result, MatmulResult)
    assert result.acc.tolist() == expected.tolist()
    assert not result.overflow.any()
    # An accumulator wide enough for the exact sums changes nothing.
    if all(abs(int(v)) < 2 ** 63 for v in expected.ravel()):
        wide = golden.matmul(acts, codes, fmt, AccSpec(64, "saturate"))
        assert wide.acc.tolist() == expected.tolist() and not wide.overflow.any()


@given(gemm(max_k=48, act_specs=["uint8", "int8"],
            weight_specs=["pot4", "apot4", "sp2-4", "int8", "uint8", "int4"]))
def test_matmul_equals_int64_matmul_when_nothing_overflows(case):
    acts, codes, fmt = case
    levels = fmt.decode(codes)
    result = golden.matmul(acts, codes, fmt, AccSpec(32, "wrap"))
    np.testing.assert_array_equal(result.acc, acts @ levels)
    assert result.acc.dtype == np.int64 and not result.overflow.any()


@pytest.mark.parametrize("bits_a, bits_w, k", [
    (12, 12, 4),    # < 2^24: float32
    (13, 12, 8),    # just past float32's exact range
    (24, 24, 8),    # float64
    (31, 27, 16),   # past float64: digits, recombined in int64
    (31, 31, 64),   # beyond int64: digits, recombined with Python ints
    (70, 31, 5),    # activations beyond int64
])
def test_matmul_fast_paths_are_exact_at_their_limits(bits_a, bits_w, k):
    rng = np.random.default_rng(bits_a * 100 + bits_w)
    # Odd values near the extremes: any rounding would change the low bits.
    top_a, top_w = 2 ** (bits_a - 1) - 1, 2 ** (bits_w - 1) - 1
    a = np.array([[(top_a - 2 * int(rng.integers(0, 4))) * (1 if rng.random() < .8 else -1)
                   for _ in range(k)] for _ in range(3)], dtype=object)
    w = np.array([[(top_w - 2 * int(rng.integers(0, 4))) * (1 if rng.random() < .8 else -1)
                   for _ in range(2)] for _ in range(k)], dtype=object)
    expected = ref_exact(a, w)
    result = golden.matmul_values(a, w)
    assert result.acc.tolist() == expected.tolist()
    # All-extreme operands: the largest possible sums.
    a_max = np.full((2, k), -(top_a + 1) if bits_a < 64 else top_a, dtype=object)
    w_max = np.full((k, 3), -(top_w + 1), dtype=object)
    assert golden.matmul_values(a_max, w_max).acc.tolist() == ref_exact(a_max, w_max).tolist()


def test_float32_threshold_is_respected():
    # sum = K * 4095 * 4097 is odd and above 2^24: float32 would round it.
    a = np.full((1, 3), 4095)
    w = np.full((3, 1), 4097)
    assert golden.matmul_values(a, w).acc[0, 0] == 3 * 4095 * 4097


def test_matmul_handles_empty_and_zero_operands():
    assert golden.matmul(np.zeros((2, 0), int), np.zeros((0, 3), int), "int4").acc.tolist() \
        == [[0, 0, 0]] * 2
    result = golden.matmul(np.full((2, 3), 2 ** 62), np.zeros((3, 2), int), "int8",
                           AccSpec(4, "error"))
    assert result.acc.tolist() == [[0, 0]] * 2
    empty = golden.matmul(np.zeros((0, 3), int), np.ones((3, 2), int), "int4", AccSpec(4))
    assert empty.acc.shape == empty.overflow.shape == (0, 2)


# --- accumulator rules against the scalar loop -------------------------------------------

@given(gemm(max_m=4, max_k=12, max_n=4, act_specs=["uint8", "int8", "int4", "uint4"],
            weight_specs=["pot4", "apot4", "sp2-4", "int4", "int8", "pot4-nz", "uint4"]),
       st.integers(2, 14), st.sampled_from(["wrap", "saturate"]))
def test_wrap_saturate_and_flags_match_scalar_loop(case, bits, overflow):
    acts, codes, fmt = case
    acc = AccSpec(bits, overflow)
    wrap, sat, flags, _ = ref_accumulate(acts, fmt.decode(codes), acc)
    result = golden.matmul(acts, codes, fmt, acc)
    expected = wrap if overflow == "wrap" else sat
    assert result.acc.tolist() == expected.tolist()
    assert result.acc.dtype == np.int64
    np.testing.assert_array_equal(result.overflow, flags)


@given(gemm(max_m=3, max_k=10, max_n=3, act_specs=["uint8", "int8"],
            weight_specs=["apot4", "int8", "pot4"]), st.integers(2, 16))
def test_error_mode_raises_at_the_first_overflow(case, bits):
    acts, codes, fmt = case
    acc = AccSpec(bits, "error")
    wrap, _, flags, first = ref_accumulate(acts, fmt.decode(codes), acc)
    if first is None:
        result = golden.matmul(acts, codes, fmt, acc)
        assert result.acc.tolist() == wrap.tolist() and not result.overflow.any()
        return
    with pytest.raises(AccumulatorOverflow) as info:
        golden.matmul(acts, codes, fmt, acc)
    position, index, partial = first
    assert info.value.position == position
    assert info.value.index == index
    assert info.value.partial_sum == partial
    assert str(partial) in str(info.value) and str(list(position)) in str(info.value)


def test_worked_example_saturate_vs_wrap():
    # int4 accumulator [-8, 7], products 7, 7, -7: prefixes 7, 14 (!), 7.
    acts, w = [[1, 1, -1]], [[7], [7], [7]]
    sat = golden.matmul_values(acts, w, AccSpec(4, "saturate"))
    wrap = golden.matmul_values(acts, w, AccSpec(4, "wrap"))
    assert sat.acc.tolist() == [[0]] and sat.overflow.tolist() == [[True]]   # 7, 7, 0
    assert wrap.acc.tolist() == [[7]] and wrap.overflow.tolist() == [[True]]  # 14 wrapped back
    with pytest.raises(AccumulatorOverflow, match=r"partial sum 14 after reduction index 1"):
        golden.matmul_values(acts, w, AccSpec(4, "error"))


def test_flag_is_sticky_even_when_the_sum_returns_in_range():
    value, flag = golden.dot([100, -100, 1], [1, 1, 1], "int2", AccSpec(8, "wrap"))
    # levels of int2 code 1 = 1; prefix sums 100, 0, 1 stay in range
    assert (value, flag) == (1, False)
    value, flag = golden.dot([100, 100, -100], [1, 1, 1], "int2", AccSpec(8, "wrap"))
    assert (value, flag) == (100, True)


def test_screening_at_scale_matches_vectorised_reference(monkeypatch):
    # Small chunks force the candidate scan through many of them.
    monkeypatch.setattr(arith, "_SCAN_CHUNK", 7)
    rng = np.random.default_rng(7)
    m, k, n = 24, 96, 20
    acts = rng.integers(-128, 128, (m, k))
    acts[:, : k // 2] = np.abs(acts[:, : k // 2])  # skewed rows reach the edges
    w = rng.integers(-16, 17, (k, n))
    w[:, :6] = rng.integers(-1, 2, (k, 6))             # columns the screen clears
    acc_bits = 14
    lo, hi = -2 ** 13, 2 ** 13 - 1
    prods = acts[:, :, None] * w[None, :, :]            # [m, k, n]
    prefix = np.cumsum(prods, axis=1)
    flags = ((prefix < lo) | (prefix > hi)).any(axis=1)
    assert 0 < flags.sum() < flags.size                  # some, not all, overflow
    screened = (np.maximum(prods, 0).sum(axis=1) > hi) | (np.minimum(prods, 0).sum(axis=1) < lo)
    assert not screened[:, :6].any() and screened[:, 6:].all()
    sat = np.zeros((m, n), dtype=np.int64)
    for j in range(k):
        sat = np.clip(sat + prods[:, j, :], lo, hi)
    exact = prods.sum(axis=1)
    result = golden.matmul_values(acts, w, AccSpec(acc_bits, "saturate"))
    np.testing.assert_array_equal(result.acc, sat)
    np.testing.assert_array_equal(result.overflow, flags)
    result = golden.matmul_values(acts, w, AccSpec(acc_bits, "wrap"))
    np.testing.assert_array_equal(result.acc, (exact - lo) % 2 ** acc_bits + lo)
    np.testing.assert_array_equal(result.overflow, flags)


@pytest.mark.parametrize("bits, overflow", [(37, "saturate"), (37, "wrap"), (36, "error")])
def test_scan_beyond_32_bit_partial_sums(bits, overflow):
    # Partial sums around 2^35 : the sequential scan must not use 32-bit arithmetic.
    rng = np.random.default_rng(bits)
    a = rng.integers(2 ** 30, 2 ** 31, (3, 40)) * rng.choice([-1, 1, 1], (3, 40))
    w = rng.integers(1, 8, (40, 4))
    acc = AccSpec(bits, overflow)
    wrap, sat, flags, first = ref_accumulate(a, w, acc)
    if overflow == "error":
        assert first is not None
        with pytest.raises(AccumulatorOverflow) as info:
            golden.matmul_values(a, w, acc)
        assert (info.value.position, info.value.index, info.value.partial_sum) == first
        return
    assert flags.any() and not flags.all()
    result = golden.matmul_values(a, w, acc)
    assert result.acc.tolist() == (sat if overflow == "saturate" else wrap).tolist()
    np.testing.assert_array_equal(result.overflow, flags)


def test_wide_accumulators_and_huge_partial_sums():
    a = np.array([[2 ** 62, 2 ** 62, -(2 ** 62)]], dtype=object)
    w = np.array([[3], [3], [3]])
    acc = AccSpec(64, "saturate")
    wrap, sat, flags, _ = ref_accumulate(a, w, acc)
    assert golden.matmul_values(a, w, acc).acc.tolist() == sat.tolist()
    result = golden.matmul_values(a, w, AccSpec(64, "wrap"))
    assert result.acc.tolist() == wrap.tolist() and result.overflow.tolist() == [[True]]


# --- dot and validation --------------------------------------------------------------------

def test_dot_returns_python_int_and_bool():
    value, flag = golden.dot([1, 2, 3], [1, 2, 3], "pot4")   # levels 1, 2, 4
    assert (value, flag) == (1 + 4 + 12, False)
    assert type(value) is int and type(flag) is bool


@pytest.mark.parametrize("call, error, words", [
    (lambda: golden.matmul([[1, 2]], [[1, 2]], "int4"), ValueError, "K=2"),
    (lambda: golden.matmul([1, 2], [[1], [2]], "int4"), ValueError, "shapes"),
    (lambda: golden.matmul([[1, 2]], [1, 2], "int4"), ValueError, r"\[K, N\]"),
    (lambda: golden.matmul([[1.5]], [[1]], "int4"), TypeError, "acts must be integers"),
    (lambda: golden.matmul([[1]], [[1]], "int4", acc=16), TypeError, "AccSpec"),
    (lambda: golden.matmul([[1]], [[99]], "int4"), ValueError, "out of range"),
    (lambda: golden.matmul([[1]], [[1]], "int99"), ValueError, "int99"),
    (lambda: golden.dot([1, 2], [1], "int4"), ValueError, "2 elements"),
])
def test_matmul_validation(call, error, words):
    with pytest.raises(error, match=words):
        call()
