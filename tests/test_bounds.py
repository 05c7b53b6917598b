"""Accumulator bounds: worked examples (BACKGROUND.md 3), adversarial partial sums,
minimality, A2Q formula equivalence, validation."""

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, strategies as st

from potgen import bounds
from potgen.bounds import Bound, BoundError, signed_width
from potgen.formats import parse_format

ACT_SPECS = [f"{k}{n}" for k in ("int", "uint") for n in range(2, 13)]
WEIGHT_SPECS = ["int2", "int4", "int8", "uint4", "pot3", "pot4", "pot5", "pot4-nz",
                "apot3", "apot4", "apot5", "sp2-4", "sp2-5", "upot:{0,1,4,8}+{0,2}",
                "upot:u{0,1,2}+{0,8}"]


def fits(lo, hi, p):
    return -(1 << (p - 1)) <= lo and hi <= (1 << (p - 1)) - 1


# --- signed_width -------------------------------------------------------------------------

def test_signed_width_matches_definition():
    for lo in range(-70, 71):
        for hi in range(lo, 71):
            p = signed_width(lo, hi)
            assert fits(lo, hi, p) and (p == 1 or not fits(lo, hi, p - 1)), (lo, hi, p)


@pytest.mark.parametrize("lo, hi, p", [(0, 0, 1), (-1, 0, 1), (0, 1, 2), (-2, 1, 2),
                                       (-128, 127, 8), (-129, 0, 9), (0, 128, 9),
                                       (-(1 << 63), (1 << 63) - 1, 64), (0, 1 << 100, 102),
                                       (np.int64(-16711680), np.int64(16581120), 25)])
def test_signed_width_examples(lo, hi, p):
    assert signed_width(lo, hi) == p


def test_signed_width_rejects_bad_input():
    with pytest.raises(ValueError, match="lo=3 is above hi=2"):
        signed_width(3, 2)
    with pytest.raises(TypeError, match="lo must be an integer"):
        signed_width(1.5, 2)


# --- worked examples (BACKGROUND.md 3) ------------------------------------------------------

def test_datatype_uint8_int8_k512_is_25_bits_closed_form_26():
    b = bounds.datatype("uint8", "int8", 512)
    assert (b.bits, b.min, b.max) == (25, -512 * 255 * 128, 512 * 255 * 127)
    assert b.min == -16_711_680
    assert b.closed_form_bits == 26
    assert b.product_range == (-32640, 32385)
    assert b.to_dict() == {"bits": 25, "min": -16711680, "max": 16581120}


def test_datatype_uint8_pot4_k512_is_24_bits():
    b = bounds.datatype("uint8", "pot4", 512)
    assert (b.bits, b.min, b.max) == (24, -512 * 255 * 64, 512 * 255 * 64)
    assert b.closed_form_bits is None  # the int closed form does not describe pot levels


def test_exact_on_random_int8_k512_uint8_is_24_bits():
    # BACKGROUND.md: "random int8 W, K = 512, uint8 x -> 24 bits vs 26".
    w = np.random.default_rng(2024).integers(-128, 128, size=(512, 64))
    b = bounds.exact("uint8", w)
    assert b.bits == 24
    assert bounds.datatype("uint8", "int8", 512).closed_form_bits == 26
    pos = np.where(w > 0, w, 0).sum(axis=0)
    neg = np.where(w < 0, w, 0).sum(axis=0)
    assert b.column_ranges == tuple((int(n) * 255, int(p) * 255) for p, n in zip(pos, neg))
    assert (b.min, b.max) == (int(neg.min()) * 255, int(pos.max()) * 255)
    assert b.bits == max(b.column_bits)


def test_a2q_p16_uint8_allows_l1_norm_127():
    # ||q||_1 <= (2^(P-1) - 1) * 2^(1_signed(x) - N) = 32767 / 256 -> 127 for P = 16.
    assert bounds.l1("uint8", [100, -27]).bits == 16
    assert bounds.l1("uint8", [100, -28]).bits == 17
    assert bounds.l1("uint8", [127]).max == 127 * 256
    # Signed inputs: |x| <= 2^(N-1), so int8 allows twice the norm.
    assert bounds.l1("int8", [255]).bits == 16
    assert bounds.l1("int8", [256]).bits == 17


