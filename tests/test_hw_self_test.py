"""Power-on self-test in Amaranth simulation: pass, fail on a wrong expectation or a hung
accelerator, and the host's own GEMM after the test, bit-exact against the golden model."""

import numpy as np
import pytest
from amaranth.sim import Simulator
from amaranth_sim import collect_unelaborated  # noqa: F401 (fixture)

from potgen import golden
from potgen.boards.fit import _silence
from potgen.hw.accelerator import Accelerator
from potgen.hw.self_test import SelfTest, SelfTestVectors
from potgen.runtime.driver import AcceleratorDriver, Backend

pytestmark = pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")


class _Encode(Backend):
    def run(self, program):
        raise AssertionError("not used")


def _run_until_verdict(dut, max_cycles=3000, after=None):
    """Simulate until ``status.running`` falls; return (cycles, passed, failed, after())."""
    out = {}

    async def bench(ctx):
        for cycle in range(max_cycles):
            await ctx.tick()
            if not ctx.get(dut.status.running):
                break
        out["cycles"] = cycle
        out["passed"] = ctx.get(dut.status.passed)
        out["failed"] = ctx.get(dut.status.failed)
        if after is not None:
            out["after"] = await after(ctx)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return out


@pytest.mark.parametrize("rows, cols, weight, act, k_max", [
    (2, 3, "pot4", "uint8", 16),
    (3, 2, "apot4", "int8", 8),
    (2, 2, "sp2-4", "uint4", 4),
])
def test_passes_on_a_correct_accelerator(rows, cols, weight, act, k_max):
    dut = SelfTest(Accelerator(rows, cols, weight, act, k_max=k_max))
    out = _run_until_verdict(dut)
    assert (out["passed"], out["failed"]) == (1, 0)
    assert out["cycles"] < 1000


def test_vectors_are_the_golden_products_in_the_drain_layout():
    acc = Accelerator(2, 3, "pot4", "uint8", k_max=16)
    _silence(acc)
    v = SelfTestVectors.for_accelerator(acc)
    acts, codes = np.array(v.acts), np.array(v.codes)
    assert acts.shape == (2, 8) and codes.shape == (8, 3)
    assert acts.min() == 0 and acts.max() == 255          # both ends of uint8
    assert set(codes.ravel()) == set(range(16)) or len(set(codes.ravel())) == codes.size
    # Independent scalar reference of every accumulator.
    levels = acc.array.column_formats[0].levels()
    ref = [[sum(int(acts[i, k]) * levels[codes[k, j]] for k in range(8)) for j in range(3)]
           for i in range(2)]
    meta = acc.metadata()
    lanes, bits = meta["dout_lanes"], meta["lane_bits"]
    lane_values = [(w >> (bits * lane)) & ((1 << bits) - 1) for w in v.expected
                   for lane in range(lanes)]
    per_row = len(v.expected) // 2 * lanes
    got = [[lane_values[i * per_row + j] for j in range(3)] for i in range(2)]
    P = acc.acc_bits
    assert got == [[r & ((1 << P) - 1) for r in row] for row in ref]


def test_a_wrong_expectation_fails():
    acc = Accelerator(2, 3, "pot4", "uint8", k_max=16)
    good = SelfTestVectors.for_accelerator(acc)
    wrong = (good.expected[0] ^ 1,) + good.expected[1:]
    dut = SelfTest(acc, vectors=SelfTestVectors.for_accelerator(acc, expected=wrong))
    out = _run_until_verdict(dut)
    assert (out["passed"], out["failed"]) == (0, 1)


def test_a_wrong_last_word_fails_too():
    acc = Accelerator(2, 2, "pot4", "uint8", k_max=8)
    good = SelfTestVectors.for_accelerator(acc)
    wrong = good.expected[:-1] + (good.expected[-1] ^ 1,)
    out = _run_until_verdict(SelfTest(acc, vectors=SelfTestVectors.for_accelerator(
        acc, expected=wrong)))
    assert (out["passed"], out["failed"]) == (0, 1)


