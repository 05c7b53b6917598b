"""HostTop in Amaranth simulation (with a stand-in host link) and its emitted ports."""

import itertools

import numpy as np
import pytest
from amaranth.sim import Simulator
from amaranth_sim import collect_unelaborated  # noqa: F401 (fixture)
from test_boards_link_double import LinkDouble

from potgen import golden
from potgen.boards.fit import _silence
from potgen.hw.accelerator import Accelerator
from potgen.hw.host_top import LED_FIELDS, HostTop, capability_string
from potgen.hw.self_test import SelfTestVectors
from potgen.runtime.driver import AcceleratorDriver, Backend

pytestmark = pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")

#: Slow enough clock that the LED rates are a few hundred cycles (see _blink_bits).
CLK = 256


class _Encode(Backend):
    def run(self, program):
        raise AssertionError("not used")


def _top(acc=None, **kwargs):
    acc = acc or Accelerator(2, 2, "pot4", "uint8", k_max=8)
    kwargs.setdefault("clk_freq", CLK)
    kwargs.setdefault("baud", 8)
    return HostTop(acc, link_factory=LinkDouble, **kwargs)


def _simulate(top, bench):
    sim = Simulator(top)
    sim.add_clock(1 / CLK)
    sim.add_testbench(bench)
    sim.run()


def _leds(ctx, top):
    return {name: ctx.get(getattr(top.leds, name)) for name in LED_FIELDS}


def test_link_gets_the_accelerators_widths_and_capability():
    acc = Accelerator(2, 3, "apot4", "int8", k_max=8)
    top = _top(acc, baud=16)
    assert top.link.kwargs == dict(dout_bits=acc.data_out_bits, clk_freq=CLK, baud=16,
                                   capability=capability_string(acc))
    assert b"2x3" in capability_string(acc) and b"apot4" in capability_string(acc)
    _silence(top)


def _led_trace(top, cycles):
    trace = []

    async def bench(ctx):
        for _ in range(cycles):
            await ctx.tick()
            trace.append(_leds(ctx, top))
    _simulate(top, bench)
    return trace


def _toggles(trace, name):
    values = [t[name] for t in trace]
    return sum(a != b for a, b in itertools.pairwise(values))


def test_leds_while_running_then_slow_blink_after_a_pass():
    trace = _led_trace(_top(), 1200)
    first, last = trace[1], trace[-1]
    assert [first[k] for k in ("running", "summary", "passed", "failed")] == [1, 1, 0, 0]
    assert any(t["busy"] for t in trace[:200])
    done = next(i for i, t in enumerate(trace) if not t["running"])
    after = trace[done:]
    assert all(t["passed"] == 1 and t["failed"] == 0 for t in after)
    # 1 Hz at CLK cycles per second: a toggle every CLK / 2 cycles.
    assert _toggles(after, "summary") == pytest.approx(len(after) / (CLK / 2), abs=1.5)
    assert last["acc_error"] == 0 and last["link_error"] == 0


def test_leds_fast_blink_after_a_failure():
    acc = Accelerator(2, 2, "pot4", "uint8", k_max=8)
    good = SelfTestVectors.for_accelerator(acc)
    wrong = SelfTestVectors.for_accelerator(
        acc, expected=(good.expected[0] ^ 2,) + good.expected[1:])
    trace = _led_trace(_top(acc, vectors=wrong), 800)
    done = next(i for i, t in enumerate(trace) if not t["running"])
    after = trace[done:]
    assert all(t["failed"] == 1 and t["passed"] == 0 for t in after)
    # 8 Hz: a toggle every CLK / 16 cycles.
    assert _toggles(after, "summary") == pytest.approx(len(after) / (CLK / 16), abs=1.5)


def test_heartbeat_without_self_test():
    trace = _led_trace(_top(self_test=False), 600)
    assert all(t["running"] == 0 and t["passed"] == 0 and t["failed"] == 0 for t in trace)
    assert _toggles(trace, "summary") == pytest.approx(600 / (CLK / 2), abs=1.5)


