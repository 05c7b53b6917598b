"""Host driver of :class:`potgen.hw.accelerator.Accelerator`, independent of the back end.

The driver knows the accelerator only through its ``metadata()`` dictionary (command
fields, array size, formats, slot counts), so a back end that runs emitted Verilog or
a board reuses it unchanged: a back end only moves words (:class:`Backend`).

Tiling of ``C[M, N] = A[M, K] @ W[K, N]`` on an output-stationary accelerator
(:func:`plan_gemm`):

* ``M`` in tiles of ``rows``, ``N`` in tiles of ``cols``, ``K`` in chunks of ``k_max``
  (the slot depth); a tile's chunks run as consecutive ``COMPUTE`` commands, the last
  one with ``last``, so the PEs' sums continue across chunks exactly as the golden
  model's sequential sum;
* row tiles are taken in *blocks* of ``T = act_slots // (2 chunks)`` tiles whose
  activation chunks stay resident while every column tile passes (operand reuse), the
  next block's activations loading into the other half of the slots meanwhile;
* each slot kind (activation, weight, requantization bank) is a small cache with
  least-recently-used replacement; a load is placed in the command stream as early as
  the slot's previous content allows (one ``COMPUTE`` after its last use, so the
  compute engine always has queued work while the load waits for the hazard), and the
  next block's activation loads are spread evenly over the current block.

Weight-stationary accelerators (``metadata()["dataflow"] == "ws"``, :func:`plan_gemm`
dispatches to the WS plan): ``M`` in row tiles of ``k_max`` rows (the last one
shorter, nothing padded), ``N`` in column tiles of ``cols`` taken in groups of
``psum_tiles``, ``K`` in folds of ``rows`` (the last fold's weight rows padded with
code 0). For each row tile and group, fold after fold, each column tile of the group
runs one ``COMPUTE`` of ``k`` = the tile's rows in its own partial-sum region
(``SET_PSUM``), every fold after the first with ``accumulate`` (the partial sums
continue in the on-chip buffer in golden ``k`` order), the last with ``last`` and
followed by ``DRAIN k``; each activation slot so serves the whole group. Slots are
the same least-recently-used caches.

Rows and columns beyond ``M`` / ``N`` are padded (activation 0, code 0) and their
results dropped. The accelerator's hazard checks make the stream's sequential
meaning hold whatever the overlap, so the placement only affects speed.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field

import numpy as np

from ..formats import parse_format

__all__ = ["AcceleratorDriver", "Backend", "Program", "RunResult", "RequantParams",
           "GemmResult", "Command", "plan_gemm", "ws_row_tiles", "column_map"]


@dataclass
class Program:
    """Words for one back-end run.

    Members
    -------
    commands : list of int
        ``cmd`` stream words, in order.
    data : list of int
        ``din`` stream words, in the order the commands take them.
    outputs : int
        Number of ``dout`` words the program produces.
    tiles : list of (row_tile, col_tile)
        The output tiles in the order their words arrive (for :meth:`AcceleratorDriver.decode`).
    """

    commands: list = field(default_factory=list)
    data: list = field(default_factory=list)
    outputs: int = 0
    tiles: list = field(default_factory=list)


@dataclass
class RunResult:
    """What a back end returns.

    Members
    -------
    words : list of int
        The ``dout`` words, in order.
    cycles : int
        The accelerator's ``cycles`` status counter at the end of the run.
    error : bool
        The accelerator's sticky ``error`` flag.
    """

    words: list
    cycles: int
    error: bool = False


class Backend(abc.ABC):
    """Moves a :class:`Program`'s words to an accelerator and collects its outputs."""

    @abc.abstractmethod
    def run(self, program: Program) -> RunResult:
        """Send ``program.commands`` / ``program.data``, receive ``program.outputs`` words."""


@dataclass
class RequantParams:
    """Per-output-channel requantization (golden :func:`potgen.golden.requantize`).

    Members
    -------
    multiplier, shift, zero_point : int or array of N ints
        ``m`` (unsigned), ``s`` and ``zp``, one per output column or shared.
    relu : bool
        Clamp below at ``zp``.
    """

    multiplier: object
    shift: object
    zero_point: object = 0
    relu: bool = False


@dataclass
class GemmResult:
    """Result of :meth:`AcceleratorDriver.gemm`.

    Members
    -------
    acc : ndarray [M, N] of int64
        Accumulators (``requant is None``), else the requantized values.
    overflow : ndarray [M, N] of bool or None
        Sticky overflow flags of the accumulators (``None`` for requantized outputs).
    cycles : int
        Accelerator cycles (busy cycles, loads and drains included).
    tiles : int
        Number of output tiles (``COMPUTE`` commands with ``last``).
    """

    acc: np.ndarray
    overflow: np.ndarray | None
    cycles: int
    tiles: int


