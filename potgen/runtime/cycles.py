"""Exact cycle model of the accelerator, from its metadata alone (no Amaranth elaboration).

The accelerator (:mod:`potgen.hw.accelerator`) dispatches one command per cycle to three
engines; a command waits at the dispatcher only for a full queue or a slot / bank
hazard. Every engine's timing is a closed rule, so the whole program is evaluated
command by command (event times, not a cycle loop): a 256 x 256 x 256 GEMM on an 8 x 8
array (about 3,000 commands) takes about 0.1 s, on 16 x 16 a few tens of milliseconds.

Rules (cycle numbers; the first command is offered in cycle 0, every stream word is
offered as soon as it can move, ``dout`` is never back-pressured):

* dispatch: ``d_i >= d_{i-1} + 1``; a load waits for its queue
  (``d >= pop of the load Q_load places earlier + 1``) and for every earlier ``COMPUTE``
  reading its slot (``d >= final step + 1``); a ``COMPUTE`` waits for its queue and for
  the earlier loads of its slots (``d >= finish + 1``), and for a requantizing tile
  also of its bank; a ``SET_REQUANT`` waits until every earlier tile using its bank
  has left the array (``d >= f + drain_latency + rows + 1``);
* load engine: pops at ``p = max(d + 1, previous finish)``, takes its ``n`` words in
  ``p + 1 .. p + n`` (finish ``p + n``);
* compute engine: pops at ``p = max(d + 1, previous final step)``, issues steps in
  ``p + 1 ..``; the final step of a tile (``last``) waits until ``rows`` cycles after
  the previous tile's and until the output FIFO has room for the tile's rows
  (``reserved + rows <= out_rows``; a row's reservation ends when it is emitted);
* result path: row ``i`` of a tile whose final step is ``f`` is written to the FIFO in
  cycle ``f + 1 + drain_latency + i + requant_latency``; the drain engine emits row
  ``r`` from ``max(written + 1, previous row's end, its DRAIN's dispatch + 1)`` in
  ``words_per_row`` consecutive cycles;
* ``busy`` (the ``cycles`` counter) is the union of: each load from dispatch + 1 to
  finish, each ``COMPUTE`` from dispatch + 1 to its final step, each tile from its final
  step + 1 to its last row's emission, each ``DRAIN`` from dispatch + 1 to the same.

Weight-stationary (``dataflow == "ws"``): dispatch, loads and the busy union as above
(a tile is a ``COMPUTE`` with ``last``; its ``DRAIN``, right behind it, is dispatched
in the next cycle), and

* compute engine: pops at ``p = max(d + 1, previous final step)``; the preload's
  ``rows`` cycles start at ``s = max(p + 1, first + step_latency + 1 - rows`` (with
  ``accumulate``; ``first`` the previous fold's first step), the cycle after the
  pop of result row ``g - out_rows`` (with ``last``; ``g`` the fold's first result
  row)``)``; the first step issues at ``s + rows``, step ``m`` of a ``last`` fold
  (result row ``g + m``) at ``max(previous step + 1, pop of row g + m - out_rows + 1)``,
  of any other fold at ``first + m``;
* result row issued at ``t`` is written to the FIFO at ``t + 1 + step_latency +
  requant_latency`` and emitted as in OS; ``SET_REQUANT`` waits for a bank until
  ``final + step_latency + 2`` of the last tile using it;
* ``SET_PSUM`` is queued and popped like a ``COMPUTE``; the next pop comes at least
  one cycle after it.
"""

from __future__ import annotations

from dataclasses import dataclass

from .driver import _metadata, plan_gemm

__all__ = ["CycleBreakdown", "gemm_cycles", "program_cycles", "accelerator_metadata",
           "model_metadata"]

_NEVER = -(1 << 60)


