"""Helpers shared by the cocotb benches (they run inside the simulator process).

The benches drive the clock by hand rather than with a free-running
:class:`cocotb.clock.Clock`: each :meth:`Stepper.step` applies one input vector, lets
combinational logic settle, samples the outputs and then gives one rising edge. That
makes "sample ``s`` shows the state after edge ``s - 1``" exact by construction, which
is what the latency bookkeeping of the MAC bench relies on, and it costs two simulator
callbacks per vector.
"""

from __future__ import annotations

import json
import logging
import os

from cocotb.triggers import Timer

__all__ = ["config", "to_signed", "field", "Stepper", "log"]

#: Same name as :data:`sim.runner.CONFIG_ENV` (not imported: the bench process does not
#: need the runner and its dependencies).
CONFIG_ENV = "POTGEN_BENCH_CONFIG"


def config() -> dict:
    """The JSON configuration :func:`sim.runner.simulate` wrote for this run."""
    path = os.environ.get(CONFIG_ENV)
    if not path:
        raise RuntimeError(f"{CONFIG_ENV} is not set: run this bench through "
                           "sim.runner.simulate(..., config=...)")
    with open(path) as f:
        return json.load(f)


def to_signed(value: int, width: int) -> int:
    """Two's complement reading of the ``width``-bit pattern ``value``."""
    value &= (1 << width) - 1
    return value - (1 << width) if value >> (width - 1) else value


def field(bus: int, offset: int, width: int, signed: bool = False) -> int:
    """Bits ``[offset + width - 1 : offset]`` of ``bus``."""
    value = (bus >> offset) & ((1 << width) - 1)
    return to_signed(value, width) if signed else value


class Stepper:
    """Drive a design one input vector per clock cycle.

    Parameters
    ----------
    dut : cocotb handle
        The top.
    clock : str or None
        Name of the clock input; ``None`` for a purely combinational top (then
        :meth:`step` only settles and samples).
    """

    def __init__(self, dut, clock: str | None = "clk"):
        self.dut = dut
        self.clock = getattr(dut, clock) if clock else None
        if self.clock is not None:
            self.clock.value = 0

    async def step(self, inputs: dict, outputs: tuple) -> list:
        """Apply ``inputs`` (port name -> int), settle, sample ``outputs``, clock once.

        Returns the sampled outputs as unsigned integers, in the order of ``outputs``;
        they show the combinational response to ``inputs`` and the state left by the
        previous rising edge.
        """
        for name, value in inputs.items():
            getattr(self.dut, name).value = value
        await Timer(1, "ns")
        sampled = [int(getattr(self.dut, name).value) for name in outputs]
        if self.clock is not None:
            self.clock.value = 1
            await Timer(1, "ns")
            self.clock.value = 0
        return sampled


def log(message: str) -> None:
    """Write to the cocotb log (kept in the run's ``sim.log``)."""
    logging.getLogger("cocotb.potgen").info(message)