def test_a2q_plus_counterexample_is_refused():
    with pytest.raises(BoundError, match=r"column 0 has positive weight mass 5 and "
                                         r"negative mass 1.*3"):
        bounds.l1_zero_centered("uint4", [5, -1])
    # The refusal matters: a 7-bit accumulator (+-63) is what the A2Q+ formula would
    # allow, and 5 * 15 = 75 is reachable.
    assert bounds.exact("uint4", [5, -1]).max == 75 > 63


def test_a2q_plus_refusal_names_first_failing_column():
    w = np.array([[3, 1, 2, 7], [-3, -1, -1, 0], [0, 0, 0, -6]])
    with pytest.raises(BoundError, match="column 2 has positive weight mass 2 and "
                                         "negative mass 1; .*1.5"):
        bounds.l1_zero_centered("int4", w)


def test_a2q_plus_matches_its_published_budget():
    # Balanced weights, uint N: ||q||_1 <= (2^P - 2) / (2^N - 1).
    for n in range(2, 9):
        for half in range(1, 300, 7):
            b = bounds.l1_zero_centered(f"uint{n}", [half, -half])
            budget_p = next(p for p in itertools.count(1)
                            if 2 * half * ((1 << n) - 1) <= (1 << p) - 2)
            assert b.bits == budget_p
            assert (b.min, b.max) == (-half * ((1 << n) - 1), half * ((1 << n) - 1))


def a2q_float_bits(norm, n, signed):
    alpha = math.log2(norm) + n - int(signed)
    return math.ceil(alpha + math.log2(1 + 2.0 ** -alpha) + 1)


def test_l1_integer_form_equals_a2q_float_formula():
    rng = np.random.default_rng(7)
    norms = list(range(1, 600)) + [1 << e for e in range(21)] + \
        [(1 << e) - 1 for e in range(2, 21)] + [(1 << e) + 1 for e in range(2, 21)] + \
        rng.integers(1, 1 << 20, 600).tolist()
    for norm in norms:
        for n in (2, 4, 8, 16):
            for signed in (False, True):
                act = f"{'int' if signed else 'uint'}{n}"
                assert bounds.l1(act, [norm]).bits == a2q_float_bits(norm, n, signed), \
                    (norm, act)


# --- adversarial partial sums (Hypothesis) --------------------------------------------------

def adversarial_orders(col, rng, n_random=3):
    """Orders of accumulation: positives first, negatives first, and random ones."""
    k = col.shape[0]
    orders = [np.argsort(-col, kind="stable"), np.argsort(col, kind="stable")]
    orders += [rng.permutation(k) for _ in range(n_random)]
    return orders


def activation_vectors(col, act, rng):
    """x maximising the column, x minimising it, and a random x."""
    hi = np.where(col > 0, act.max_level, act.min_level)
    lo = np.where(col > 0, act.min_level, act.max_level)
    rand = rng.integers(act.min_level, act.max_level + 1, size=col.shape[0])
    return hi, lo, rand


def partial_sum_extremes(w, act, rng):
    """Smallest and largest prefix sum over adversarial inputs and orders, per column."""
    lo, hi = [], []
    for c in range(w.shape[1]):
        col = w[:, c]
        sums = []
        for x in activation_vectors(col, act, rng):
            for order in adversarial_orders(col, rng):
                sums.append(np.cumsum(col[order] * x[order]))
        sums = np.concatenate(sums)
        lo.append(int(sums.min()))
        hi.append(int(sums.max()))
    return lo, hi


@st.composite
def problems(draw):
    act = parse_format(draw(st.sampled_from(ACT_SPECS)))
    wfmt = parse_format(draw(st.sampled_from(WEIGHT_SPECS)))
    k = draw(st.integers(1, 48))
    n = draw(st.integers(1, 4))
    seed = draw(st.integers(0, 2 ** 32 - 1))
    rng = np.random.default_rng(seed)
    levels = wfmt.representable()
    w = rng.choice(levels, size=(k, n))
    if draw(st.booleans()):
        w[rng.random((k, n)) < 0.5] = levels[np.argmin(np.abs(levels))]
    return act, wfmt, w, rng


