"""Quantization: round trips, exact ties, the nearest property, QKeras log2 rounding,
per-channel scales, calibration and the MSQ row split (against brute force)."""

import itertools
import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, strategies as st

from potgen.formats import IntFormat, parse_format
from potgen.quantize import (MSE_GRID, calibrate_scale, dequantize, msq_split, quantize)

TABLE_SPECS = ["pot3", "pot4", "pot5", "pot4-nz", "pot2-nz", "apot3", "apot4", "apot5",
               "sp2-4", "sp2-5", "upot:{0,1,4,8}+{0,2}", "upot:u{0,1,2}+{0,8}",
               "upot:u{1,2,4}"]
INT_SPECS = ["int2", "int4", "int8", "uint4", "uint8", "int16", "uint16", "int32"]
ALL_SPECS = TABLE_SPECS + INT_SPECS
SCALES = [1.0, 0.125, 0.37, 3.0, 1e-3]


def levels_of(fmt):
    if fmt.bits <= 16:
        return [int(v) for v in fmt.representable()]
    return None


def reference_nearest(v, fmt):
    """Scalar reference: the nearest level to v, exactly; ties to the larger magnitude,
    and the 0-tie between -a and +a to +a."""
    fv = Fraction(v)
    if isinstance(fmt, IntFormat):  # round half away from zero, clamp
        lo, hi = fmt.min_level, fmt.max_level
        fv = min(max(fv, lo), hi)
        r = math.floor(abs(fv) + Fraction(1, 2))
        return r if fv >= 0 else -r
    return min(levels_of(fmt), key=lambda lv: (abs(fv - lv), -abs(lv), -lv))


# --- round trips ---------------------------------------------------------------------------

@given(st.sampled_from(ALL_SPECS), st.sampled_from(SCALES), st.integers(0, 2 ** 32 - 1))
def test_quantize_of_dequantize_gives_canonical_codes(spec, scale, seed):
    fmt = parse_format(spec)
    codes = np.random.default_rng(seed).integers(0, 1 << fmt.bits, size=64)
    canonical = fmt.encode(fmt.decode(codes))
    assert np.array_equal(quantize(dequantize(codes, fmt, scale), fmt, scale), canonical)
    assert np.array_equal(fmt.decode(quantize(fmt.decode(codes) * 1.0, fmt, 1.0)),
                          fmt.decode(codes))


def test_dequantize_is_scale_times_level():
    fmt = parse_format("apot4")
    codes = np.arange(16)
    assert np.array_equal(dequantize(codes, fmt, 0.5), np.asarray(fmt.levels()) * 0.5)
    s = np.array([1.0, 2.0])
    out = dequantize(np.array([[1, 2], [3, 9]]), "int4", s, axis=1)
    assert np.array_equal(out, [[1.0, 4.0], [3.0, -14.0]])


# --- ties and the nearest property -----------------------------------------------------------

@pytest.mark.parametrize("spec", TABLE_SPECS + ["int4", "uint4", "int8"])
@pytest.mark.parametrize("scale", [1.0, 0.25, 8.0])
def test_exact_midpoints_go_to_the_larger_magnitude(spec, scale):
    fmt = parse_format(spec)
    lv = levels_of(fmt)
    for a, b in zip(lv, lv[1:]):
        mid = (a + b) / 2.0
        got = int(fmt.decode(quantize(mid * scale, fmt, scale)))
        want = b if abs(b) > abs(a) else a
        if abs(a) == abs(b):
            want = abs(a)  # the tie at 0 between -a and +a goes to +a
        assert got == want, (spec, a, b, got)


def test_int_rounding_is_half_away_from_zero():
    x = np.array([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 0.49999999999999994, -0.49999999999999994,
                  7.5, -8.5, 100.0, -np.inf, np.inf])
    assert fmt_values(x, "int4").tolist() == [1, 2, 3, -1, -2, -3, 0, 0, 7, -8, 7, -8, 7]
    assert fmt_values(np.array([-3.0, 0.5, 255.5]), "uint8").tolist() == [0, 1, 255]


def fmt_values(x, spec, scale=1.0, **kw):
    fmt = parse_format(spec)
    return fmt.decode(quantize(x, fmt, scale, **kw))


finite = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)


@given(st.sampled_from(ALL_SPECS), st.sampled_from(SCALES),
       st.lists(finite, min_size=1, max_size=40))
