"""A stand-in for :class:`potgen.hw.host_link.HostLink` in the board-top tests (this module
holds no tests): its ports only, so a testbench plays the link (drives ``cmd`` / ``din``,
takes ``dout``)."""

from amaranth.hdl import Module, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["LinkDouble"]


class LinkDouble(wiring.Component):
    """The host link's ports and nothing else: the testbench plays the link."""

    def __init__(self, *, dout_bits, clk_freq, baud, capability):
        self.kwargs = dict(dout_bits=dout_bits, clk_freq=clk_freq, baud=baud,
                           capability=capability)
        super().__init__({
            "uart_rx": In(1, init=1), "uart_tx": Out(1, init=1),
            "cmd": Out(stream.Signature(unsigned(32))),
            "din": Out(stream.Signature(unsigned(32))),
            "dout": In(stream.Signature(unsigned(dout_bits))),
            "acc_busy": In(1), "acc_error": In(1), "acc_cycles": In(32),
            "link_error": Out(1), "activity": Out(1),
        })

    def elaborate(self, platform):
        return Module()