@dataclass(frozen=True)
class CycleBreakdown:
    """Cycles of one program on the accelerator.

    Members
    -------
    total : int
        Busy cycles: the accelerator's ``cycles`` counter over the program.
    compute : int
        Cycles in which the array takes a step (the sum of ``K`` over ``COMPUTE``\\ s).
    load : int
        ``din`` words moved (one per cycle at most; they overlap compute).
    drain : int
        ``dout`` words moved (one per cycle at most; they overlap compute).
    stall : int
        ``total - compute``: busy cycles in which the array takes no step (fill,
        final drain, loads or drains the compute engine waited for).
    macs : int
        Useful multiply-accumulates, ``M K N`` (0 for :func:`program_cycles`).
    peak_macs : int
        ``rows cols total``.
    utilisation : float
        ``macs / peak_macs``.
    commands : int
        Commands in the program.
    """

    total: int
    compute: int
    load: int
    drain: int
    stall: int
    macs: int
    peak_macs: int
    utilisation: float
    commands: int


def _union_length(intervals) -> int:
    total, end = 0, _NEVER
    for lo, hi in sorted(intervals):
        if hi < lo:
            continue
        if lo > end:
            total += hi - lo + 1
            end = hi
        elif hi > end:
            total += hi - end
            end = hi
    return total


def program_cycles(meta: dict, plan) -> CycleBreakdown:
    """Evaluate a command plan (a list of :class:`~potgen.runtime.driver.Command`).

    The plan must DRAIN tiles in the order they finish and, when a tile has to wait
    for room in the output FIFO, the DRAINs it waits for must come before it (the
    driver's plans do both: each DRAIN follows its tile's last ``COMPUTE``).
    """
    meta = _metadata(meta)
    if meta.get("dataflow", "os") == "ws":
        return _program_cycles_ws(meta, plan)
    timing = meta["timing"]
    R, C = meta["rows"], meta["cols"]
    dl, rq = timing["drain_latency"], timing["requant_latency"]
    depth, per_row = timing["out_rows"], timing["words_per_row"]
    q_load, q_compute = timing["load_queue"], timing["compute_queue"]

    ready = {"act": [_NEVER] * meta["act_slots"],
             "weight": [_NEVER] * meta["weight_slots"],
             "bank": [_NEVER] * meta["requant_banks"]}
    free = {kind: list(values) for kind, values in ready.items()}
    slot_field = {"LOAD_ACT": ("act", "act_slot"), "LOAD_WEIGHT": ("weight", "weight_slot"),
                  "SET_REQUANT": ("bank", "bank")}
    d = -1
    load_pops, compute_pops = [], []
    load_end = compute_end = _NEVER
    last_final = _NEVER
    tiles, drains, pops = [], [], []
    intervals = []
    row_end = [_NEVER]
    steps = load_words = drain_words = 0

    def emit_rows(count: int):
        while len(pops) < count:
            q, i = divmod(len(pops), R)
            if q >= len(tiles) or q >= len(drains):
                raise ValueError("program_cycles: a tile waits for a DRAIN that comes "
                                 "later in the program; the model needs each DRAIN "
                                 "before the tiles that wait for its rows")
            written = tiles[q] + 1 + dl + i + rq
            start = max(written + 1, row_end[0], drains[q] + 1)
            pops.append(start + per_row - 1)
            row_end[0] = start + per_row

    for cmd in plan:
        t = d + 1
        name, fields = cmd.name, cmd.fields
        if name in slot_field:
            kind, key = slot_field[name]
            slot = fields.get(key, 0)
            j = len(load_pops)
            if j >= q_load:
                t = max(t, load_pops[j - q_load] + 1)
            t = max(t, free[kind][slot] + 1)
            d = t
            pop = max(d + 1, load_end)
            load_end = pop + cmd.words
            load_pops.append(pop)
            ready[kind][slot] = load_end
            load_words += cmd.words
            intervals.append((d + 1, load_end))
        elif name == "COMPUTE":
            a, w = fields["act_slot"], fields["weight_slot"]
            last, requant = fields.get("last", 0), fields.get("requant", 0)
            bank = fields.get("bank", 0)
            c = len(compute_pops)
            if c >= q_compute:
                t = max(t, compute_pops[c - q_compute] + 1)
            t = max(t, ready["act"][a] + 1, ready["weight"][w] + 1)
            if last and requant:
                t = max(t, ready["bank"][bank] + 1)
            d = t
            pop = max(d + 1, compute_end)
            final = pop + fields["k"]
            if last:
                final = max(final, last_final + R)
                need = R * (len(tiles) + 1) - depth
                if need > 0:
                    emit_rows(need)
                    final = max(final, pops[need - 1] + 1)
                last_final = final
                tiles.append(final)
                if requant:
                    free["bank"][bank] = max(free["bank"][bank], final + dl + R)
            compute_pops.append(pop)
            compute_end = final
            free["act"][a] = max(free["act"][a], final)
            free["weight"][w] = max(free["weight"][w], final)
            steps += fields["k"]
            intervals.append((d + 1, final))
        elif name == "DRAIN":
            d = t
            drains.append(d)
            drain_words += cmd.words
        elif name == "NOP":
            d = t
        else:
            raise ValueError(f"program_cycles: unknown command {name!r}")
    emit_rows(R * min(len(tiles), len(drains)))
    for q, final in enumerate(tiles):
        end = pops[(q + 1) * R - 1] if q < len(drains) else None
        if end is None:
            raise ValueError(f"program_cycles: tile {q} is never drained; the accelerator "
                             "would stay busy")
        intervals.append((final + 1, end))
        intervals.append((drains[q] + 1, end))
    total = _union_length(intervals)
    return CycleBreakdown(total=total, compute=steps, load=load_words, drain=drain_words,
                          stall=total - steps, macs=0, peak_macs=R * C * total,
                          utilisation=0.0, commands=len(plan))


