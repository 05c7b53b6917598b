"""potgen.golden.conv: im2col ordering and conv2d against a direct nested loop."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from potgen import golden
from potgen.formats import parse_format
from potgen.golden import AccSpec, AccumulatorOverflow


def ref_conv(acts, levels, stride, padding, zero_point, acc=None):
    """Direct convolution with Python ints: (values, flags, first overflow).

    The reduction runs over (c, r, s) in row-major order, as the golden model defines.
    """
    n_img, c_in, h, w = acts.shape
    c_out, _, r_k, s_k = levels.shape
    (sh, sw), (ph, pw) = stride, padding
    ho, wo = (h + 2 * ph - r_k) // sh + 1, (w + 2 * pw - s_k) // sw + 1
    out = np.zeros((n_img, c_out, ho, wo), dtype=object)
    flags = np.zeros(out.shape, dtype=bool)
    first = None
    for n in range(n_img):
        for co in range(c_out):
            for y in range(ho):
                for x in range(wo):
                    exact = sat = 0
                    for c in range(c_in):
                        for r in range(r_k):
                            for s in range(s_k):
                                iy, ix = y * sh + r - ph, x * sw + s - pw
                                inside = 0 <= iy < h and 0 <= ix < w
                                a = int(acts[n, c, iy, ix]) if inside else zero_point
                                p = (a - zero_point) * int(levels[co, c, r, s])
                                exact += p
                                if acc is not None:
                                    sat = min(max(sat + p, acc.min), acc.max)
                                    if not acc.min <= exact <= acc.max:
                                        if first is None:
                                            first = ((n, co, y, x), (c, r, s), exact)
                                        flags[n, co, y, x] = True
                    if acc is None:
                        out[n, co, y, x] = exact
                    elif acc.overflow == "saturate":
                        out[n, co, y, x] = sat
                    else:
                        out[n, co, y, x] = (exact - acc.min) % (1 << acc.bits) + acc.min
    return out, flags, first


@st.composite
def conv_case(draw):
    act = parse_format(draw(st.sampled_from(["uint8", "int8", "uint4"])))
    fmt = parse_format(draw(st.sampled_from(["apot4", "pot4", "int4", "sp2-4", "int8"])))
    n = draw(st.integers(1, 2))
    c_in, c_out = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    r, s = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    ph, pw = draw(st.integers(0, 2)), draw(st.integers(0, 2))
    h = draw(st.integers(max(1, r - 2 * ph), 6))
    w = draw(st.integers(max(1, s - 2 * pw), 6))
    acts = np.array(draw(st.lists(st.integers(act.min_level, act.max_level),
                                  min_size=n * c_in * h * w, max_size=n * c_in * h * w)),
                    dtype=np.int64).reshape(n, c_in, h, w)
    size = c_out * c_in * r * s
    codes = np.array(draw(st.lists(st.integers(0, (1 << fmt.bits) - 1), min_size=size,
                                   max_size=size)), dtype=np.int64).reshape(c_out, c_in, r, s)
    zero_point = draw(st.integers(act.min_level, act.max_level))
    return acts, codes, fmt, (sh, sw), (ph, pw), zero_point


# --- im2col ------------------------------------------------------------------------------

def test_im2col_ordering_worked_example():
    acts = np.arange(2 * 3 * 3).reshape(1, 2, 3, 3)   # C=2, H=W=3
    cols = golden.im2col(acts, 2)
    assert cols.shape == (4, 8)                        # Ho*Wo = 4 rows, C*R*S = 8 columns
    # Row m = (n, ho, wo); column k = (c, r, s).
    assert cols[0].tolist() == [0, 1, 3, 4, 9, 10, 12, 13]
    assert cols[3].tolist() == [4, 5, 7, 8, 13, 14, 16, 17]


def test_im2col_padding_stride_and_pad_value():
    acts = np.arange(1, 5).reshape(1, 1, 2, 2)          # [[1, 2], [3, 4]]
    cols = golden.im2col(acts, (3, 3), stride=(2, 1), padding=1, pad_value=-7)
    assert golden.conv_output_size((2, 2), 3, (2, 1), 1) == (1, 2)
    assert cols.tolist() == [[-7, -7, -7, -7, 1, 2, -7, 3, 4],
                             [-7, -7, -7, 1, 2, -7, 3, 4, -7]]


def test_im2col_accepts_chw_and_python_ints():
    acts = np.array([[[2 ** 70, 1], [2, 3]]], dtype=object)
    cols = golden.im2col(acts, 1)
    assert cols.tolist() == [[2 ** 70], [1], [2], [3]]


# --- conv2d ------------------------------------------------------------------------------

@given(conv_case())
def test_conv2d_matches_direct_loop(case):
    acts, codes, fmt, stride, padding, zp = case
    levels = fmt.decode(codes)
    expected, _, _ = ref_conv(acts, levels, stride, padding, zp)
    result = golden.conv2d(acts, codes, fmt, stride=stride, padding=padding, zero_point=zp)
    assert result.acc.tolist() == expected.tolist()
    assert result.acc.shape == expected.shape and not result.overflow.any()


@given(conv_case(), st.integers(4, 12), st.sampled_from(["wrap", "saturate"]))
def test_conv2d_accumulator_rules_match_direct_loop(case, bits, overflow):
    acts, codes, fmt, stride, padding, zp = case
    acc = AccSpec(bits, overflow)
    expected, flags, _ = ref_conv(acts, fmt.decode(codes), stride, padding, zp, acc)
    result = golden.conv2d(acts, codes, fmt, stride, padding, zp, acc)
    assert result.acc.tolist() == expected.tolist()
    np.testing.assert_array_equal(result.overflow, flags)


def test_conv2d_error_names_the_output_pixel_and_kernel_tap():
    rng = np.random.default_rng(3)
    acts = rng.integers(0, 256, (2, 2, 5, 5))
    codes = rng.integers(0, 16, (3, 2, 3, 3))
    acc = AccSpec(9, "error")
    _, _, first = ref_conv(acts, parse_format("apot4").decode(codes), (1, 1), (1, 1), 0, acc)
    assert first is not None
    with pytest.raises(AccumulatorOverflow) as info:
        golden.conv2d(acts, codes, "apot4", padding=1, acc=acc)
    assert (info.value.position, info.value.index, info.value.partial_sum) == first


def test_conv2d_error_reports_in_output_tensor_order():
    # Output (co=1, x=0) overflows and so does (co=0, x=1); in [N, Cout, Ho, Wo] order
    # (co=0, x=1) comes first, although the lowered matmul meets (m=0, co=1) first.
    acts = np.array([[[[2, 100]]]])
    codes = parse_format("int8").encode([2, 100]).reshape(2, 1, 1, 1)
    with pytest.raises(AccumulatorOverflow) as info:
        golden.conv2d(acts, codes, "int8", acc=AccSpec(8, "error"))
    assert (info.value.position, info.value.index, info.value.partial_sum) == (
        (0, 0, 0, 1), (0, 0, 0), 200)
    with pytest.raises(AccumulatorOverflow) as info:
        golden.conv2d(acts[0], codes, "int8", acc=AccSpec(8, "error"))
    assert info.value.position == (0, 0, 1)


def test_conv2d_three_dimensional_input_gives_three_dimensional_output():
    acts = np.arange(16).reshape(1, 4, 4)
    codes = np.full((2, 1, 3, 3), 1)                      # int4 level 1
    result = golden.conv2d(acts, codes, "int4", padding=1, zero_point=1)
    assert result.acc.shape == (2, 4, 4)
    # Top-left: padded taps hold the zero point and add nothing; (0, 1, 4, 5) - 1 each.
    assert result.acc[0, 0, 0] == (0 - 1) + (1 - 1) + (4 - 1) + (5 - 1)
    batched = golden.conv2d(acts[None], codes, "int4", padding=1, zero_point=1)
    np.testing.assert_array_equal(batched.acc[0], result.acc)


def test_conv2d_layer_size_runs_fast():
    # A real layer: 32x32x16 -> 32 channels, 3x3, uint8 x apot4.
    rng = np.random.default_rng(0)
    acts = rng.integers(0, 256, (1, 16, 32, 32))
    codes = rng.integers(0, 16, (32, 16, 3, 3))
    result = golden.conv2d(acts, codes, "apot4", padding=1, zero_point=128,
                           acc=AccSpec(20, "saturate"))
    levels = parse_format("apot4").decode(codes).reshape(32, -1).T
    cols = golden.im2col(acts, 3, padding=1, pad_value=128) - 128
    expected = (cols @ levels).reshape(32, 32, 32).transpose(2, 0, 1)
    np.testing.assert_array_equal(result.acc[0], expected)


@pytest.mark.parametrize("kwargs, error, words", [
    (dict(stride=0), ValueError, "stride=0"),
    (dict(stride=(1, 2, 3)), ValueError, "pair"),
    (dict(stride=True), TypeError, "stride"),
    (dict(padding=-1), ValueError, "padding=-1"),
    (dict(padding=1.5), TypeError, "padding"),
    (dict(zero_point=0.5), TypeError, "zero_point"),
    (dict(acc="wrap"), TypeError, "AccSpec"),
])
def test_conv2d_validation(kwargs, error, words):
    acts = np.zeros((1, 2, 4, 4), dtype=np.int64)
    codes = np.zeros((3, 2, 3, 3), dtype=np.int64)
    with pytest.raises(error, match=words):
        golden.conv2d(acts, codes, "int4", **kwargs)


def test_conv2d_shape_errors():
    with pytest.raises(ValueError, match="Cin=3"):
        golden.conv2d(np.zeros((1, 2, 4, 4), int), np.zeros((1, 3, 3, 3), int), "int4")
    with pytest.raises(ValueError, match="larger than the padded input"):
        golden.conv2d(np.zeros((1, 1, 2, 2), int), np.zeros((1, 1, 3, 3), int), "int4")
    with pytest.raises(ValueError, match=r"\[N, C, H, W\]"):
        golden.conv2d(np.zeros((4, 4), int), np.zeros((1, 1, 3, 3), int), "int4")
    with pytest.raises(ValueError, match=r"\[Cout, Cin, R, S\]"):
        golden.conv2d(np.zeros((1, 1, 4, 4), int), np.zeros((1, 3, 3), int), "int4")