@dataclass(frozen=True)
class Command:
    """One planned command: its name, argument fields and the operands it carries.

    Members
    -------
    name : str
        ``LOAD_ACT``, ``LOAD_WEIGHT``, ``SET_REQUANT``, ``COMPUTE`` or ``DRAIN``.
    fields : dict
        Argument fields (``k``, ``act_slot``, ``weight_slot``, ``bank``, ``last``,
        ``requant``, ``relu``, ``accumulate``, ``psum_tile``).
    tile : tuple
        What it carries or computes: ``(row_tile, chunk)`` for ``LOAD_ACT``,
        ``(col_tile, chunk)`` for ``LOAD_WEIGHT``, ``(col_tile,)`` for ``SET_REQUANT``,
        ``(row_tile, col_tile, chunk)`` for ``COMPUTE``, ``(row_tile, col_tile)`` for
        ``DRAIN``.
    words : int
        ``din`` words it takes (loads) or ``dout`` words it gives (``DRAIN``).
    """

    name: str
    fields: dict
    tile: tuple
    words: int = 0


def _metadata(accelerator) -> dict:
    meta = accelerator if isinstance(accelerator, dict) else accelerator.metadata()
    if not isinstance(meta, dict) or meta.get("kind") != "accelerator":
        raise TypeError(f"accelerator: expected an Accelerator or its metadata() dict, "
                        f"got {type(accelerator).__name__}")
    if meta.get("version", 1) < 2:
        raise ValueError("accelerator: metadata of a version-1 accelerator (one command "
                         "at a time); rebuild it with the current potgen")
    return meta


def _check_dimension(value, name: str) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name}={value!r}: expected a positive int")
    if value < 1:
        raise ValueError(f"GEMM shape {name}={value}: every dimension must be >= 1")
    return int(value)


class _SlotCache:
    """Which operand each slot of one kind holds, with least-recently-used replacement."""

    def __init__(self, slots: int):
        self.content = [None] * slots
        self.last_use = [-1] * slots        # op index of the last use, -1: never used
        self.where = {}

    def use(self, key, op: int):
        """``(slot, loaded, victim_last_use)``: the slot holding ``key`` at op ``op``."""
        if key in self.where:
            slot = self.where[key]
            self.last_use[slot] = op
            return slot, False, None
        slot = min(range(len(self.content)), key=lambda s: self.last_use[s])
        victim_last = self.last_use[slot] if self.content[slot] is not None else None
        if self.content[slot] is not None:
            del self.where[self.content[slot]]
        self.content[slot] = key
        self.where[key] = slot
        self.last_use[slot] = op
        return slot, True, victim_last


