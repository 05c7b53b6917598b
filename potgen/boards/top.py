"""BoardTop: a :class:`~potgen.hw.host_top.HostTop` on a board's clock, PLL, reset and pins.

The board's oscillator feeds an EHXPLLL (:mod:`potgen.boards.pll`) that makes the
``sync`` domain at the requested clock; the domain stays in reset until the PLL locks
(and while the board's reset button, if it has one, is held). The UART pins of the
board (or its documented header pins) go to the host top, the receive pin through a
two-flip-flop synchronizer, and the status LEDs are wired as the board's registry
entry says (:class:`~potgen.boards.registry.LedPin`).
"""

from __future__ import annotations

import operator
from functools import reduce

from amaranth.hdl import ClockDomain, Elaboratable, Module
from amaranth.lib import io
from amaranth.lib.cdc import FFSynchronizer

from ..hw.host_top import DEFAULT_BAUD, HostTop
from .pll import EcpPll, PllConfig, pll_config
from .registry import Board
from .registry import board as _board

__all__ = ["BoardTop"]


class BoardTop(Elaboratable):
    """The top module of a board bitstream.

    Parameters
    ----------
    board : Board or str
        The board.
    accelerator : Accelerator
        The accelerator to put on it.
    clock_mhz : float or None
        Accelerator clock (default: the board's default clock).
    baud : int
        Host link baud rate.
    self_test : bool
        Include the power-on self-test.
    link_factory : callable or None
        Passed to :class:`HostTop` (None: the real host link).

    Members
    -------
    host : HostTop
        The board-independent design.
    pll : PllConfig
        The PLL setting; ``pll.output_mhz`` is the exact clock.
    """

    def __init__(self, board, accelerator, *, clock_mhz=None, baud: int = DEFAULT_BAUD,
                 self_test: bool = True, link_factory=None):
        self.board: Board = _board(board)
        if clock_mhz is None:
            clock_mhz = self.board.default_clock_mhz
        self.pll: PllConfig = pll_config(self.board.oscillator_mhz, clock_mhz)
        self.host = HostTop(accelerator, clk_freq=float(self.pll.output_mhz) * 1e6,
                            baud=baud, self_test=self_test, link_factory=link_factory)

    def elaborate(self, platform):
        if platform is None:
            raise ValueError("BoardTop needs the board's platform (build it with "
                             "potgen.boards.build_bitstream or platform.build); simulate "
                             "HostTop instead")
        m = Module()
        board = self.board
        m.domains.sync = ClockDomain("sync")

        clk_port = platform.request(board.clock_resource, 0, dir="-")
        m.submodules.clk_buffer = clk_buffer = io.Buffer("i", clk_port)
        reset_in = None
        if board.reset is not None:
            rst_port = platform.request(*board.reset, dir="-")
            m.submodules.reset_buffer = rst_buffer = io.Buffer("i", rst_port)
            reset_in = rst_buffer.i
        m.submodules.pll = pll = EcpPll(self.pll, clk_buffer.i, domain="sync",
                                        reset_in=reset_in)
        platform.add_clock_constraint(pll.clock, float(self.pll.output_mhz) * 1e6)

        m.submodules.host = host = self.host
        uart = platform.request(board.uart.resource, board.uart.number, dir="-")
        m.submodules.uart_rx_buffer = rx_buffer = io.Buffer("i", uart.rx)
        m.submodules.uart_tx_buffer = tx_buffer = io.Buffer("o", uart.tx)
        # The receive pin is asynchronous to the clock: two flip-flops before the link.
        m.submodules.rx_sync = FFSynchronizer(rx_buffer.i, host.uart_rx, init=1)
        m.d.comb += tx_buffer.o.eq(host.uart_tx)

        requested = {}
        for led in board.leds:
            key = (led.resource, led.number)
            if key not in requested:
                requested[key] = platform.request(led.resource, led.number, dir="-")
            pins = requested[key]
            port = getattr(pins, led.subsignal) if led.subsignal else pins
            buffer = io.Buffer("o", port)
            m.submodules[f"led_{led.resource}{led.number}{led.subsignal or ''}"] = buffer
            m.d.comb += buffer.o.eq(reduce(operator.or_,
                                           [getattr(host.leds, name) for name in led.bits]))
        return m
