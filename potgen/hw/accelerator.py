"""Accelerator top: a systolic array, on-chip buffers, a requantizer and a command controller.

:class:`Accelerator` wraps an output-stationary :class:`~potgen.hw.array.SystolicArray`
with three ``lib.memory`` buffers and a controller that executes a small command set
arriving on a ``lib.stream`` interface. Operands arrive on a second stream (``din``),
results leave on a third (``dout``). Every stream follows the ``lib.stream`` rules: a
word moves in a cycle where ``valid`` and ``ready`` are both high; ``dout.valid`` never
depends on ``dout.ready``, and a result offered on ``dout`` stays there, unchanged,
until it is taken, so back-pressure never loses a word.

Buffers (one operand per RAM lane; packed words from :mod:`potgen.hw.packed_memory`
would replace the per-lane write enables of the two input buffers):

* activation buffer: ``k_max`` words of ``rows`` activations (word ``k`` holds column
  ``k`` of the activation tile, lane ``i`` its row ``i``);
* weight buffer: ``k_max`` words of ``cols`` codes (word ``k`` holds row ``k`` of the
  weight tile);
* output buffer: ``rows`` words of ``cols`` accumulators and their overflow flags.

Command words (``cmd`` stream, 32 bits): ``opcode = word[0:4]``, ``arg = word[4:32]``.

======  ===============  ======  ======================================================
opcode  name             arg     effect
======  ===============  ======  ======================================================
0       ``NOP``          0       nothing
1       ``LOAD_ACT``     K       take ``K * rows`` words from ``din``: for k in 0..K-1,
                                 for i in 0..rows-1, ``A[i, k]`` (two's complement in
                                 the low ``act_bits`` bits)
2       ``LOAD_WEIGHT``  K       take ``K * cols`` words: for k, for j, the code
                                 ``W[k, j]`` (low ``weight_bits`` bits)
3       ``SET_REQUANT``  relu    take ``3 * cols`` words: for j, ``m_j`` (unsigned,
                                 ``multiplier_bits``), ``s_j`` (``0..max_shift``),
                                 ``zp_j`` (output format, two's complement); ``arg``
                                 bit 0 is ReLU for every column
4       ``COMPUTE``      K       ``C = A[:, :K] @ W[:K, :]`` into the output buffer
5       ``DRAIN_RAW``    0       emit ``rows * cols`` words on ``dout``, row-major:
                                 ``acc`` (two's complement, ``acc_bits``) with the
                                 overflow flag in bit ``acc_bits``
6       ``DRAIN_REQUANT`` 0      emit ``rows * cols`` words, row-major: the requantized
                                 value ``clamp(zp + ((acc m + 2^(s-1)) >> s))`` in the
                                 output format (two's complement, ``out_bits``)
======  ===============  ======  ======================================================

``K`` must be ``1..k_max``. A command with an unknown opcode or a ``K`` out of range
is dropped and sets the sticky ``error`` output; since its data words (if any) are then
taken as commands, the host must reset the accelerator after an error. Commands run
one after another; ``COMPUTE`` returns once every result row is in the output buffer,
so a ``DRAIN`` that follows always sees the finished tile.

Status: ``busy`` (a command is executing), ``error`` and ``cycles``, a 32-bit counter of
the cycles in which ``busy`` was high since reset.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .array import SystolicArray
from .checks import check_int
from .requant import MAX_MULTIPLIER_BITS, Requantizer

__all__ = ["Accelerator", "OPCODES", "COMMAND_BITS", "DATA_IN_BITS", "ARG_BITS",
           "MAX_K"]

#: Opcode of every command (see the module docstring).
OPCODES = {"NOP": 0, "LOAD_ACT": 1, "LOAD_WEIGHT": 2, "SET_REQUANT": 3, "COMPUTE": 4,
           "DRAIN_RAW": 5, "DRAIN_REQUANT": 6}
#: Width of a command word.
COMMAND_BITS = 32
#: Width of the opcode field (bits 0..3) and of the argument field (bits 4..31).
OPCODE_BITS = 4
ARG_BITS = COMMAND_BITS - OPCODE_BITS
#: Width of a ``din`` word.
DATA_IN_BITS = 32
#: Largest ``k_max`` accepted (buffer depth).
MAX_K = 1 << 16
#: Width of the ``cycles`` status counter.
CYCLE_COUNTER_BITS = 32


class Accelerator(wiring.Component):
    """An output-stationary GEMM accelerator driven by a command stream.

    Parameters
    ----------
    rows, cols : int
        Array size (see :class:`~potgen.hw.array.SystolicArray`).
    weight : str or Format
        Weight format of every column (codes of at most 32 bits).
    act : str or IntFormat
        Activation format.
    dataflow : ``"os"``
        Only output-stationary is implemented; ``"ws"`` is refused.
    acc_bits : int or str
        Accumulator width, or a bound method (``"auto"``: the datatype bound for
        ``K = k_max``).
    k_max : int
        Longest dot product ``K``: the depth of the activation and weight buffers,
        1..:data:`MAX_K`.
    out_fmt : str or IntFormat
        Requantized output format (``intN`` / ``uintN``).
    overflow : ``"wrap"`` or ``"saturate"``
        Accumulator overflow rule.
    pipeline : int
        Register stages in every product unit.
    multiplier_bits : int
        Width of the requantization multipliers ``m``, 1..32.
    max_shift : int
        Largest requantization shift, 0..127.
    requant_pipeline : int
        Register stages of the requantizer, 0..3.

    Members
    -------
    cmd : ``In(stream.Signature(unsigned(32)))``
        Command words.
    din : ``In(stream.Signature(unsigned(32)))``
        Operand words of ``LOAD_ACT`` / ``LOAD_WEIGHT`` / ``SET_REQUANT``.
    dout : ``Out(stream.Signature(unsigned(data_out_bits)))``
        Result words of ``DRAIN_RAW`` / ``DRAIN_REQUANT``.
    busy : ``Out(1)``
        A command is executing.
    error : ``Out(1)``
        Sticky: a command was refused (unknown opcode, ``K`` out of range).
    cycles : ``Out(unsigned(32))``
        Cycles with ``busy`` high since reset.

    Attributes
    ----------
    array : SystolicArray
    requantizer : Requantizer
    data_out_bits : int
        ``max(acc_bits + 1, out_bits)``.
    latency : int
        Busy cycles of a ``COMPUTE`` command beyond its ``K`` steps.
    act_depth, weight_depth, out_depth : int
        Buffer depths (``k_max``, ``k_max``, ``rows``).
    """

    def __init__(self, rows, cols, weight, act, *, dataflow="os", acc_bits="auto",
                 k_max=64, out_fmt="uint8", overflow="wrap", pipeline=0,
                 multiplier_bits=16, max_shift=31, requant_pipeline=1):
        if dataflow == "ws":
            raise ValueError("dataflow='ws': the accelerator top implements the "
                             "output-stationary dataflow only; use dataflow='os' (the "
                             "weight-stationary SystolicArray can be used on its own)")
        if dataflow != "os":
            raise ValueError(f"dataflow={dataflow!r}: allowed value is 'os'")
        self._k_max = check_int(k_max, "k_max", 1, MAX_K, "buffer depth, longest K")
        self._array = SystolicArray(rows, cols, weight, act, dataflow="os",
                                    acc_bits=acc_bits,
                                    k=self._k_max if isinstance(acc_bits, str) else None,
                                    overflow=overflow, pipeline=pipeline)
        if self._array.weight_bits > DATA_IN_BITS:
            raise ValueError(f"weight={weight!r}: codes of {self._array.weight_bits} bits "
                             f"do not fit a {DATA_IN_BITS}-bit din word")
        self._requant = Requantizer(self._array.acc_bits, out_fmt, lanes=cols,
                                    per_channel=True,
                                    multiplier_bits=check_int(
                                        multiplier_bits, "multiplier_bits", 1,
                                        MAX_MULTIPLIER_BITS, "width of m"),
                                    max_shift=max_shift, relu="input",
                                    pipeline=requant_pipeline)
        super().__init__({
            "cmd": In(stream.Signature(unsigned(COMMAND_BITS))),
            "din": In(stream.Signature(unsigned(DATA_IN_BITS))),
            "dout": Out(stream.Signature(unsigned(self.data_out_bits))),
            "busy": Out(1),
            "error": Out(1),
            "cycles": Out(unsigned(CYCLE_COUNTER_BITS)),
        })

    # --- properties ---

    @property
    def array(self) -> SystolicArray:
        return self._array

    @property
    def requantizer(self) -> Requantizer:
        return self._requant

    @property
    def rows(self) -> int:
        return self._array.rows

    @property
    def cols(self) -> int:
        return self._array.cols

    @property
    def k_max(self) -> int:
        return self._k_max

    @property
    def acc_bits(self) -> int:
        return self._array.acc_bits

    @property
    def act_bits(self) -> int:
        return self._array.act_format.bits

    @property
    def out_bits(self) -> int:
        return self._requant.out_format.bits

    @property
    def data_out_bits(self) -> int:
        return max(self.acc_bits + 1, self.out_bits)

    @property
    def latency(self) -> int:
        """Busy cycles of a ``COMPUTE`` beyond its ``K`` steps: the array's drain latency,
        one cycle per result row, and the cycle that sees the last row stored."""
        return self._array.drain_latency + self.rows + 1

    @property
    def act_depth(self) -> int:
        return self._k_max

    @property
    def weight_depth(self) -> int:
        return self._k_max

    @property
    def out_depth(self) -> int:
        return self.rows

    # --- elaboration ---

    def elaborate(self, platform):
        m = Module()
        m.submodules.array = array = self._array
        m.submodules.requant = requant = self._requant
        R, C = self.rows, self.cols
        A, W, P = self.act_bits, array.weight_bits, self.acc_bits
        Z = self.out_bits

        m.submodules.act_buffer = act_mem = Memory(shape=unsigned(R * A),
                                                   depth=self._k_max, init=[])
        m.submodules.weight_buffer = weight_mem = Memory(shape=unsigned(C * W),
                                                         depth=self._k_max, init=[])
        # One output row: cols accumulators, then cols overflow flags.
        m.submodules.out_buffer = out_mem = Memory(shape=unsigned(C * P + C), depth=R,
                                                   init=[])
        act_write = act_mem.write_port(granularity=A)
        weight_write = weight_mem.write_port(granularity=W)
        out_write = out_mem.write_port()
        act_read = act_mem.read_port()
        weight_read = weight_mem.read_port()
        out_read = out_mem.read_port()

        opcode = self.cmd.payload[:OPCODE_BITS]
        arg = self.cmd.payload[OPCODE_BITS:]
        k_count = Signal(range(self._k_max + 1))        # K of the running command
        k = Signal(range(self._k_max + 1))                # step / buffer word index
        lane = Signal(range(max(R, C, 2)))
        field = Signal(range(3))                        # SET_REQUANT: m, s, zp
        row = Signal(range(R + 1))                      # result rows captured / drained
        wait = Signal(range(requant.latency + 2))
        raw = Signal()

        multipliers = [Signal(unsigned(self._requant.multiplier_bits), name=f"m{j}")
                       for j in range(C)]
        shifts = [Signal(unsigned(max(self._requant.shift_bits, 1)), name=f"s{j}")
                  for j in range(C)]
        zero_points = [Signal(requant.out_shape, name=f"zp{j}") for j in range(C)]
        relu = Signal()

        k_ok = (arg >= 1) & (arg <= self._k_max)

        # Array steps: buffer words are read one cycle before the array takes them.
        step_valid = Signal()
        step_last = Signal()
        m.d.sync += [step_valid.eq(0), step_last.eq(0)]
        m.d.comb += [
            array.act.as_value().eq(act_read.data),
            array.weight.as_value().eq(weight_read.data),
            array.valid.eq(step_valid),
            array.last.eq(step_last),
        ]
        m.d.comb += [
            out_write.addr.eq(row),
            out_write.data.eq(Cat(array.out_acc.as_value(), array.out_overflow)),
        ]

        # Drain: the output buffer word of `row` feeds the requantizer continuously.
        m.d.comb += out_read.addr.eq(row)
        accs = out_read.data[:C * P]
        flags = out_read.data[C * P:]
        m.d.comb += [requant.valid.eq(1), requant.acc.as_value().eq(accs),
                     requant.relu.eq(relu)]
        for j in range(C):
            m.d.comb += [requant.multiplier[j].eq(multipliers[j]),
                         requant.zero_point[j].eq(zero_points[j])]
            if self._requant.shift_bits:
                m.d.comb += requant.shift[j].eq(shifts[j])
        raw_words = [Cat(accs[j * P:(j + 1) * P], flags[j]) for j in range(C)]
        requant_words = [requant.out.as_value()[j * Z:(j + 1) * Z] for j in range(C)]
        word = Signal(unsigned(self.data_out_bits))
        with m.Switch(lane):
            for j in range(C):
                with m.Case(j):
                    m.d.comb += word.eq(Mux(raw, raw_words[j], requant_words[j]))
        m.d.comb += self.dout.payload.eq(word)

        with m.FSM():
            with m.State("IDLE"):
                m.d.comb += self.cmd.ready.eq(1)
                with m.If(self.cmd.valid):
                    m.d.sync += [k.eq(0), lane.eq(0), field.eq(0), row.eq(0),
                                 k_count.eq(arg)]
                    with m.Switch(opcode):
                        with m.Case(OPCODES["NOP"]):
                            pass
                        with m.Case(OPCODES["LOAD_ACT"]):
                            with m.If(k_ok):
                                m.next = "LOAD_ACT"
                            with m.Else():
                                m.d.sync += self.error.eq(1)
                        with m.Case(OPCODES["LOAD_WEIGHT"]):
                            with m.If(k_ok):
                                m.next = "LOAD_WEIGHT"
                            with m.Else():
                                m.d.sync += self.error.eq(1)
                        with m.Case(OPCODES["SET_REQUANT"]):
                            m.d.sync += relu.eq(arg[0])
                            m.next = "SET_REQUANT"
                        with m.Case(OPCODES["COMPUTE"]):
                            with m.If(k_ok):
                                m.next = "COMPUTE"
                            with m.Else():
                                m.d.sync += self.error.eq(1)
                        with m.Case(OPCODES["DRAIN_RAW"], OPCODES["DRAIN_REQUANT"]):
                            m.d.sync += [raw.eq(opcode == OPCODES["DRAIN_RAW"]),
                                         wait.eq(requant.latency)]
                            m.next = "DRAIN_WAIT"
                        with m.Default():
                            m.d.sync += self.error.eq(1)

            for state, write, lanes, width in (("LOAD_ACT", act_write, R, A),
                                               ("LOAD_WEIGHT", weight_write, C, W)):
                with m.State(state):
                    m.d.comb += [self.busy.eq(1), self.din.ready.eq(1),
                                 write.addr.eq(k),
                                 write.data.eq(Cat(*[self.din.payload[:width]] * lanes))]
                    with m.If(self.din.valid):
                        m.d.comb += write.en.eq(1 << lane)
                        with m.If(lane == lanes - 1):
                            m.d.sync += [lane.eq(0), k.eq(k + 1)]
                            with m.If(k == k_count - 1):
                                m.next = "IDLE"
                        with m.Else():
                            m.d.sync += lane.eq(lane + 1)

            with m.State("SET_REQUANT"):
                m.d.comb += [self.busy.eq(1), self.din.ready.eq(1)]
                with m.If(self.din.valid):
                    with m.Switch(lane):
                        for j in range(C):
                            with m.Case(j):
                                with m.Switch(field):
                                    with m.Case(0):
                                        m.d.sync += multipliers[j].eq(self.din.payload)
                                    with m.Case(1):
                                        m.d.sync += shifts[j].eq(self.din.payload)
                                    with m.Case(2):
                                        m.d.sync += zero_points[j].eq(self.din.payload)
                    with m.If(field == 2):
                        m.d.sync += [field.eq(0), lane.eq(lane + 1)]
                        with m.If(lane == C - 1):
                            m.next = "IDLE"
                    with m.Else():
                        m.d.sync += field.eq(field + 1)

            with m.State("COMPUTE"):
                # No idle steps are needed when K < rows: the next tile starts only after
                # every row of this one has left the array (COMPUTE_WAIT).
                m.d.comb += [self.busy.eq(1), act_read.addr.eq(k), weight_read.addr.eq(k)]
                m.d.sync += [step_valid.eq(1), step_last.eq(k == k_count - 1),
                             k.eq(k + 1)]
                with m.If(k == k_count - 1):
                    m.next = "COMPUTE_WAIT"

            with m.State("COMPUTE_WAIT"):
                m.d.comb += self.busy.eq(1)
                with m.If(row == R):
                    m.next = "IDLE"

            with m.State("DRAIN_WAIT"):
                # The buffer word of `row` and its requantized values settle.
                m.d.comb += self.busy.eq(1)
                with m.If(wait == 0):
                    m.next = "DRAIN_EMIT"
                with m.Else():
                    m.d.sync += wait.eq(wait - 1)

            with m.State("DRAIN_EMIT"):
                m.d.comb += [self.busy.eq(1), self.dout.valid.eq(1)]
                with m.If(self.dout.ready):
                    with m.If(lane == C - 1):
                        m.d.sync += [lane.eq(0), row.eq(row + 1),
                                     wait.eq(requant.latency)]
                        with m.If(row == R - 1):
                            m.next = "IDLE"
                        with m.Else():
                            m.next = "DRAIN_WAIT"
                    with m.Else():
                        m.d.sync += lane.eq(lane + 1)

        # Result rows leave the array in order; `row` counts them during COMPUTE.
        with m.If(array.out_valid):
            m.d.comb += out_write.en.eq(1)
            m.d.sync += row.eq(row + 1)

        with m.If(self.busy):
            m.d.sync += self.cycles.eq(self.cycles + 1)
        return m

    # --- metadata ---

    def commands(self) -> dict:
        """The command set, word formats and buffer shapes (enough to write a driver)."""
        return {
            "command_bits": COMMAND_BITS,
            "opcode_field": [0, OPCODE_BITS],
            "arg_field": [OPCODE_BITS, COMMAND_BITS],
            "data_in_bits": DATA_IN_BITS,
            "data_out_bits": self.data_out_bits,
            "opcodes": dict(OPCODES),
            "k_range": [1, self._k_max],
            "LOAD_ACT": "arg = K; din: K*rows words, k outer, row i inner, A[i, k] two's "
                        f"complement in bits 0..{self.act_bits - 1}",
            "LOAD_WEIGHT": "arg = K; din: K*cols words, k outer, column j inner, code "
                           f"W[k, j] in bits 0..{self._array.weight_bits - 1}",
            "SET_REQUANT": "arg bit 0 = relu; din: 3*cols words, for column j: m_j "
                           f"(unsigned, {self._requant.multiplier_bits} bits), s_j "
                           f"(0..{self._requant.max_shift}), zp_j (two's complement, "
                           f"{self.out_bits} bits)",
            "COMPUTE": "arg = K; C = A[:, :K] @ W[:K, :] into the output buffer",
            "DRAIN_RAW": "dout: rows*cols words, row-major; acc two's complement in bits "
                         f"0..{self.acc_bits - 1}, overflow flag in bit {self.acc_bits}",
            "DRAIN_REQUANT": "dout: rows*cols words, row-major; "
                             "clamp(zp + ((acc*m + 2^(s-1)) >> s), lo, hi) (lo = zp with "
                             f"relu), two's complement in bits 0..{self.out_bits - 1}",
            "errors": "unknown opcode or K outside k_range: command dropped, sticky "
                      "error set; reset before continuing",
        }

    def metadata(self) -> dict:
        from .export import signature_ports
        array = self._array.metadata()
        return {
            "kind": "accelerator",
            "rows": self.rows,
            "cols": self.cols,
            "dataflow": "os",
            "weight": array["weight"],
            "act": array["act"],
            "acc_bits": self.acc_bits,
            "overflow": array["overflow"],
            "pipeline": array["pipeline"],
            "k_max": self._k_max,
            "out": str(self._requant.out_format),
            "multiplier_bits": self._requant.multiplier_bits,
            "max_shift": self._requant.max_shift,
            "requant_latency": self._requant.latency,
            "compute_latency": self.latency,
            "buffers": {"act": {"depth": self.act_depth, "lanes": self.rows,
                                "lane_bits": self.act_bits},
                        "weight": {"depth": self.weight_depth, "lanes": self.cols,
                                   "lane_bits": self._array.weight_bits},
                        "out": {"depth": self.out_depth, "lanes": self.cols,
                                "lane_bits": self.acc_bits + 1}},
            "commands": self.commands(),
            "status": {"busy": "a command is executing", "error": "sticky: a command "
                       "was refused", "cycles": f"{CYCLE_COUNTER_BITS}-bit count of "
                       "busy cycles since reset"},
            "array": array,
            "ports": signature_ports(self),
        }
