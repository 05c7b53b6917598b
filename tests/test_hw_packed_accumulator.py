"""PackedAccumulator against the golden lane functions and against n separate
Accumulators; PackedMacPE (both accumulation modes) against exact dot products."""

import numpy as np
import pytest
from amaranth.hdl import Cat, Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from hypothesis import given
from hypothesis import strategies as st

from amaranth_sim import collect_unelaborated, int_formats, simulate  # noqa: F401
from potgen import bounds
from potgen.golden import lanes as golden_lanes
from potgen.golden.lanes import LaneLayout
from potgen.hw.accumulator import Accumulator
from potgen.hw.lanes import AdderLanes, adder_lanes, product_adder_lanes
from potgen.hw.packed_accumulator import PackedAccumulator
from potgen.hw.packed_mac import PackedMacPE

pytestmark = pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")


def signed_fields(word, width, count):
    out = []
    for i in range(count):
        f = (word >> (i * width)) & ((1 << width) - 1)
        out.append(f - (1 << width) if f >> (width - 1) else f)
    return out


def lane_bits(values, width):
    mask = (1 << width) - 1
    return sum((int(v) & mask) << (i * width) for i, v in enumerate(values))


def random_controls(rng, steps, adds, p_valid=0.8):
    """valid / clear sequences; clears come often enough that most sums stay within
    ``adds`` additions, and sometimes late so that the overflow flag is exercised."""
    valid = (rng.random(steps) < p_valid).astype(int)
    clear = np.zeros(steps, dtype=int)
    since = 0
    for t in range(steps):
        if rng.random() < (0.02 if since < adds else 0.5):
            clear[t], since = 1, 0
        since += valid[t]
    return valid, clear


# --- PackedAccumulator ---------------------------------------------------------------------

@st.composite
def adder_plans(draw):
    encoding = draw(st.sampled_from(["twos", "offset", "unsigned"]))
    lo = 0 if encoding == "unsigned" else draw(st.integers(-200, -1))
    hi = draw(st.integers(max(lo, 0) + 1, 200))
    adds = draw(st.integers(1, 40))
    lanes = draw(st.integers(1, 5))
    extra = draw(st.integers(0, 2))
    plan = adder_lanes((lo, hi), adds, lanes=lanes,
                       encoding="offset" if encoding == "offset" else "twos")
    if extra:   # spare guard bits beyond the bound
        layout = plan.layout
        plan = AdderLanes(LaneLayout(lanes, layout.width + extra, layout.signed,
                                     layout.encoding, layout.value_bits), adds,
                          plan.addend_range, plan.sum_range)
    return plan


def run_accumulator(acc, values, valid, clear):
    """Per step: (word, lane sums, overflow) after the edge that takes the inputs."""
    layout = acc.layout
    b = layout.value_bits
    r = acc.lanes.sum_bits
    out = []

    async def bench(ctx):
        for t in range(len(valid)):
            if acc.addend_input == "lanes":
                ctx.set(acc.addend, lane_bits(values[t], b))
            else:
                ctx.set(acc.addend, golden_lanes.pack(values[t], layout))
            ctx.set(acc.valid, int(valid[t]))
            ctx.set(acc.clear, int(clear[t]))
            await ctx.tick()
            out.append((ctx.get(acc.word), signed_fields(ctx.get(acc.sums), r, layout.lanes),
                        ctx.get(acc.overflow)))

    simulate(acc, bench)
    return out


@given(plan=adder_plans(), addend_input=st.sampled_from(["lanes", "word"]),
       seed=st.integers(0, 2 ** 32 - 1))
def test_packed_accumulator_matches_golden(plan, addend_input, seed):
    rng = np.random.default_rng(seed)
    steps = 3 * plan.adds + 10
    lo, hi = plan.addend_range
    values = rng.integers(lo, hi + 1, (steps, plan.lanes))
    extreme = rng.random(steps) < 0.3
    values[extreme] = lo if rng.random() < 0.5 else hi
    valid, clear = random_controls(rng, steps, plan.adds)
    acc = PackedAccumulator(plan, addend_input=addend_input)
    layout = plan.layout
    words, count, flag = [], 0, 0
    exact = np.zeros(plan.lanes, dtype=np.int64)
    for t, (word, sums, overflow) in enumerate(run_accumulator(acc, values, valid, clear)):
        if clear[t]:
            words, count, flag, exact = [], 0, 0, exact * 0
        if valid[t]:
            flag |= count == plan.adds
            count += 1
            exact = exact + values[t]
            words.append(golden_lanes.pack(values[t], layout))
        assert overflow == flag, (t, overflow, flag)
        if words:   # the golden model: one wrapping add of the packed words
            assert word == golden_lanes.add(words, layout)
        else:
            assert word == 0
        if not flag:
            assert sums == exact.tolist(), (t, sums, exact)
            if count:
                np.testing.assert_array_equal(
                    golden_lanes.unpack(word, layout, count=count), exact)


