"""potgen.golden.requant: requantize against a scalar Python-int reference, and
quantize_multiplier against a brute-force search."""

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from potgen import golden


def ref_requant(acc, m, s, zp, lo, hi, relu):
    """One value, plain Python ints, straight from DESIGN.md section 2."""
    x = acc * m
    if s:
        x += 1 << (s - 1)
    out = zp + (x >> s)          # Python's >> floors, like an arithmetic shift
    if relu:
        lo = zp if lo is None else max(lo, zp)
    if lo is not None:
        out = max(out, lo)
    if hi is not None:
        out = min(out, hi)
    return out


def ref_requant_array(acc, m, s, zp, lo, hi, relu):
    acc = np.asarray(acc, dtype=object)
    channels = acc.shape[-1]
    pick = lambda p, c: (p[c] if isinstance(p, list) else p)  # noqa: E731
    out = np.empty(acc.shape, dtype=object)
    for index in np.ndindex(acc.shape):
        c = index[-1]
        out[index] = ref_requant(int(acc[index]), pick(m, c), pick(s, c), pick(zp, c),
                                 pick(lo, c), pick(hi, c), relu)
    assert out.shape[-1] == channels
    return out


# --- worked examples ------------------------------------------------------------------

def test_rounding_is_half_up_with_arithmetic_shift():
    out = golden.requantize([5, -5, 6, -6, 7, -7], 1, 1)
    # 2.5 -> 3, -2.5 -> -2, 3 -> 3, -3 -> -3, 3.5 -> 4, -3.5 -> -3
    assert out.tolist() == [3, -2, 3, -3, 4, -3]


def test_shift_zero_has_no_rounding_term():
    assert golden.requantize([7, -7], 3, 0, zero_point=1).tolist() == [22, -20]


def test_clamp_relu_and_zero_point():
    acc = [-1000, -3, 0, 3, 1000]
    assert golden.requantize(acc, 1, 0, zero_point=10, lo=0, hi=255).tolist() == [
        0, 7, 10, 13, 255]
    assert golden.requantize(acc, 1, 0, zero_point=10, lo=0, hi=255, relu=True).tolist() \
        == [10, 10, 10, 13, 255]
    assert golden.requantize(acc, 1, 0, zero_point=-5, lo=-128, hi=127, relu=True).tolist() \
        == [-5, -5, -5, -2, 127]


def test_per_channel_parameters_run_along_the_last_axis():
    acc = np.array([[100, 100, 100], [-100, -100, -100]])
    out = golden.requantize(acc, [1, 3, 5], [0, 2, 4], zero_point=[0, 1, 2])
    assert out.tolist() == [[100, 1 + 75, 2 + 31], [-100, 1 - 75, 2 - 31]]
    assert out.dtype == np.int64


def test_pot_scale_is_a_pure_shift():
    # m = 1, s = 3: a power-of-two scale of 1/8 with round half up.
    acc = np.arange(-20, 21)
    expected = [math.floor(a / 8 + 0.5) for a in acc.tolist()]
    assert golden.requantize(acc, 1, 3).tolist() == expected


# --- properties against the scalar reference -------------------------------------------

small = st.integers(-(2 ** 40), 2 ** 40)
huge = st.integers(-(2 ** 100), 2 ** 100)


@given(st.lists(st.one_of(small, huge), min_size=1, max_size=12),
       st.integers(-(2 ** 20), 2 ** 40), st.integers(0, 80), st.integers(-300, 300),
       st.one_of(st.none(), st.integers(-2 ** 20, 0)),
       st.one_of(st.none(), st.integers(1, 2 ** 20)), st.booleans())
def test_per_tensor_matches_reference(acc, m, s, zp, lo, hi, relu):
    assume(not (relu and hi is not None and hi < zp))  # refused: lo would exceed hi
    expected = [ref_requant(a, m, s, zp, lo, hi, relu) for a in acc]
    out = golden.requantize(np.array(acc, dtype=object), m, s, zp, lo, hi, relu)
    assert out.tolist() == expected
    if all(abs(v) < 2 ** 63 for v in expected):
        assert out.dtype == np.int64


@given(st.integers(1, 4), st.integers(1, 5), st.data())
def test_per_channel_matches_reference(rows, channels, data):
    values = data.draw(st.lists(st.lists(st.one_of(small, st.integers(-2 ** 70, 2 ** 70)),
                                         min_size=channels, max_size=channels),
                                min_size=rows, max_size=rows))
    def vec(elements):
        return st.lists(elements, min_size=channels, max_size=channels)

    m = data.draw(vec(st.integers(0, 2 ** 31)))
    s = data.draw(vec(st.integers(0, 70)))
    zp = data.draw(vec(st.integers(-128, 127)))
    lo = data.draw(st.one_of(st.none(), vec(st.integers(-200, -100))))
    hi = data.draw(st.one_of(st.none(), vec(st.integers(128, 2 ** 40))))
    relu = data.draw(st.booleans())
    acc = np.array(values, dtype=object)
    expected = ref_requant_array(acc, m, s, zp, lo, hi, relu)
    out = golden.requantize(acc, m, s, zp, lo, hi, relu)
    assert out.tolist() == expected.tolist()