def test_activity_is_stretched_and_link_error_shown():
    top = _top(self_test=False)
    hold = int(CLK * 0.05)
    seen = []

    async def bench(ctx):
        ctx.set(top.link.activity, 1)
        await ctx.tick()
        ctx.set(top.link.activity, 0)
        for _ in range(hold + 5):
            seen.append(ctx.get(top.leds.activity))
            await ctx.tick()
        ctx.set(top.link.link_error, 1)
        await ctx.tick()
        seen.append(("link_error", ctx.get(top.leds.link_error)))

    _simulate(top, bench)
    assert seen[:hold] == [1] * hold and seen[hold:hold + 5] == [0] * 5
    assert seen[-1] == ("link_error", 1)


def test_uart_pins_pass_through_the_link():
    top = _top(self_test=False)
    got = []

    async def bench(ctx):
        for value in (0, 1, 0):
            ctx.set(top.uart_rx, value)
            got.append((ctx.get(top.link.uart_rx), ctx.get(top.uart_tx)))

    _simulate(top, bench)
    assert got == [(0, 1), (1, 1), (0, 1)]


def test_a_gemm_through_the_link_streams_after_the_self_test():
    acc = Accelerator(2, 3, "pot4", "int8", k_max=8)
    top = _top(acc)
    driver = AcceleratorDriver(acc.metadata(), _Encode())
    rng = np.random.default_rng(11)
    acts = rng.integers(-128, 128, size=(4, 7))
    codes = rng.integers(0, 16, size=(7, 5))
    program = driver.program(acts, codes)
    link = top.link
    words = []

    async def bench(ctx):
        for _ in range(2000):
            await ctx.tick()
            if not ctx.get(top.leds.running):
                break
        assert ctx.get(top.leds.passed) == 1
        cmd, din = list(program.commands), list(program.data)
        ctx.set(link.dout.ready, 1)
        for _ in range(20000):
            ctx.set(link.cmd.valid, bool(cmd))
            ctx.set(link.cmd.payload, cmd[0] if cmd else 0)
            ctx.set(link.din.valid, bool(din))
            ctx.set(link.din.payload, din[0] if din else 0)
            took_cmd = cmd and ctx.get(link.cmd.ready)
            took_din = din and ctx.get(link.din.ready)
            if ctx.get(link.dout.valid):
                words.append(ctx.get(link.dout.payload))
            await ctx.tick()
            if took_cmd:
                cmd.pop(0)
            if took_din:
                din.pop(0)
            if len(words) == program.outputs:
                break
        assert ctx.get(link.acc_error) == 0

    _simulate(top, bench)
    values, _ = driver.decode(words, 4, 5, False, program.tiles)
    assert np.array_equal(values, golden.matmul(acts, codes, "pot4").acc)


def test_emitted_module_has_exactly_the_uart_and_led_pins():
    from potgen.hw.export import emit
    top = HostTop(Accelerator(2, 2, "pot4", "uint8", k_max=8), clk_freq=25e6)
    text, meta = emit(top, "potgen_host")
    ports = [(p["name"], p["direction"], p["width"]) for p in meta["ports"]]
    assert ports == [("clk", "input", 1), ("rst", "input", 1), ("uart_rx", "input", 1),
                     ("uart_tx", "output", 1), ("leds", "output", 8)]
    assert meta["leds"] == {name: bit for bit, name in enumerate(LED_FIELDS)}
    assert "module potgen_host" in text


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(clk_freq=0), ValueError, "clk_freq=0"),
    (dict(clk_freq="fast"), ValueError, "clk_freq='fast'"),
    (dict(baud=CLK), ValueError, f"baud={CLK}"),
    (dict(baud=9600.0), ValueError, "baud=9600.0"),
    (dict(self_test="yes"), TypeError, "self_test='yes'"),
    (dict(self_test=False, vectors="v"), ValueError, "vectors"),
])
def test_bad_parameters(kwargs, error, match):
    acc = Accelerator(2, 2, "pot4", "uint8", k_max=8)
    _silence(acc)
    with pytest.raises(error, match=match):
        _top(acc, **kwargs)


def test_link_factory_must_be_callable():
    acc = Accelerator(2, 2, "pot4", "uint8", k_max=8)
    _silence(acc)
    with pytest.raises(TypeError, match="link_factory"):
        HostTop(acc, clk_freq=CLK, baud=8, link_factory="HostLink")
