"""Accelerator top: a systolic array fed by concurrent load / compute / drain engines.

:class:`Accelerator` wraps an output- or weight-stationary
:class:`~potgen.hw.array.SystolicArray`
with block-RAM operand buffers split into *slots*, a requantizer on the result path, an
output row FIFO, and three engines that run at the same time:

* the **load engine** writes ``din`` words into an activation slot, a weight slot or a
  requantization parameter bank (``LOAD_ACT``, ``LOAD_WEIGHT``, ``SET_REQUANT``);
* the **compute engine** streams one step per cycle from an activation slot and a
  weight slot into the array (``COMPUTE``); a tile's partial sums continue across
  ``COMPUTE`` commands until one carries the ``last`` flag, so ``K`` longer than a slot
  is streamed in chunks;
* the **drain engine** emits finished tiles from the output FIFO on ``dout``
  (``DRAIN``), several results per word.

Commands arrive in order on ``cmd`` and are *dispatched* to the engines' queues at most
one per cycle. A command waits at the dispatcher (``cmd.ready`` low) only for a real
hazard, tracked per slot and per bank: a load into a slot waits until every earlier
``COMPUTE`` reading that slot has issued its last step; a ``COMPUTE`` waits until every
earlier load into the slots (and the requantization bank) it reads has finished; a
``SET_REQUANT`` waits until every earlier tile that requantizes with that bank has left
the array. So a host that ping-pongs between slots loads tile ``t + 1`` while tile
``t`` computes and tile ``t - 1`` drains, and the sequential meaning of the command
stream is kept exactly.

Streams follow the ``lib.stream`` rules: a word moves in a cycle where ``valid`` and
``ready`` are both high; ``dout.valid`` never depends on ``dout.ready`` and a word
offered on ``dout`` stays unchanged until it is taken, so back-pressure loses nothing.

Weight-stationary (``dataflow="ws"``) keeps the engines, commands and hazards; a
``COMPUTE`` is one ``K`` fold (``rows`` weight rows preloaded, then ``k`` activation
rows streamed), folds with ``accumulate`` continue from an on-chip partial-sum buffer
so sums follow the golden sequential order, and a ``DRAIN`` names its row count.

The command set, word layouts and timing are in ``docs/accelerator.md`` and in
:meth:`Accelerator.metadata` (``commands``, ``buffers``, ``timing``), which is all a
host driver (:class:`potgen.runtime.AcceleratorDriver`) or the cycle model
(:mod:`potgen.runtime.cycles`) needs.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from .array import SystolicArray
from .checks import check_int
from .requant import MAX_MULTIPLIER_BITS, Requantizer

__all__ = ["Accelerator", "OPCODES", "ARG_FIELDS", "COMMAND_BITS", "DATA_IN_BITS",
           "ARG_BITS", "MAX_K", "MAX_ACT_SLOTS", "MAX_WEIGHT_SLOTS", "REQUANT_BANKS"]

#: Opcode of every command (see ``docs/accelerator.md``).
OPCODES = {"NOP": 0, "LOAD_ACT": 1, "LOAD_WEIGHT": 2, "SET_REQUANT": 3, "COMPUTE": 4,
           "DRAIN": 5, "SET_PSUM": 6}
#: Width of a command word.
COMMAND_BITS = 32
#: Width of the opcode field (bits 0..3) and of the argument field (bits 4..31).
OPCODE_BITS = 4
ARG_BITS = COMMAND_BITS - OPCODE_BITS
#: Fields of the argument (``[lo, hi)`` bit ranges of ``word >> OPCODE_BITS``).
ARG_FIELDS = {"k": (0, 17), "act_slot": (17, 21), "weight_slot": (21, 23),
              "bank": (23, 24), "last": (24, 25), "requant": (25, 26), "relu": (26, 27),
              "accumulate": (27, 28), "psum_tile": (0, 4)}
#: Width of a ``din`` word.
DATA_IN_BITS = 32
#: Largest ``k_max`` (slot depth) accepted; ``K`` fits the 17-bit ``k`` field.
MAX_K = 1 << 16
#: Largest ``k_total_max`` accepted.
MAX_K_TOTAL = 1 << 24
#: Slot counts the argument fields can address.
MAX_ACT_SLOTS = 1 << (ARG_FIELDS["act_slot"][1] - ARG_FIELDS["act_slot"][0])
MAX_WEIGHT_SLOTS = 1 << (ARG_FIELDS["weight_slot"][1] - ARG_FIELDS["weight_slot"][0])
#: Largest ``psum_tiles`` (WS partial-sum regions; ``SET_PSUM``'s 4-bit field).
MAX_PSUM_TILES = 16
#: Requantization parameter banks (double-buffered).
REQUANT_BANKS = 2
#: Width of the ``cycles`` status counter.
CYCLE_COUNTER_BITS = 32
#: Largest outputs per ``dout`` word and largest queue depth accepted.
MAX_DOUT_LANES = 16
MAX_QUEUE_DEPTH = 16
#: Width of the slot / bank use counters. They count commands between dispatch and
#: completion, so they stay below the queue depths plus the tiles the output FIFO's
#: credits let into the array (at most 16 + 1 + 16 + the array's pipeline).
_COUNTER_BITS = 8


def _field(arg, name):
    lo, hi = ARG_FIELDS[name]
    return arg[lo:hi]


def _delay(m, value, stages: int, name: str):
    """``value`` delayed by ``stages`` registers (``value`` itself for 0)."""
    for stage in range(stages):
        reg = Signal.like(value, name=f"{name}_d{stage}")
        m.d.sync += reg.eq(value)
        value = reg
    return value


class Accelerator(wiring.Component):
    """A GEMM accelerator (output- or weight-stationary) with concurrent load, compute, drain.

    Parameters
    ----------
    rows, cols : int
        Array size (see :class:`~potgen.hw.array.SystolicArray`).
    weight : str, Format or sequence of them
        Weight format of every column, or one per column (an MSQ mixed array); codes
        of at most 32 bits.
    act : str or IntFormat
        Activation format.
    dataflow : ``"os"`` or ``"ws"``
        Output-stationary (a ``COMPUTE`` streams ``k`` steps of ``K`` into a tile of
        ``rows x cols`` sums) or weight-stationary (a ``COMPUTE`` is one fold: the
        weight slot's ``rows`` rows are preloaded into the PEs, then ``k`` activation
        rows stream through, continuing from the partial-sum buffer with
        ``accumulate``; ``DRAIN`` takes a row count ``k``). Same ports, commands and
        metadata schema; ``docs/accelerator.md`` describes both.
    acc_bits : int or str
        Accumulator width, or a bound method (``"auto"``: the datatype bound for
        ``K = k_total_max``; ``"l1"`` / ``"exact"`` / ``"l1_zero_centered"`` need
        ``weights``).
    k_max : int
        Steps per slot: the depth of one activation / weight slot, 1..:data:`MAX_K`.
        OS: longer dot products are streamed as several ``COMPUTE`` chunks. WS: the
        most activation rows per fold (``M`` is tiled by it; the partial-sum buffer
        holds ``k_max`` rows), at least ``rows``.
    k_total_max : int or None
        The longest dot product the accelerator is built for (the ``K`` its accumulator
        bound covers); default ``k_max``. The driver refuses longer ``K``.
    weights : array of int or None
        Integer weight levels ``[K, N]`` for the weight-based bounds.
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
        Register stages of the requantizer, 0..3. The default 3 registers the
        multiplier, the shift and the clamp: with 1 the whole requantization is one
        combinational path (36.6 MHz for 8 x 8 on LFE5U-85F).
    act_slots : int
        Activation slots, 1..:data:`MAX_ACT_SLOTS` (each ``k_max`` steps of ``rows``
        activations). The driver keeps ``act_slots // 2`` row tiles resident while
        every column tile passes and loads the next ones into the other half: 4 keeps
        an 8 x 8 pot4 x uint8 array above 90% busy, a 16 x 16 one needs 8.
    weight_slots : int
        Weight slots, 1..:data:`MAX_WEIGHT_SLOTS` (2: ping-pong).
    out_rows : int or None
        Depth of the output row FIFO, ``rows..16 rows`` (default ``2 rows``: one tile
        drains while the next one leaves the array).
    dout_lanes : int
        Results per ``dout`` word, 1..:data:`MAX_DOUT_LANES`.
    load_queue, compute_queue : int
        Depth of the engines' command queues, 1..:data:`MAX_QUEUE_DEPTH`.
    psum_tiles : int
        WS only: regions of ``k_max`` rows in the partial-sum buffer,
        1..:data:`MAX_PSUM_TILES` (``SET_PSUM`` selects one), so that the folds of
        several column tiles can interleave and each activation slot serves all of them.

    Members
    -------
    cmd : ``In(stream.Signature(unsigned(32)))``
        Command words.
    din : ``In(stream.Signature(unsigned(32)))``
        Operand words of ``LOAD_ACT`` / ``LOAD_WEIGHT`` / ``SET_REQUANT``.
    dout : ``Out(stream.Signature(unsigned(data_out_bits)))``
        Result words of ``DRAIN``: ``dout_lanes`` lanes of ``lane_bits``.
    busy : ``Out(1)``
        Some engine has work, or finished results wait to be drained.
    error : ``Out(1)``
        Sticky: a command was refused.
    cycles : ``Out(unsigned(32))``
        Cycles with ``busy`` high since reset.

    Attributes
    ----------
    array : SystolicArray
    requantizer : Requantizer
    lane_bits : int
        ``max(acc_bits + 1, out_bits)``: one result lane of ``dout``.
    data_out_bits : int
        ``dout_lanes * lane_bits``.
    latency : int
        OS: cycles from the issue of a tile's last step to its first row in the output
        FIFO. WS: cycles from the issue of a step to its row in the output FIFO.
    dataflow : str
        ``"os"`` or ``"ws"``.
    """

    def __init__(self, rows, cols, weight, act, *, dataflow="os", acc_bits="auto",
                 k_max=64, k_total_max=None, weights=None, out_fmt="uint8",
                 overflow="wrap", pipeline=0, multiplier_bits=16, max_shift=31,
                 requant_pipeline=3, act_slots=4, weight_slots=2, out_rows=None,
                 dout_lanes=1, load_queue=2, compute_queue=4, psum_tiles=1):
        if dataflow not in ("os", "ws"):
            raise ValueError(f"dataflow={dataflow!r}: allowed values are 'os' "
                             "(output-stationary) and 'ws' (weight-stationary)")
        self._dataflow = dataflow
        self._k_max = check_int(k_max, "k_max", 1, MAX_K, "steps per slot")
        if k_total_max is None:
            k_total_max = self._k_max
        self._k_total_max = check_int(k_total_max, "k_total_max", self._k_max, MAX_K_TOTAL,
                                      "longest K the accumulator bound covers, >= k_max")
        self._act_slots = check_int(act_slots, "act_slots", 1, MAX_ACT_SLOTS,
                                    "activation slots")
        self._weight_slots = check_int(weight_slots, "weight_slots", 1, MAX_WEIGHT_SLOTS,
                                       "weight slots")
        self._dout_lanes = check_int(dout_lanes, "dout_lanes", 1, MAX_DOUT_LANES,
                                     "results per dout word")
        self._load_queue = check_int(load_queue, "load_queue", 1, MAX_QUEUE_DEPTH,
                                     "queued load commands")
        self._compute_queue = check_int(compute_queue, "compute_queue", 1,
                                        MAX_QUEUE_DEPTH, "queued COMPUTE commands")
        self._psum_tiles = check_int(psum_tiles, "psum_tiles", 1, MAX_PSUM_TILES,
                                     "weight-stationary partial-sum regions")
        if dataflow == "os" and self._psum_tiles != 1:
            raise ValueError(f"psum_tiles={self._psum_tiles}: only the weight-stationary "
                             "dataflow has a partial-sum buffer; use 1 with dataflow='os'")
        weight_based = isinstance(acc_bits, str) and acc_bits not in ("auto", "datatype")
        self._array = SystolicArray(
            rows, cols, weight, act, dataflow=dataflow, acc_bits=acc_bits,
            k=None if weight_based or not isinstance(acc_bits, str) else self._k_total_max,
            weights=weights, overflow=overflow, pipeline=pipeline)
        if self._array.weight_bits > DATA_IN_BITS:
            raise ValueError(f"weight={weight!r}: codes of {self._array.weight_bits} bits "
                             f"do not fit a {DATA_IN_BITS}-bit din word")
        R = self._array.rows
        if dataflow == "ws" and self._k_max < R:
            raise ValueError(f"k_max={self._k_max}: a weight-stationary weight slot holds "
                             f"the {R} preload rows of a fold, so k_max must be >= "
                             f"rows={R}")
        if out_rows is None:
            out_rows = 2 * R
        self._out_rows = check_int(out_rows, "out_rows", R, 16 * R,
                                   f"output FIFO rows, rows..16 * rows for rows={R}")
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
    def k_total_max(self) -> int:
        return self._k_total_max

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
    def lane_bits(self) -> int:
        return max(self.acc_bits + 1, self.out_bits)

    @property
    def data_out_bits(self) -> int:
        return self._dout_lanes * self.lane_bits

    @property
    def act_per_word(self) -> int:
        """Activations per ``din`` word (an operand never spans two words)."""
        return DATA_IN_BITS // self.act_bits

    @property
    def weight_per_word(self) -> int:
        """Weight codes per ``din`` word."""
        return DATA_IN_BITS // self._array.weight_bits

    @property
    def act_words_per_step(self) -> int:
        return -(-self.rows // self.act_per_word)

    @property
    def weight_words_per_step(self) -> int:
        return -(-self.cols // self.weight_per_word)

    @property
    def requant_record_bits(self) -> int:
        """Bits of one column's requantization record: ``m``, then ``s``, then ``zp``."""
        return self._requant.multiplier_bits + self._requant.shift_bits + self.out_bits

    @property
    def requant_words_per_column(self) -> int:
        return -(-self.requant_record_bits // DATA_IN_BITS)

    @property
    def words_per_row(self) -> int:
        """``dout`` words per result row: ``ceil(cols / dout_lanes)``."""
        return -(-self.cols // self._dout_lanes)

    @property
    def dataflow(self) -> str:
        return self._dataflow

    @property
    def latency(self) -> int:
        return 1 + self._array.latency + self._requant.latency

    # --- elaboration ---

    def elaborate(self, platform):
        m = Module()
        m.submodules.array = array = self._array
        m.submodules.requant = requant = self._requant
        R, C = self.rows, self.cols
        A, W, Z = self.act_bits, array.weight_bits, self.out_bits
        KM, D, LB = self._k_max, self._out_rows, self.lane_bits
        n_act, n_weight = self._act_slots, self._weight_slots

        m.submodules.act_buffer = act_mem = Memory(
            shape=unsigned(R * A), depth=n_act * KM, init=[])
        m.submodules.weight_buffer = weight_mem = Memory(
            shape=unsigned(C * W), depth=n_weight * KM, init=[])
        m.submodules.out_buffer = out_mem = Memory(
            shape=unsigned(C * LB), depth=D, init=[])
        act_write = act_mem.write_port(granularity=A)
        weight_write = weight_mem.write_port(granularity=W)
        out_write = out_mem.write_port()
        act_read = act_mem.read_port()
        weight_read = weight_mem.read_port()
        out_read = out_mem.read_port(transparent_for=(out_write,))

        # Engine queues hold (kind, arg) / arg; they are written by the dispatcher.
        m.submodules.load_queue = load_q = SyncFIFO(width=2 + ARG_BITS,
                                                    depth=self._load_queue)
        # Compute queue entries: arg, and (WS) one bit marking a SET_PSUM.
        m.submodules.compute_queue = compute_q = SyncFIFO(width=ARG_BITS + 1,
                                                          depth=self._compute_queue)

        def counters(n, name):
            return [Signal(_COUNTER_BITS, name=f"{name}{i}") for i in range(n)]

        act_users, act_loads = counters(n_act, "act_users"), counters(n_act, "act_loads")
        weight_users = counters(n_weight, "weight_users")
        weight_loads = counters(n_weight, "weight_loads")
        bank_users = counters(REQUANT_BANKS, "bank_users")
        bank_loads = counters(REQUANT_BANKS, "bank_loads")
        # Every counter is written once per cycle from these increments / decrements.
        increments = {id(s): [] for s in act_users + act_loads + weight_users
                      + weight_loads + bank_users + bank_loads}
        decrements = {key: [] for key in increments}

        def bump(signals, index, condition, table):
            for i, s in enumerate(signals):
                table[id(s)].append(condition & (index == i))

        # --- dispatcher ---

        opcode = self.cmd.payload[:OPCODE_BITS]
        arg = self.cmd.payload[OPCODE_BITS:]
        k_arg = _field(arg, "k")
        a_slot, w_slot = _field(arg, "act_slot"), _field(arg, "weight_slot")
        bank, last_flag = _field(arg, "bank"), _field(arg, "last")
        requant_flag = _field(arg, "requant")
        k_ok = (k_arg >= 1) & (k_arg <= KM)
        a_ok, w_ok = a_slot < n_act, w_slot < n_weight

        def pick(signals, index):
            value = Signal(_COUNTER_BITS)
            with m.Switch(index):
                for i, s in enumerate(signals):
                    with m.Case(i):
                        m.d.comb += value.eq(s)
            return value

        # OS: tiles dispatched with `last`, not yet DRAINed. WS: result rows of such
        # COMPUTEs not yet asked for by a DRAIN (a WS DRAIN names its row count).
        ws = self._dataflow == "ws"
        undrained = Signal(24)
        drain_ok = (k_ok & (k_arg <= undrained)) if ws else (undrained != 0)
        drain_request = k_arg if ws else R
        is_ = {name: opcode == code for name, code in OPCODES.items()}
        valid_cmd = Signal()
        stall = Signal()
        m.d.comb += [
            valid_cmd.eq(is_["NOP"]
                         | (is_["LOAD_ACT"] & k_ok & a_ok)
                         | (is_["LOAD_WEIGHT"] & k_ok & w_ok)
                         | is_["SET_REQUANT"]
                         | (is_["COMPUTE"] & k_ok & a_ok & w_ok)
                         | (is_["DRAIN"] & drain_ok)
                         | ((is_["SET_PSUM"] & (_field(arg, "psum_tile") < self._psum_tiles))
                            if ws else 0)),
            stall.eq(valid_cmd & (
                (is_["LOAD_ACT"] & (~load_q.w_rdy | (pick(act_users, a_slot) != 0)))
                | (is_["LOAD_WEIGHT"] & (~load_q.w_rdy | (pick(weight_users, w_slot) != 0)))
                | (is_["SET_REQUANT"] & (~load_q.w_rdy | (pick(bank_users, bank) != 0)))
                | (is_["SET_PSUM"] & ~compute_q.w_rdy)
                | (is_["COMPUTE"] & (~compute_q.w_rdy
                                     | (pick(act_loads, a_slot) != 0)
                                     | (pick(weight_loads, w_slot) != 0)
                                     | (last_flag & requant_flag
                                        & (pick(bank_loads, bank) != 0)))))),
            self.cmd.ready.eq(~stall),
        ]
        take = Signal()
        m.d.comb += take.eq(self.cmd.valid & ~stall)
        with m.If(take & ~valid_cmd):
            m.d.sync += self.error.eq(1)
        is_load = is_["LOAD_ACT"] | is_["LOAD_WEIGHT"] | is_["SET_REQUANT"]
        m.d.comb += [
            load_q.w_data.eq(Cat(opcode[:2], arg)),
            load_q.w_en.eq(take & valid_cmd & is_load),
            compute_q.w_data.eq(Cat(arg, is_["SET_PSUM"])),
            compute_q.w_en.eq(take & valid_cmd & (is_["COMPUTE"] | is_["SET_PSUM"])),
        ]
        dispatch = take & valid_cmd
        bump(act_loads, a_slot, dispatch & is_["LOAD_ACT"], increments)
        bump(weight_loads, w_slot, dispatch & is_["LOAD_WEIGHT"], increments)
        bump(bank_loads, bank, dispatch & is_["SET_REQUANT"], increments)
        bump(act_users, a_slot, dispatch & is_["COMPUTE"], increments)
        bump(weight_users, w_slot, dispatch & is_["COMPUTE"], increments)
        bump(bank_users, bank, dispatch & is_["COMPUTE"] & last_flag & requant_flag,
             increments)
        drain_dispatch = dispatch & is_["DRAIN"]
        if ws:
            m.d.sync += undrained.eq(
                undrained + Mux(dispatch & is_["COMPUTE"] & last_flag, k_arg, 0)
                - Mux(drain_dispatch, k_arg, 0))
        else:
            m.d.sync += undrained.eq(undrained + (dispatch & is_["COMPUTE"] & last_flag)
                                     - drain_dispatch)

        # --- load engine ---

        l_active = Signal()
        l_kind = Signal(2)
        l_arg = Signal(ARG_BITS)
        l_k = Signal(range(KM + 1))
        l_word = Signal(range(max(self.act_words_per_step, self.weight_words_per_step,
                                  self.requant_words_per_column, 2)))
        l_col = Signal(range(max(C, 2)))
        l_base = Signal(range(max(n_act, n_weight) * KM + 1))
        l_k_count = _field(l_arg, "k")
        l_a_slot, l_w_slot = _field(l_arg, "act_slot"), _field(l_arg, "weight_slot")
        l_bank = _field(l_arg, "bank")
        kind_act, kind_weight = OPCODES["LOAD_ACT"], OPCODES["LOAD_WEIGHT"]
        kind_requant = OPCODES["SET_REQUANT"]

        multipliers = [[Signal(unsigned(self._requant.multiplier_bits), name=f"m{b}_{j}")
                        for j in range(C)] for b in range(REQUANT_BANKS)]
        shift_bits = self._requant.shift_bits
        shifts = [[Signal(unsigned(max(shift_bits, 1)), name=f"s{b}_{j}")
                   for j in range(C)] for b in range(REQUANT_BANKS)]
        zero_points = [[Signal(requant.out_shape, name=f"zp{b}_{j}") for j in range(C)]
                       for b in range(REQUANT_BANKS)]
        relus = [Signal(name=f"relu{b}") for b in range(REQUANT_BANKS)]

        l_finish = Signal()
        m.d.comb += self.din.ready.eq(l_active)
        word_taken = l_active & self.din.valid
        per_a, per_w = self.act_per_word, self.weight_per_word
        m.d.comb += [
            act_write.addr.eq(l_base + l_k),
            act_write.data.eq(Cat(*[self.din.payload[(i % per_a) * A:(i % per_a + 1) * A]
                                    for i in range(R)])),
            weight_write.addr.eq(l_base + l_k),
            weight_write.data.eq(Cat(*[self.din.payload[(j % per_w) * W:(j % per_w + 1) * W]
                                       for j in range(C)])),
        ]
        for kind, port, lanes, per, steps in (
                (kind_act, act_write, R, per_a, self.act_words_per_step),
                (kind_weight, weight_write, C, per_w, self.weight_words_per_step)):
            with m.If(word_taken & (l_kind == kind)):
                with m.Switch(l_word):
                    for w in range(steps):
                        with m.Case(w):
                            m.d.comb += port.en.eq(
                                sum(1 << i for i in range(lanes) if i // per == w))
                with m.If(l_word == steps - 1):
                    m.d.sync += [l_word.eq(0), l_k.eq(l_k + 1)]
                    m.d.comb += l_finish.eq(l_k == l_k_count - 1)
                with m.Else():
                    m.d.sync += l_word.eq(l_word + 1)

        record_words = self.requant_words_per_column
        partial = Signal(max(DATA_IN_BITS * (record_words - 1), 1))
        record = Cat(partial[:DATA_IN_BITS * (record_words - 1)], self.din.payload)
        mb = self._requant.multiplier_bits
        with m.If(word_taken & (l_kind == kind_requant)):
            with m.If(l_word == record_words - 1):
                m.d.sync += [l_word.eq(0), l_col.eq(l_col + 1)]
                m.d.comb += l_finish.eq(l_col == C - 1)
                with m.Switch(Cat(l_col, l_bank)):
                    for b in range(REQUANT_BANKS):
                        for j in range(C):
                            with m.Case(j | (b << len(l_col))):
                                m.d.sync += [multipliers[b][j].eq(record[:mb]),
                                             zero_points[b][j].eq(
                                                 record[mb + shift_bits:
                                                        mb + shift_bits + Z])]
                                if shift_bits:
                                    m.d.sync += shifts[b][j].eq(
                                        record[mb:mb + shift_bits])
            with m.Else():
                m.d.sync += l_word.eq(l_word + 1)
                with m.Switch(l_word):
                    for w in range(record_words - 1):
                        with m.Case(w):
                            m.d.sync += partial[w * DATA_IN_BITS:(w + 1) * DATA_IN_BITS].eq(
                                self.din.payload)

        l_done = l_finish & word_taken
        bump(act_loads, l_a_slot, l_done & (l_kind == kind_act), decrements)
        bump(weight_loads, l_w_slot, l_done & (l_kind == kind_weight), decrements)
        bump(bank_loads, l_bank, l_done & (l_kind == kind_requant), decrements)
        next_kind, next_arg = load_q.r_data[:2], load_q.r_data[2:]
        with m.If((~l_active | l_done) & load_q.r_rdy):
            m.d.comb += load_q.r_en.eq(1)
            m.d.sync += [l_active.eq(1), l_kind.eq(next_kind), l_arg.eq(next_arg),
                         l_k.eq(0), l_word.eq(0), l_col.eq(0),
                         l_base.eq(Mux(next_kind == kind_act,
                                       _field(next_arg, "act_slot") * KM,
                                       _field(next_arg, "weight_slot") * KM))]
            with m.If(next_kind == kind_requant):
                for b in range(REQUANT_BANKS):
                    with m.If(_field(next_arg, "bank") == b):
                        m.d.sync += relus[b].eq(_field(next_arg, "relu"))
        with m.Elif(l_done):
            m.d.sync += l_active.eq(0)

        reserved = Signal(range(D + 1))        # output FIFO rows promised to results

        if self._dataflow == "ws":
            (reserve_rows, row_written, row_requant_d, raw_row, requant_row,
             c_active) = self._elaborate_ws_datapath(
                m, array, requant, act_read, weight_read, compute_q, reserved, bump,
                decrements, act_users, weight_users, bank_users, multipliers, shifts,
                zero_points, relus)
        else:
            (reserve_rows, row_written, row_requant_d, raw_row, requant_row,
             c_active) = self._elaborate_os_datapath(
                m, array, requant, act_read, weight_read, compute_q, reserved, bump,
                decrements, act_users, weight_users, bank_users, multipliers, shifts,
                zero_points, relus)

        wr_ptr, rd_ptr = Signal(range(D)), Signal(range(D))
        count = Signal(range(D + 1))
        m.d.comb += [out_write.addr.eq(wr_ptr), out_write.en.eq(row_written),
                     out_write.data.eq(Mux(row_requant_d, requant_row, raw_row))]
        with m.If(row_written):
            m.d.sync += wr_ptr.eq(Mux(wr_ptr == D - 1, 0, wr_ptr + 1))

        # --- drain engine: FIFO rows -> dout words ---

        drain_rows = Signal(24)         # rows the host has asked for, not yet emitted
        e_word = Signal(range(max(self.words_per_row, 2)))
        L = self._dout_lanes
        padded = Cat(out_read.data, Const(0, (self.words_per_row * L - C) * LB))
        m.d.comb += [self.dout.valid.eq((count != 0) & (drain_rows != 0)),
                     self.dout.payload.eq(padded.word_select(e_word, L * LB))]
        sent = self.dout.valid & self.dout.ready
        pop = sent & (e_word == self.words_per_row - 1)
        next_rd = Mux(rd_ptr == D - 1, 0, rd_ptr + 1)
        m.d.comb += out_read.addr.eq(Mux(pop, next_rd, rd_ptr))
        with m.If(sent):
            m.d.sync += e_word.eq(Mux(pop, 0, e_word + 1))
        with m.If(pop):
            m.d.sync += rd_ptr.eq(next_rd)
        m.d.sync += [count.eq(count + row_written - pop),
                     reserved.eq(reserved + reserve_rows - pop),
                     drain_rows.eq(drain_rows + Mux(drain_dispatch, drain_request, 0) - pop)]

        for key, signal in ((id(s), s) for s in act_users + act_loads + weight_users
                            + weight_loads + bank_users + bank_loads):
            up = sum(increments[key]) if increments[key] else 0
            down = sum(decrements[key]) if decrements[key] else 0
            m.d.sync += signal.eq(signal + up - down)

        m.d.comb += self.busy.eq(l_active | load_q.r_rdy | c_active | compute_q.r_rdy
                                 | (reserved != 0) | (drain_rows != 0))
        with m.If(self.busy):
            m.d.sync += self.cycles.eq(self.cycles + 1)
        return m

    def _elaborate_ws_datapath(self, m, array, requant, act_read, weight_read,
                               compute_q, reserved, bump, decrements, act_users,
                               weight_users, bank_users, multipliers, shifts,
                               zero_points, relus):
        """WS compute engine, partial-sum buffer and result path.

        A ``COMPUTE`` is one fold: ``rows`` preload cycles (the weight slot's rows,
        bottom row first) then ``k`` steps, step ``m`` presenting activation row ``m``
        of the slot and, with ``accumulate``, partial-sum row ``m`` of the previous
        fold. A fold without ``last`` writes its result rows back into the partial-sum
        buffer; one with ``last`` sends them to the requantizer and the output FIFO.
        """
        R, C, KM, D = self.rows, self.cols, self._k_max, self._out_rows
        P, Z, LB = self.acc_bits, self.out_bits, self.lane_bits
        n_act, n_weight = self._act_slots, self._weight_slots
        shift_bits = self._requant.shift_bits
        lat = array.step_latency

        # Partial sums between folds: one row of (acc, overflow flag) per step. The read
        # is transparent, so a row written in the cycle it is read is seen.
        n_psum = self._psum_tiles
        m.submodules.psum_buffer = psum_mem = Memory(
            shape=unsigned(C * (P + 1)), depth=n_psum * KM, init=[])
        psum_base = Signal(range(n_psum * KM))
        psum_write = psum_mem.write_port()
        psum_read = psum_mem.read_port(transparent_for=(psum_write,))

        c_active = Signal()
        c_arg = Signal(ARG_BITS)
        c_p = Signal(range(R + 1))       # preload cycles done (R: stepping)
        c_k = Signal(range(KM + 1))
        c_act_base = Signal(range(n_act * KM + 1))
        c_weight_base = Signal(range(n_weight * KM + 1))
        c_last, c_requant = _field(c_arg, "last"), _field(c_arg, "requant")
        c_accumulate = _field(c_arg, "accumulate")
        # A continuing fold's step m reads the partial sum the previous fold's step m
        # wrote lat + 1 cycles after its issue; the previous fold (never `last`, so
        # never held) issued its steps back to back from its first one, so it suffices
        # that this fold's first step comes >= lat + 1 cycles after that one. Checked
        # at the start of the preload (which must run straight into the first step).
        wait_cycles = lat + 1 - R
        since_first = Signal(range(wait_cycles + 1), init=wait_cycles)
        # The output FIFO must have room for a result row when its step issues;
        # reserved only falls while a fold waits, so a check at the preload's start
        # covers the first step too.
        no_room = c_last & (reserved >= D)
        preloading = c_active & (c_p < R)
        hold_preload = (c_p == 0) & (no_room | (c_accumulate & (since_first < wait_cycles)))
        preload_issue = preloading & ~hold_preload
        stepping = c_active & (c_p == R)
        step_issue = stepping & ~no_room
        c_final = c_k == _field(c_arg, "k") - 1
        m.d.comb += [act_read.addr.eq(c_act_base + c_k),
                     weight_read.addr.eq(c_weight_base + Mux(preloading, (R - 1) - c_p, 0)),
                     psum_read.addr.eq(psum_base + c_k)]
        with m.If(preload_issue):
            m.d.sync += c_p.eq(c_p + 1)
        with m.If(step_issue):
            m.d.sync += c_k.eq(c_k + 1)
        with m.If(step_issue & (c_k == 0)):
            m.d.sync += since_first.eq(1)
        with m.Elif(since_first < wait_cycles):
            m.d.sync += since_first.eq(since_first + 1)

        # Registered like the synchronous read ports: the array sees the step's operands
        # and flags one cycle after the issue.
        step_valid, step_first, step_accumulate = Signal(), Signal(), Signal()
        step_out, step_final_out = Signal(), Signal()
        step_requant, step_bank = Signal(), Signal()
        step_row = Signal(range(n_psum * KM))   # the step's partial-sum address
        m.d.sync += [step_valid.eq(step_issue), step_first.eq(step_issue & (c_k == 0)),
                     step_accumulate.eq(c_accumulate), step_out.eq(c_last),
                     step_final_out.eq(step_issue & c_final & c_last),
                     step_requant.eq(c_requant), step_bank.eq(_field(c_arg, "bank")),
                     step_row.eq(psum_base + c_k)]
        psum_row = psum_read.data
        m.d.comb += [
            array.act.as_value().eq(act_read.data),
            array.weight.as_value().eq(weight_read.data),
            array.valid.eq(step_valid),
            array.first.eq(step_first),
        ]
        for j in range(C):
            lane = psum_row[j * (P + 1):(j + 1) * (P + 1)]
            m.d.comb += [array.psum[j].eq(Mux(step_accumulate, lane[:P], 0)),
                         array.psum_overflow[j].eq(step_accumulate & lane[P])]

        c_done = step_issue & c_final
        bump(act_users, _field(c_arg, "act_slot"), c_done, decrements)
        bump(weight_users, _field(c_arg, "weight_slot"), c_done, decrements)
        next_c, next_is_psum = compute_q.r_data[:ARG_BITS], compute_q.r_data[ARG_BITS]
        with m.If((~c_active | c_done) & compute_q.r_rdy):
            m.d.comb += compute_q.r_en.eq(1)
            with m.If(next_is_psum):
                # Results in flight carry their own address, so the switch is immediate.
                m.d.sync += [c_active.eq(0),
                             psum_base.eq(_field(next_c, "psum_tile") * KM)]
            with m.Else():
                m.d.sync += [c_active.eq(1), c_arg.eq(next_c), c_k.eq(0), c_p.eq(0),
                             c_act_base.eq(_field(next_c, "act_slot") * KM),
                             c_weight_base.eq(_field(next_c, "weight_slot") * KM)]
        with m.Elif(c_done):
            m.d.sync += c_active.eq(0)

        # --- result path: one row per step; psum buffer or requantizer -> FIFO ---

        out_tag = _delay(m, Cat(step_out, step_final_out, step_requant, step_bank,
                                step_row), lat, "tag")
        tag_out, tag_final_out, tag_requant, tag_bank = out_tag[0], out_tag[1], \
            out_tag[2], out_tag[3]
        tag_row = out_tag[4:]
        accs = array.out_acc.as_value()
        raw_lanes = [Cat(accs[j * P:(j + 1) * P], array.out_overflow[j]) for j in range(C)]
        m.d.comb += [psum_write.addr.eq(tag_row),
                     psum_write.en.eq(array.out_valid & ~tag_out),
                     psum_write.data.eq(Cat(*raw_lanes))]
        bump(bank_users, tag_bank, array.out_valid & tag_final_out & tag_requant,
             decrements)

        result = array.out_valid & tag_out
        m.d.comb += [requant.valid.eq(result),
                     requant.acc.as_value().eq(accs),
                     requant.relu.eq(Mux(tag_bank, relus[1], relus[0]))]
        for j in range(C):
            m.d.comb += [
                requant.multiplier[j].eq(Mux(tag_bank, multipliers[1][j],
                                             multipliers[0][j])),
                requant.zero_point[j].eq(Mux(tag_bank, zero_points[1][j],
                                             zero_points[0][j])),
            ]
            if shift_bits:
                m.d.comb += requant.shift[j].eq(Mux(tag_bank, shifts[1][j], shifts[0][j]))
        raw_row = Cat(*[Cat(lane, Const(0, LB - P - 1)) for lane in raw_lanes])
        rq = requant.latency
        raw_row = _delay(m, raw_row, rq, "raw_row")
        row_requant_d = _delay(m, tag_requant, rq, "row_requant")
        outs = requant.out.as_value()
        requant_row = Cat(*[Cat(outs[j * Z:(j + 1) * Z], Const(0, LB - Z))
                            for j in range(C)])
        reserve = Signal()
        m.d.comb += reserve.eq(step_issue & c_last)
        return reserve, requant.out_valid, row_requant_d, raw_row, requant_row, c_active

    def _elaborate_os_datapath(self, m, array, requant, act_read, weight_read,
                               compute_q, reserved, bump, decrements, act_users,
                               weight_users, bank_users, multipliers, shifts,
                               zero_points, relus):
        """OS compute engine and result path; returns what the drain engine needs."""
        R, C, KM, D = self.rows, self.cols, self._k_max, self._out_rows
        P, Z, LB = self.acc_bits, self.out_bits, self.lane_bits
        n_act, n_weight = self._act_slots, self._weight_slots
        shift_bits = self._requant.shift_bits
        # --- compute engine ---

        c_active = Signal()
        c_arg = Signal(ARG_BITS)
        c_k = Signal(range(KM + 1))
        c_act_base = Signal(range(n_act * KM + 1))
        c_weight_base = Signal(range(n_weight * KM + 1))
        c_last, c_requant = _field(c_arg, "last"), _field(c_arg, "requant")
        gap = Signal(range(R + 1), init=R)     # cycles since the last `last` step (<= R)
        c_final = c_k == _field(c_arg, "k") - 1
        # A column drains one row per cycle, so `last` steps are >= rows cycles apart,
        # and a tile's rows must have room in the output FIFO when they arrive.
        hold = c_final & c_last & ((gap < R) | (reserved + R > D))
        issue = c_active & ~hold
        m.d.comb += [act_read.addr.eq(c_act_base + c_k),
                     weight_read.addr.eq(c_weight_base + c_k)]
        step_valid, step_last = Signal(), Signal()
        step_requant, step_bank = Signal(), Signal()
        m.d.sync += [step_valid.eq(issue), step_last.eq(issue & c_final & c_last),
                     step_requant.eq(c_requant), step_bank.eq(_field(c_arg, "bank"))]
        m.d.comb += [
            array.act.as_value().eq(act_read.data),
            array.weight.as_value().eq(weight_read.data),
            array.valid.eq(step_valid),
            array.last.eq(step_last),
        ]
        ends_tile = issue & c_final & c_last
        with m.If(issue):
            m.d.sync += c_k.eq(c_k + 1)
        with m.If(ends_tile):
            m.d.sync += gap.eq(1)
        with m.Elif(gap < R):
            m.d.sync += gap.eq(gap + 1)
        c_done = issue & c_final
        bump(act_users, _field(c_arg, "act_slot"), c_done, decrements)
        bump(weight_users, _field(c_arg, "weight_slot"), c_done, decrements)
        next_c = compute_q.r_data[:ARG_BITS]
        with m.If((~c_active | c_done) & compute_q.r_rdy):
            m.d.comb += compute_q.r_en.eq(1)
            m.d.sync += [c_active.eq(1), c_arg.eq(next_c), c_k.eq(0),
                         c_act_base.eq(_field(next_c, "act_slot") * KM),
                         c_weight_base.eq(_field(next_c, "weight_slot") * KM)]
        with m.Elif(c_done):
            m.d.sync += c_active.eq(0)

        # --- result path: array rows -> requantizer -> output FIFO ---

        # The tag of a tile (requantize? which bank?) travels with its `last` step and
        # meets the tile's first result row at the array's bottom edge.
        tag_mark = _delay(m, step_last, array.drain_latency, "tag_mark")
        tag_requant = _delay(m, step_requant, array.drain_latency, "tag_requant")
        tag_bank = _delay(m, step_bank, array.drain_latency, "tag_bank")
        held_requant, held_bank = Signal(), Signal()
        with m.If(tag_mark):
            m.d.sync += [held_requant.eq(tag_requant), held_bank.eq(tag_bank)]
        row_requant = Mux(tag_mark, tag_requant, held_requant)
        row_bank = Mux(tag_mark, tag_bank, held_bank)
        out_row = Signal(range(R))
        with m.If(array.out_valid):
            m.d.sync += out_row.eq(Mux(out_row == R - 1, 0, out_row + 1))
        tile_left_array = array.out_valid & (out_row == R - 1)
        bump(bank_users, row_bank, tile_left_array & row_requant, decrements)

        m.d.comb += [requant.valid.eq(array.out_valid),
                     requant.acc.as_value().eq(array.out_acc.as_value()),
                     requant.relu.eq(Mux(row_bank, relus[1], relus[0]))]
        for j in range(C):
            m.d.comb += [
                requant.multiplier[j].eq(Mux(row_bank, multipliers[1][j],
                                             multipliers[0][j])),
                requant.zero_point[j].eq(Mux(row_bank, zero_points[1][j],
                                             zero_points[0][j])),
            ]
            if shift_bits:
                m.d.comb += requant.shift[j].eq(Mux(row_bank, shifts[1][j], shifts[0][j]))
        accs = array.out_acc.as_value()
        raw_row = Cat(*[Cat(accs[j * P:(j + 1) * P], array.out_overflow[j],
                            Const(0, LB - P - 1)) for j in range(C)])
        rq = requant.latency
        raw_row = _delay(m, raw_row, rq, "raw_row")
        row_requant_d = _delay(m, row_requant, rq, "row_requant")
        outs = requant.out.as_value()
        requant_row = Cat(*[Cat(outs[j * Z:(j + 1) * Z], Const(0, LB - Z))
                            for j in range(C)])

        return (Mux(ends_tile, R, 0), requant.out_valid, row_requant_d, raw_row, requant_row,
                c_active)

    # --- metadata ---

    def commands(self) -> dict:
        """The command set, word formats and fields (enough to write a driver)."""
        return {
            "command_bits": COMMAND_BITS,
            "opcode_field": [0, OPCODE_BITS],
            "arg_field": [OPCODE_BITS, COMMAND_BITS],
            "arg_fields": {name: list(span) for name, span in ARG_FIELDS.items()},
            "data_in_bits": DATA_IN_BITS,
            "data_out_bits": self.data_out_bits,
            "opcodes": dict(OPCODES),
            "k_range": [1, self._k_max],
            "LOAD_ACT": "k, act_slot; din: for each step k, ceil(rows / act_per_word) "
                        "words, word w holding rows w*act_per_word.. at act_bits each "
                        "(two's complement, row w*act_per_word in the low bits)",
            "LOAD_WEIGHT": "k, weight_slot; din: for each step k, ceil(cols / "
                           "weight_per_word) words of codes, column w*weight_per_word "
                           "in the low bits",
            "SET_REQUANT": "bank, relu; din: for each column j, requant_words_per_column "
                           "words holding the record m | s << multiplier_bits | zp << "
                           "(multiplier_bits + shift_bits), low word first",
            "COMPUTE": (self._ws_compute_doc() if self._dataflow == "ws" else
                        "k, act_slot, weight_slot, last, requant, bank: k steps of "
                       "A[:, step] and W[step, :] from the slots; the tile's sums "
                       "continue from the previous COMPUTE unless that one had last; "
                       "with last the tile's rows go to the output FIFO, requantized "
                       "with the bank when requant is set, else raw"),
            "DRAIN": ("k: dout: the next k result rows (1..k_max; at most the rows of "
                      "earlier COMPUTEs with last not yet drained), each "
                      if self._dataflow == "ws" else
                      f"dout: the next finished tile, rows 0..{self.rows - 1}, each ")
                     + f"{self.words_per_row} words of {self._dout_lanes} lanes of "
                     f"{self.lane_bits} bits (column w*dout_lanes in the low lane); raw "
                     f"lane: acc two's complement in bits 0..{self.acc_bits - 1}, "
                     f"overflow flag in bit {self.acc_bits}; requantized lane: the "
                     f"value two's complement in bits 0..{self.out_bits - 1}",
            "SET_PSUM": ("psum_tile: the following COMPUTEs read and write partial-sum "
                         f"rows psum_tile * {self._k_max} + m (0..psum_tiles-1; passes "
                         "through the compute queue, in order)" if self._dataflow == "ws"
                         else "weight-stationary only: refused (error)"),
            "errors": "unknown opcode, k outside k_range, a slot beyond the buffer, or a "
                      "DRAIN without a finished tile (WS: more rows than outstanding): "
                      "command dropped, sticky error set; reset before continuing",
        }

    def _ws_compute_doc(self) -> str:
        return ("k, act_slot, weight_slot, last, requant, bank, accumulate: one K fold; "
                f"words 0..{self.rows - 1} of the weight slot (rows k0..k0+rows-1 of W, "
                "one per word) are preloaded into the PEs (PE (i, j) holds W[k0 + i, "
                "n0 + j]), then step m = 0..k-1 streams activation word m of the slot "
                "(A[m0 + m, k0 + i] in lane i); with accumulate step m continues from "
                "partial-sum row m written by the previous COMPUTE (which must have had "
                "the same k), else from 0; without last row m goes back to the "
                "partial-sum buffer, with last to the output FIFO, requantized with the "
                "bank when requant is set")

    def timing(self) -> dict:
        """Every number the cycle model (:mod:`potgen.runtime.cycles`) needs."""
        return {
            "act_words_per_step": self.act_words_per_step,
            "weight_words_per_step": self.weight_words_per_step,
            "requant_words_per_column": self.requant_words_per_column,
            "words_per_row": self.words_per_row,
            "drain_latency": self._array.drain_latency,
            "step_latency": self._array.step_latency,
            "requant_latency": self._requant.latency,
            "out_rows": self._out_rows,
            "load_queue": self._load_queue,
            "compute_queue": self._compute_queue,
        }

    def metadata(self) -> dict:
        from .export import signature_ports
        array = self._array.metadata()
        return {
            "kind": "accelerator",
            "version": 2,
            "rows": self.rows,
            "cols": self.cols,
            "dataflow": self._dataflow,
            "weight": array["weight"],
            "act": array["act"],
            "acc_bits": self.acc_bits,
            "overflow": array["overflow"],
            "pipeline": array["pipeline"],
            "k_max": self._k_max,
            "k_total_max": self._k_total_max,
            "bound": array["bound"],
            "out": str(self._requant.out_format),
            "multiplier_bits": self._requant.multiplier_bits,
            "shift_bits": self._requant.shift_bits,
            "max_shift": self._requant.max_shift,
            "requant_latency": self._requant.latency,
            "act_slots": self._act_slots,
            "weight_slots": self._weight_slots,
            "psum_tiles": self._psum_tiles,
            "requant_banks": REQUANT_BANKS,
            "dout_lanes": self._dout_lanes,
            "lane_bits": self.lane_bits,
            "buffers": {"act": {"slots": self._act_slots, "depth": self._k_max,
                                "lanes": self.rows, "lane_bits": self.act_bits,
                                "per_word": self.act_per_word},
                        "weight": {"slots": self._weight_slots, "depth": self._k_max,
                                   "lanes": self.cols,
                                   "lane_bits": self._array.weight_bits,
                                   "per_word": self.weight_per_word},
                        "out": {"depth": self._out_rows, "lanes": self.cols,
                                "lane_bits": self.lane_bits},
                        **({"psum": {"depth": self._psum_tiles * self._k_max,
                                     "tiles": self._psum_tiles, "lanes": self.cols,
                                     "lane_bits": self.acc_bits + 1}}
                           if self._dataflow == "ws" else {})},
            "commands": self.commands(),
            "timing": self.timing(),
            "status": {"busy": "an engine has work or finished results wait to be "
                       "drained", "error": "sticky: a command was refused",
                       "cycles": f"{CYCLE_COUNTER_BITS}-bit count of busy cycles since "
                       "reset"},
            "array": array,
            "ports": signature_ports(self),
        }