def test_nearest_no_level_is_closer_by_brute_force(spec, scale, xs):
    fmt = parse_format(spec)
    x = np.array(xs)
    got = fmt_values(x, fmt, scale)
    for xi, g in zip(xs, got):
        assert int(g) == reference_nearest(xi / scale, fmt), (spec, xi, scale)


@given(st.sampled_from(TABLE_SPECS + ["int4", "uint8"]), st.integers(0, 2 ** 32 - 1))
def test_values_near_midpoints_round_exactly(spec, seed):
    # One ulp either side of each midpoint, where float distance comparisons go wrong.
    fmt = parse_format(spec)
    lv = levels_of(fmt)
    mids = np.array([(a + b) / 2.0 for a, b in zip(lv, lv[1:])])
    x = np.concatenate([np.nextafter(mids, np.inf), np.nextafter(mids, -np.inf), mids,
                        np.array(lv, float) + np.random.default_rng(seed).uniform(-1, 1, len(lv))])
    got = fmt_values(x, fmt)
    assert [int(g) for g in got] == [reference_nearest(v, fmt) for v in x]


def test_out_of_range_values_clamp():
    assert fmt_values(np.array([1e300, -1e300, np.inf, -np.inf]), "apot4").tolist() == \
        [10, -10, 10, -10]
    assert fmt_values(np.array([-5.0, 0.0, 0.4]), "upot:u{1,2,4}").tolist() == [1, 1, 1]


# --- log2 rounding (QKeras quantized_po2) -----------------------------------------------------

def qkeras_po2(x, bits):
    """Independent scalar transcription of QKeras quantized_po2(bits) (max_value=None)."""
    min_exp, max_exp = -2 ** (bits - 2), 2 ** (bits - 2) - 1
    sign = 1.0 if x >= 0 else -1.0  # tf.sign(0) = 0, then sign += 1 - |sign|
    a = abs(x)
    if a < 1e-7:  # keras epsilon
        e = min_exp
    else:
        e = min(max(round(math.log(a) / math.log(2.0)), min_exp), max_exp)
    return sign * 2.0 ** e


@given(st.integers(2, 6), st.lists(
    st.one_of(st.floats(-1e12, 1e12, allow_nan=False),
              st.floats(-64, 64, allow_nan=False), st.just(0.0), st.just(-0.0)),
    min_size=1, max_size=30))
def test_log2_on_pot_nz_matches_qkeras(bits, xs):
    fmt = parse_format(f"pot{bits}-nz")
    scale = 2.0 ** (-2 ** (bits - 2))
    got = dequantize(quantize(np.array(xs), fmt, scale, rounding="log2"), fmt, scale)
    assert got.tolist() == [qkeras_po2(x, bits) for x in xs]


def pot_log2_reference(v, bits):
    """potN under log2: zero below 1/2, else QKeras's rule on exponents 0..2^(N-1)-2."""
    if abs(v) < 0.5:
        return 0
    e = min(max(round(math.log2(abs(v))), 0), 2 ** (bits - 1) - 2)
    return (1 << e) if v > 0 else -(1 << e)


@given(st.integers(2, 6), st.lists(st.floats(-1e9, 1e9, allow_nan=False), min_size=1,
                                   max_size=30))
def test_log2_on_pot_with_zero_follows_its_documented_rule(bits, xs):
    got = fmt_values(np.array(xs), f"pot{bits}", rounding="log2")
    assert got.tolist() == [pot_log2_reference(x, bits) for x in xs]


def test_log2_zero_and_tiny_values():
    x = np.array([0.0, -0.0, 5e-324, -5e-324, 0.4999, 0.5, -0.5, 0.70, 1.0])
    assert fmt_values(x, "pot4-nz", rounding="log2").tolist() == [1, 1, 1, -1, 1, 1, -1, 1, 1]
    assert fmt_values(x, "pot4", rounding="log2").tolist() == [0, 0, 0, 0, 0, 1, -1, 1, 1]


def test_log2_boundaries_are_exact():
    # round(log2 m) switches at m = 2^(k + 1/2); check the floats on either side exactly.
    for k in range(14):
        t = math.sqrt(2.0) * 2.0 ** k
        for m in (np.nextafter(t, 0), t, np.nextafter(t, np.inf)):
            exact_up = Fraction(float(m)) ** 2 > Fraction(2) ** (2 * k + 1)
            want = 2 ** (k + 1) if exact_up else 2 ** k
            assert fmt_values(np.array([m, -m]), "pot5-nz", rounding="log2").tolist() == \
                [want, -want], (k, m)


