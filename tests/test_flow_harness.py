"""The timing harness, simulated cycle by cycle against a Python model of it (fast).

The model is written from the harness's documented behaviour: a shift register fed
from ``si`` (its oldest bit is the block's reset, the next bits its inputs in
signature order), the outputs captured in registers and XOR-reduced four bits at a
time with a register after every level. If the harness dropped, reordered or
constant-folded any input or output bit, ``so`` would disagree with the model.
"""

import random

import pytest
from amaranth import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from potgen.flow.designs import DEFAULT_PE_FAMILY, DesignSpec, expand_format, \
    parse_acc_bits, parse_design_name
from potgen.flow.harness import TimingHarness

# Several tests build components only to inspect or refuse them.
pytestmark = pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")


class CombBlock(wiring.Component):
    """Combinational: s = a + b, p = a & b (7 output bits from 7 input bits)."""

    def __init__(self):
        super().__init__({"a": In(3), "b": In(4), "s": Out(5), "p": Out(3)})

    def elaborate(self, platform):
        m = Module()
        m.d.comb += [self.s.eq(self.a + self.b), self.p.eq(self.a & self.b)]
        return m


class Counter(wiring.Component):
    """Synchronous: count += inc each cycle, zeroed by the domain's reset."""

    def __init__(self):
        super().__init__({"inc": In(2), "count": Out(6)})

    def elaborate(self, platform):
        m = Module()
        m.d.sync += self.count.eq(self.count + self.inc)
        return m


def _xor_tree(bits, state):
    """Advance the model's registered XOR tree one edge; returns the new ``so``."""
    new_state, level = [], bits
    for regs in state:
        reduced = [0] * len(regs)
        for i in range(len(regs)):
            for b in level[4 * i:4 * i + 4]:
                reduced[i] ^= b
        new_state.append(reduced)
        level = regs  # the next level reduces this level's *old* register values
    return new_state


def _run(component, block_step, cycles=200, seed=1):
    harness = TimingHarness(component)
    rng = random.Random(seed)
    n_in, n_out = harness.input_bits, harness.output_bits
    si_bits = [rng.getrandbits(1) for _ in range(cycles)]
    seen = []

    async def bench(ctx):
        # The harness clocks its domains from its own `clk` pin, so the bench toggles it.
        for bit in si_bits:
            ctx.set(harness.si, bit)
            await ctx.delay(1e-6)
            ctx.set(harness.clk, 1)
            await ctx.delay(1e-6)
            seen.append(ctx.get(harness.so))
            ctx.set(harness.clk, 0)

    sim = Simulator(harness)
    sim.add_testbench(bench)
    sim.run()

    # Model: chain (LSB = reset), captured outputs, XOR levels, block state.
    chain = [0] * (n_in + 1)
    captured = [0] * n_out
    sizes, width = [], n_out
    while width > 1:
        width = -(-width // 4)
        sizes.append(width)
    levels = [[0] * s for s in sizes]
    block = {"count": 0}
    expect = []
    for bit in si_bits:
        inputs = chain[1:]
        outputs = block_step(block, inputs, chain[0])  # comb outputs before the edge
        new_levels = _xor_tree(captured, levels)
        captured = outputs
        levels = new_levels
        chain = chain[1:] + [bit]
        expect.append(levels[-1][0] if levels else captured[0])
    return harness, seen, expect


def _bits(value, width):
    return [(value >> i) & 1 for i in range(width)]


def _word(bits):
    return sum(b << i for i, b in enumerate(bits))


def test_comb_block_every_bit_reaches_so():
    def step(state, inputs, rst):
        a, b = _word(inputs[:3]), _word(inputs[3:7])
        return _bits(a + b, 5) + _bits(a & b, 3)

    harness, seen, expect = _run(CombBlock(), step)
    assert (harness.input_bits, harness.output_bits, harness.xor_levels) == (7, 8, 2)
    assert seen == expect
    assert 0 < sum(seen) < len(seen)  # so toggles: the check is not vacuous


def test_sync_block_gets_clock_and_registered_reset():
    def step(state, inputs, rst):
        out = _bits(state["count"], 6)
        state["count"] = 0 if rst else (state["count"] + _word(inputs)) % 64
        return out

    harness, seen, expect = _run(Counter(), step, cycles=300, seed=7)
    assert harness.input_bits == 2 and harness.xor_levels == 2
    assert seen == expect


def test_harness_refuses_what_it_cannot_time():
    with pytest.raises(TypeError, match="wiring.Component"):
        TimingHarness(Module())

    class NoOutputs(wiring.Component):
        def __init__(self):
            super().__init__({"a": In(4)})

        def elaborate(self, platform):
            return Module()

    with pytest.raises(ValueError, match="no output bits"):
        TimingHarness(NoOutputs())


def test_harness_ports_are_three_pins():
    harness = TimingHarness(CombBlock())
    assert sorted(harness.signature.members) == ["clk", "si", "so"]


# --- design names and specs -----------------------------------------------------------

def test_design_names():
    assert str(parse_design_name("int8-lut")[0]) == "int8"
    assert parse_design_name("int8-lut")[1] == "lut"
    assert parse_design_name("pot4-nz")[1] is None
    assert str(parse_design_name("pot4-nz")[0]) == "pot4-nz"
    assert parse_design_name("apot4-dsp")[1] == "dsp"
    with pytest.raises(ValueError, match="int8-dsp or int8-lut"):
        parse_design_name("int8")
    with pytest.raises(ValueError, match="design 'pot9'"):
        parse_design_name("pot9")
    assert expand_format("int4") == ["int4-dsp", "int4-lut"]
    assert expand_format("sp2-4") == ["sp2-4"]


def test_acc_bits_choices():
    assert parse_acc_bits("auto") == "auto" and parse_acc_bits("datatype") == "auto"
    assert parse_acc_bits("24") == 24
    with pytest.raises(ValueError, match="actual weights"):
        parse_acc_bits("l1")
    with pytest.raises(ValueError, match="not an accumulator width"):
        parse_acc_bits("wide")


def test_default_family_builds_with_datatype_bounds():
    specs = [DesignSpec(name) for name in DEFAULT_PE_FAMILY]
    built = {s.name: s.build() for s in specs}
    # K = 64, uint8 activations: int8 needs 64 * 255 * 128 = 2,088,960 -> 22 bits;
    # pot4's largest level is 64: 64 * 255 * 64 = 1,044,480 -> 21 bits.
    assert built["int8-lut"].acc_bits == 22
    assert built["pot4"].acc_bits == 21
    design = specs[0].design(built["int8-dsp"])
    assert {k: design[k] for k in ("kind", "weight", "act", "acc_bits", "multiplier")} \
        == {"kind": "mac", "weight": "int8", "act": "uint8", "acc_bits": 22,
            "multiplier": "dsp"}
    assert DesignSpec("pot4").design(built["pot4"])["multiplier"] == "none"
    assert DesignSpec("pot4", sign="negate").label == "pot4 (negate)"
    assert DesignSpec("int8-lut", sign="negate").label == "int8-lut"
    product = DesignSpec("apot4", kind="product").build()
    assert type(product).__name__ == "ShiftAddProduct"


def test_spec_validation():
    with pytest.raises(ValueError, match="activation format"):
        DesignSpec("pot4", act="pot4")
    with pytest.raises(ValueError, match="kind"):
        DesignSpec("pot4", kind="crossbar")
    with pytest.raises(ValueError, match="rows: an array design needs rows"):
        DesignSpec("pot4", kind="array")