def test_a_hung_accelerator_fails_by_the_timeout():
    acc = Accelerator(2, 2, "pot4", "uint8", k_max=8)
    good = SelfTestVectors.for_accelerator(acc)
    # Half of the operand words never come: the accelerator waits for ever.
    starved = SelfTestVectors(good.acts, good.codes, good.commands,
                              good.data[:len(good.data) // 2], good.expected, good.masks)
    dut = SelfTest(acc, vectors=starved, timeout_cycles=500)
    out = _run_until_verdict(dut, max_cycles=2000)
    assert (out["passed"], out["failed"]) == (0, 1)
    assert 490 <= out["cycles"] <= 510


def test_host_streams_reach_the_accelerator_after_the_test():
    acc = Accelerator(2, 3, "pot4", "int8", k_max=16)
    dut = SelfTest(acc)
    driver = AcceleratorDriver(acc.metadata(), _Encode())
    rng = np.random.default_rng(3)
    acts = rng.integers(-128, 128, size=(3, 10))
    codes = rng.integers(0, 16, size=(10, 4))
    program = driver.program(acts, codes)

    async def host(ctx):
        words = []
        cmd, din = list(program.commands), list(program.data)
        ctx.set(dut.dout.ready, 1)
        for _ in range(20000):
            ctx.set(dut.cmd.valid, bool(cmd))
            ctx.set(dut.cmd.payload, cmd[0] if cmd else 0)
            ctx.set(dut.din.valid, bool(din))
            ctx.set(dut.din.payload, din[0] if din else 0)
            took_cmd = cmd and ctx.get(dut.cmd.ready)
            took_din = din and ctx.get(dut.din.ready)
            got = ctx.get(dut.dout.valid)
            value = ctx.get(dut.dout.payload)
            await ctx.tick()
            if took_cmd:
                cmd.pop(0)
            if took_din:
                din.pop(0)
            if got:
                words.append(value)
            if len(words) == program.outputs:
                return words
        raise AssertionError("the accelerator did not finish")

    out = _run_until_verdict(dut, after=host)
    assert out["passed"] == 1
    values, overflow = driver.decode(out["after"], 3, 4, False, program.tiles)
    ref = golden.matmul(acts, codes, "pot4")
    assert np.array_equal(values, ref.acc) and not overflow.any()


def test_host_is_held_off_while_the_test_runs():
    dut = SelfTest(Accelerator(2, 2, "pot4", "uint8", k_max=8))
    seen = {}

    async def bench(ctx):
        ctx.set(dut.cmd.valid, 1)
        ctx.set(dut.din.valid, 1)
        for _ in range(5):
            await ctx.tick()
            seen.setdefault("cmd_ready", set()).add(ctx.get(dut.cmd.ready))
            seen.setdefault("din_ready", set()).add(ctx.get(dut.din.ready))
            seen.setdefault("dout_valid", set()).add(ctx.get(dut.dout.valid))
            seen.setdefault("running", set()).add(ctx.get(dut.status.running))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert seen == {"cmd_ready": {0}, "din_ready": {0}, "dout_valid": {0}, "running": {1}}


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(k=0), ValueError, "k=0"),
    (dict(k=99), ValueError, "k=99"),
    (dict(expected=(1, 2)), ValueError, "expected: 2 words"),
])
def test_bad_vector_parameters(kwargs, error, match):
    acc = Accelerator(2, 2, "pot4", "uint8", k_max=8)
    _silence(acc)
    with pytest.raises(error, match=match):
        SelfTestVectors.for_accelerator(acc, **kwargs)


def test_bad_self_test_parameters():
    acc = Accelerator(2, 2, "pot4", "uint8", k_max=8)
    _silence(acc)
    with pytest.raises(TypeError, match="accelerator"):
        SelfTest("accelerator")
    with pytest.raises(TypeError, match="vectors"):
        SelfTest(acc, vectors=[1, 2])
    with pytest.raises(ValueError, match="timeout_cycles=3"):
        SelfTest(acc, timeout_cycles=3)