class SideBySide(wiring.Component):
    """A PackedAccumulator and n separate Accumulators fed the same lane addends."""

    def __init__(self, plan, acc_bits):
        self.packed = PackedAccumulator(plan)
        b = plan.layout.value_bits
        self.separate = [Accumulator(b, acc_bits) for _ in range(plan.lanes)]
        self.b, self.n = b, plan.lanes
        super().__init__({"addend": In(plan.lanes * b), "valid": In(1), "clear": In(1),
                          "packed_sums": Out(len(self.packed.sums)),
                          "separate_sums": Out(plan.lanes * acc_bits),
                          "overflow": Out(1), "separate_overflow": Out(plan.lanes)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.packed = self.packed
        m.d.comb += [self.packed.addend.eq(self.addend), self.packed.valid.eq(self.valid),
                     self.packed.clear.eq(self.clear),
                     self.packed_sums.eq(self.packed.sums),
                     self.overflow.eq(self.packed.overflow)]
        sums, flags = [], []
        for i, acc in enumerate(self.separate):
            m.submodules[f"acc{i}"] = acc
            m.d.comb += [acc.addend.eq(self.addend[i * self.b:(i + 1) * self.b].as_signed()),
                         acc.valid.eq(self.valid), acc.clear.eq(self.clear)]
            sums.append(acc.acc)
            flags.append(acc.overflow)
        m.d.comb += [self.separate_sums.eq(Cat(*sums)),
                     self.separate_overflow.eq(Cat(*flags))]
        return m


@pytest.mark.parametrize("encoding", ["twos", "offset"])
def test_packed_accumulator_equals_separate_accumulators(encoding):
    """While the packed flag is low, every lane equals its own Accumulator (of the width
    the bound proves), and no separate accumulator overflows."""
    plan = adder_lanes((-8, 7), 20, lanes=4, encoding=encoding)
    acc_bits = plan.sum_bits
    dut = SideBySide(plan, acc_bits)
    rng = np.random.default_rng(11)
    steps = 400
    values = rng.integers(-8, 8, (steps, 4))
    values[rng.random(steps) < 0.3] = -8
    valid, clear = random_controls(rng, steps, plan.adds)
    seen_flag = seen_exact = 0

    async def bench(ctx):
        nonlocal seen_flag, seen_exact
        for t in range(steps):
            ctx.set(dut.addend, lane_bits(values[t], 4))
            ctx.set(dut.valid, int(valid[t]))
            ctx.set(dut.clear, int(clear[t]))
            await ctx.tick()
            packed = signed_fields(ctx.get(dut.packed_sums), plan.sum_bits, 4)
            separate = signed_fields(ctx.get(dut.separate_sums), acc_bits, 4)
            if ctx.get(dut.overflow):
                seen_flag += 1
            else:
                seen_exact += 1
                assert packed == separate, (t, packed, separate)
                assert ctx.get(dut.separate_overflow) == 0

    simulate(dut, bench)
    assert seen_flag and seen_exact


def test_peel_rule_exhaustive():
    """Every word of a 3 x 4-bit two's complement layout unpacks as golden unpack does."""
    layout = LaneLayout(3, 4, True)
    plan = AdderLanes(layout, 1)
    acc = PackedAccumulator(plan, addend_input="word")
    words = list(range(1 << 12))
    got = []

    async def bench(ctx):
        for w in words:
            ctx.set(acc.addend, w)
            ctx.set(acc.valid, 1)
            ctx.set(acc.clear, 1)
            await ctx.tick()
            got.append(signed_fields(ctx.get(acc.sums), plan.sum_bits, 3))

    simulate(acc, bench)
    np.testing.assert_array_equal(np.array(got), golden_lanes.unpack(words, layout))


def test_packed_accumulator_ports_and_errors():
    plan = product_adder_lanes("int4", "int4", k=64, word_bits=36)
    acc = PackedAccumulator(plan)
    assert (len(acc.addend), len(acc.word), len(acc.sums)) == (16, 28, 28)
    meta = acc.metadata()
    assert meta["lanes"]["adds"] == 64 and meta["lanes"]["method"] == "datatype"
    assert meta["port_lanes"]["sums"] == {"count": 2, "width": 14, "signed": True}
    assert len(PackedAccumulator(plan, addend_input="word").addend) == 28
    with pytest.raises(TypeError, match="expected a potgen.hw.lanes.AdderLanes"):
        PackedAccumulator(LaneLayout(2, 8))
    with pytest.raises(ValueError, match="addend_input='bits'"):
        PackedAccumulator(plan, addend_input="bits")


# --- PackedMacPE -----------------------------------------------------------------------------

def mac_reference(products, valid, clear, acc_bits, overflow):
    """MacPE semantics per lane: (acc, flag) after each edge (latency 0)."""
    lo, hi = -(1 << (acc_bits - 1)), (1 << (acc_bits - 1)) - 1
    acc = np.zeros(products.shape[1], dtype=np.int64)
    exact = acc.copy()
    flag = np.zeros(products.shape[1], dtype=bool)
    out = []
    for t in range(len(valid)):
        if clear[t]:
            acc[:], exact[:], flag[:] = 0, 0, False
        if valid[t]:
            exact = acc + products[t]
            flag |= (exact < lo) | (exact > hi)
            if overflow == "saturate":
                acc = np.clip(exact, lo, hi)
            else:
                acc = ((exact - lo) % (1 << acc_bits)) + lo
        out.append((acc.copy(), flag.copy()))
    return out


def run_mac(pe, acts, codes, valid, clear):
    """(acc lanes, overflow bits) per step, with the PE's latency removed."""
    plan = pe.plan
    n, latency = pe.lanes, pe.latency
    out = []

    async def bench(ctx):
        for t in range(len(valid) + latency):
            if t < len(valid):
                if plan.arrangement == "shared-weight":
                    ctx.set(pe.act, lane_bits(acts[t], plan.act.bits))
                    ctx.set(pe.weight, int(codes[t][0]))
                else:
                    ctx.set(pe.act, int(acts[t][0]) & ((1 << plan.act.bits) - 1))
                    ctx.set(pe.weight, lane_bits(codes[t], plan.weight.bits))
                ctx.set(pe.valid, int(valid[t]))
                ctx.set(pe.clear, int(clear[t]))
            else:
                ctx.set(pe.valid, 0)
                ctx.set(pe.clear, 0)
            await ctx.tick()
            if t >= latency:
                out.append((signed_fields(ctx.get(pe.acc), pe.acc_bits, n),
                            ctx.get(pe.overflow)))

    simulate(pe, bench)
    return out


def mac_inputs(pe, rng, steps):
    plan = pe.plan
    n = pe.lanes
    act, weight = plan.act, plan.weight
    shared = plan.arrangement == "shared-weight"
    acts = rng.integers(act.min_level, act.max_level + 1, (steps, n if shared else 1))
    codes = rng.integers(0, 1 << weight.bits, (steps, 1 if shared else n))
    corner = rng.random(steps) < 0.3   # extreme operands: the largest sums
    acts[corner] = act.min_level if rng.random() < 0.5 else act.max_level
    products = acts * weight.decode(codes)
    return acts, codes, products


@given(act=int_formats((2, 5)), weight=int_formats((2, 5)),
       arrangement=st.sampled_from(["shared-weight", "shared-act"]),
       accumulate=st.sampled_from(["lanes", "packed"]), pipeline=st.integers(0, 2),
       k=st.integers(1, 40), seed=st.integers(0, 2 ** 32 - 1))
def test_packed_mac_matches_dot_products(act, weight, arrangement, accumulate, pipeline, k,
                                         seed):
    pe = PackedMacPE(weight, act, k=k, arrangement=arrangement, accumulate=accumulate,
                     pipeline=pipeline)
    rng = np.random.default_rng(seed)
    steps = 3 * k + 12
    acts, codes, products = mac_inputs(pe, rng, steps)
    valid, clear = random_controls(rng, steps, k)
    got = run_mac(pe, acts, codes, valid, clear)
    full = (1 << pe.lanes) - 1
    if accumulate == "lanes":
        want = mac_reference(products, valid, clear, pe.acc_bits, "wrap")
        for t, ((acc, flags), (want_acc, want_flags)) in enumerate(zip(got, want)):
            assert acc == want_acc.tolist(), (t, acc, want_acc)
            assert flags == sum(int(f) << i for i, f in enumerate(want_flags))
    else:
        count, exact = 0, np.zeros(pe.lanes, dtype=np.int64)
        for t, (acc, flags) in enumerate(got):
            if clear[t]:
                count, exact = 0, exact * 0
            if valid[t]:
                count += 1
                exact = exact + products[t]
            assert flags == (full if count > k else 0), (t, flags, count)
            if count <= k:
                assert acc == exact.tolist(), (t, acc, exact)


@pytest.mark.parametrize("arrangement", ["shared-weight", "shared-act"])
def test_lanes_mode_saturates_like_macpe(arrangement):
    pe = PackedMacPE("int4", "int4", acc_bits=9, overflow="saturate",
                     arrangement=arrangement, pipeline=1)
    rng = np.random.default_rng(5)
    steps = 300
    acts, codes, products = mac_inputs(pe, rng, steps)
    valid, clear = random_controls(rng, steps, 30)
    got = run_mac(pe, acts, codes, valid, clear)
    want = mac_reference(products, valid, clear, 9, "saturate")
    flagged = 0
    for (acc, flags), (want_acc, want_flags) in zip(got, want):
        assert acc == want_acc.tolist()
        assert flags == sum(int(f) << i for i, f in enumerate(want_flags))
        flagged += bool(flags)
    assert flagged   # some sums did saturate


def test_packed_mac_lane_counts_and_metadata():
    lanes_pe = PackedMacPE("int2", "int2", k=16)
    packed_pe = PackedMacPE("int2", "int2", k=16, accumulate="packed")
    # Per-product spacing fits 5 lanes; a spacing holding 16-product sums fits 3.
    assert (lanes_pe.lanes, packed_pe.lanes) == (5, 3)
    assert packed_pe.plan.terms == 16 and packed_pe.plan.spacing == 8
    meta = packed_pe.metadata()
    assert meta["kind"] == "packed-mac" and meta["accumulate"] == "packed"
    assert meta["macs_per_multiplier"] == 3 and meta["bound"]["method"] == "datatype"
    assert meta["acc_bits"] == bounds.datatype("int2", "int2", 16).bits
    assert meta["accumulator_lanes"]["adds"] == 16
    assert meta["port_lanes"]["acc"] == {"count": 3, "width": meta["acc_bits"],
                                         "signed": True}
    assert (len(packed_pe.act), len(packed_pe.weight), len(packed_pe.overflow)) == (6, 2, 3)
    pe = PackedMacPE("int4", "int4", k=64, accumulate="packed")
    assert (pe.lanes, pe.plan.spacing) == (2, 14)


@pytest.mark.parametrize("kwargs, error, words", [
    (dict(accumulate="packed", acc_bits=12), ValueError, ["needs k"]),
    (dict(accumulate="packed", k=8, overflow="saturate"), ValueError,
     ["overflow='saturate'", "accumulate='lanes'"]),
    (dict(accumulate="packed", k=64, acc_bits=10), ValueError,
     ["acc_bits=10", "k=64", "needs 14 bits"]),
    (dict(acc_bits="auto"), ValueError, ["needs k"]),
    (dict(acc_bits=6, k=4), ValueError, ["acc_bits=6", "narrower than a product"]),
    (dict(k=4, lanes=3), ValueError, ["lanes=3", "at most 2"]),
    (dict(k=4, accumulate="both"), ValueError, ["accumulate='both'"]),
    (dict(k=0), ValueError, ["k=0"]),
])
def test_packed_mac_bad_input(kwargs, error, words, recwarn):
    with pytest.raises(error) as info:
        PackedMacPE("int4", "int4", **kwargs)
    for word in words:
        assert word in str(info.value)
    assert not [w for w in recwarn if "UnusedElaboratable" in str(w.category)]


def test_packed_mac_pot_weights():
    """A power-of-two weight format through the decode table, packed accumulation."""
    pe = PackedMacPE("pot3", "int4", k=8, accumulate="packed")
    rng = np.random.default_rng(2)
    acts, codes, products = mac_inputs(pe, rng, 60)
    valid, clear = random_controls(rng, 60, 8)
    exact, count = np.zeros(pe.lanes, dtype=np.int64), 0
    for t, (acc, _) in enumerate(run_mac(pe, acts, codes, valid, clear)):
        if clear[t]:
            exact, count = exact * 0, 0
        if valid[t]:
            exact, count = exact + products[t], count + 1
        if count <= 8:
            assert acc == exact.tolist()
    # pot3 levels +-4 enter as a 4-bit signed level; int4 lanes carry the offset 8, whose
    # correction comes from the accumulated levels.
    assert (pe.plan.shared_width, pe.plan.offset) == (4, 8)