def test_log2_refuses_formats_without_a_power_run():
    for spec in ("apot4", "int8", "sp2-4", "upot:{0,1,4}"):
        with pytest.raises(ValueError, match="rounding='log2' needs a power-of-two format"):
            quantize([1.0], spec, 1.0, rounding="log2")


# --- per-channel scales ----------------------------------------------------------------------

@given(st.sampled_from(["int4", "apot4", "pot4", "sp2-4"]), st.integers(0, 2 ** 32 - 1),
       st.sampled_from([0, 1, -1]))
def test_per_channel_equals_slice_by_slice(spec, seed, axis):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(5, 7))
    n = x.shape[axis]
    scales = rng.uniform(0.01, 2.0, size=n)
    codes = quantize(x, spec, scales, axis=axis)
    for i in range(n):
        one = quantize(np.take(x, i, axis=axis), spec, scales[i])
        assert np.array_equal(np.take(codes, i, axis=axis), one)
    back = dequantize(codes, spec, scales, axis=axis)
    for i in range(n):
        assert np.array_equal(np.take(back, i, axis=axis),
                              dequantize(np.take(codes, i, axis=axis), spec, scales[i]))


# --- calibration -----------------------------------------------------------------------------

def test_max_calibration_puts_the_extreme_on_the_extreme_level():
    x = np.array([[0.3, -1.2, 0.5], [4.0, -1.0, 2.0]])
    assert calibrate_scale(x, "apot4") == 4.0 / 10
    assert calibrate_scale(x, "int8") == 4.0 / 127
    assert calibrate_scale(-x, "int8") == 4.0 / 128
    per_row = calibrate_scale(x, "pot4", axis=0)
    assert per_row.tolist() == [1.2 / 64, 4.0 / 64]
    assert calibrate_scale(np.zeros((2, 3)), "int4", axis=1).tolist() == [1.0, 1.0, 1.0]
    # Nothing clips at the max scale.
    rng = np.random.default_rng(3)
    for spec in ("int4", "uint8", "apot5", "sp2-4", "pot5"):
        y = rng.normal(size=200)
        s = calibrate_scale(y, spec)
        fmt = parse_format(spec)
        v = y / s
        assert v.max() <= fmt.max_level * (1 + 1e-12)
        if fmt.min_level < 0:
            assert v.min() >= fmt.min_level * (1 + 1e-12)


def sq_error(x, spec, scale, rounding="nearest"):
    return float(np.sum((x - dequantize(quantize(x, spec, scale, rounding=rounding), spec,
                                        scale)) ** 2))


@given(st.sampled_from(["int4", "uint4", "apot4", "pot4", "sp2-4", "pot4-nz"]),
       st.integers(0, 2 ** 32 - 1))
