"""Amaranth-simulation back end: drives an :class:`~potgen.hw.accelerator.Accelerator`'s streams.

Small arrays only: Amaranth's simulator runs some thousand cycles per second.
"""

from __future__ import annotations

import numpy as np
from amaranth.sim import Simulator

from .driver import Backend, Program, RunResult

__all__ = ["AmaranthBackend"]


class AmaranthBackend(Backend):
    """Runs each :class:`Program` in a fresh Amaranth simulation of ``accelerator``.

    Parameters
    ----------
    accelerator : Accelerator
    ready_probability : float
        Probability that ``dout.ready`` is high in a cycle (1.0: never back-pressure);
        below 1 it toggles randomly, to exercise back-pressure.
    seed : int
        Seed of the ``dout.ready`` pattern.
    max_cycles : int or None
        A run that has not finished after this many cycles raises ``RuntimeError``
        (a hung design or a refused command); ``None``: 64 cycles per word moved,
        divided by ``ready_probability``, plus 1000.
    """

    def __init__(self, accelerator, *, ready_probability=1.0, seed=0, max_cycles=None):
        if not 0 < ready_probability <= 1:
            raise ValueError(f"ready_probability={ready_probability!r}: must be in (0, 1]")
        self._dut = accelerator
        self._ready_probability = float(ready_probability)
        self._seed = seed
        self._max_cycles = max_cycles

    def run(self, program: Program) -> RunResult:
        dut = self._dut
        rng = np.random.default_rng(self._seed)
        commands, data, expected = list(program.commands), list(program.data), program.outputs
        out = []
        status = {}
        max_cycles = self._max_cycles
        if max_cycles is None:
            words = len(commands) + len(data) + expected
            max_cycles = int(64 * words / self._ready_probability) + 1000
        p_ready = self._ready_probability

        async def bench(ctx):
            ci = di = 0
            cycle = 0
            while ci < len(commands) or di < len(data) or len(out) < expected \
                    or ctx.get(dut.busy):
                if cycle >= max_cycles:
                    raise RuntimeError(f"accelerator simulation: not finished after "
                                       f"{max_cycles} cycles ({ci}/{len(commands)} "
                                       f"commands, {di}/{len(data)} data words, "
                                       f"{len(out)}/{expected} results)")
                cmd_valid = ci < len(commands)
                din_valid = di < len(data)
                ready = bool(rng.random() < p_ready)
                ctx.set(dut.cmd.valid, cmd_valid)
                ctx.set(dut.cmd.payload, commands[ci] if cmd_valid else 0)
                ctx.set(dut.din.valid, din_valid)
                ctx.set(dut.din.payload, data[di] if din_valid else 0)
                ctx.set(dut.dout.ready, ready)
                cmd_taken = cmd_valid and ctx.get(dut.cmd.ready)
                din_taken = din_valid and ctx.get(dut.din.ready)
                out_taken = ready and ctx.get(dut.dout.valid)
                word = ctx.get(dut.dout.payload)
                await ctx.tick()
                cycle += 1
                ci += cmd_taken
                di += din_taken
                if out_taken:
                    if len(out) >= expected:
                        raise RuntimeError(f"accelerator simulation: more than the "
                                           f"{expected} expected result words")
                    out.append(int(word))
            status["cycles"] = ctx.get(dut.cycles)
            status["error"] = bool(ctx.get(dut.error))

        sim = Simulator(dut)
        sim.add_clock(1e-6)
        sim.add_testbench(bench)
        sim.run()
        return RunResult(out, status["cycles"], status["error"])