def _program_cycles_ws(meta: dict, plan) -> CycleBreakdown:
    """:func:`program_cycles` of a weight-stationary accelerator (rules in the module
    docstring, WS section)."""
    timing = meta["timing"]
    R, C = meta["rows"], meta["cols"]
    lat, rq = timing["step_latency"], timing["requant_latency"]
    depth, per_row = timing["out_rows"], timing["words_per_row"]
    q_load, q_compute = timing["load_queue"], timing["compute_queue"]
    wait = lat + 1 - R

    ready = {"act": [_NEVER] * meta["act_slots"],
             "weight": [_NEVER] * meta["weight_slots"],
             "bank": [_NEVER] * meta["requant_banks"]}
    free = {kind: list(values) for kind, values in ready.items()}
    slot_field = {"LOAD_ACT": ("act", "act_slot"), "LOAD_WEIGHT": ("weight", "weight_slot"),
                  "SET_REQUANT": ("bank", "bank")}
    d = -1
    load_pops, compute_pops = [], []
    load_end = compute_end = _NEVER
    first_step = _NEVER                 # issue cycle of the previous fold's first step
    issued = []                         # issue cycle of every result row
    drain_of_row = []                   # dispatch cycle of the DRAIN asking for it
    pops = []                           # cycle in which each row's last word leaves
    row_end = [_NEVER]
    intervals = []
    steps = load_words = drain_words = 0
    pre_dispatched = None

    def pop_time(g: int) -> int:
        while len(pops) <= g:
            r = len(pops)
            if r >= len(issued) or r >= len(drain_of_row):
                raise ValueError("program_cycles: a result row waits for a DRAIN that "
                                 "comes later in the program; the model needs each DRAIN "
                                 "right after its last COMPUTE")
            written = issued[r] + 1 + lat + rq
            start = max(written + 1, row_end[0], drain_of_row[r] + 1)
            pops.append(start + per_row - 1)
            row_end[0] = start + per_row
        return pops[g]

    def room(g: int) -> int:
        """Earliest cycle in which result row ``g`` finds room in the output FIFO."""
        return _NEVER if g < depth else pop_time(g - depth) + 1

    for index, cmd in enumerate(plan):
        t = d + 1
        name, fields = cmd.name, cmd.fields
        if name in slot_field:
            kind, key = slot_field[name]
            slot = fields.get(key, 0)
            j = len(load_pops)
            if j >= q_load:
                t = max(t, load_pops[j - q_load] + 1)
            t = max(t, free[kind][slot] + 1)
            d = t
            pop = max(d + 1, load_end)
            load_end = pop + cmd.words
            load_pops.append(pop)
            ready[kind][slot] = load_end
            load_words += cmd.words
            intervals.append((d + 1, load_end))
        elif name == "COMPUTE":
            a, w = fields["act_slot"], fields["weight_slot"]
            last, requant = fields.get("last", 0), fields.get("requant", 0)
            bank, k = fields.get("bank", 0), fields["k"]
            c = len(compute_pops)
            if c >= q_compute:
                t = max(t, compute_pops[c - q_compute] + 1)
            t = max(t, ready["act"][a] + 1, ready["weight"][w] + 1)
            if last and requant:
                t = max(t, ready["bank"][bank] + 1)
            d = t
            pop = max(d + 1, compute_end)
            compute_pops.append(pop)
            if last and index + 1 < len(plan) and plan[index + 1].name == "DRAIN":
                # The DRAIN right behind never waits: dispatched in the next cycle,
                # which the fold's own rows may need when the FIFO is shallow.
                pre_dispatched = d + 1
                drain_of_row += [d + 1] * plan[index + 1].fields["k"]
                drain_words += plan[index + 1].words
            start = pop + 1
            if fields.get("accumulate", 0):
                start = max(start, first_step + wait)
            g = len(issued)
            if last:
                start = max(start, room(g))
            first_step = start + R
            t_step = first_step
            for row in range(k):
                if last:
                    if row:
                        t_step = max(t_step + 1, room(g + row))
                    issued.append(t_step)
                elif row:
                    t_step += 1
            final = t_step
            compute_end = final
            if last:
                intervals.append((final + 1, ("row", len(issued) - 1)))
                if requant:
                    free["bank"][bank] = max(free["bank"][bank], final + lat + 1)
            free["act"][a] = max(free["act"][a], final)
            free["weight"][w] = max(free["weight"][w], final)
            steps += k
            intervals.append((d + 1, final))
        elif name == "SET_PSUM":
            # Through the compute queue: popped like a COMPUTE, takes the engine for
            # the pop cycle only.
            c = len(compute_pops)
            if c >= q_compute:
                t = max(t, compute_pops[c - q_compute] + 1)
            d = t
            pop = max(d + 1, compute_end)
            compute_pops.append(pop)
            compute_end = pop + 1
            intervals.append((d + 1, pop))
        elif name == "DRAIN":
            d = t
            if pre_dispatched == d:
                pre_dispatched = None
                continue
            raise ValueError("program_cycles: on a weight-stationary accelerator each "
                             "DRAIN must follow its tile's last COMPUTE")
        elif name == "NOP":
            d = t
        else:
            raise ValueError(f"program_cycles: unknown command {name!r}")
    if len(drain_of_row) < len(issued):
        raise ValueError("program_cycles: some result rows are never drained; the "
                         "accelerator would stay busy")
    # A tile's and a DRAIN's busy spans end when their last row leaves.
    resolved = [(lo, pop_time(hi[1]) if isinstance(hi, tuple) else hi)
                for lo, hi in intervals]
    last_row_of_drain = {}
    for row, dispatched in enumerate(drain_of_row):
        last_row_of_drain[dispatched] = row
    resolved += [(dispatched + 1, pop_time(row))
                 for dispatched, row in last_row_of_drain.items()]
    total = _union_length(resolved)
    return CycleBreakdown(total=total, compute=steps, load=load_words, drain=drain_words,
                          stall=total - steps, macs=0, peak_macs=R * C * total,
                          utilisation=0.0, commands=len(plan))


