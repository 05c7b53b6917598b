"""8N1 UART receiver and transmitter with ``lib.stream`` byte interfaces.

A frame on the line is one start bit (0), eight data bits (least significant first)
and one stop bit (1); the line idles high. Both directions run from the ``sync`` clock
with ``clocks_per_bit = round(clk_freq / baud)`` clocks per bit (:func:`clocks_per_bit`
refuses clocks too slow for mid-bit sampling and baud rates the clock cannot reach
within 2%).

The receiver passes the pin through a two flip-flop synchroniser (the pin is
asynchronous to the clock), waits for a falling edge, checks the start bit again half
a bit later (a shorter glitch is not a frame) and samples every following bit in its
middle. A stop bit that reads 0 is a framing error: the byte is still delivered, with
its ``framing_error`` flag set, and the receiver waits for the line to go high again,
so a held-low line (a break) yields one byte, not a stream of them.
"""

from __future__ import annotations

from numbers import Real

from amaranth.hdl import Cat, Const, Module, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.wiring import In, Out

__all__ = ["UartRx", "UartTx", "RxByte", "clocks_per_bit", "MIN_CLOCKS_PER_BIT",
           "MAX_BAUD_ERROR"]

#: Fewest clocks per bit accepted: the start bit is re-checked half a bit after its
#: edge, which must land inside the bit even with the synchroniser's two cycles of delay.
MIN_CLOCKS_PER_BIT = 4
#: Largest relative error between the requested baud rate and ``clk_freq /
#: clocks_per_bit``. Over the ten bits of a frame a receiver sampling mid-bit tolerates
#: about 5% between the two ends; 2% leaves the other end its share.
MAX_BAUD_ERROR = 0.02

#: Stream payload of :class:`UartRx`: the byte and whether its stop bit read 0.
RxByte = data.StructLayout({"data": unsigned(8), "framing_error": unsigned(1)})


def clocks_per_bit(clk_freq, baud) -> int:
    """``round(clk_freq / baud)``, refused when too small or too far from ``baud``.

    Parameters
    ----------
    clk_freq : int or float
        Frequency of the ``sync`` clock in Hz.
    baud : int or float
        Bits per second on the line.

    Returns
    -------
    int
        Clocks per bit, ``>= MIN_CLOCKS_PER_BIT``.
    """
    for name, value in (("clk_freq", clk_freq), ("baud", baud)):
        if isinstance(value, bool) or not isinstance(value, Real):
            raise TypeError(f"{name}={value!r}: expected a frequency in Hz (int or float)")
        if not value > 0:
            raise ValueError(f"{name}={value!r}: must be > 0 Hz")
    cpb = round(clk_freq / baud)
    if cpb < MIN_CLOCKS_PER_BIT:
        raise ValueError(f"baud={baud}: clk_freq={clk_freq} Hz gives {clk_freq / baud:.2f} "
                         f"clocks per bit; at least {MIN_CLOCKS_PER_BIT} are needed "
                         f"(baud <= {clk_freq / MIN_CLOCKS_PER_BIT:.0f})")
    actual = clk_freq / cpb
    error = abs(actual - baud) / baud
    if error > MAX_BAUD_ERROR:
        raise ValueError(f"baud={baud}: clk_freq={clk_freq} Hz / {cpb} clocks per bit gives "
                         f"{actual:.0f} baud, {100 * error:.1f}% off; at most "
                         f"{100 * MAX_BAUD_ERROR:.0f}% is allowed (choose a baud rate near "
                         f"clk_freq / n)")
    return cpb


