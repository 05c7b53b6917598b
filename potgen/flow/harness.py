"""A timing harness: registered inputs and outputs around a block, on three pins.

Why a harness
-------------
A block synthesized on its own has its ports on I/O pads. Its Fmax would then be
the pads' (an input pad to the first register costs several nanoseconds of routing
and I/O delay), and a block with more port bits than the package has pins does not
place at all. DESIGN.md section 6 therefore times every block with registered inputs
and outputs: the figure is the block's own register-to-register (or register through
the block's logic to register) delay.

How it is built
---------------
* **Inputs**: every input bit of the block (and the reset of its ``sync`` domain) is a
  flip-flop of one shift register fed from the pin ``si``. Each input bit is therefore
  driven by a register and independently controllable: no input is constant, so
  synthesis cannot fold any of the block's logic away.
* **Outputs**: every output bit is captured in a flip-flop; the captured bits are
  XOR-reduced to the pin ``so`` by a tree of 4-input XORs with a register after every
  level. XOR depends on every bit, so every output stays observable (nothing of the
  block is dead), and each tree level is a single LUT4 between two registers, so the
  harness itself is never the critical path of a block with at least one LUT level.
* **Clock and reset**: the block's ``sync`` domain is clocked from the pin ``clk``; its
  synchronous reset comes from the last stage of the input shift register (registered
  and controllable like any input). The harness's own registers are reset-less.

The block stays a separate Verilog module (the submodule ``dut``). potgen's synthesis
flow marks it ``keep_hierarchy`` so yosys neither optimises across its boundary nor
mixes its cells with the harness's, and counts its resources on their own.
"""

from __future__ import annotations

from amaranth import Cat, ClockDomain, ClockSignal, Module, ResetSignal, Signal, Value
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["TimingHarness"]

#: Submodule name of the block inside the harness (yosys module ``<top>.dut``).
DUT_NAME = "dut"


class TimingHarness(wiring.Component):
    """Registered inputs and outputs around ``component``, on the pins ``clk``, ``si``, ``so``.

    Parameters
    ----------
    component : wiring.Component
        The block to time. Its ``sync`` domain (if it uses one) is driven by the
        harness; every port of its signature is connected.

    Members
    -------
    clk : In(1)
        Clock of the harness and of the block's ``sync`` domain.
    si : In(1)
        Serial input: shifts into the register chain that drives every input bit and
        the block's reset.
    so : Out(1)
        Registered XOR of every output bit of the block.
    dut : wiring.Component
        The wrapped block.
    input_bits : int
        Number of input bits of the block (excluding its reset).
    output_bits : int
        Number of output bits of the block.
    xor_levels : int
        Register levels of the output XOR tree.
    """

    def __init__(self, component):
        if not isinstance(component, wiring.Component):
            raise TypeError(f"component: expected an amaranth.lib.wiring.Component, "
                            f"got {type(component).__name__}")
        inputs, outputs = [], []
        for path, member, value in component.signature.flatten(component):
            port = Value.cast(value)
            (inputs if member.flow == wiring.In else outputs).append((path, port))
        if not outputs or sum(len(p) for _, p in outputs) == 0:
            raise ValueError("component: has no output bits, so nothing of it is "
                             "observable and there is nothing to time")
        self._dut = component
        self._inputs = inputs
        self._outputs = outputs
        super().__init__({"clk": In(1), "si": In(1), "so": Out(1)})

    @property
    def dut(self):
        return self._dut

    @property
    def input_bits(self) -> int:
        return sum(len(port) for _, port in self._inputs)

    @property
    def output_bits(self) -> int:
        return sum(len(port) for _, port in self._outputs)

    @property
    def xor_levels(self) -> int:
        levels, width = 0, self.output_bits
        while width > 1:
            width = -(-width // 4)
            levels += 1
        return levels

    def elaborate(self, platform):
        m = Module()
        # Two domains on one clock: the block's `sync` (with a reset the harness
        # drives) and the harness's own reset-less domain.
        m.domains.harness = ClockDomain("harness", reset_less=True)
        m.domains.sync = ClockDomain("sync")
        m.submodules[DUT_NAME] = self._dut

        chain = Signal(self.input_bits + 1, name="in_chain")
        m.d.harness += chain.eq(Cat(chain[1:], self.si))
        m.d.comb += [
            ClockSignal("harness").eq(self.clk),
            ClockSignal("sync").eq(self.clk),
            ResetSignal("sync").eq(chain[0]),
        ]
        offset = 1
        for _, port in self._inputs:
            m.d.comb += port.eq(chain[offset:offset + len(port)])
            offset += len(port)

        captured = Signal(self.output_bits, name="out_capture")
        offset = 0
        for _, port in self._outputs:
            m.d.harness += captured[offset:offset + len(port)].eq(port)
            offset += len(port)

        level, index = captured, 0
        while len(level) > 1:
            reduced = Signal(-(-len(level) // 4), name=f"out_xor{index}")
            for i in range(len(reduced)):
                m.d.harness += reduced[i].eq(level[4 * i:4 * i + 4].xor())
            level, index = reduced, index + 1
        m.d.comb += self.so.eq(level[0])
        return m
