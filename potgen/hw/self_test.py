"""Power-on self-test: built-in GEMM vectors run through the accelerator after reset.

:class:`SelfTest` owns an :class:`~potgen.hw.accelerator.Accelerator`. After reset it
drives the accelerator's ``cmd`` and ``din`` streams from ROMs holding one tile of a
small GEMM (the words :meth:`potgen.runtime.AcceleratorDriver.program` sends for it),
compares every ``dout`` word with the golden model's result, computed by
:func:`potgen.golden.matmul` at elaboration time, and then hands the three streams to
the host side: from then on the accelerator behaves exactly as if the self-test had
never been there. The verdict stays on ``status`` until the next reset.

The test fails when a result word differs, when the accelerator raises ``error`` or
when the results have not all arrived within ``timeout_cycles`` (a hung controller).
While the test runs, the host side's ``cmd`` / ``din`` are not ready and its ``dout``
is never valid, so a host that talks early only waits.

The vectors (:class:`SelfTestVectors`) are deterministic: activations sweep the
activation format from its minimum to its maximum (both extremes are present whenever
the tile has two or more activations), and weight codes step through the codes of each
column's format with a stride coprime to their number, so every code appears once the
tile has at least as many weights as the format has codes (``K * cols >= 2^bits``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from amaranth.hdl import Module, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .. import golden
from ..runtime.driver import AcceleratorDriver, Backend
from .accelerator import Accelerator

__all__ = ["SelfTest", "SelfTestVectors", "STATUS_LAYOUT", "DEFAULT_K"]

#: ``status`` port: the self-test's state.
STATUS_LAYOUT = data.StructLayout({"running": 1, "passed": 1, "failed": 1})

#: Longest K of the built-in vectors (shorter when the accelerator's ``k_max`` is).
DEFAULT_K = 8


class _EncodeOnly(Backend):
    """The driver is used here only to encode words; nothing is ever run."""

    def run(self, program):
        raise RuntimeError("the self-test's driver only encodes words")


@dataclass(frozen=True)
class SelfTestVectors:
    """One accelerator tile and the ``dout`` words it must produce.

    The command and data words come from :meth:`potgen.runtime.AcceleratorDriver.program`
    (the driver is the accelerator's reference encoder, so the self-test follows any
    change of the command set); the expected words are the golden results packed in
    the drain layout that :meth:`~potgen.runtime.AcceleratorDriver.decode` reads.

    Members
    -------
    acts : tuple of tuple of int
        ``rows x K`` activation values.
    codes : tuple of tuple of int
        ``K x cols`` weight codes.
    commands : tuple of int
        Command words.
    data : tuple of int
        ``din`` words.
    expected : tuple of int
        ``dout`` words: raw results (accumulator in the low ``acc_bits`` bits of a
        lane, overflow flag above), ``dout_lanes`` lanes per word, row by row.
    masks : tuple of int
        Per expected word, the bits that are compared (padding lanes are not).
    """

    acts: tuple
    codes: tuple
    commands: tuple
    data: tuple
    expected: tuple
    masks: tuple

    @classmethod
    def for_accelerator(cls, accelerator: Accelerator, *, k: int | None = None,
                        expected=None) -> SelfTestVectors:
        """The built-in vectors of ``accelerator``.

        Parameters
        ----------
        accelerator : Accelerator
        k : int or None
            Dot-product length (default ``min(k_max, DEFAULT_K)``).
        expected : sequence of int or None
            Replace the golden words (tests use this to check that a wrong
            expectation lights the fail LED); None computes them.
        """
        if not isinstance(accelerator, Accelerator):
            raise TypeError(f"accelerator: expected an Accelerator, got "
                            f"{type(accelerator).__name__}")
        meta = accelerator.metadata()
        rows, cols = meta["rows"], meta["cols"]
        if k is None:
            k = min(meta["k_max"], DEFAULT_K)
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= meta["k_max"]:
            raise ValueError(f"k={k!r}: expected an int 1..{meta['k_max']} (k_max)")
        driver = AcceleratorDriver(meta, _EncodeOnly())
        act_fmt = driver.act_format
        formats = driver.column_formats
        count = rows * k
        # Evenly spread over the activation range, both ends included, then permuted
        # so that neighbouring PEs see different magnitudes.
        spread = np.round(np.linspace(act_fmt.min_level, act_fmt.max_level,
                                      max(count, 2))).astype(np.int64)[:count]
        order = np.random.default_rng(7).permutation(count)
        acts = spread[order].reshape(rows, k)
        # Codes walk through every code of each column's format (stride 5 is odd, so
        # coprime with the power-of-two code count).
        steps = np.arange(k * cols, dtype=np.int64).reshape(k, cols) * 5 + 3
        codes = np.stack([steps[:, j] % (1 << formats[j].bits) for j in range(cols)],
                         axis=1)
        acc_bits = meta["acc_bits"]
        spec = golden.AccSpec(acc_bits, meta["overflow"])
        # Columns may differ in format (MSQ): one golden product per column.
        columns = [golden.matmul(acts, codes[:, j:j + 1], formats[j], acc=spec)
                   for j in range(cols)]
        acc_values = np.concatenate([c.acc for c in columns], axis=1)
        overflow = np.concatenate([c.overflow for c in columns], axis=1)
        raw = (acc_values & ((1 << acc_bits) - 1)) | (overflow.astype(np.int64) << acc_bits)

        program = driver.program(acts, codes, channel_formats=None
                                 if driver.weight_format is not None else list(formats))
        lanes, lane_bits = meta["dout_lanes"], meta["lane_bits"]
        per_row = meta["timing"]["words_per_row"]
        lane_mask = (1 << lane_bits) - 1
        golden_words, masks = [], []
        for i in range(rows):
            for w in range(per_row):
                word = mask = 0
                for lane in range(lanes):
                    j = w * lanes + lane
                    if j < cols:
                        word |= int(raw[i, j]) << (lane_bits * lane)
                        mask |= lane_mask << (lane_bits * lane)
                golden_words.append(word)
                masks.append(mask)
        if len(golden_words) != program.outputs:
            raise RuntimeError(f"self-test: the driver's program drains {program.outputs} "
                               f"words, the drain layout gives {len(golden_words)}")
        if expected is None:
            expected = tuple(golden_words)
        else:
            expected = tuple(int(w) for w in expected)
            if len(expected) != len(golden_words):
                raise ValueError(f"expected: {len(expected)} words given; the tile drains "
                                 f"{len(golden_words)}")
            limit = 1 << accelerator.data_out_bits
            bad = [w for w in expected if not 0 <= w < limit]
            if bad:
                raise ValueError(f"expected: word {bad[0]} does not fit the "
                                 f"{accelerator.data_out_bits}-bit dout")
        return cls(tuple(map(tuple, acts.tolist())), tuple(map(tuple, codes.tolist())),
                   tuple(program.commands), tuple(program.data), expected, tuple(masks))

    @property
    def k(self) -> int:
        return len(self.acts[0])


class SelfTest(wiring.Component):
    """The accelerator behind a power-on self-test.

    Parameters
    ----------
    accelerator : Accelerator
        The accelerator (a submodule of the self-test).
    vectors : SelfTestVectors or None
        The test (default: :meth:`SelfTestVectors.for_accelerator`).
    timeout_cycles : int or None
        Cycles after reset by which every result must have arrived (default: 16 times
        a generous bound of the test's duration, at least 4096).

    Members
    -------
    cmd : ``In(stream.Signature(unsigned(32)))``
        Host command words (taken once the test is over).
    din : ``In(stream.Signature(unsigned(32)))``
        Host operand words.
    dout : ``Out(stream.Signature(unsigned(data_out_bits)))``
        Results to the host.
    busy, error : ``Out(1)``
        The accelerator's status.
    cycles : ``Out(unsigned(32))``
        The accelerator's busy-cycle counter (it includes the self-test's cycles).
    status : ``Out(STATUS_LAYOUT)``
        ``running`` until the verdict, then ``passed`` or ``failed`` (sticky).
    """

    def __init__(self, accelerator: Accelerator, *, vectors: SelfTestVectors | None = None,
                 timeout_cycles: int | None = None):
        if not isinstance(accelerator, Accelerator):
            raise TypeError(f"accelerator: expected an Accelerator, got "
                            f"{type(accelerator).__name__}")
        if vectors is None:
            vectors = SelfTestVectors.for_accelerator(accelerator)
        elif not isinstance(vectors, SelfTestVectors):
            raise TypeError(f"vectors: expected SelfTestVectors, got "
                            f"{type(vectors).__name__}")
        # Words through the streams plus the array's fill and drain: far below this.
        busy = 4 * (len(vectors.commands) + len(vectors.data) + len(vectors.expected)) + \
            8 * (accelerator.rows + accelerator.cols + vectors.k) + 64
        if timeout_cycles is None:
            timeout_cycles = max(4096, 16 * busy)
        if isinstance(timeout_cycles, bool) or not isinstance(timeout_cycles, int) or \
                not busy <= timeout_cycles <= 1 << 30:
            raise ValueError(f"timeout_cycles={timeout_cycles!r}: expected an int "
                             f"{busy}..{1 << 30} (the test needs about {busy} cycles)")
        self._accelerator = accelerator
        self._vectors = vectors
        self._timeout = timeout_cycles
        super().__init__({
            "cmd": In(stream.Signature(unsigned(32))),
            "din": In(stream.Signature(unsigned(32))),
            "dout": Out(stream.Signature(unsigned(accelerator.data_out_bits))),
            "busy": Out(1),
            "error": Out(1),
            "cycles": Out(unsigned(32)),
            "status": Out(STATUS_LAYOUT),
        })

    @property
    def accelerator(self) -> Accelerator:
        return self._accelerator

    @property
    def vectors(self) -> SelfTestVectors:
        return self._vectors

    @property
    def timeout_cycles(self) -> int:
        return self._timeout

    @property
    def latency(self):
        """None: the self-test has no fixed input-to-output latency."""
        return None

    def metadata(self) -> dict:
        v = self._vectors
        return {"kind": "self-test", "k": v.k, "commands": len(v.commands),
                "data_words": len(v.data), "result_words": len(v.expected),
                "timeout_cycles": self._timeout,
                "status": "running until every result word is compared; then passed or "
                          "failed (a wrong word, the accelerator's error, or the timeout)",
                "accelerator": self._accelerator.metadata()}

    def elaborate(self, platform):
        m = Module()
        m.submodules.accelerator = acc = self._accelerator
        v = self._vectors
        dout_bits = acc.data_out_bits

        def rom(name, words, width):
            mem = Memory(shape=unsigned(width), depth=len(words), init=list(words))
            m.submodules[name] = mem
            return mem.read_port(domain="comb")

        cmd_rom = rom("cmd_rom", v.commands, 32)
        din_rom = rom("din_rom", v.data, 32)
        expected_rom = rom("expected_rom", v.expected, dout_bits)
        mask_rom = rom("mask_rom", v.masks, dout_bits)

        cmd_index = Signal(range(len(v.commands) + 1))
        din_index = Signal(range(len(v.data) + 1))
        out_index = Signal(range(len(v.expected) + 1))
        timer = Signal(range(self._timeout + 1))
        running = Signal(init=1)
        mismatch = Signal()
        m.d.comb += [cmd_rom.addr.eq(cmd_index), din_rom.addr.eq(din_index),
                     expected_rom.addr.eq(out_index), mask_rom.addr.eq(out_index)]

        m.d.comb += [self.busy.eq(acc.busy), self.error.eq(acc.error),
                     self.cycles.eq(acc.cycles),
                     self.status.running.eq(running),
                     self.status.passed.eq(~running & ~mismatch),
                     self.status.failed.eq(~running & mismatch)]

        with m.If(running):
            m.d.comb += [
                acc.cmd.valid.eq(cmd_index != len(v.commands)),
                acc.cmd.payload.eq(cmd_rom.data),
                acc.din.valid.eq(din_index != len(v.data)),
                acc.din.payload.eq(din_rom.data),
                acc.dout.ready.eq(1),
            ]
            with m.If(acc.cmd.valid & acc.cmd.ready):
                m.d.sync += cmd_index.eq(cmd_index + 1)
            with m.If(acc.din.valid & acc.din.ready):
                m.d.sync += din_index.eq(din_index + 1)
            with m.If(acc.dout.valid):
                m.d.sync += out_index.eq(out_index + 1)
                with m.If((acc.dout.payload & mask_rom.data) != expected_rom.data):
                    m.d.sync += mismatch.eq(1)
            m.d.sync += timer.eq(timer + 1)
            last_word = acc.dout.valid & (out_index == len(v.expected) - 1)
            with m.If(last_word | acc.error | (timer == self._timeout)):
                m.d.sync += running.eq(0)
                # Ending on anything but the last word is a failure, even if every
                # word so far matched.
                with m.If(~last_word | acc.error):
                    m.d.sync += mismatch.eq(1)
        with m.Else():
            for source, sink in ((self.cmd, acc.cmd), (self.din, acc.din),
                                 (acc.dout, self.dout)):
                m.d.comb += [sink.valid.eq(source.valid), sink.payload.eq(source.payload),
                             source.ready.eq(sink.ready)]
        return m