class UartRx(wiring.Component):
    """8N1 receiver: a pin in, a stream of bytes out.

    Parameters
    ----------
    clk_freq : int or float
        ``sync`` clock frequency in Hz.
    baud : int or float
        Line rate (see :func:`clocks_per_bit`).

    Members
    -------
    rx : ``In(1, init=1)``
        The pin (asynchronous; idles high).
    bytes : ``Out(stream.Signature(RxByte))``
        Received bytes. A byte completed while the previous one is still waiting is
        dropped (the waiting one is kept) and ``overrun`` pulses.
    overrun : ``Out(1)``
        One-cycle pulse: a byte was lost because ``bytes.ready`` stayed low.

    Attributes
    ----------
    clocks_per_bit : int
    """

    def __init__(self, *, clk_freq, baud):
        self._cpb = clocks_per_bit(clk_freq, baud)
        super().__init__({
            "rx": In(1, init=1),
            "bytes": Out(stream.Signature(RxByte)),
            "overrun": Out(1),
        })

    @property
    def clocks_per_bit(self) -> int:
        return self._cpb

    def elaborate(self, platform):
        m = Module()
        cpb = self._cpb
        line = Signal(init=1)
        m.submodules.sync = FFSynchronizer(self.rx, line, init=1)

        timer = Signal(range(cpb))
        bit = Signal(range(8))
        shift = Signal(8)
        done = Signal()                 # a frame finished this cycle
        done_byte = Signal(RxByte)

        with m.If(timer != 0):
            m.d.sync += timer.eq(timer - 1)

        with m.FSM():
            with m.State("IDLE"):
                with m.If(~line):
                    # Half a bit from the falling edge is the middle of the start bit.
                    m.d.sync += timer.eq(cpb // 2 - 1)
                    m.next = "START"
            with m.State("START"):
                with m.If(timer == 0):
                    with m.If(line):
                        m.next = "IDLE"             # a glitch, not a start bit
                    with m.Else():
                        m.d.sync += [timer.eq(cpb - 1), bit.eq(0)]
                        m.next = "DATA"
            with m.State("DATA"):
                with m.If(timer == 0):
                    m.d.sync += [shift.eq(Cat(shift[1:], line)), timer.eq(cpb - 1)]
                    with m.If(bit == 7):
                        m.next = "STOP"
                    with m.Else():
                        m.d.sync += bit.eq(bit + 1)
            with m.State("STOP"):
                with m.If(timer == 0):
                    m.d.comb += [done.eq(1), done_byte.data.eq(shift),
                                 done_byte.framing_error.eq(~line)]
                    # Back to IDLE in the middle of the stop bit, so that a start bit
                    # right after it is seen from its edge.
                    with m.If(line):
                        m.next = "IDLE"
                    with m.Else():
                        m.next = "WAIT_HIGH"
            with m.State("WAIT_HIGH"):
                with m.If(line):
                    m.next = "IDLE"

        with m.If(self.bytes.valid & self.bytes.ready):
            m.d.sync += self.bytes.valid.eq(0)
        with m.If(done):
            with m.If(self.bytes.valid & ~self.bytes.ready):
                m.d.comb += self.overrun.eq(1)
            with m.Else():
                m.d.sync += [self.bytes.valid.eq(1), self.bytes.payload.eq(done_byte)]
        return m


class UartTx(wiring.Component):
    """8N1 transmitter: a stream of bytes in, a pin out.

    Parameters
    ----------
    clk_freq : int or float
        ``sync`` clock frequency in Hz.
    baud : int or float
        Line rate (see :func:`clocks_per_bit`).

    Members
    -------
    bytes : ``In(stream.Signature(8))``
        Bytes to send; one is taken in the last cycle of the previous frame's stop bit
        (or at once when the line is idle).
    tx : ``Out(1, init=1)``
        The pin (registered; idles high).
    busy : ``Out(1)``
        A frame is on the line.

    Attributes
    ----------
    clocks_per_bit : int
    """

    def __init__(self, *, clk_freq, baud):
        self._cpb = clocks_per_bit(clk_freq, baud)
        super().__init__({
            "bytes": In(stream.Signature(unsigned(8))),
            "tx": Out(1, init=1),
            "busy": Out(1),
        })

    @property
    def clocks_per_bit(self) -> int:
        return self._cpb

    def elaborate(self, platform):
        m = Module()
        cpb = self._cpb
        timer = Signal(range(cpb))
        # Stop bit, data, start bit; shifted out least significant first.
        frame = Signal(10, init=0x3FF)
        left = Signal(range(11))

        # The next byte is taken in the last cycle of a stop bit, so that frames of a
        # steady stream follow each other with no idle cycle.
        m.d.comb += [self.busy.eq(left != 0),
                     self.bytes.ready.eq((left == 0) | ((left == 1) & (timer == 0))),
                     self.tx.eq(frame[0])]
        with m.If(self.bytes.valid & self.bytes.ready):
            m.d.sync += [frame.eq(Cat(Const(0, 1), self.bytes.payload, Const(1, 1))),
                         left.eq(10), timer.eq(cpb - 1)]
        with m.Elif(left != 0):
            with m.If(timer == 0):
                m.d.sync += [frame.eq(Cat(frame[1:], Const(1, 1))), left.eq(left - 1),
                             timer.eq(cpb - 1)]
            with m.Else():
                m.d.sync += timer.eq(timer - 1)
        return m
