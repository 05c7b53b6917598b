"""Accumulator in Amaranth simulation against the golden accumulator (``AccSpec``)."""

import numpy as np
import pytest
from amaranth.hdl import signed, unsigned
from amaranth.lib import data
from hypothesis import given
from hypothesis import strategies as st

from amaranth_sim import (biased_values, collect_unelaborated, drive,  # noqa: F401 (fixture)
                          random_stream, stream_reference)
from potgen import bounds, golden
from potgen.hw import Accumulator

pytestmark = pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")


def run_stream(acc, addends, valid, clear, negate=None):
    inputs = {"addend": addends, "valid": valid, "clear": clear}
    if negate is not None:
        inputs["negate"] = negate
    out = drive(acc, inputs, ["acc", "overflow"], clocked=True)
    return out["acc"], out["overflow"].astype(bool)


def check_stream(acc, addends, valid, clear, negate=None):
    values = np.asarray(addends, dtype=np.int64)
    if negate is not None:
        values = np.where(np.asarray(negate) == 1, -values, values)
    spec = golden.AccSpec(acc.acc_bits, acc.overflow_mode)
    want_acc, want_flag = stream_reference(valid, clear, spec, values=values)
    got_acc, got_flag = run_stream(acc, addends, valid, clear, negate)
    bad = np.nonzero((got_acc != want_acc) | (got_flag != want_flag))[0]
    assert bad.size == 0, (
        f"first mismatch at edge {bad[0]}: got ({got_acc[bad[0]]}, {got_flag[bad[0]]}), "
        f"expected ({want_acc[bad[0]]}, {want_flag[bad[0]]})")
    return want_flag


@st.composite
def accumulators(draw):
    is_signed = draw(st.booleans())
    width = draw(st.integers(1, 8))
    shape = signed(width) if is_signed else unsigned(width)
    lo, hi = (-(1 << (width - 1)), (1 << (width - 1)) - 1) if is_signed else (0, (1 << width) - 1)
    if draw(st.booleans()):
        lo = draw(st.integers(lo, hi))
        hi = draw(st.integers(lo, hi))
        addend_range = (lo, hi)
    else:
        addend_range = None
    fold = draw(st.booleans())
    slo, shi = (min(lo, -hi), max(hi, -lo)) if fold else (lo, hi)
    need = max(bounds.signed_width(slo, shi), 2)
    acc_bits = need + draw(st.integers(0, 3))
    overflow = draw(st.sampled_from(["wrap", "saturate"]))
    return (Accumulator(shape, acc_bits, overflow, addend_range=addend_range,
                        fold_sign=fold), lo, hi)


@given(accumulators(), st.integers(0, 2 ** 32 - 1))
def test_accumulator_matches_golden(spec, seed):
    acc, lo, hi = spec
    rng = np.random.default_rng(seed)
    length = 240
    valid, clear = random_stream(rng, length)
    addends = biased_values(rng, lo, hi, length)
    negate = rng.integers(0, 2, length) if acc.fold_sign else None
    check_stream(acc, addends, valid, clear, negate)


@pytest.mark.parametrize("overflow", ["wrap", "saturate"])
@pytest.mark.parametrize("fold", [False, True])
def test_overflow_really_happens(overflow, fold):
    """Narrow accumulators and long same-sign runs: wrap, clamp and flag are exercised."""
    rng = np.random.default_rng(7)
    acc = Accumulator(signed(6), 8, overflow, fold_sign=fold)
    length = 400
    valid, clear = random_stream(rng, length, p_valid=0.9, p_clear=0.03)
    addends = biased_values(rng, -32, 31, length, p_extreme=0.8)
    # Long positive and negative runs so both ends of the range are reached.
    addends[:200] = np.minimum(np.abs(addends[:200]), 31)
    addends[200:] = -np.minimum(np.abs(addends[200:]), 32)
    negate = np.zeros(length, dtype=int) if fold else None
    flags = check_stream(acc, addends, valid, clear, negate)
    assert flags.any() and not flags.all()


