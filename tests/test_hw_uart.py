"""UartRx / UartTx in Amaranth simulation against a bit-level model of an 8N1 line.

The transmitter's pin is recorded cycle by cycle and every bit window is checked to be
exactly ``clocks_per_bit`` cycles of one level; the receiver is fed every byte value
back to back, with the far end's clock off by up to 3%, with bad stop bits, glitches
and a consumer that does not keep up.
"""

from __future__ import annotations

import numpy as np
import pytest

from amaranth_sim import collect_unelaborated, simulate  # noqa: F401
from potgen.hw.uart import MIN_CLOCKS_PER_BIT, UartRx, UartTx, clocks_per_bit

pytestmark = pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")


def _frame_bits(byte, stop=1):
    return [0] + [(byte >> i) & 1 for i in range(8)] + [stop]


def test_clocks_per_bit():
    assert clocks_per_bit(48_000_000, 115200) == 417
    assert clocks_per_bit(1_000_000, 250_000) == 4
    assert clocks_per_bit(1_000_000, 90_000) == 11        # 90909 baud: 1.0% off, allowed
    with pytest.raises(ValueError, match="at least 4"):
        clocks_per_bit(1_000_000, 300_000)
    with pytest.raises(ValueError, match="9.1% off"):
        clocks_per_bit(1_000_000, 220_000)                # 5 clocks: 200000 baud
    with pytest.raises(TypeError, match="clk_freq"):
        clocks_per_bit("fast", 9600)
    with pytest.raises(ValueError, match="baud=0"):
        clocks_per_bit(1e6, 0)
    with pytest.raises(ValueError, match="clk_freq"):
        UartRx(clk_freq=-1, baud=9600)


def _run_rx(cpb, frames, *, skew=0.0, ready_every_frame=True):
    """Bit-bang ``frames`` (lists of line levels) into a UartRx; return delivered
    (byte, framing_error) pairs and the number of overrun pulses.

    ``skew``: the sender's bit time is ``cpb * (1 + skew)`` cycles (edges rounded to
    the clock). The consumer takes a waiting byte once per frame, during the next
    frame's first bit (or never, if ``ready_every_frame`` is false)."""
    dut = UartRx(clk_freq=cpb * 1000, baud=1000)
    got, overruns = [], []

    async def bench(ctx):
        ctx.set(dut.rx, 1)
        await ctx.tick().repeat(3 * cpb)
        t = 0.0
        now = 0
        for bits in frames + [[1, 1]]:
            for index, level in enumerate(bits):
                ctx.set(dut.rx, level)
                t += cpb * (1 + skew)
                end = round(t)
                bit_start = now
                while now < end:
                    take = (index == 0 and now == bit_start and ready_every_frame
                            and ctx.get(dut.bytes.valid))
                    ctx.set(dut.bytes.ready, bool(take))
                    if take:
                        payload = ctx.get(dut.bytes.payload)
                        got.append((int(payload.data), int(payload.framing_error)))
                    if ctx.get(dut.overrun):
                        overruns.append(now)
                    await ctx.tick()
                    now += 1
        ctx.set(dut.bytes.ready, 0)
        await ctx.tick().repeat(2 * cpb)
        if ctx.get(dut.bytes.valid):            # still waiting: never taken
            payload = ctx.get(dut.bytes.payload)
            got.append((int(payload.data), int(payload.framing_error)))

    simulate(dut, bench)
    return got, overruns


def test_rx_every_byte_back_to_back():
    values = list(range(256))
    got, overruns = _run_rx(4, [_frame_bits(v) for v in values])
    assert got == [(v, 0) for v in values]
    assert overruns == []


@pytest.mark.parametrize("skew", [-0.03, 0.03])
def test_rx_tolerates_a_skewed_sender(skew):
    rng = np.random.default_rng(1)
    values = [0x00, 0xFF, 0x55, 0xAA, 0x01, 0x80] + [int(v) for v in rng.integers(0, 256, 20)]
    got, _ = _run_rx(16, [_frame_bits(v) for v in values], skew=skew)
    assert got == [(v, 0) for v in values]


def test_rx_framing_error_flagged_and_recovered():
    # A zero stop bit, the line held low a while (a break), then normal bytes.
    frames = [_frame_bits(0x3C), _frame_bits(0x5A, stop=0) + [0, 0, 0, 1], _frame_bits(0xC3)]
    got, _ = _run_rx(8, frames)
    assert got == [(0x3C, 0), (0x5A, 1), (0xC3, 0)]


