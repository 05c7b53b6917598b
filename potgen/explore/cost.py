"""Analytic cost of GEMM, fully-connected and conv2d layers on a systolic accelerator.

Cycles, traffic, buffer occupancy, utilisation and an energy proxy of one GEMM
``[M, K] @ [K, N]`` on an :class:`ArrayConfig` (a ``rows x cols`` array, its dataflow,
buffer depth, stream word width and how its engines overlap). Conv2d layers map by
im2col (``M = Ho Wo batch``, ``K = kh kw Cin`` (+1 for a bias), ``N = Cout``), done by
:meth:`potgen.explore.network.Layer.gemm_shape`.

Mapping (SCALE-Sim's, BACKGROUND.md section 6). Output-stationary tiles ``M`` over
rows and ``N`` over columns, ``K`` streams through; weight-stationary tiles ``K``
over rows and ``N`` over columns, ``M`` streams. ``folds = ceil(Sr / R) ceil(Sc / C)``.

Packed words (Klhufek et al.): a ``word_bits`` word holds ``floor(word_bits / b)``
operands of ``b`` bits, none across two words, both on the ``din`` stream (when
``packed``; one step's ``rows`` activations or ``cols`` weights take
``ceil(lanes / floor(word_bits / b))`` words) and in the buffers.

Buffers hold slots of ``k_max`` steps. A fold whose reduction steps do not fit a slot is
computed in ``ceil(steps / k_max)`` chunks. ``sequential``: each chunk pays the array's
fill and drain again (the *stall* of a buffer too small for its tile) and the
activation tile is no longer reused across column tiles. ``overlapped``: activation
chunks are reused across column tiles while a row tile's chunks fit the activation
slots, weight chunks across a block of row tiles while they fit the weight slots (and
stay resident when every chunk of the layer fits); a slot is refilled only after the
chunk using it has left the array, which stalls the array when loads are as long as
the compute they feed.

Two timings:

``"sequential"``
    The commands run one after another (the first version of potgen's accelerator):
    per row tile ``LOAD_ACT``, then per column tile
    ``LOAD_WEIGHT``, ``SET_REQUANT``, ``COMPUTE``, ``DRAIN``. Busy cycles per command:
    a load one cycle per ``din`` word, ``SET_REQUANT`` ``3 cols``, ``COMPUTE``
    ``steps + compute_latency`` with ``compute_latency = pipeline + 2 rows + cols + 2``
    (the array's drain latency, one cycle per result row, one to store), a drain
    ``rows (requant_latency + 1 + ceil(cols / outputs per dout word))``.
``"overlapped"``
    Load, compute and drain engines run concurrently on slotted buffers (potgen's
    accelerator, :mod:`potgen.hw.accelerator`): after the first chunk's loads,
    ``max(compute, load words, weight-slot round trips, output-FIFO round trips, drain
    words)`` over the whole GEMM, then the array's fill and the last tile's drain. The
    compute period of a fold is the array's own
    (:meth:`potgen.hw.array.SystolicArray.fold_period`): ``max(K, rows)`` for OS,
    ``max(M, rows)`` for WS. Weight-slot round trips follow
    ``e_i = max(e_(i-1), e_(i-S) + load_i) + use_i`` over a repeating pass of chunks;
    a tile holds ``rows`` output-FIFO rows from its last step until they have left.
    Everything beyond the compute cycles is reported as stall.

Energy proxy. **Not a measurement**: a relative figure of switching work, for
comparing design points with each other only. Each event is weighted by the resource
kind that does the switching (:data:`ENERGY_WEIGHTS`, units of one LUT4 toggling):
a PE-cycle doing a MAC costs its LUT4s, flip-flops and multipliers at full activity,
an idle PE-cycle its flip-flops at clock-only activity; a buffer bit read or written,
and a bit moved over the off-chip stream, have their own weights (orders of magnitude
after Horowitz, ISSCC 2014: off-chip >> block RAM > logic).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

__all__ = ["ArrayConfig", "GemmCost", "gemm_cost", "operands_per_word", "TIMINGS",
           "DATAFLOWS", "ENERGY_WEIGHTS", "energy_proxy"]

#: Engine overlap models.
TIMINGS = ("sequential", "overlapped")
#: Dataflows the model maps.
DATAFLOWS = ("os", "ws")

#: Energy proxy weights (units: one LUT4 toggling once). See the module docstring.
ENERGY_WEIGHTS = {
    "lut4_active": 1.0,          # per LUT4 of a PE in a MAC cycle
    "ff_active": 0.5,            # per flip-flop of a PE in a MAC cycle
    "mult18_active": 25.0,       # per MULT18X18D in a MAC cycle
    "ff_idle": 0.1,              # per flip-flop of an idle PE (clock only)
    "buffer_bit": 0.3,           # per bit read from or written to block RAM
    "offchip_bit": 8.0,          # per bit over the din / dout streams (I/O, host link)
}


def _check_int(value, name: str, lo: int, hi: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < lo or (
            hi is not None and value > hi):
        allowed = f"{lo}..{hi}" if hi is not None else f">= {lo}"
        raise ValueError(f"{name}={value!r}: expected an int {allowed}")
    return value


def operands_per_word(word_bits: int, bits: int) -> int:
    """``floor(word_bits / bits)``: operands of ``bits`` in one word, none split."""
    _check_int(word_bits, "word_bits", 1)
    _check_int(bits, "bits", 1)
    if bits > word_bits:
        raise ValueError(f"bits={bits}: an operand wider than the {word_bits}-bit word "
                         "would span two words")
    return word_bits // bits


@dataclass(frozen=True)
class ArrayConfig:
    """An accelerator configuration the cost model maps layers onto.

    Parameters
    ----------
    rows, cols : int
        Array size, 1..256.
    dataflow : {"os", "ws"}
    k_max : int
        Buffer depth in reduction steps (the accelerator's ``k_max``): OS holds
        ``k_max`` steps of ``rows`` activations and of ``cols`` weights; WS holds
        ``k_max`` streamed rows ``M``.
    word_bits : int
        Width of a ``din`` / ``dout`` stream word.
    packed : bool
        ``din`` words carry ``floor(word_bits / b)`` operands (else one each).
    outputs_per_word : int
        Results per ``dout`` word.
    timing : {"sequential", "overlapped"}
        See the module docstring.
    pipeline : int
        PE pipeline stages ``L``.
    requant_latency : int
        Requantizer stages.
    requant_words_per_column : int
        ``din`` words of one column's requantization parameters.
    act_slots, weight_slots : int
        ``overlapped``: buffer slots of ``k_max`` steps each (double buffering needs 2).
    requant_banks : int
        ``overlapped``: requantization parameter banks.
    out_rows : int or None
        ``overlapped``: output FIFO depth in result rows (``None``: ``2 rows``).

    Members
    -------
    pes : int
    compute_latency : int
        ``sequential``: busy cycles of a ``COMPUTE`` beyond its steps.
    array_latency : int
        ``pipeline + rows + cols + 1``: the array's drain (OS) / step (WS) latency.
    """

    rows: int
    cols: int
    dataflow: str = "os"
    k_max: int = 64
    word_bits: int = 32
    packed: bool = False
    outputs_per_word: int = 1
    timing: str = "sequential"
    pipeline: int = 0
    requant_latency: int = 1
    requant_words_per_column: int = 3
    act_slots: int = 4
    weight_slots: int = 2
    requant_banks: int = 2
    out_rows: int | None = None

    def __post_init__(self):
        _check_int(self.rows, "rows", 1, 256)
        _check_int(self.cols, "cols", 1, 256)
        if self.dataflow not in DATAFLOWS:
            raise ValueError(f"dataflow={self.dataflow!r}: allowed {', '.join(DATAFLOWS)}")
        if self.timing not in TIMINGS:
            raise ValueError(f"timing={self.timing!r}: allowed {', '.join(TIMINGS)}")
        _check_int(self.k_max, "k_max", 1)
        _check_int(self.word_bits, "word_bits", 1)
        _check_int(self.outputs_per_word, "outputs_per_word", 1)
        _check_int(self.pipeline, "pipeline", 0)
        _check_int(self.requant_latency, "requant_latency", 0)
        _check_int(self.requant_words_per_column, "requant_words_per_column", 1)
        _check_int(self.act_slots, "act_slots", 1)
        _check_int(self.weight_slots, "weight_slots", 1)
        _check_int(self.requant_banks, "requant_banks", 1)
        if self.out_rows is not None:
            _check_int(self.out_rows, "out_rows", 1)
        if not isinstance(self.packed, bool):
            raise TypeError(f"packed={self.packed!r}: expected a bool")

    @property
    def pes(self) -> int:
        return self.rows * self.cols

    @property
    def fifo_rows(self) -> int:
        """Output FIFO depth in rows (``out_rows`` or ``2 rows``)."""
        return self.out_rows if self.out_rows is not None else 2 * self.rows

    @property
    def array_latency(self) -> int:
        return self.pipeline + self.rows + self.cols + 1

    @property
    def compute_latency(self) -> int:
        return self.array_latency + self.rows + 1

    def label(self) -> str:
        return f"{self.rows}x{self.cols}-{self.dataflow}"


@dataclass(frozen=True)
class GemmCost:
    """Cost of one GEMM on an :class:`ArrayConfig`.

    Members
    -------
    M, K, N, macs : int
    folds : int
        Array folds (SCALE-Sim).
    chunks : int
        Reduction chunks per fold (> 1 when the buffers cannot hold a fold's steps).
    cycles : int
        Busy cycles of the whole GEMM.
    compute_cycles, load_cycles, drain_cycles, stall_cycles : int
        ``sequential``: the command classes' busy cycles (``stall_cycles``: the fill and
        drain latency repaid by extra chunks). ``overlapped``: compute-period cycles,
        the exposed first load / last drain, and the cycles a tile waited for a load or
        a drain beyond its compute period.
    din_words, dout_words : int
        Stream words in and out (off-chip traffic).
    offchip_bytes, onchip_bytes : int
        Bytes over the streams; bytes written to and read from the on-chip buffers.
    buffer_bits : dict
        Peak occupancy of each buffer (``act``, ``weight``, ``out``) in bits, packed.
    utilization : float
        ``macs / (cycles * rows * cols)``.
    pe_cycles_active : int
        PE-cycles doing a MAC (``macs``); the rest of ``cycles * pes`` are idle.
    """

    M: int
    K: int
    N: int
    macs: int
    folds: int
    chunks: int
    cycles: int
    compute_cycles: int
    load_cycles: int
    drain_cycles: int
    stall_cycles: int
    din_words: int
    dout_words: int
    offchip_bytes: int
    onchip_bytes: int
    buffer_bits: dict
    utilization: float
    pe_cycles_active: int

    def to_dict(self) -> dict:
        return asdict(self)


def _ceil(a: int, b: int) -> int:
    return -(-a // b)


def _slot_period(loads: list, uses: list, slots: int) -> float:
    """Steady-state cycles per pass over a repeating sequence of units that each need a
    slot: unit ``i`` is loaded (``loads[i]`` cycles) once the unit ``slots`` places
    earlier has finished, then used (``uses[i]`` cycles) after the previous unit:
    ``e_i = max(e_(i-1), e_(i-slots) + load_i) + use_i``."""
    n = len(loads)
    passes = 2 + -(-2 * slots // n)
    ends = []
    for i in range(passes * n):
        previous = ends[-1] if ends else 0
        freed = ends[i - slots] if i >= slots else 0
        ends.append(max(previous, freed + loads[i % n]) + uses[i % n])
    return (ends[-1] - ends[-1 - n]) if len(ends) > n else ends[-1]


def gemm_cost(config: ArrayConfig, M: int, K: int, N: int, *, weight_bits: int,
              act_bits: int, out_bits: int = 8, acc_bits: int = 32,
              requant: bool = True) -> GemmCost:
    """Cycles, traffic and occupancy of ``[M, K] @ [K, N]`` on ``config``.

    Parameters
    ----------
    config : ArrayConfig
    M, K, N : int
        GEMM shape (>= 1).
    weight_bits, act_bits : int
        Operand widths (a weight *code*'s width).
    out_bits : int
        Requantized output width (``requant``), else the raw words carry
        ``acc_bits + 1`` bits.
    acc_bits : int
        Accumulator width (raw outputs, output buffer occupancy).
    requant : bool
        Outputs requantized on chip (``SET_REQUANT`` words and narrow results).
    """
    if not isinstance(config, ArrayConfig):
        raise TypeError(f"config: expected an ArrayConfig, got {type(config).__name__}")
    for name, v in (("M", M), ("K", K), ("N", N)):
        _check_int(v, name, 1)
    for name, v in (("weight_bits", weight_bits), ("act_bits", act_bits),
                    ("out_bits", out_bits), ("acc_bits", acc_bits)):
        _check_int(v, name, 1, config.word_bits if name != "acc_bits" else None)
    R, C, W = config.rows, config.cols, config.word_bits
    p_a = operands_per_word(W, act_bits) if config.packed else 1
    p_w = operands_per_word(W, weight_bits) if config.packed else 1
    res_bits = out_bits if requant else acc_bits + 1
    p_o = config.outputs_per_word
    if p_o > 1 and res_bits * p_o > W:
        raise ValueError(f"outputs_per_word={p_o}: {p_o} results of {res_bits} bits do "
                         f"not fit a {W}-bit dout word")
    rq_words = config.requant_words_per_column * C if requant else 0
    # A step's operands are packed into whole words (none split across two words).
    act_words_step = _ceil(R, p_a)
    w_words_step = _ceil(C, p_w)

    if config.dataflow == "os":
        # Sr = M over rows, Sc = N over columns, T = K streams (in chunks of k_max).
        tiles_r, tiles_c, steps = _ceil(M, R), _ceil(N, C), K
        out_rows_tile = R
    else:
        # Sr = K over rows, Sc = N over columns, T = M streams (in chunks of k_max).
        tiles_r, tiles_c, steps = _ceil(K, R), _ceil(N, C), M
        out_rows_tile = M   # every streamed row's sums, drained after the last K fold
    chunks = _ceil(steps, config.k_max)
    chunk_steps = [min(config.k_max, steps - i * config.k_max) for i in range(chunks)]
    folds = tiles_r * tiles_c
    drain_words_row = _ceil(C, p_o)
    # Results leave once per output tile: OS every fold, WS after the last K fold.
    out_tiles = folds if config.dataflow == "os" else tiles_c
    dout_words = out_tiles * out_rows_tile * drain_words_row
    if config.dataflow == "os":
        act_words_tile, w_words_tile = K * act_words_step, K * w_words_step
    else:
        act_words_tile, w_words_tile = M * act_words_step, R * w_words_step * chunks

    if config.timing == "sequential":
        # The activation tile is loaded once per row tile and reused over the column
        # tiles (when its chunks fit); weights and requantization once per fold.
        act_loads = tiles_r if chunks == 1 else folds
        din_words = act_loads * act_words_tile + folds * w_words_tile + out_tiles * rq_words
        compute = folds * sum(s + config.compute_latency for s in chunk_steps)
        if config.dataflow == "ws":
            compute += folds * chunks * R      # weight preload before the first step
        load = din_words
        drain = out_tiles * out_rows_tile * (config.requant_latency + 1 + drain_words_row)
        stall = folds * (chunks - 1) * config.compute_latency
        cycles = compute + load + drain
    else:
        # Slots: row tiles are processed in blocks whose activation chunks fill half the
        # activation slots (the other half prefetches the next block); within a block,
        # column tiles outer, row tiles inner, so a weight tile and its requantization
        # bank serve the whole block when its chunks fit the weight slots.
        block = min(tiles_r, max(1, config.act_slots // (2 * chunks)))
        blocks = _ceil(tiles_r, block)
        act_loads = tiles_r if chunks <= config.act_slots else folds
        # Weight chunks stay resident when every one of them has a slot; else a column
        # tile's chunks serve a block when they fit the slots; else every fold reloads.
        w_resident = tiles_c * chunks <= config.weight_slots
        w_reuse = chunks <= config.weight_slots
        w_loads = tiles_c if w_resident else blocks * tiles_c * (1 if w_reuse else block)
        rq_loads = 0 if not requant else (
            tiles_c if tiles_c <= config.requant_banks else blocks * tiles_c)
        din_words = act_loads * act_words_tile + w_loads * w_words_tile + rq_loads * rq_words
        # Back-to-back loads stream one word per cycle (a pop overlaps the previous
        # load's last word).
        load_engine = din_words
        first = chunk_steps[0] * act_words_step + (
            chunk_steps[0] * w_words_step if config.dataflow == "os"
            else R * w_words_step) + rq_words + 2 + int(requant)
        compute_total = folds * max(steps, R)
        # A weight slot is refilled only after every COMPUTE reading it has finished:
        # a chunk's load waits for the chunk ``weight_slots`` earlier to leave the array
        # (about five cycles of dispatch and pop between them), and its compute waits for
        # its load. Reused chunks serve a whole block of row tiles.
        if w_resident:
            hazard = 0
        else:
            w_chunks = chunk_steps if config.dataflow == "os" else [R] * chunks
            # Blocks may be uneven (the last one shorter): their mean length.
            use = [(tiles_r / blocks if w_reuse else 1) * c for c in w_chunks]
            period = _slot_period([c * w_words_step + 5 for c in w_chunks], use,
                                  config.weight_slots)
            hazard = w_loads * period
        rows_out = out_rows_tile * drain_words_row
        fifo = 0
        if config.dataflow == "os":
            # A tile reserves its rows in the output FIFO from its last step until they
            # have left: out_rows / rows tiles in flight share that round trip.
            trip = config.array_latency + config.requant_latency + 2 + rows_out
            fifo = (folds - 1) * trip * R / config.fifo_rows
        body = max(compute_total, load_engine - first, hazard, fifo,
                   (out_tiles - 1) * rows_out if config.dataflow == "os" else 0)
        preload = R if config.dataflow == "ws" else 0
        tail = config.array_latency + config.requant_latency + (
            rows_out if config.dataflow == "os" else out_tiles * rows_out)
        cycles = int(math.ceil(first + preload + body + tail))
        compute = folds * steps
        load = din_words
        drain = dout_words
        stall = cycles - compute

    act_bits_tile = R * act_bits * config.k_max
    w_bits_tile = C * weight_bits * (config.k_max if config.dataflow == "os" else R)
    buffer_bits = {
        "act": _ceil(act_bits_tile, W // act_bits * act_bits) * W if config.packed
        else act_bits_tile,
        "weight": w_bits_tile,
        "out": out_rows_tile * C * (acc_bits + 1) if config.dataflow == "os"
        else min(M, config.k_max) * C * (acc_bits + 1),
    }
    macs = M * K * N
    # On chip: every operand written once per load and read once per fold step.
    onchip_bits = (din_words * W + folds * steps * (R * act_bits + C * weight_bits)
                   + out_tiles * out_rows_tile * C * (acc_bits + 1) * 2)
    return GemmCost(
        M=M, K=K, N=N, macs=macs, folds=folds, chunks=chunks, cycles=int(cycles),
        compute_cycles=int(compute), load_cycles=int(load), drain_cycles=int(drain),
        stall_cycles=int(stall), din_words=int(din_words), dout_words=int(dout_words),
        offchip_bytes=int(_ceil((din_words + dout_words) * W, 8)),
        onchip_bytes=int(_ceil(onchip_bits, 8)), buffer_bits=buffer_bits,
        utilization=macs / (cycles * config.pes), pe_cycles_active=macs)


def energy_proxy(cost: GemmCost, pe_resources: dict, pes: int, word_bits: int = 32,
                 weights: dict | None = None) -> float:
    """Energy proxy of a GEMM (relative units; see the module docstring).

    Parameters
    ----------
    cost : GemmCost
    pe_resources : dict
        One PE's ``lut4``, ``ff`` and ``mult18``.
    pes : int
        PEs in the array.
    weights : dict or None
        Overrides of :data:`ENERGY_WEIGHTS`.
    """
    w = dict(ENERGY_WEIGHTS)
    w.update(weights or {})
    active = cost.pe_cycles_active
    idle = max(cost.cycles * pes - active, 0)
    per_mac = (w["lut4_active"] * pe_resources.get("lut4", 0)
               + w["ff_active"] * pe_resources.get("ff", 0)
               + w["mult18_active"] * pe_resources.get("mult18", 0))
    return float(active * per_mac + idle * w["ff_idle"] * pe_resources.get("ff", 0)
                 + w["buffer_bit"] * cost.onchip_bytes * 8
                 + w["offchip_bit"] * cost.offchip_bytes * 8)