def test_worked_example_wrap():
    acc = Accumulator(4, 5, "wrap")  # [-16, 15]
    got_acc, got_flag = run_stream(acc, [7, 7, 7, 0, 5, -8, 3],
                                   [1, 1, 1, 0, 1, 1, 0], [0, 0, 0, 0, 1, 0, 1])
    # 7, 14, 21 -> -11 (flag), hold, clear+5 -> 5 (flag reloaded: 0), -3, clear -> 0.
    assert got_acc.tolist() == [7, 14, -11, -11, 5, -3, 0]
    assert got_flag.tolist() == [False, False, True, True, False, False, False]


def test_worked_example_saturate():
    acc = Accumulator(4, 5, "saturate")
    got_acc, got_flag = run_stream(acc, [7, 7, 7, -8, -8, -8, -8, 1],
                                   [1, 1, 1, 1, 1, 1, 1, 1], [0, 0, 0, 0, 0, 0, 0, 1])
    # Clamps at 15, then comes down from 15 (not from the exact 21), clamps at -16.
    assert got_acc.tolist() == [7, 14, 15, 7, -1, -9, -16, 1]
    assert got_flag.tolist() == [False, False, True, True, True, True, True, False]


def test_fold_sign_subtracts():
    acc = Accumulator(unsigned(4), 6, "wrap", fold_sign=True)
    got_acc, _ = run_stream(acc, [15, 15, 3, 0], [1, 1, 1, 1], [0, 0, 0, 0],
                            negate=[1, 1, 0, 1])
    assert got_acc.tolist() == [-15, -30, -27, -27]


def test_shapes_and_properties():
    acc = Accumulator(12, 16, "saturate")
    assert acc.addend.shape() == signed(12) and acc.acc.shape() == signed(16)
    assert acc.latency == 0 and acc.sum_shape == signed(17)
    assert not hasattr(acc, "negate")
    folded = Accumulator(unsigned(14), 16, fold_sign=True)
    assert folded.addend_range == (-16383, 16383) and len(folded.negate) == 1
    narrow = Accumulator(signed(15), 15, addend_range=(-16320, 16320))
    assert narrow.sum_shape == signed(16)
    meta = narrow.metadata()
    assert meta["kind"] == "accumulator" and meta["acc_bits"] == 15
    assert meta["addend"] == {"bits": 15, "signed": True, "min": -16320, "max": 16320}
    assert [p["name"] for p in meta["ports"]] == ["addend", "valid", "clear", "acc",
                                                  "overflow"]


@pytest.mark.parametrize("args, kwargs, error, words", [
    ((8, 7), {}, ValueError, ["acc_bits=7", "narrower", "8"]),
    ((unsigned(8), 8), {}, ValueError, ["acc_bits=8", "needs 9"]),
    ((8, 8), dict(fold_sign=True), ValueError, ["acc_bits=8", "needs 9"]),
    ((8, 1), {}, ValueError, ["acc_bits=1", "2..64"]),
    ((8, 65), {}, ValueError, ["acc_bits=65", "2..64"]),
    ((8, "16"), {}, TypeError, ["acc_bits='16'"]),
    ((8, True), {}, TypeError, ["acc_bits=True"]),
    ((8, 16), dict(overflow="clamp"), ValueError, ["overflow='clamp'", "'wrap'", "'saturate'"]),
    ((0, 16), {}, ValueError, ["addend_shape=0"]),
    (("x", 16), {}, TypeError, ["addend_shape='x'"]),
    ((data.ArrayLayout(4, 2), 16), {}, TypeError, ["addend_shape", "layout"]),
    ((8, 16), dict(addend_range=(3, 1)), ValueError, ["addend_range=(3, 1)"]),
    ((8, 16), dict(addend_range=(0, 200)), ValueError, ["addend_range=(0, 200)", "[-128, 127]"]),
    ((8, 16), dict(addend_range=(0.5, 2)), TypeError, ["addend_range"]),
    ((8, 16), dict(fold_sign="yes"), TypeError, ["fold_sign='yes'"]),
])
def test_bad_input(args, kwargs, error, words):
    with pytest.raises(error) as info:
        Accumulator(*args, **kwargs)
    for word in words:
        assert word in str(info.value)