def test_rx_ignores_a_start_glitch():
    dut = UartRx(clk_freq=8000, baud=1000)
    seen = []

    async def bench(ctx):
        ctx.set(dut.bytes.ready, 1)
        await ctx.tick().repeat(10)
        ctx.set(dut.rx, 0)                  # low for 3 of 8 clocks: less than half a bit
        await ctx.tick().repeat(3)
        ctx.set(dut.rx, 1)
        for _ in range(200):
            await ctx.tick()
            seen.append(ctx.get(dut.bytes.valid))

    simulate(dut, bench)
    assert not any(seen)


def test_rx_overrun_keeps_the_waiting_byte():
    got, overruns = _run_rx(4, [_frame_bits(0x11), _frame_bits(0x22), _frame_bits(0x33)],
                            ready_every_frame=False)
    assert len(overruns) == 2
    assert got == [(0x11, 0)]


def test_tx_every_byte_bit_exact():
    cpb = 5
    dut = UartTx(clk_freq=cpb * 1000, baud=1000)
    values = list(range(256))
    line = []
    busy = []

    async def bench(ctx):
        index = 0
        for _ in range(3):
            line.append(ctx.get(dut.tx))
            await ctx.tick()
        ctx.set(dut.bytes.valid, 1)
        ctx.set(dut.bytes.payload, values[0])
        while index < len(values) or ctx.get(dut.busy):
            taken = index < len(values) and ctx.get(dut.bytes.ready)
            line.append(ctx.get(dut.tx))
            busy.append(ctx.get(dut.busy))
            await ctx.tick()
            if taken:
                index += 1
                ctx.set(dut.bytes.valid, index < len(values))
                ctx.set(dut.bytes.payload, values[index] if index < len(values) else 0)
        for _ in range(2 * cpb):
            line.append(ctx.get(dut.tx))
            await ctx.tick()

    simulate(dut, bench)
    line = np.array(line)
    start = int(np.argmin(line))
    assert (line[:start] == 1).all()
    # Frames back to back, each bit window exactly cpb cycles of one level.
    for k, value in enumerate(values):
        base = start + 10 * cpb * k
        for i, level in enumerate(_frame_bits(value)):
            window = line[base + i * cpb: base + (i + 1) * cpb]
            assert (window == level).all(), (value, i, window)
    assert (line[start + 10 * cpb * len(values):] == 1).all()
    # busy is high from the first start bit to the end of the last stop bit.
    busy = np.array(busy)
    assert busy[start - 3:start - 3 + 10 * cpb * len(values)].all()
    assert not busy[start - 3 + 10 * cpb * len(values):].any()


def test_minimum_clocks_per_bit_round_trip():
    """TX into RX at the smallest clocks per bit: every byte arrives unchanged."""
    from amaranth.hdl import Elaboratable, Module

    class Loop(Elaboratable):
        def __init__(self):
            self.tx = UartTx(clk_freq=MIN_CLOCKS_PER_BIT * 1000, baud=1000)
            self.rx = UartRx(clk_freq=MIN_CLOCKS_PER_BIT * 1000, baud=1000)

        def elaborate(self, platform):
            m = Module()
            m.submodules.tx, m.submodules.rx = self.tx, self.rx
            m.d.comb += self.rx.rx.eq(self.tx.tx)
            return m

    loop = Loop()
    values = [0x00, 0xFF, 0xA5, 0x5A, 0x01, 0x80, 0x7E]
    got = []

    async def bench(ctx):
        ctx.set(loop.rx.bytes.ready, 1)
        index = 0
        for _ in range(len(values) * 10 * MIN_CLOCKS_PER_BIT + 40):
            ctx.set(loop.tx.bytes.valid, index < len(values))
            ctx.set(loop.tx.bytes.payload, values[index] if index < len(values) else 0)
            taken = index < len(values) and ctx.get(loop.tx.bytes.ready)
            if ctx.get(loop.rx.bytes.valid):
                got.append(int(ctx.get(loop.rx.bytes.payload.data)))
            await ctx.tick()
            index += taken

    simulate(loop, bench)
    assert got == values
