"""The board-independent top: UART pins, host link, self-test, accelerator and LEDs.

:class:`HostTop` is what goes into a bitstream minus the board: a plain
``wiring.Component`` with exactly ``uart_rx`` / ``uart_tx`` and the ``leds`` status
vector, on the default ``sync`` domain, so it emits with
:func:`potgen.hw.export.emit` (ports ``clk``, ``rst``, ``uart_rx``, ``uart_tx``,
``leds``) and the Verilator UART transport can drive the very logic a board runs.
:class:`potgen.boards.BoardTop` adds the clock, PLL, reset and pins.

Inside: a :class:`~potgen.hw.host_link.HostLink` (UART framing, replies, status)
feeds a :class:`~potgen.hw.self_test.SelfTest`, which owns the
:class:`~potgen.hw.accelerator.Accelerator` and runs its built-in vectors after reset
before passing the streams through.

LEDs (``leds``, :data:`LED_LAYOUT`, bit 0 first):

=====  ==============  ===========================================================
bit    field           meaning
=====  ==============  ===========================================================
0      ``summary``     on while the self-test runs; then a slow 1 Hz blink when it
                       passed, a fast 8 Hz blink when it failed (a board with one
                       LED shows only this bit)
1      ``passed``      the self-test passed
2      ``failed``      the self-test failed
3      ``running``     the self-test is running
4      ``busy``        the accelerator executes a command
5      ``activity``    the host link moved a byte in the last ~50 ms
6      ``link_error``  the host link reported an error (bad frame, CRC, overrun)
7      ``acc_error``   the accelerator refused a command (sticky until reset)
=====  ==============  ===========================================================

Without a self-test (``self_test=False``) ``summary`` blinks at 1 Hz as a heartbeat
and ``passed`` / ``failed`` / ``running`` stay off.
"""

from __future__ import annotations

import math
from numbers import Real

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from .accelerator import Accelerator
from .self_test import SelfTest, SelfTestVectors

__all__ = ["HostTop", "LED_LAYOUT", "LED_FIELDS", "DEFAULT_BAUD", "capability_string"]

#: Status LEDs, bit 0 first (see the module documentation).
LED_FIELDS = ("summary", "passed", "failed", "running", "busy", "activity", "link_error",
              "acc_error")
LED_LAYOUT = data.StructLayout({name: 1 for name in LED_FIELDS})

#: Host link baud rate of every board.
DEFAULT_BAUD = 115200

#: How long a byte keeps the activity LED on, seconds.
ACTIVITY_SECONDS = 0.05


def capability_string(accelerator: Accelerator) -> bytes:
    """The capability bytes the host link reports: the accelerator's shape in ASCII."""
    meta = accelerator.metadata()
    return (f"potgen {meta['rows']}x{meta['cols']} w={meta['weight']} a={meta['act']} "
            f"acc={meta['acc_bits']} k={meta['k_max']} out={meta['out']}").encode("ascii")


def _default_link(**kwargs):
    from .host_link import HostLink
    return HostLink(**kwargs)