def plan_gemm(meta: dict, M: int, K: int, N: int, requant: bool = False) -> list:
    """The command plan of an ``M x K x N`` GEMM (see the module docstring).

    Parameters
    ----------
    meta : dict
        The accelerator's ``metadata()``.
    M, K, N : int
        GEMM shape ``[M, K] @ [K, N]`` (``K <= k_total_max``).
    requant : bool
        Requantize every tile (``SET_REQUANT`` per column tile, ``requant`` flag).

    Returns
    -------
    list of Command
    """
    meta = _metadata(meta)
    M, K, N = (_check_dimension(v, name) for v, name in ((M, "M"), (K, "K"), (N, "N")))
    if K > meta["k_total_max"]:
        raise ValueError(f"K={K} exceeds k_total_max={meta['k_total_max']}, the longest "
                         "dot product the accelerator's accumulator bound covers; build "
                         "the accelerator with a larger k_total_max")
    if meta.get("dataflow", "os") == "ws":
        return _plan_gemm_ws(meta, M, K, N, requant)
    R, C, KM = meta["rows"], meta["cols"], meta["k_max"]
    timing = meta["timing"]
    chunks = [(k0, min(K, k0 + KM)) for k0 in range(0, K, KM)]
    kc = len(chunks)
    tm, tn = -(-M // R), -(-N // C)
    block = min(tm, max(1, meta["act_slots"] // (2 * kc)))
    ops = []                                    # (row_tile, col_tile, chunk)
    blocks = []                                 # first op of each block
    for b0 in range(0, tm, block):
        blocks.append(len(ops))
        for n in range(tn):
            for t in range(b0, min(b0 + block, tm)):
                for c in range(kc):
                    ops.append((t, n, c))
    blocks.append(len(ops))
    op_block = [b for b in range(len(blocks) - 1) for _ in range(blocks[b + 1] - blocks[b])]

    caches = {"act": _SlotCache(meta["act_slots"]),
              "weight": _SlotCache(meta["weight_slots"]),
              "bank": _SlotCache(meta["requant_banks"])}
    loads_at = [[] for _ in ops]                # loads placed before op i
    compute_fields = []
    for i, (t, n, c) in enumerate(ops):
        k0, k1 = chunks[c]
        last = c == kc - 1
        needs = [("act", (t, c)), ("weight", (n, c))]
        if requant and last:
            needs.append(("bank", (n,)))
        slots = {}
        for kind, key in needs:
            slot, loaded, victim_last = caches[kind].use(key, i)
            slots[kind] = slot
            if not loaded:
                continue
            position = 0 if victim_last is None else victim_last + 2
            if kind == "act" and op_block[i] > 0:
                # Spread the block's activation loads evenly over the previous block.
                b = op_block[i]
                first = ops[blocks[b]][0]
                units = min(block, tm - first) * kc
                span = blocks[b] - blocks[b - 1]
                position = max(position,
                               blocks[b - 1] + ((t - first) * kc + c) * span // units)
            if kind in ("weight", "bank"):
                # One column tile ahead is early enough; earlier only competes for din.
                position = max(position, i - block * kc)
            position = min(position, i)
            if kind == "act":
                cmd = Command("LOAD_ACT", {"k": k1 - k0, "act_slot": slot}, key,
                              (k1 - k0) * timing["act_words_per_step"])
            elif kind == "weight":
                cmd = Command("LOAD_WEIGHT", {"k": k1 - k0, "weight_slot": slot}, key,
                              (k1 - k0) * timing["weight_words_per_step"])
            else:
                cmd = Command("SET_REQUANT", {"bank": slot}, key,
                              C * timing["requant_words_per_column"])
            loads_at[position].append((i, cmd))
        compute_fields.append({"k": k1 - k0, "act_slot": slots["act"],
                               "weight_slot": slots["weight"], "last": int(last),
                               "requant": int(requant and last),
                               "bank": slots.get("bank", 0)})

    plan = []
    for i, (t, n, c) in enumerate(ops):
        plan += [cmd for _, cmd in sorted(loads_at[i], key=lambda item: item[0])]
        plan.append(Command("COMPUTE", compute_fields[i], (t, n, c)))
        if c == kc - 1:
            plan.append(Command("DRAIN", {}, (t, n), R * timing["words_per_row"]))
    return plan


def ws_row_tiles(meta: dict, M: int) -> list:
    """WS: the ``(m0, m1)`` row ranges of ``M``, ``k_max`` rows each (the last one shorter)."""
    KM = meta["k_max"]
    return [(m0, min(M, m0 + KM)) for m0 in range(0, M, KM)]


def _plan_gemm_ws(meta: dict, M: int, K: int, N: int, requant: bool) -> list:
    """Weight-stationary plan (module docstring).

    Order: row tile, group of ``psum_tiles`` column tiles, ``K`` fold, column tile of
    the group. A fold ``f`` of column tile ``n`` holds ``W[f rows .. (f + 1) rows,
    n cols ..]`` in the PEs; the row tile's activations stream through it, one
    ``COMPUTE`` of ``k`` steps (its row count) into the group member's partial-sum
    region (``SET_PSUM`` when it changes); folds after the first accumulate, the last
    one sends the rows to the output FIFO (``DRAIN k`` right behind it). An activation
    slot so serves every column tile of the group.
    """
    R, C = meta["rows"], meta["cols"]
    timing = meta["timing"]
    G = meta.get("psum_tiles", 1)
    row_tiles = ws_row_tiles(meta, M)
    kf, tn = -(-K // R), -(-N // C)
    ops = [(t, n, f) for t in range(len(row_tiles)) for g0 in range(0, tn, G)
           for f in range(kf) for n in range(g0, min(g0 + G, tn))]
    caches = {"act": _SlotCache(meta["act_slots"]),
              "weight": _SlotCache(meta["weight_slots"]),
              "bank": _SlotCache(meta["requant_banks"])}
    loads_at = [[] for _ in ops]
    compute_fields = []
    for i, (t, n, f) in enumerate(ops):
        rows_t = row_tiles[t][1] - row_tiles[t][0]
        last = f == kf - 1
        needs = [("act", (t, f)), ("weight", (n, f))]
        if requant and last:
            needs.append(("bank", (n,)))
        slots = {}
        for kind, key in needs:
            slot, loaded, victim_last = caches[kind].use(key, i)
            slots[kind] = slot
            if not loaded:
                continue
            position = 0 if victim_last is None else victim_last + 2
            if kind in ("weight", "bank"):
                # One fold of the group ahead is early enough; earlier only competes
                # for din.
                position = max(position, i - G)
            position = min(position, i)
            if kind == "act":
                cmd = Command("LOAD_ACT", {"k": rows_t, "act_slot": slot}, key,
                              rows_t * timing["act_words_per_step"])
            elif kind == "weight":
                cmd = Command("LOAD_WEIGHT", {"k": R, "weight_slot": slot}, key,
                              R * timing["weight_words_per_step"])
            else:
                cmd = Command("SET_REQUANT", {"bank": slot}, key,
                              C * timing["requant_words_per_column"])
            loads_at[position].append((i, cmd))
        compute_fields.append({"k": rows_t, "act_slot": slots["act"],
                               "weight_slot": slots["weight"], "last": int(last),
                               "requant": int(requant and last),
                               "bank": slots.get("bank", 0), "accumulate": int(f > 0)})
    plan = []
    # With one region nothing selects it; with several the first COMPUTE gets a
    # SET_PSUM too (the region a previous program left is unknown).
    region = 0 if G == 1 else None
    for i, (t, n, f) in enumerate(ops):
        plan += [cmd for _, cmd in sorted(loads_at[i], key=lambda item: item[0])]
        if n % G != region:
            region = n % G
            plan.append(Command("SET_PSUM", {"psum_tile": region}, (t, n)))
        plan.append(Command("COMPUTE", compute_fields[i], (t, n, f)))
        if f == kf - 1:
            rows_t = compute_fields[i]["k"]
            plan.append(Command("DRAIN", {"k": rows_t}, (t, n),
                                rows_t * timing["words_per_row"]))
    return plan


def column_map(channel_formats, column_formats):
    """Place output channels of several weight formats onto an array's format columns.

    Channels of each format go, in ascending order, to the columns holding that format,
    filling column fold after column fold (:class:`potgen.hw.array.ColumnMap`); the
    number of folds is the least that holds every group.

    Parameters
    ----------
    channel_formats : sequence of str or Format
        The format of each of the ``N`` output channels.
    column_formats : sequence of str or Format
        The array's column formats.
    """
    from ..hw.array import ColumnMap
    columns = [parse_format(f) for f in column_formats]
    channels = [parse_format(f) for f in channel_formats]
    cols = len(columns)
    groups = []
    for fmt in dict.fromkeys(channels):
        where = [j for j, f in enumerate(columns) if f == fmt]
        members = [n for n, f in enumerate(channels) if f == fmt]
        if not where:
            raise ValueError(f"channel_formats: {len(members)} channel(s) of format "
                             f"{fmt} but the accelerator has no {fmt} column (columns: "
                             f"{', '.join(sorted({str(f) for f in columns}))})")
        groups.append((where, members))
    folds = max([1] + [-(-len(members) // len(where)) for where, members in groups])
    slots = np.full(folds * cols, -1, dtype=np.int64)
    for where, members in groups:
        for index, channel in enumerate(members):
            fold, column = divmod(index, len(where))
            slots[fold * cols + where[column]] = channel
    slots.setflags(write=False)
    return ColumnMap(slots, tuple(columns), tuple(channels))


def _integers(values, name: str, ndim: int) -> np.ndarray:
    arr = np.asarray(values)
    if arr.dtype == object:
        arr = np.array(arr.tolist(), dtype=np.int64)
    if not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"{name}: expected integers, got dtype {arr.dtype}")
    if arr.ndim != ndim:
        raise ValueError(f"{name}: expected a {ndim}-D array, got shape {arr.shape}")
    return arr.astype(np.int64)


class AcceleratorDriver:
    """Encodes GEMMs for an :class:`~potgen.hw.accelerator.Accelerator` and decodes results.

    Parameters
    ----------
    accelerator : Accelerator or dict
        The accelerator or its ``metadata()``.
    backend : Backend
        Moves the words (Amaranth simulation, Verilator, a board).

    Attributes
    ----------
    rows, cols, k_max, k_total_max, acc_bits : int
    column_formats : tuple of Format
        The weight format of each array column.
    weight_format : Format or None
        The format of every column (``None`` for a mixed-format array).
    act_format, out_format : Format
    """

    def __init__(self, accelerator, backend: Backend):
        meta = _metadata(accelerator)
        if not isinstance(backend, Backend):
            raise TypeError(f"backend: expected a potgen.runtime.Backend, got "
                            f"{type(backend).__name__}")
        self._meta = meta
        self._backend = backend
        self._commands = meta["commands"]
        self.rows, self.cols = meta["rows"], meta["cols"]
        self.k_max, self.k_total_max = meta["k_max"], meta["k_total_max"]
        self.acc_bits = meta["acc_bits"]
        weight = meta["weight"]
        specs = [weight] * self.cols if isinstance(weight, str) else list(weight)
        self.column_formats = tuple(parse_format(s) for s in specs)
        self.weight_format = self.column_formats[0] if isinstance(weight, str) else None
        self.act_format = parse_format(meta["act"])
        self.out_format = parse_format(meta["out"])
        self._opcodes = self._commands["opcodes"]
        self._fields = self._commands["arg_fields"]
        self._opcode_bits = self._commands["opcode_field"][1]
        self._buffers = meta["buffers"]
        self._timing = meta["timing"]
        self.dataflow = meta.get("dataflow", "os")

    @property
    def metadata(self) -> dict:
        return self._meta

    # --- words ---

    def command(self, name: str, **fields) -> int:
        """One command word; refuses unknown commands and fields the hardware rejects."""
        if name not in self._opcodes:
            raise ValueError(f"command {name!r}: unknown; allowed "
                             f"{', '.join(sorted(self._opcodes))}")
        limits = {"k": (1, self.k_max), "act_slot": (0, self._meta["act_slots"] - 1),
                  "weight_slot": (0, self._meta["weight_slots"] - 1),
                  "bank": (0, self._meta["requant_banks"] - 1), "last": (0, 1),
                  "requant": (0, 1), "relu": (0, 1)}
        ws = self.dataflow == "ws"
        limits["accumulate"] = (0, 1)
        limits["psum_tile"] = (0, self._meta.get("psum_tiles", 1) - 1)
        if name == "SET_PSUM" and not ws:
            raise ValueError("command 'SET_PSUM': only a weight-stationary accelerator "
                             "has a partial-sum buffer")
        allowed = {"NOP": (), "LOAD_ACT": ("k", "act_slot"),
                   "LOAD_WEIGHT": ("k", "weight_slot"), "SET_REQUANT": ("bank", "relu"),
                   "COMPUTE": ("k", "act_slot", "weight_slot", "last", "requant", "bank")
                   + (("accumulate",) if ws else ()),
                   "DRAIN": ("k",) if ws else (), "SET_PSUM": ("psum_tile",)}[name]
        arg = 0
        for key, value in fields.items():
            if key not in allowed:
                raise ValueError(f"{name}: field {key!r} not allowed; {name} takes "
                                 f"{', '.join(allowed) or 'no fields'}")
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise TypeError(f"{name}: {key}={value!r}: expected an int")
            lo, hi = limits[key]
            if not lo <= value <= hi:
                what = " (k_max, the depth of a slot)" if key == "k" else ""
                raise ValueError(f"{name}: {key}={value} must be {lo}..{hi}{what}")
            arg |= int(value) << self._fields[key][0]
        if "k" in allowed and "k" not in fields:
            raise ValueError(f"{name}: needs k (1..{self.k_max})")
        return (arg << self._opcode_bits) | self._opcodes[name]

    @staticmethod
    def _pack(values, bits: int, per_word: int) -> list:
        """Words of ``values`` (rows of operands), ``per_word`` fields of ``bits`` each."""
        mask = (1 << bits) - 1
        v = np.asarray(values, dtype=np.int64) & mask
        steps, lanes = v.shape
        words_per_step = -(-lanes // per_word)
        padded = np.zeros((steps, words_per_step * per_word), dtype=np.int64)
        padded[:, :lanes] = v
        fields = padded.reshape(steps, words_per_step, per_word)
        shifts = np.arange(per_word, dtype=np.int64) * bits   # per_word * bits <= 32
        return (fields << shifts).sum(axis=2).ravel().tolist()

    @staticmethod
    def _signed(word, bits: int):
        word = np.asarray(word, dtype=np.int64) & ((1 << bits) - 1)
        return np.where(word >> (bits - 1), word - (1 << bits), word)

    # --- checks ---

    def _check_gemm(self, acts, codes, channel_formats):
        acts = _integers(acts, "acts", 2)
        codes = _integers(codes, "codes", 2)
        (M, K), (K2, N) = acts.shape, codes.shape
        if K != K2:
            raise ValueError(f"acts [M, K] = {list(acts.shape)} and codes [K, N] = "
                             f"{list(codes.shape)} disagree on K")
        if 0 in (M, K, N):
            raise ValueError(f"GEMM shape M={M}, K={K}, N={N}: every dimension must be >= 1")
        if K > self.k_total_max:
            raise ValueError(f"K={K} exceeds k_total_max={self.k_total_max}, the longest "
                             "dot product the accelerator's accumulator bound covers; "
                             "split the layer or build the accelerator with a larger "
                             "k_total_max")
        act = self.act_format
        if acts.min() < act.min_level or acts.max() > act.max_level:
            raise ValueError(f"acts: values {int(acts.min())}..{int(acts.max())} outside "
                             f"the activation format {act} ({act.min_level}.."
                             f"{act.max_level})")
        if channel_formats is None:
            if self.weight_format is None:
                raise ValueError("channel_formats: this accelerator has per-column "
                                 "weight formats "
                                 f"({', '.join(str(f) for f in self.column_formats)}); "
                                 "give the format of each of the N output channels")
            channel_formats = [self.weight_format] * N
        else:
            channel_formats = [parse_format(f) for f in channel_formats]
            if len(channel_formats) != N:
                raise ValueError(f"channel_formats: {len(channel_formats)} formats for "
                                 f"N={N} output channels")
        for fmt in dict.fromkeys(channel_formats):
            cols = [n for n, f in enumerate(channel_formats) if f == fmt]
            sub = codes[:, cols]
            code_max = (1 << fmt.bits) - 1
            if sub.min() < 0 or sub.max() > code_max:
                raise ValueError(f"codes: values {int(sub.min())}..{int(sub.max())} "
                                 f"outside 0..{code_max} ({fmt} codes)")
        return acts, codes, channel_formats

    def check_bound(self, codes, channel_formats=None) -> None:
        """Refuse weights whose worst case leaves the accumulator.

        For every output column the exact range of every partial sum over the
        activation format (FINN's per-column range: each weight times the activation
        extreme that maximises / minimises it) must fit ``acc_bits``. A design whose
        accumulator came from the datatype bound for ``k_total_max`` always passes;
        one built from an ``l1`` / ``exact`` bound of other weights, or given a narrower
        width, does not.

        Raises
        ------
        ValueError
            Naming the first offending column, its range and the accumulator's.
        """
        codes = _integers(codes, "codes", 2)
        N = codes.shape[1]
        formats = channel_formats or [self.weight_format] * N
        x_lo, x_hi = self.act_format.min_level, self.act_format.max_level
        widest = max(fmt.max_abs for fmt in formats) * max(-x_lo, x_hi) * codes.shape[0]
        # int64 is exact while every column sum stays below 2^62; Python ints beyond.
        levels = np.zeros(codes.shape, dtype=np.int64 if widest < 1 << 62 else object)
        for fmt in dict.fromkeys(formats):
            cols = [n for n, f in enumerate(formats) if f == fmt]
            levels[:, cols] = fmt.decode(codes[:, cols]).astype(levels.dtype)
        positive = levels > 0
        hi = np.where(positive, levels * x_hi, levels * x_lo).sum(axis=0)
        lo = np.where(positive, levels * x_lo, levels * x_hi).sum(axis=0)
        acc_lo, acc_hi = -(1 << (self.acc_bits - 1)), (1 << (self.acc_bits - 1)) - 1
        bad = np.nonzero((lo < acc_lo) | (hi > acc_hi))[0]
        if bad.size:
            n = int(bad[0])
            bound = self._meta.get("bound") or {}
            built = (f"the {bound['method']} bound it was built for" if bound.get("method")
                     else "its fixed width")
            raise ValueError(f"codes: column {n} reaches partial sums in [{int(lo[n])}, "
                             f"{int(hi[n])}] over {self.act_format} activations, outside "
                             f"the {self.acc_bits}-bit accumulator range [{acc_lo}, "
                             f"{acc_hi}] ({built}); {bad.size} column(s) break it. "
                             "Rebuild the accelerator for these weights (acc_bits='exact' "
                             "or 'l1' with them) or pass check_bound=False to accept "
                             "overflow")

    def _check_requant(self, requant: RequantParams, N: int):
        if not isinstance(requant, RequantParams):
            raise TypeError(f"requant: expected RequantParams or None, got "
                            f"{type(requant).__name__}")
        out = []
        limits = {"multiplier": (0, (1 << self._meta["multiplier_bits"]) - 1),
                  "shift": (0, self._meta["max_shift"]),
                  "zero_point": (self.out_format.min_level, self.out_format.max_level)}
        for name, (lo, hi) in limits.items():
            value = getattr(requant, name)
            if np.ndim(value) == 0:     # one value shared by every output column
                value = np.full(N, value)
            value = _integers(value, f"requant.{name}", 1)
            if value.shape != (N,):
                raise ValueError(f"requant.{name}: {value.shape[0]} values for N={N} "
                                 "output columns")
            if value.min() < lo or value.max() > hi:
                raise ValueError(f"requant.{name}: values {int(value.min())}.."
                                 f"{int(value.max())} outside {lo}..{hi}")
            out.append(value)
        if not isinstance(requant.relu, (bool, np.bool_)):
            raise TypeError(f"requant.relu={requant.relu!r}: expected a bool")
        return (*out, bool(requant.relu))

    # --- GEMM ---

    def _layout(self, acts, codes, requant, channel_formats, check_bound):
        """Checked operands in array column order: ``(acts, codes, params, map)``."""
        acts, codes, formats = self._check_gemm(acts, codes, channel_formats)
        N = codes.shape[1]
        params = self._check_requant(requant, N) if requant is not None else None
        mapping = None
        if self.weight_format is None or any(f != self.weight_format for f in formats):
            mapping = column_map(formats, self.column_formats)
        if check_bound:
            self.check_bound(codes, formats)
        if mapping is not None:
            codes = mapping.codes(codes.T)
            if params is not None:
                used = mapping.slots >= 0
                slotted = []
                for value in params[:3]:
                    # Idle slots get m = s = zp = 0 (0 is in every output format).
                    v = np.zeros(mapping.slots.size, dtype=np.int64)
                    v[used] = value[mapping.slots[used]]
                    slotted.append(v)
                params = (*slotted, params[3])
        return acts, codes, params, mapping

    def program(self, acts, codes, requant: RequantParams | None = None, *,
                channel_formats=None, check_bound: bool = True) -> Program:
        """The command / data words of ``acts @ levels(codes)`` (see the module docstring).

        ``channel_formats`` (one format per output channel) is needed on a mixed-format
        accelerator; the channels are placed on the columns of their format
        (:func:`column_map`) and :meth:`decode` restores their order.
        """
        acts, codes, params, _ = self._layout(acts, codes, requant, channel_formats,
                                              check_bound)
        return self._program(acts, codes, params)

    def _program_ws(self, acts, codes, params) -> Program:
        (M, K), N = acts.shape, codes.shape[1]
        R, C = self.rows, self.cols
        kf, tn = -(-K // R), -(-N // C)
        a_pad = np.zeros((M, kf * R), np.int64)
        a_pad[:, :K] = acts
        w_pad = np.zeros((kf * R, tn * C), np.int64)
        w_pad[:K, :N] = codes
        row_tiles = ws_row_tiles(self._meta, M)
        prog = Program()
        for cmd in plan_gemm(self._meta, M, K, N, requant=params is not None):
            fields = cmd.fields
            if cmd.name == "SET_REQUANT":
                fields = {**fields, "relu": int(params[3])}
            prog.commands.append(self.command(cmd.name, **fields))
            if cmd.name == "LOAD_ACT":
                t, f = cmd.tile
                m0, m1 = row_tiles[t]
                prog.data += self._pack(a_pad[m0:m1, f * R:(f + 1) * R],
                                        self.act_format.bits,
                                        self._buffers["act"]["per_word"])
            elif cmd.name == "LOAD_WEIGHT":
                n, f = cmd.tile
                prog.data += self._pack(w_pad[f * R:(f + 1) * R, n * C:(n + 1) * C],
                                        self._buffers["weight"]["lane_bits"],
                                        self._buffers["weight"]["per_word"])
            elif cmd.name == "SET_REQUANT":
                prog.data += self._requant_words(params, cmd.tile[0], N)
            elif cmd.name == "DRAIN":
                prog.outputs += cmd.words
                prog.tiles.append(cmd.tile)
        return prog

    def _program(self, acts, codes, params) -> Program:
        if self.dataflow == "ws":
            return self._program_ws(acts, codes, params)
        (M, K), N = acts.shape, codes.shape[1]
        R, C = self.rows, self.cols
        tm, tn = -(-M // R), -(-N // C)
        A = self.act_format.bits
        W = self._buffers["weight"]["lane_bits"]
        a_pad = np.zeros((tm * R, K), np.int64)
        a_pad[:M] = acts
        w_pad = np.zeros((K, tn * C), np.int64)
        w_pad[:, :N] = codes
        prog = Program()
        KM = self.k_max
        for cmd in plan_gemm(self._meta, M, K, N, requant=params is not None):
            fields = cmd.fields
            if cmd.name == "SET_REQUANT":
                fields = {**fields, "relu": int(params[3])}
            prog.commands.append(self.command(cmd.name, **fields))
            if cmd.name == "LOAD_ACT":
                t, c = cmd.tile
                tile = a_pad[t * R:(t + 1) * R, c * KM:c * KM + cmd.fields["k"]]
                prog.data += self._pack(tile.T, A, self._buffers["act"]["per_word"])
            elif cmd.name == "LOAD_WEIGHT":
                n, c = cmd.tile
                tile = w_pad[c * KM:c * KM + cmd.fields["k"], n * C:(n + 1) * C]
                prog.data += self._pack(tile, W, self._buffers["weight"]["per_word"])
            elif cmd.name == "SET_REQUANT":
                prog.data += self._requant_words(params, cmd.tile[0], N)
            elif cmd.name == "DRAIN":
                prog.outputs += cmd.words
                prog.tiles.append(cmd.tile)
        return prog

    def _requant_words(self, params, n: int, N: int) -> list:
        mult, shift, zp, _ = params
        mb, sb = self._meta["multiplier_bits"], self._meta["shift_bits"]
        Z = self.out_format.bits
        words = []
        per_column = self._timing["requant_words_per_column"]
        for j in range(self.cols):
            channel = n * self.cols + j
            record = 0
            if channel < N:
                record = (int(mult[channel]) | (int(shift[channel]) << mb)
                          | ((int(zp[channel]) & ((1 << Z) - 1)) << (mb + sb)))
            words += [(record >> (32 * w)) & 0xFFFFFFFF for w in range(per_column)]
        return words

    def decode(self, words, M: int, N: int, requant: bool, tiles=None):
        """``(values [M, N], overflow [M, N] or None)`` from :meth:`program`'s ``dout`` words.

        ``N`` is the number of array columns the program used (after any column map);
        ``tiles`` the program's :attr:`Program.tiles` (default: row tile outer).
        """
        R, C = self.rows, self.cols
        tn = -(-N // C)
        # Row ranges of the row tiles: rows each (OS, padded), k_max each (WS).
        if self.dataflow == "ws":
            row_tiles = ws_row_tiles(self._meta, M)
        else:
            row_tiles = [(m0, m0 + R) for m0 in range(0, M, R)]
        tm = len(row_tiles)
        if tiles is None:
            tiles = [(t, n) for t in range(tm) for n in range(tn)]
        per_row = self._timing["words_per_row"]
        lanes, lane_bits = self._meta["dout_lanes"], self._meta["lane_bits"]
        expected = tn * sum(m1 - m0 for m0, m1 in row_tiles) * per_row
        if len(words) != expected:
            raise ValueError(f"decode: {len(words)} words for a {M} x {N} result; expected "
                             f"{expected}")
        mask = (1 << lane_bits) - 1
        flat = [(int(w) >> (lane_bits * lane)) & mask for w in words
                for lane in range(lanes)]
        rows = np.array(flat, dtype=np.int64).reshape(-1, per_row * lanes)[:, :C]
        raw = np.zeros((row_tiles[-1][1], tn * C), dtype=np.int64)
        at = 0
        for t, n in tiles:
            m0, m1 = row_tiles[t]
            raw[m0:m1, n * C:(n + 1) * C] = rows[at:at + m1 - m0]
            at += m1 - m0
        if requant:
            Z = self.out_format.bits
            values = raw & ((1 << Z) - 1)
            if self.out_format.signed:
                values = self._signed(values, Z)
            return values[:M, :N], None
        P = self.acc_bits
        return self._signed(raw, P)[:M, :N], ((raw >> P) & 1).astype(bool)[:M, :N]

    def cycles(self, M: int, K: int, N: int, requant: bool = False) -> int:
        """Exact ``cycles`` counter increase of :meth:`gemm` without stalls on the streams
        (:func:`potgen.runtime.cycles.gemm_cycles`)."""
        from .cycles import gemm_cycles
        return gemm_cycles(self._meta, M, K, N, requant=requant).total

    def gemm(self, acts, codes, requant: RequantParams | None = None, *,
             channel_formats=None, check_bound: bool = True) -> GemmResult:
        """Run ``acts [M, K] @ levels(codes [K, N])`` on the accelerator.

        Parameters
        ----------
        acts : array [M, K] of int
            Activation values in the accelerator's activation format.
        codes : array [K, N] of int
            Weight codes; column ``n`` in ``channel_formats[n]`` (default: the
            accelerator's single weight format).
        requant : RequantParams or None
            ``None``: return the raw accumulators and overflow flags. Otherwise return
            the requantized outputs.
        channel_formats : sequence of formats or None
            One weight format per output channel (needed on a mixed-format, e.g. MSQ,
            accelerator).
        check_bound : bool
            Refuse weights that can overflow the accumulator (:meth:`check_bound`).

        Returns
        -------
        GemmResult
        """
        acts, codes, params, mapping = self._layout(acts, codes, requant,
                                                    channel_formats, check_bound)
        prog = self._program(acts, codes, params)
        M, N = acts.shape[0], codes.shape[1]
        result = self._backend.run(prog)
        if result.error:
            raise RuntimeError("the accelerator refused a command (error flag set)")
        values, flags = self.decode(result.words, M, N, requant is not None, prog.tiles)
        if mapping is not None:
            values = mapping.unpack(values)
            flags = None if flags is None else mapping.unpack(flags)
        tiles = len(prog.tiles)
        return GemmResult(values, flags, int(result.cycles), tiles)