@given(problems())
def test_no_partial_sum_leaves_any_proved_range(problem):
    act, wfmt, w, rng = problem
    lo, hi = partial_sum_extremes(w, act, rng)
    for method in ("datatype", "l1", "exact"):
        b = bounds.compute(method, act, wfmt, weights=w)
        assert b.min <= min(lo) and max(hi) <= b.max, (method, b, min(lo), max(hi))
        assert fits(b.min, b.max, b.bits)
        assert b.bits == 1 or not fits(b.min, b.max, b.bits - 1), (method, b)
        assert b.k == w.shape[0] and b.weight == str(wfmt) and b.act == str(act)
    # exact is reached: its per-column ends are sums some activation vector produces.
    b = bounds.exact(act, w)
    for c, (cmin, cmax) in enumerate(b.column_ranges):
        x_hi, x_lo, _ = activation_vectors(w[:, c], act, rng)
        assert int(w[:, c] @ x_hi) == cmax and int(w[:, c] @ x_lo) == cmin
        assert lo[c] >= cmin and hi[c] <= cmax


@given(st.sampled_from(ACT_SPECS), st.sampled_from(WEIGHT_SPECS), st.integers(1, 5000))
def test_datatype_is_the_exact_worst_case(act_spec, weight_spec, k):
    act, wfmt = parse_format(act_spec), parse_format(weight_spec)
    b = bounds.datatype(act, wfmt, k)
    # Reached: K copies of the corner product that maximises (minimises) x * w.
    corners = {x * w: (x, w) for x in (act.min_level, act.max_level)
               for w in (wfmt.min_level, wfmt.max_level)}
    assert b.max == k * max(corners) and b.min == k * min(corners)
    x, w = corners[max(corners)]
    assert int(np.sum(np.full(k, x, dtype=np.int64) * w)) == b.max
    assert b.bits == signed_width(b.min, b.max)
    assert b.bits == 1 or not fits(b.min, b.max, b.bits - 1)
    # Never worse than the symmetric K * max|x| * max|w| bound, which it refines.
    r = k * max(abs(act.min_level), act.max_level) * wfmt.max_abs
    assert b.bits <= signed_width(-r, r)
    if b.closed_form_bits is not None:
        assert b.closed_form_bits >= b.bits


@st.composite
def balanced_columns(draw):
    """[K, N] weights whose every column has equal positive and negative mass."""
    n = draw(st.integers(1, 3))
    seed = draw(st.integers(0, 2 ** 32 - 1))
    rng = np.random.default_rng(seed)
    columns = []
    for _ in range(n):
        pos = rng.integers(1, 40, size=draw(st.integers(1, 8)))
        total = int(pos.sum())
        parts = draw(st.integers(1, min(8, total)))
        cuts = np.sort(rng.choice(np.arange(1, total), size=parts - 1, replace=False))
        neg = -np.diff(np.concatenate([[0], cuts, [total]]))
        columns.append(np.concatenate([pos, neg, np.zeros(draw(st.integers(0, 4)), int)]))
    k = max(len(c) for c in columns)
    w = np.zeros((k, n), dtype=np.int64)
    for j, c in enumerate(columns):
        w[:len(c), j] = rng.permutation(c)
    return w, rng


@given(st.sampled_from(ACT_SPECS), balanced_columns())
def test_a2q_plus_holds_on_balanced_weights_under_adversarial_inputs(act_spec, problem):
    act = parse_format(act_spec)
    w, rng = problem
    b = bounds.l1_zero_centered(act, w)
    lo, hi = partial_sum_extremes(w, act, rng)
    for c, (cmin, cmax) in enumerate(b.column_ranges):
        assert cmin <= lo[c] and hi[c] <= cmax
        # Tight: the full sum with adversarial x reaches the A2Q+ range exactly.
        x_hi, x_lo, _ = activation_vectors(w[:, c], act, rng)
        assert int(w[:, c] @ x_hi) == cmax and int(w[:, c] @ x_lo) == cmin
    assert b.column_l1 == tuple(int(v) for v in np.abs(w).sum(axis=0))
    assert b.bits == signed_width(b.min, b.max)