def gemm_cycles(meta: dict, M: int, K: int, N: int, requant: bool = False) -> CycleBreakdown:
    """Exact busy cycles of the driver's ``M x K x N`` GEMM (:func:`~potgen.runtime.driver.plan_gemm`).

    Parameters
    ----------
    meta : dict
        The accelerator's ``metadata()`` (or :func:`accelerator_metadata`).
    M, K, N : int
        GEMM shape ``[M, K] @ [K, N]``; ``N`` counts array columns (after any MSQ
        column map).
    requant : bool
        Requantized outputs (``SET_REQUANT`` per column tile).

    Returns
    -------
    CycleBreakdown
    """
    plan = plan_gemm(meta, M, K, N, requant=requant)
    b = program_cycles(meta, plan)
    macs = M * K * N
    return CycleBreakdown(total=b.total, compute=b.compute, load=b.load, drain=b.drain,
                          stall=b.stall, macs=macs, peak_macs=b.peak_macs,
                          utilisation=macs / b.peak_macs if b.peak_macs else 0.0,
                          commands=b.commands)


def accelerator_metadata(rows, cols, weight, act, **parameters) -> dict:
    """The full ``metadata()`` of ``Accelerator(rows, cols, weight, act, **parameters)``.

    Builds the component without elaborating it (no netlist), but every PE's product
    unit is constructed: 0.3-1 s for an 8 x 8 array, 1-4 s for 16 x 16. For a
    design-space search use :func:`model_metadata` (under a millisecond).
    """
    from ..hw.accelerator import Accelerator
    accelerator = Accelerator(rows, cols, weight, act, **parameters)
    _silence(accelerator)
    return accelerator.metadata()