@given(st.lists(st.integers(-(2 ** 31), 2 ** 31 - 1), min_size=1, max_size=20),
       st.integers(1, 2 ** 16 - 1), st.integers(0, 40), st.integers(-128, 127))
def test_int64_path_matches_reference(acc, m, s, zp):
    out = golden.requantize(np.array(acc, dtype=np.int64), m, s, zp, -128, 127)
    assert out.dtype == np.int64
    assert out.tolist() == [ref_requant(a, m, s, zp, -128, 127, False) for a in acc]


# --- validation -------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, error, words", [
    (dict(shift=-1), ValueError, "shift must be >= 0"),
    (dict(multiplier=[1, 2]), ValueError, "2 per-channel values"),
    (dict(multiplier=[[1, 2, 3]]), ValueError, "1-D"),
    (dict(multiplier=1.5), TypeError, "multiplier must be integers"),
    (dict(lo=5, hi=4), ValueError, "lo must be <= hi"),
    (dict(relu=1), TypeError, "relu"),
])
def test_requantize_validation(kwargs, error, words):
    args = dict(acc=np.zeros((2, 3), dtype=np.int64), multiplier=1, shift=0)
    args.update(kwargs)
    with pytest.raises(error, match=words):
        golden.requantize(**args)


def test_relu_zero_point_above_hi_is_refused():
    with pytest.raises(ValueError, match="after relu"):
        golden.requantize([1], 1, 0, zero_point=10, hi=5, relu=True)


# --- quantize_multiplier ------------------------------------------------------------------

def brute_force_multiplier(x: Fraction, bits: int, max_shift: int):
    best = None
    for s in range(max_shift + 1):
        for m in range(1 << bits):
            value = Fraction(m, 1 << s)
            key = (abs(value - x), -value)  # closest, ties to the larger value
            if best is None or key < best[0]:
                best = (key, value)
    return best[1]


@pytest.mark.parametrize("bits", [1, 2, 3, 5])
def test_quantize_multiplier_is_the_closest_pair(bits):
    rng = np.random.default_rng(bits)
    scales = [float(v) for v in np.exp(rng.uniform(-7, math.log(2 ** bits - 0.6), 60))]
    scales += [0.5, 0.25, 1.0, 2 ** bits - 1.0, 2 ** -7, 0.3, 1 / 3]
    for scale in scales:
        m, s = golden.quantize_multiplier(scale, bits=bits)
        assert 0 < m < 2 ** bits and s >= 0
        # The search space of the brute force covers the result's shift with margin.
        best = brute_force_multiplier(Fraction(scale), bits, max(s, 0) + 3)
        assert Fraction(m, 1 << s) == best, (scale, m, s)
        assert m % 2 == 1 or s == 0  # reduced form


@given(st.floats(min_value=2 ** -30, max_value=60000.0), st.integers(1, 24))
def test_quantize_multiplier_properties(scale, bits):
    assume(scale < 2 ** bits - 0.5)
    m, s = golden.quantize_multiplier(scale, bits=bits)
    assert 0 < m < 2 ** bits and s >= 0
    x = Fraction(scale)
    error = abs(Fraction(m, 1 << s) - x)
    # No finer grid point that fits the multiplier is closer: with the largest feasible
    # shift t, the error is at most half a step of 2^-t.
    t = s
    while math.floor(x * (1 << (t + 1)) + Fraction(1, 2)) < 2 ** bits:
        t += 1
    assert error <= Fraction(1, 1 << (t + 1))


def test_quantize_multiplier_worked_examples():
    assert golden.quantize_multiplier(0.125) == (1, 3)            # PoT scale: m = 1
    assert golden.quantize_multiplier(4.0) == (4, 0)
    assert golden.quantize_multiplier(0.3, bits=16) == (19661, 16)  # 0.3 * 2^16 = 19660.8
    assert golden.quantize_multiplier(1 / 3, bits=8) == (171, 9)    # 170.67 -> 171
    assert golden.quantize_multiplier(255.4, bits=8) == (255, 0)
    assert golden.quantize_multiplier(Fraction(3, 7), bits=4) == (7, 4)  # 6.857 -> 7
    assert golden.quantize_multiplier(0.3, bits=16, max_shift=4) == (5, 4)  # 4.8 -> 5
    assert golden.quantize_multiplier(np.float32(0.5)) == (1, 1)


@pytest.mark.parametrize("args, error, words", [
    ((0.0,), ValueError, "> 0"),
    ((-1.0,), ValueError, "> 0"),
    ((float("inf"),), ValueError, "finite"),
    ((float("nan"),), ValueError, "finite"),
    ((255.5, 8), ValueError, "too large"),
    ((1e-9, 16, 4), ValueError, "rounds to 0"),
    ((0.5, 0), ValueError, "bits=0"),
    ((0.5, 8, -1), ValueError, "max_shift"),
    (("0.5",), TypeError, "real number"),
])
def test_quantize_multiplier_validation(args, error, words):
    with pytest.raises(error, match=words):
        golden.quantize_multiplier(*args)