def test_mse_calibration_is_the_best_grid_point(spec, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_t(4, size=(3, 50))
    s_max = calibrate_scale(x, spec, "max")
    s = calibrate_scale(x, spec, "mse")
    errors = [sq_error(x, spec, s_max * f) for f in MSE_GRID]
    assert any(s == s_max * f for f in MSE_GRID)
    assert sq_error(x, spec, s) <= min(errors) * (1 + 1e-12)
    assert sq_error(x, spec, s) <= sq_error(x, spec, s_max) * (1 + 1e-12)
    # Per channel equals calibrating each row on its own.
    per_row = calibrate_scale(x, spec, "mse", axis=0)
    assert per_row.tolist() == [calibrate_scale(r, spec, "mse") for r in x]


def test_mse_calibration_beats_max_with_outliers():
    x = np.concatenate([np.random.default_rng(1).normal(size=5000), [40.0]])
    assert sq_error(x, "int4", calibrate_scale(x, "int4", "mse")) < \
        0.5 * sq_error(x, "int4", calibrate_scale(x, "int4", "max"))


def test_mse_calibration_with_log2_rounding():
    x = np.random.default_rng(5).normal(size=300)
    s = calibrate_scale(x, "pot4-nz", "mse", rounding="log2")
    s_max = calibrate_scale(x, "pot4-nz", "max")
    best = min(sq_error(x, "pot4-nz", s_max * f, "log2") for f in MSE_GRID)
    assert sq_error(x, "pot4-nz", s, "log2") <= best * (1 + 1e-12)


# --- MSQ row split ---------------------------------------------------------------------------

def row_error(row, spec, method):
    return sq_error(row, spec, calibrate_scale(row, spec, method))


@given(st.integers(1, 6), st.integers(1, 6), st.floats(0, 1), st.sampled_from(["max", "mse"]),
       st.integers(0, 2 ** 32 - 1))
def test_msq_split_is_optimal_against_brute_force(rows, cols, fraction, method, seed):
    w = np.random.default_rng(seed).standard_t(3, size=(rows, cols))
    r = msq_split(w, fraction, scale_method=method)
    n = round(fraction * rows)
    assert r.sp2_rows.sum() == n
    e_u = [row_error(w[i], "int4", method) for i in range(rows)]
    e_s = [row_error(w[i], "sp2-4", method) for i in range(rows)]
    best = min(sum(e_s[i] if i in chosen else e_u[i] for i in range(rows))
               for chosen in map(set, itertools.combinations(range(rows), n)))
    assert r.error == pytest.approx(best, rel=1e-12, abs=1e-300)
    assert r.error <= best * (1 + 1e-12)
    # The stored codes and scales reproduce the error.
    assert float(np.sum((w - r.dequantize()) ** 2)) == pytest.approx(r.error, rel=1e-12)
    for i in range(rows):
        want = e_s[i] if r.sp2_rows[i] else e_u[i]
        assert r.row_errors[i] == pytest.approx(want, rel=1e-12, abs=1e-300)


def test_msq_split_layout():
    w = np.random.default_rng(0).normal(size=(10, 16))
    r = msq_split(w, 0.3, uniform="int4", sp2="sp2-4", scale_method="max")
    assert r.sp2_rows.sum() == 3 and r.sp2_codes.shape == (3, 16)
    assert r.uniform_codes.shape == (7, 16)
    assert str(r.uniform_format) == "int4" and str(r.sp2_format) == "sp2-4"
    sp2 = np.flatnonzero(r.sp2_rows)
    assert np.array_equal(r.sp2_codes, quantize(w[sp2], "sp2-4", r.scales[sp2], axis=0))
    uni = np.flatnonzero(~r.sp2_rows)
    assert np.array_equal(r.uniform_codes, quantize(w[uni], "int4", r.scales[uni], axis=0))
    assert msq_split(w, 0.0).sp2_rows.sum() == 0 and msq_split(w, 1.0).sp2_rows.all()


# --- validation ------------------------------------------------------------------------------

@pytest.mark.parametrize("call, exc, message", [
    (lambda: quantize([np.nan], "int4", 1.0), ValueError, "x contains NaN"),
    (lambda: quantize(["a"], "int4", 1.0), TypeError, "x must be a real numeric array"),
    (lambda: quantize([1.0], "int4", 0.0), ValueError, r"scale must be positive and finite; got \[0.0\]"),
    (lambda: quantize([1.0], "int4", -1.0), ValueError, "positive and finite"),
    (lambda: quantize([1.0], "int4", np.inf), ValueError, "positive and finite"),
    (lambda: quantize(np.ones((2, 3)), "int4", [1.0, 2.0]), ValueError, "per-channel scale needs axis"),
    (lambda: quantize(np.ones((2, 3)), "int4", [1.0, 2.0], axis=1), ValueError, r"shape \(3,\) to match axis 1"),
    (lambda: quantize(np.ones((2, 3)), "int4", 1.0, axis=2), ValueError, "axis=2 is out of range"),
    (lambda: quantize([1.0], "int4", 1.0, rounding="up"), ValueError, "rounding must be one of nearest, log2; got 'up'"),
    (lambda: quantize([1.0], "int44", 1.0), ValueError, "int44"),
    (lambda: dequantize([16], "int4", 1.0), ValueError, "codes .16. out of range"),
    (lambda: calibrate_scale([1.0], "int4", "p99"), ValueError, "method must be one of max, mse; got 'p99'"),
    (lambda: calibrate_scale([1.0, np.inf], "int4"), ValueError, "infinities"),
    (lambda: calibrate_scale([], "int4"), ValueError, "x is empty"),
    (lambda: msq_split(np.ones((2, 2)), 1.5), ValueError, r"sp2_fraction must be in \[0, 1\].*1.5"),
    (lambda: msq_split(np.ones((2, 2)), "half"), TypeError, "sp2_fraction must be a number"),
    (lambda: msq_split(np.ones(4), 0.5), ValueError, r"\[rows, cols\] matrix, got shape \(4,\)"),
    (lambda: msq_split(np.ones((2, 2)), 0.5, scale_method="p99"), ValueError, "scale_method"),
])
def test_bad_input_is_refused_with_a_clear_message(call, exc, message):
    with pytest.raises(exc, match=message):
        call()