# --- exactness beyond int64 ---------------------------------------------------------------

def test_bounds_stay_exact_past_int64():
    big = (1 << 62) - 1
    w = np.array([big, big, -big, big], dtype=np.int64)  # column sums overflow int64
    b = bounds.exact("uint32", w)
    assert b.max == 3 * big * ((1 << 32) - 1) and b.min == -big * ((1 << 32) - 1)
    assert b.bits == signed_width(b.min, b.max) > 64
    assert bounds.l1("int32", w).max == 4 * big * (1 << 31)
    assert bounds.datatype("uint32", "int32", 1 << 40).max == \
        (1 << 40) * ((1 << 32) - 1) * ((1 << 31) - 1)


# --- compute() and validation --------------------------------------------------------------

def test_compute_dispatches_and_checks_consistency():
    w = np.array([[1, -2], [4, 8], [-1, 0]])
    assert bounds.compute("datatype", "int8", "pot4", k=3) == bounds.datatype("int8", "pot4", 3)
    assert bounds.compute("datatype", "int8", "pot4", weights=w).k == 3
    e = bounds.compute("exact", "int8", "pot4", weights=w)
    plain = bounds.exact("int8", w)
    assert e.weight == "pot4" and plain.weight is None
    assert (e.bits, e.min, e.max, e.column_ranges) == \
        (plain.bits, plain.min, plain.max, plain.column_ranges)
    assert bounds.compute("l1", "int8", None, weights=w).weight is None
    assert isinstance(e, Bound) and bounds.METHODS == ("datatype", "l1", "l1_zero_centered",
                                                       "exact")


@pytest.mark.parametrize("call, exc, message", [
    (lambda: bounds.datatype("uint8", "int8", 0), ValueError, "k must be a positive integer.*got 0"),
    (lambda: bounds.datatype("uint8", "int8", -5), ValueError, "got -5"),
    (lambda: bounds.datatype("uint8", "int8", 2.0), TypeError, "k must be a positive integer"),
    (lambda: bounds.datatype("pot4", "int8", 8), ValueError, "act_fmt: activations are intN or uintN.*pot4"),
    (lambda: bounds.datatype("uint8", "int99", 8), ValueError, "int99"),
    (lambda: bounds.l1("uint8", []), ValueError, "weights are empty"),
    (lambda: bounds.l1("uint8", np.zeros((3, 0), int)), ValueError, "weights are empty"),
    (lambda: bounds.exact("uint8", [1.0, 2.0]), TypeError, "integer levels.*float64"),
    (lambda: bounds.exact("uint8", [True, False]), TypeError, "integer levels.*bool"),
    (lambda: bounds.exact("uint8", np.zeros((2, 2, 2), int)), ValueError, r"\[K\] or \[K, N\].*\(2, 2, 2\)"),
    (lambda: bounds.exact("uint8", np.array([2 ** 64 - 1], dtype=np.uint64)), ValueError, "does not fit int64"),
    (lambda: bounds.compute("l2", "uint8", "int8", k=4), ValueError, "unknown bound method 'l2'.*datatype, l1, l1_zero_centered, exact"),
    (lambda: bounds.compute("datatype", "uint8", None, k=4), ValueError, "needs weight_fmt"),
    (lambda: bounds.compute("datatype", "uint8", "int8"), ValueError, "needs k"),
    (lambda: bounds.compute("exact", "uint8", "int8", k=4), ValueError, "exact bound needs weights"),
    (lambda: bounds.compute("exact", "uint8", "int8", k=4, weights=[1, 2, 3]), ValueError, "k=4 does not match the weights' K = 3"),
    (lambda: bounds.compute("exact", "uint8", "pot4", weights=[1, 3]), ValueError, "not representable in pot4.*3"),
    (lambda: bounds.compute("l1", "uint8", "int4", weights=[8]), ValueError, "not representable in int4.*-8..7"),
])
def test_bad_input_is_refused_with_a_clear_message(call, exc, message):
    with pytest.raises(exc, match=message):
        call()


def test_bound_error_is_a_value_error():
    assert issubclass(BoundError, ValueError)