def _silence(component) -> None:
    """Mark a component built only for its metadata, and every component inside it, as
    used: they are never elaborated, and Amaranth would warn when they are collected."""
    from amaranth.hdl import Elaboratable
    seen, pending = set(), [component]
    while pending:
        obj = pending.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if isinstance(obj, Elaboratable):
            obj._MustUse__silence = True
            pending += list(vars(obj).values())
        elif isinstance(obj, dict):
            pending += list(obj.values())
        elif isinstance(obj, (list, tuple)):
            pending += list(obj)


def model_metadata(rows, cols, weight, act, *, dataflow="os", k_max=64, k_total_max=None, pipeline=0,
                   out_fmt="uint8", multiplier_bits=16, max_shift=31, requant_pipeline=3,
                   act_slots=4, weight_slots=2, out_rows=None, dout_lanes=1,
                   load_queue=2, compute_queue=4, psum_tiles=1) -> dict:
    """The part of an accelerator's metadata the cycle model reads, in microseconds.

    Same parameters and defaults as :class:`~potgen.hw.accelerator.Accelerator` (those
    that do not change timing, such as ``acc_bits`` or ``overflow``, are left out);
    nothing is constructed, so nothing but the formats is validated: check a chosen
    design with :func:`accelerator_metadata`, whose result has the same keys here.
    """
    from ..formats import parse_format
    from ..hw.accelerator import DATA_IN_BITS, REQUANT_BANKS
    specs = [weight] * cols if isinstance(weight, str) or not hasattr(weight, "__iter__") \
        else list(weight)
    weight_bits = max(parse_format(f).bits for f in specs)
    act_bits, out_bits = parse_format(act).bits, parse_format(out_fmt).bits
    record = multiplier_bits + max_shift.bit_length() + out_bits
    return {
        "kind": "accelerator", "version": 2, "rows": rows, "cols": cols,
        "dataflow": dataflow,
        "k_max": k_max, "k_total_max": k_max if k_total_max is None else k_total_max,
        "act_slots": act_slots, "weight_slots": weight_slots, "psum_tiles": psum_tiles,
        "requant_banks": REQUANT_BANKS,
        "timing": {
            "act_words_per_step": -(-rows // (DATA_IN_BITS // act_bits)),
            "weight_words_per_step": -(-cols // (DATA_IN_BITS // weight_bits)),
            "requant_words_per_column": -(-record // DATA_IN_BITS),
            "words_per_row": -(-cols // dout_lanes),
            "drain_latency": pipeline + rows + cols + 1,
            "step_latency": pipeline + rows + cols + 1,
            "requant_latency": requant_pipeline,
            "out_rows": 2 * rows if out_rows is None else out_rows,
            "load_queue": load_queue,
            "compute_queue": compute_queue,
        },
    }
