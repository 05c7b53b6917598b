"""MAC PE in Amaranth simulation against golden ``matmul`` with ``AccSpec``, per segment."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from amaranth_sim import (act_formats, biased_values, collect_unelaborated,  # noqa: F401
                          drive, random_stream, stream_reference, weight_formats)
from potgen import bounds, golden
from potgen.formats import parse_format
from potgen.hw import MacPE, MultiplierProduct, ShiftAddProduct

pytestmark = pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")


def extreme_codes(fmt):
    """Codes of the largest-magnitude levels (the fastest way to overflow)."""
    levels = np.asarray(fmt.levels(), dtype=np.int64)
    return np.nonzero(np.abs(levels) == np.abs(levels).max())[0]


def run_mac(pe, acts, codes, valid, clear):
    """(acc, overflow) after each edge, aligned with the input stream (latency undone)."""
    latency = pe.latency
    pad = [0] * latency
    out = drive(pe, {"act": list(acts) + pad, "weight": list(codes) + pad,
                     "valid": list(valid) + pad, "clear": list(clear) + pad},
                ["acc", "overflow"], clocked=True)
    # Edge t acts on the inputs of cycle t - latency; the first `latency` edges see the
    # reset pipeline (valid = clear = 0) and must leave acc = 0, overflow = 0.
    assert not out["acc"][:latency].any() and not out["overflow"][:latency].any()
    return out["acc"][latency:], out["overflow"][latency:].astype(bool)


def check_mac(pe, acts, codes, valid, clear):
    spec = golden.AccSpec(pe.acc_bits, pe.overflow_mode)
    want_acc, want_flag = stream_reference(valid, clear, spec, acts=acts, codes=codes,
                                           fmt=pe.weight_format)
    got_acc, got_flag = run_mac(pe, acts, codes, valid, clear)
    bad = np.nonzero((got_acc != want_acc) | (got_flag != want_flag))[0]
    assert bad.size == 0, (
        f"MacPE({pe.weight_format}, {pe.act_format}, acc_bits={pe.acc_bits}, "
        f"{pe.overflow_mode}, latency {pe.latency}): first mismatch at edge {bad[0]}: got "
        f"({got_acc[bad[0]]}, {got_flag[bad[0]]}), expected ({want_acc[bad[0]]}, "
        f"{want_flag[bad[0]]})")
    return want_flag


def random_inputs(pe, rng, length):
    act, fmt = pe.act_format, pe.weight_format
    acts = biased_values(rng, act.min_level, act.max_level, length)
    codes = rng.integers(0, 1 << fmt.bits, length)
    big = rng.random(length) < 0.5
    codes[big] = rng.choice(extreme_codes(fmt), big.sum())
    valid, clear = random_stream(rng, length)
    return acts, codes, valid, clear


@given(weight=weight_formats(), act=act_formats(bits=(2, 10)), pipeline=st.integers(0, 2),
       overflow=st.sampled_from(["wrap", "saturate"]), sign=st.sampled_from(["fold", "negate"]),
       unit=st.sampled_from(["auto", "auto", "multiplier"]),
       multiplier=st.sampled_from(["dsp", "lut"]), extra_bits=st.integers(0, 4),
       seed=st.integers(0, 2 ** 32 - 1))
def test_mac_matches_golden(weight, act, pipeline, overflow, sign, unit, multiplier,
                            extra_bits, seed):
    probe = MultiplierProduct(weight, act)
    acc_bits = max(probe.product_shape.width + extra_bits, 2)
    pe = MacPE(weight, act, acc_bits=acc_bits, overflow=overflow, pipeline=pipeline,
               sign=sign, unit=unit, multiplier=multiplier)
    acts, codes, valid, clear = random_inputs(pe, np.random.default_rng(seed), 200)
    check_mac(pe, acts, codes, valid, clear)


@pytest.mark.parametrize("weight, act", [("pot4", "uint8"), ("apot4", "int8"),
                                         ("int4", "int6"), ("upot:{0,1}+{0,2}+{0,4,8}", "int5")])
@pytest.mark.parametrize("overflow", ["wrap", "saturate"])
@pytest.mark.parametrize("sign", ["fold", "negate"])
def test_overflow_really_happens(weight, act, overflow, sign):
    """Long streams into a product-wide accumulator: wrap / clamp / sticky flag all occur."""
    rng = np.random.default_rng(11)
    pe = MacPE(weight, act, acc_bits=MultiplierProduct(weight, act).product_shape.width + 1,
               overflow=overflow, sign=sign, pipeline=1)
    acts, codes, valid, clear = random_inputs(pe, rng, 600)
    clear = (rng.random(600) < 0.02).astype(int)
    flags = check_mac(pe, acts, codes, valid, clear)
    assert flags.any() and not flags.all()


@pytest.mark.parametrize("weight, act, k", [("pot4", "uint8", 64), ("apot4", "int8", 20),
                                            ("int4", "int8", 9), ("sp2-5", "uint4", 33)])
def test_auto_bound_holds_at_the_worst_case(weight, act, k):
    """acc_bits='auto': K extreme products of either sign reach the bound, never overflow."""
    fmt, act_fmt = parse_format(weight), parse_format(act)
    pe = MacPE(fmt, act_fmt, acc_bits="auto", k=k)
    bound = bounds.datatype(act_fmt, fmt, k)
    assert pe.acc_bits == bound.bits and pe.bound == bound
    levels = np.asarray(fmt.levels())
    for target in (bound.max, bound.min):
        # The act / code pair whose product is the extreme single product.
        pairs = [(a, c) for a in (act_fmt.min_level, act_fmt.max_level)
                 for c in range(1 << fmt.bits) if a * levels[c] * k == target]
        act_value, code = pairs[0]
        acts, codes = [act_value] * k, [code] * k
        valid, clear = [1] * k, [1] + [0] * (k - 1)
        got_acc, got_flag = run_mac(pe, acts, codes, valid, clear)
        assert got_acc[-1] == target and not got_flag.any()
        check_mac(pe, acts, codes, valid, clear)


def test_bound_methods_from_weights():
    weights = np.array([64, -64, 32, 0, -1, 1, 8, 16])  # pot4 levels, K = 8
    act = parse_format("uint8")
    for method in ("exact", "l1", "datatype"):
        pe = MacPE("pot4", act, acc_bits=method, weights=weights)
        want = bounds.compute(method, act, "pot4", weights=weights)
        assert pe.bound == want and pe.k == 8
        assert pe.acc_bits == max(want.bits, 15)
    # exact: [255 * -65, 255 * 121] = [-16575, 30855] -> 16 bits.
    exact = MacPE("pot4", act, acc_bits="exact", weights=weights)
    assert (exact.bound.min, exact.bound.max, exact.acc_bits) == (-16575, 30855, 16)
    # Weights drawn from this column keep the sum inside the proved range.
    codes = parse_format("pot4").encode(weights)
    rng = np.random.default_rng(3)
    acts = rng.integers(0, 256, 8 * 40)
    check_mac(exact, acts, np.tile(codes, 40), [1] * 320, ([1] + [0] * 7) * 40)


def test_bound_below_product_width_is_widened():
    # A column of ones: the exact bound of K = 2 uint8 activations is [0, 510], 10 bits;
    # the PE still multiplies any pot4 code, whose products need 15 bits.
    pe = MacPE("pot4", "uint8", acc_bits="exact", weights=[1, 1])
    assert pe.bound.bits == 10 and pe.acc_bits == 15
    meta = pe.metadata()
    assert meta["bound"] == {"method": "exact", "bits": 10, "min": 0, "max": 510, "k": 2,
                             "widened_to_product": True}


def test_latency_timing():
    pe = MacPE("pot3", "int4", acc_bits=10, pipeline=2)
    # pot3 code 3 = +4. One valid product at cycle 0 appears after edge 2.
    out = drive(pe, {"act": [3, 0, 0, 0, 0], "weight": [3, 0, 0, 0, 0],
                     "valid": [1, 0, 0, 0, 0], "clear": [0, 0, 0, 0, 0]},
                ["acc"], clocked=True)
    assert out["acc"].tolist() == [0, 0, 12, 12, 12]
    assert pe.latency == 2


def test_clear_semantics():
    pe = MacPE("int4", "int4", acc_bits=8)
    acts = [1, 2, 3, 4, 5, 6]
    codes = [7, 7, 7, 7, 7, 7]  # level 7
    valid = [1, 1, 0, 1, 0, 1]
    clear = [0, 0, 1, 1, 0, 1]
    # 7, 21, clear without valid -> 0, clear with valid -> 28, hold, clear -> 42.
    got_acc, _ = run_mac(pe, acts, codes, valid, clear)
    assert got_acc.tolist() == [7, 21, 0, 28, 28, 42]


def test_structure_and_metadata():
    pe = MacPE("pot4", "uint8", acc_bits="auto", k=64)
    assert isinstance(pe.product_unit, ShiftAddProduct) and pe.sign == "fold"
    assert pe.product_unit.sign == "split" and pe.accumulator.fold_sign
    meta = pe.metadata()
    assert meta["kind"] == "mac" and meta["acc_bits"] == 21 and meta["k"] == 64
    assert meta["bound"] == {"method": "datatype", "bits": 21, "min": -1044480,
                             "max": 1044480, "k": 64, "widened_to_product": False}
    assert meta["product"] == {"bits": 15, "min": -16320, "max": 16320}
    assert [p["name"] for p in meta["ports"]] == ["act", "weight", "valid", "clear", "acc",
                                                  "overflow"]
    negate = MacPE("pot4", "uint8", acc_bits=16, sign="negate")
    assert negate.sign == "negate" and negate.product_unit.sign == "negate"
    mult = MacPE("int8", "int8", acc_bits=20, multiplier="lut")
    assert mult.sign is None and mult.metadata()["multiplier"] == "lut"
    unsigned_weights = MacPE("upot:u{0,1,4}", "int8", acc_bits=12)
    assert unsigned_weights.sign is None and not unsigned_weights.accumulator.fold_sign


@pytest.mark.parametrize("kwargs, error, words", [
    (dict(acc_bits=14), ValueError, ["acc_bits=14", "narrower than a product", "[-16320, 16320]",
                                     "15 signed bits"]),
    (dict(acc_bits=65), ValueError, ["acc_bits=65", "2..64"]),
    (dict(acc_bits=16.0), TypeError, ["acc_bits=16.0"]),
    (dict(acc_bits="widest"), ValueError, ["acc_bits='widest'", "'auto'", "exact"]),
    (dict(acc_bits="auto"), ValueError, ["acc_bits='auto'", "needs k"]),
    (dict(acc_bits="l1", k=8), ValueError, ["acc_bits='l1'", "needs weights"]),
    (dict(acc_bits="auto", k=0), ValueError, ["k=0", "> 0"]),
    (dict(acc_bits="auto", k=-3), ValueError, ["k=-3"]),
    (dict(acc_bits="auto", k=2.5), TypeError, ["k=2.5"]),
    (dict(acc_bits=20, weights=[1, 2]), ValueError, ["weights", "acc_bits=20"]),
    (dict(acc_bits="exact", weights=[3]), ValueError, ["not representable", "pot4"]),
    (dict(acc_bits="exact", weights=[1, 2], k=3), ValueError, ["k=3"]),
    (dict(acc_bits="l1_zero_centered", weights=[4, -1]), ValueError, ["l1_zero_centered"]),
    (dict(overflow="error"), ValueError, ["overflow='error'", "'wrap'", "'saturate'"]),
    (dict(sign="split"), ValueError, ["sign='split'", "'fold'", "'negate'"]),
    (dict(pipeline=-1), ValueError, ["pipeline=-1"]),
    (dict(unit="shifter"), ValueError, ["unit='shifter'"]),
    (dict(multiplier="dsp48"), ValueError, ["multiplier='dsp48'"]),
    (dict(act="pot4"), ValueError, ["act='pot4'"]),
    (dict(act="int20"), ValueError, ["act='int20'", "2..16"]),
    (dict(weight="int8", unit="shift-add"), ValueError, ["unit='shift-add'", "int8"]),
    (dict(weight="int16", act="uint16", acc_bits="auto", k=2 ** 40), ValueError,
     ["needs 72 bits", "at most 64"]),
])
def test_bad_input(kwargs, error, words):
    args = dict(weight="pot4", act="uint8", acc_bits=20)
    args.update(kwargs)
    with pytest.raises(error) as info:
        MacPE(args.pop("weight"), args.pop("act"), **args)
    for word in words:
        assert word in str(info.value), str(info.value)