class HostTop(wiring.Component):
    """Accelerator, self-test and host link behind two UART pins.

    Parameters
    ----------
    accelerator : Accelerator
        The accelerator to serve.
    clk_freq : int or float
        Frequency of the ``sync`` clock in Hz (sets the UART divider and LED rates).
    baud : int
        UART baud rate (default 115200).
    self_test : bool
        Run the power-on self-test (default True).
    vectors : SelfTestVectors or None
        Self-test vectors (default: the built-in ones).
    link_factory : callable or None
        Builds the host link from keyword arguments ``dout_bits``, ``clk_freq``,
        ``baud``, ``capability``; default :class:`potgen.hw.host_link.HostLink`.
        Anything with that class's ports will do (tests use a stand-in).

    Members
    -------
    uart_rx : ``In(1)``
        Serial data from the host (idle high).
    uart_tx : ``Out(1)``
        Serial data to the host (idle high).
    leds : ``Out(LED_LAYOUT)``
        Status (see the module documentation).
    """

    def __init__(self, accelerator: Accelerator, *, clk_freq, baud: int = DEFAULT_BAUD,
                 self_test: bool = True, vectors: SelfTestVectors | None = None,
                 link_factory=None):
        if not isinstance(accelerator, Accelerator):
            raise TypeError(f"accelerator: expected an Accelerator, got "
                            f"{type(accelerator).__name__}")
        if isinstance(clk_freq, bool) or not isinstance(clk_freq, Real) or \
                not 1 <= clk_freq <= 1e9:
            raise ValueError(f"clk_freq={clk_freq!r}: expected a clock frequency in Hz, "
                             "1..1e9")
        if isinstance(baud, bool) or not isinstance(baud, int) or not 1 <= baud <= clk_freq / 4:
            raise ValueError(f"baud={baud!r}: expected an int 1..clk_freq/4 "
                             f"({int(clk_freq // 4)}): the UART samples each bit several "
                             "times")
        if not isinstance(self_test, bool):
            raise TypeError(f"self_test={self_test!r}: expected True or False")
        if vectors is not None and not self_test:
            raise ValueError("vectors: given with self_test=False; the vectors are only "
                             "used by the self-test")
        if link_factory is not None and not callable(link_factory):
            raise TypeError(f"link_factory={link_factory!r}: expected a callable building "
                            "the host link")
        self._accelerator = accelerator
        self._clk_freq = clk_freq
        self._baud = baud
        self._self_test = SelfTest(accelerator, vectors=vectors) if self_test else None
        self._link = (link_factory or _default_link)(
            dout_bits=accelerator.data_out_bits, clk_freq=clk_freq, baud=baud,
            capability=capability_string(accelerator))
        super().__init__({
            "uart_rx": In(1, init=1),
            "uart_tx": Out(1, init=1),
            "leds": Out(LED_LAYOUT),
        })

    @property
    def accelerator(self) -> Accelerator:
        return self._accelerator

    @property
    def self_test(self) -> SelfTest | None:
        return self._self_test

    @property
    def link(self):
        return self._link

    @property
    def clk_freq(self):
        return self._clk_freq

    @property
    def baud(self) -> int:
        return self._baud

    @property
    def latency(self):
        """None: a UART top has no fixed latency."""
        return None

    def _blink_bits(self) -> tuple:
        """Counter width and the bits that toggle at about 1 Hz and 8 Hz."""
        slow = max(round(math.log2(self._clk_freq)) - 1, 1)
        return slow + 1, slow, max(slow - 3, 0)

    def metadata(self) -> dict:
        from .export import signature_ports
        meta = {
            "kind": "host-top",
            "clk_freq": self._clk_freq,
            "baud": self._baud,
            "capability": capability_string(self._accelerator).decode("ascii"),
            "leds": {name: bit for bit, name in enumerate(LED_FIELDS)},
            "self_test": self._self_test.metadata() if self._self_test else None,
            "accelerator": self._accelerator.metadata(),
            "ports": signature_ports(self),
        }
        if meta["self_test"]:
            meta["self_test"] = {k: v for k, v in meta["self_test"].items()
                                 if k != "accelerator"}
        return meta

    def elaborate(self, platform):
        m = Module()
        m.submodules.link = link = self._link
        if self._self_test is not None:
            m.submodules.self_test = core = self._self_test
        else:
            m.submodules.accelerator = core = self._accelerator

        m.d.comb += [link.uart_rx.eq(self.uart_rx), self.uart_tx.eq(link.uart_tx)]
        for source, sink in ((link.cmd, core.cmd), (link.din, core.din),
                             (core.dout, link.dout)):
            m.d.comb += [sink.valid.eq(source.valid), sink.payload.eq(source.payload),
                         source.ready.eq(sink.ready)]
        m.d.comb += [link.acc_busy.eq(core.busy), link.acc_error.eq(core.error),
                     link.acc_cycles.eq(core.cycles)]

        width, slow_bit, fast_bit = self._blink_bits()
        blink = Signal(width)
        m.d.sync += blink.eq(blink + 1)
        slow, fast = blink[slow_bit], blink[fast_bit]

        hold = max(int(self._clk_freq * ACTIVITY_SECONDS), 1)
        activity = Signal(range(hold + 1))
        with m.If(link.activity):
            m.d.sync += activity.eq(hold)
        with m.Elif(activity != 0):
            m.d.sync += activity.eq(activity - 1)

        leds = self.leds
        if self._self_test is not None:
            status = core.status
            m.d.comb += [leds.passed.eq(status.passed), leds.failed.eq(status.failed),
                         leds.running.eq(status.running),
                         leds.summary.eq(Mux(status.running, 1,
                                             Mux(status.passed, slow, fast)))]
        else:
            m.d.comb += leds.summary.eq(slow)
        m.d.comb += [leds.busy.eq(core.busy), leds.activity.eq(activity != 0),
                     leds.link_error.eq(link.link_error), leds.acc_error.eq(core.error)]
        return m
