"""Systolic arrays of MAC PEs: output-stationary and weight-stationary (DESIGN.md section 4).

A :class:`SystolicArray` is a ``rows x cols`` grid of processing elements of any weight
format (shift-add for the power-of-two families, a multiplier for ``intN`` /
``uintN``), optionally a different format per column (:func:`msq_column_map` places an
MSQ row split onto such an array). The dataflow is chosen at elaboration time.

Both dataflows share one host interface: every cycle the host presents one
*unskewed* step -- a vector of ``rows`` activations and a vector of ``cols`` weight
codes -- and the array skews them internally with triangular register lines at its
edges; results leave as one *deskewed* row of ``cols`` accumulators per cycle with
``out_valid``. Every signal between neighbouring PEs is registered and nothing is
broadcast across the grid, so the longest combinational path is inside one PE
(its product unit and accumulator adder) whatever the array size.

Output-stationary (``dataflow="os"``), ``C[M, N] = A[M, K] @ W[K, N]`` in tiles of
``rows x cols`` outputs:

* step ``k`` of a tile presents ``act[i] = A[m0 + i, k]`` and
  ``weight[j] = W[k, n0 + j]``, ``valid`` high, ``last`` high on the tile's final step;
  activations move right one PE per cycle, weights move down through *two*
  registers per row, so PE ``(i, j)`` sees step ``k`` in cycle ``t_k + 2i + j + 1``;
* after ``last`` each PE copies its accumulator into its drain register and restarts
  its sum with the next step (no cycle is lost between tiles). The drain registers of
  a column form a shift chain towards the bottom edge: because the copy wavefront
  reaches row ``i`` at ``2i + j`` (the doubled weight path) while the chain moves one
  row per cycle, the rows leave the column in order on consecutive cycles without
  ever colliding. Row ``i`` of a tile appears on ``out_acc`` in cycle
  ``t_last + drain_latency + i`` (``drain_latency = L + rows + cols + 1``, ``L`` the
  PE pipeline). A column emits one result per cycle, so a tile must last at least
  ``rows`` cycles: shorter tiles (``K < rows``) are followed by idle steps.

Weight-stationary (``dataflow="ws"``), PE ``(i, j)`` holds ``W[k0 + i, n0 + j]``:

* preload: in the ``rows`` cycles before a fold's first step the host presents the
  fold's weight rows bottom row first (cycle ``t_first - rows + p`` carries row
  ``rows - 1 - p``); they ripple down a shadow register chain (two registers per row)
  while the previous fold still computes, and each PE latches its weight when the
  ``first`` step reaches it, so folds follow each other without a gap;
* step ``m`` presents ``act[i] = A[m, k0 + i]`` and the partial sums ``psum[j]`` /
  ``psum_overflow[j]`` to continue from (zero for the first ``K`` fold, the previous
  fold's results otherwise); partial sums move down the columns, each PE adding its
  product in ``k`` order, so saturation and the overflow flag follow the golden
  model's sequential semantics across folds exactly. The result of step ``m`` appears
  on ``out_acc`` in cycle ``t_m + latency`` (``latency = L + rows + cols + 1``).

Why the doubled weight path: the copy into the drain registers follows the data, so
it reaches PE ``(i, j)`` at ``c + 2i + j``. A value copied at row ``i`` is at row
``i' >= i`` at ``c + 2i + j + (i' - i) = c + i + i' + j``, which is a copy time of row
``i'`` only for ``i = i'``: nothing is overwritten, and the rows reach the bottom at
``c + rows - 1 + i + j``, one per cycle. With a single weight register per row the
copy would reach row ``i`` at ``c + i + j``, exactly when the value from the row above
arrives, and every row but the last would be lost. The price is one more weight
register per PE (4 flip-flops for ``pot4``), far cheaper than an accumulator-wide
second drain register.

Resources beyond the PEs' product units and accumulators (``A``, ``W``, ``P`` the
activation, code and accumulator widths): OS per PE ``A + 2`` forwarding flip-flops
to the right, ``2W`` down, ``P + 1`` drain flip-flops and a ``P + 1``-bit 2:1
multiplexer; at the edges ``rows^2 (A + 2)`` flip-flops of input skew,
``cols (cols + 1) W / 2`` of weight skew and ``cols (cols - 1) (P + 1) / 2`` of
output deskew. WS per PE ``A + 1`` forwarding, ``3W`` weight (two shadow, one
stationary) and ``P + 1`` partial-sum flip-flops and one ``P``-bit adder; at the edges
the activation, token, weight and partial-sum skew lines and the output deskew.

Cycle model: :meth:`SystolicArray.cycles` gives the exact cycle count of a whole GEMM
under the schedule described there (folds issued back to back at
:meth:`SystolicArray.fold_period`), and :meth:`SystolicArray.scalesim_cycles` the
SCALE-Sim analytic model (BACKGROUND.md section 6) for comparison.
"""

from __future__ import annotations

from dataclasses import dataclass
from numbers import Integral

import numpy as np
from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from .. import bounds
from ..formats import Format
from .accumulator import ACC_BITS, OVERFLOW_MODES, check_acc_bits
from .mac import MAC_SIGN_MODES, MacPE
from .product import (MULTIPLIER_IMPLEMENTATIONS, PRODUCT_UNITS, act_shape,
                      check_act_format, check_choice, check_pipeline,
                      check_weight_format, interval_product, product_unit)

__all__ = ["SystolicArray", "DATAFLOWS", "MAX_DIMENSION", "ColumnMap",
           "msq_column_formats", "msq_column_map", "msq_channel_codes"]

#: Values of ``SystolicArray(dataflow=...)``.
DATAFLOWS = ("os", "ws")
#: Largest ``rows`` / ``cols`` accepted.
MAX_DIMENSION = 256


def _check_dimension(value, param: str) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, Integral):
        raise TypeError(f"{param}={value!r}: expected an int 1..{MAX_DIMENSION}")
    if not 1 <= value <= MAX_DIMENSION:
        raise ValueError(f"{param}={value}: must be 1..{MAX_DIMENSION}")
    return int(value)


def _check_shape_argument(value, param: str) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, Integral):
        raise TypeError(f"{param}={value!r}: expected a positive int")
    if value < 1:
        raise ValueError(f"{param}={value}: GEMM dimensions must be >= 1")
    return int(value)


def _column_formats(weight, cols: int) -> tuple:
    """One weight format per column, from a single format or a sequence of ``cols``."""
    if isinstance(weight, (str, Format)):
        fmt = check_weight_format(weight)
        return (fmt,) * cols
    try:
        specs = list(weight)
    except TypeError:
        raise TypeError(f"weight={weight!r}: expected a format (str or Format) or a "
                        f"sequence of {cols} formats, one per column") from None
    if len(specs) != cols:
        raise ValueError(f"weight: {len(specs)} column formats given for cols={cols}; "
                         "give one format, or exactly one per column")
    return tuple(check_weight_format(spec, f"weight[{j}]") for j, spec in enumerate(specs))


def _shift_line(m, value, stages: int, name: str):
    """``value`` delayed by ``stages`` registers (``value`` itself for 0)."""
    for stage in range(stages):
        reg = Signal.like(value, name=f"{name}_d{stage}")
        m.d.sync += reg.eq(value)
        value = reg
    return value


def _checked_sum(m, base, addend, negate, acc_bits: int, addend_range, overflow: str,
                 name: str):
    """``base + (negate ? -addend : addend)`` wrapped or saturated to ``acc_bits``.

    Returns ``(result, out_of_range)``. ``base`` is a signed ``acc_bits`` value;
    ``addend_range`` is the exact range of the signed addend (``+-`` the port's
    range when ``negate`` is used). The subtraction rides on the adder as
    ``base + (addend ^ s) + s`` (the same trick as the MAC PE's folded sign).
    """
    acc_lo, acc_hi = -(1 << (acc_bits - 1)), (1 << (acc_bits - 1)) - 1
    lo, hi = addend_range
    exact = Signal(signed(bounds.signed_width(acc_lo + lo, acc_hi + hi)),
                   name=f"{name}_exact")
    if negate is None:
        m.d.comb += exact.eq(base + addend)
    else:
        if not addend.shape().signed:
            # One zero bit more, so that ~x means -x - 1.
            widened = Signal(signed(len(addend) + 1), name=f"{name}_addend")
            m.d.comb += widened.eq(addend)
            addend = widened
        m.d.comb += exact.eq(base + Mux(negate, ~addend, addend) + negate)
    if len(exact) > acc_bits:
        # In range iff the bits from the accumulator's sign bit up are all equal.
        high = exact[acc_bits - 1:]
        out_of_range = high.any() & ~high.all()
    else:
        out_of_range = 0
    wrapped = exact[:acc_bits].as_signed()
    if overflow == "saturate":
        return Mux(out_of_range, Mux(exact[-1], acc_lo, acc_hi), wrapped), out_of_range
    return wrapped, out_of_range


# --- processing-element cells ----------------------------------------------------------

class _OutputStationaryCell(wiring.Component):
    """One output-stationary PE: a :class:`MacPE`, forwarding registers, a drain register.

    Activations and the step's ``valid`` / ``last`` move right through one register;
    weight codes move down through two (see the module docstring for why). ``clear``
    of the MAC is "the previous step here was ``last``", and in the same cycle (after
    the MAC's pipeline) the finished accumulator is copied into the drain register,
    which otherwise takes the drain register of the PE above. A cell on the right or
    bottom edge has no forwarding outputs in that direction, and one in the top row
    no drain input (it shifts in zeros); only the last column tracks which drain
    registers hold a result (``drain_valid``).
    """

    def __init__(self, mac: MacPE, *, right: bool, below: bool, top: bool,
                 track_valid: bool):
        self._mac = mac
        self._right, self._below, self._top = right, below, top
        self._track_valid = track_valid
        acc = signed(mac.acc_bits)
        act = act_shape(mac.act_format)
        weight = unsigned(mac.weight_format.bits)
        members = {"act_in": In(act), "valid_in": In(1), "last_in": In(1),
                   "weight_in": In(weight)}
        if right:
            members.update({"act_out": Out(act), "valid_out": Out(1), "last_out": Out(1)})
        if below:
            members["weight_out"] = Out(weight)
        if not top:
            members.update({"drain_in": In(acc), "drain_overflow_in": In(1)})
            if track_valid:
                members["drain_valid_in"] = In(1)
        members.update({"drain_out": Out(acc), "drain_overflow_out": Out(1)})
        if track_valid:
            members["drain_valid_out"] = Out(1)
        super().__init__(members)

    @property
    def product_unit(self):
        return self._mac.product_unit

    def elaborate(self, platform):
        m = Module()
        m.submodules.mac = mac = self._mac
        last_before = Signal(name="last_before")
        m.d.sync += last_before.eq(self.last_in)
        if self._right:
            m.d.sync += [self.act_out.eq(self.act_in), self.valid_out.eq(self.valid_in)]
            m.d.comb += self.last_out.eq(last_before)
        if self._below:
            weight_half = Signal.like(self.weight_in, name="weight_half")
            m.d.sync += [weight_half.eq(self.weight_in), self.weight_out.eq(weight_half)]
        m.d.comb += [mac.act.eq(self.act_in), mac.weight.eq(self.weight_in),
                     mac.valid.eq(self.valid_in), mac.clear.eq(last_before)]
        # The MAC applies clear after its pipeline; the copy must see the accumulator
        # in that same cycle, the last one in which it holds the finished sum.
        capture = _shift_line(m, last_before, mac.latency, "capture")
        above = (0, 0, 0) if self._top else (
            self.drain_in, self.drain_overflow_in,
            self.drain_valid_in if self._track_valid else 0)
        m.d.sync += [
            self.drain_out.eq(Mux(capture, mac.acc, above[0])),
            self.drain_overflow_out.eq(Mux(capture, mac.overflow, above[1])),
        ]
        if self._track_valid:
            m.d.sync += self.drain_valid_out.eq(capture | above[2])
        return m


class _WeightStationaryCell(wiring.Component):
    """One weight-stationary PE: a product unit, a stationary weight, a partial-sum adder.

    ``load_in`` runs one cycle ahead of the activation it belongs to (the first step
    of a fold), so the stationary weight is latched from the shadow chain exactly
    before that step's product is formed. A cell on the right edge forwards nothing
    to the right; the shadow chain of the bottom row still has both of its registers
    (the bottom row latches from the second one).
    """

    def __init__(self, weight_fmt, act_fmt, *, acc_bits, overflow, pipeline, unit,
                 multiplier, sign, right: bool, below: bool):
        self._weight_format, self._act_format = weight_fmt, act_fmt
        self._right, self._below = right, below
        shift_add = unit == "shift-add" or (unit == "auto" and weight_fmt.is_term_format)
        self._fold = shift_add and weight_fmt.signed and sign == "fold"
        self._unit = product_unit(weight_fmt, act_fmt, unit=unit, multiplier=multiplier,
                                  pipeline=pipeline,
                                  sign="split" if self._fold else "negate")
        self._acc_bits, self._overflow = acc_bits, overflow
        acc = signed(acc_bits)
        act = act_shape(act_fmt)
        weight = unsigned(weight_fmt.bits)
        members = {"act_in": In(act), "load_in": In(1), "weight_in": In(weight),
                   "psum_in": In(acc), "psum_overflow_in": In(1)}
        if right:
            members.update({"act_out": Out(act), "load_out": Out(1)})
        if below:
            members["weight_out"] = Out(weight)
        members.update({"psum_out": Out(acc), "psum_overflow_out": Out(1)})
        super().__init__(members)

    @property
    def product_unit(self):
        return self._unit

    def elaborate(self, platform):
        m = Module()
        m.submodules.product = unit = self._unit
        if self._right:
            m.d.sync += [self.act_out.eq(self.act_in), self.load_out.eq(self.load_in)]
        weight_half = Signal.like(self.weight_in, name="weight_half")
        weight_full = Signal.like(self.weight_in, name="weight_full")
        stationary = Signal.like(self.weight_in, name="stationary_weight")
        m.d.sync += [weight_half.eq(self.weight_in), weight_full.eq(weight_half)]
        if self._below:
            m.d.comb += self.weight_out.eq(weight_full)
        with m.If(self.load_in):
            m.d.sync += stationary.eq(weight_full)
        m.d.comb += [unit.act.eq(self.act_in), unit.weight.eq(stationary)]
        if self._fold:
            lo, hi = unit.magnitude_range
            total, out_of_range = _checked_sum(
                m, self.psum_in, unit.magnitude, unit.negative, self._acc_bits,
                (min(lo, -hi), max(hi, -lo)), self._overflow, "psum")
        else:
            total, out_of_range = _checked_sum(
                m, self.psum_in, unit.product, None, self._acc_bits, unit.product_range,
                self._overflow, "psum")
        m.d.sync += [self.psum_out.eq(total),
                     self.psum_overflow_out.eq(self.psum_overflow_in | out_of_range)]
        return m


# --- the array ---------------------------------------------------------------------------

class SystolicArray(wiring.Component):
    """A ``rows x cols`` systolic array of MAC PEs, output- or weight-stationary.

    The module docstring describes both dataflows, the host protocol and the timing.
    Every port is registered inside the array before it reaches any logic, and every
    output comes from a register.

    Parameters
    ----------
    rows, cols : int
        Array size, 1..:data:`MAX_DIMENSION`.
    weight : str, Format or sequence of them
        Weight format of every column, or one format per column (an MSQ mixed array:
        e.g. ``["int4"] * 2 + ["sp2-4"] * 6``; see :func:`msq_column_formats`). Codes of
        at most 16 bits.
    act : str or IntFormat
        Activation format, ``intN`` or ``uintN`` with N = 2..16.
    dataflow : ``"os"`` or ``"ws"``
        Output-stationary or weight-stationary.
    acc_bits : int or str
        Accumulator width 2..64 (the same in every PE and on ``out_acc``); ``"auto"``
        for the ``datatype`` bound over every column format (needs ``k``); or a
        :data:`potgen.bounds.METHODS` name, where ``l1``, ``l1_zero_centered`` and
        ``exact`` need ``weights``. A bound narrower than one product is widened to it.
    k : int or None
        The dot-product length ``K`` the bound must cover (the longest ``K`` the array
        will run; with ``weights``, must equal their ``K``).
    weights : array of int or None
        Integer weight *levels* ``[K, N]`` of the layer the array is built for (any
        ``N``), for the weight-based bounds.
    overflow : ``"wrap"`` or ``"saturate"``
        Accumulator overflow rule (golden :class:`~potgen.golden.AccSpec`).
    pipeline : int
        Register stages in every product unit (``L``).
    unit : ``"auto"``, ``"shift-add"`` or ``"multiplier"``
        Product unit of every PE; ``"auto"`` picks per column (shift-add for
        power-of-two formats, a multiplier for ``intN`` / ``uintN``).
    multiplier : ``"dsp"`` or ``"lut"``
        Implementation of multiplier units.
    sign : ``"fold"`` or ``"negate"``
        Where a signed shift-add unit's sign goes (see :class:`~potgen.hw.MacPE`).

    Members
    -------
    act : ``In(ArrayLayout(A, rows))``
        The step's activations, element ``i`` for row ``i`` (``intN``: signed).
    weight : ``In(ArrayLayout(unsigned(W), cols))``
        The step's weight codes (OS) or the preload row (WS), element ``j`` for column
        ``j``; ``W`` is the widest column format, a narrower column uses the low bits.
    valid : ``In(1)``
        The step is real. OS: its products are accumulated. WS: its results are
        flagged by ``out_valid``.
    last : ``In(1)``
        OS only: the step ends a tile.
    first : ``In(1)``
        WS only: the step is the first of a fold (the preloaded weights take effect).
    psum : ``In(ArrayLayout(signed(acc_bits), cols))``
        WS only: the partial sums this step continues from.
    psum_overflow : ``In(unsigned(cols))``
        WS only: their sticky overflow flags (bit ``j`` for column ``j``).
    out_valid : ``Out(1)``
        ``out_acc`` / ``out_overflow`` hold a result row this cycle.
    out_acc : ``Out(ArrayLayout(signed(acc_bits), cols))``
        Result row: OS row ``i`` of a tile (in order ``i = 0 .. rows - 1``), WS one
        step's sums.
    out_overflow : ``Out(unsigned(cols))``
        Sticky overflow flags of the result row (bit ``j`` for column ``j``).

    Attributes
    ----------
    latency : int
        OS: cycles from a tile's ``last`` step to its first result row
        (:attr:`drain_latency`). WS: cycles from a step to its result row.
    acc_bits : int
        Accumulator width.
    bound : potgen.bounds.Bound or None
        The widest bound that chose ``acc_bits`` (``None`` for an explicit width).
    column_formats : tuple of Format
        The weight format of each column.
    """

    def __init__(self, rows, cols, weight, act, *, dataflow="os", acc_bits="auto", k=None,
                 weights=None, overflow="wrap", pipeline=0, unit="auto", multiplier="dsp",
                 sign="fold"):
        self._rows = _check_dimension(rows, "rows")
        self._cols = _check_dimension(cols, "cols")
        self._formats = _column_formats(weight, self._cols)
        self._act_format = check_act_format(act)
        self._dataflow = check_choice(dataflow, DATAFLOWS, "dataflow")
        self._overflow = check_choice(overflow, OVERFLOW_MODES, "overflow")
        self._pipeline = check_pipeline(pipeline)
        self._unit = check_choice(unit, PRODUCT_UNITS, "unit")
        self._multiplier = check_choice(multiplier, MULTIPLIER_IMPLEMENTATIONS,
                                        "multiplier")
        self._sign = check_choice(sign, MAC_SIGN_MODES, "sign")
        if unit == "shift-add":
            for j, fmt in enumerate(self._formats):
                if not fmt.is_term_format:
                    raise ValueError(f"unit='shift-add': column {j} has weight format "
                                     f"{str(fmt)!r}, not a power-of-two family format; "
                                     "use unit='auto' or 'multiplier'")
        if k is not None:
            if isinstance(k, (bool, np.bool_)) or not isinstance(k, Integral):
                raise TypeError(f"k={k!r}: expected a positive int (the dot-product "
                                "length)")
            if k < 1:
                raise ValueError(f"k={k}: the dot-product length must be > 0")
        self._k = None if k is None else int(k)
        self._acc_bits, self._bound = self._resolve_acc_bits(acc_bits, weights)
        self._weight_bits = max(fmt.bits for fmt in self._formats)
        self._cells = self._make_cells()

        acc = signed(self._acc_bits)
        members = {
            "act": In(data.ArrayLayout(act_shape(self._act_format), self._rows)),
            "weight": In(data.ArrayLayout(unsigned(self._weight_bits), self._cols)),
            "valid": In(1),
        }
        if self._dataflow == "os":
            members["last"] = In(1)
        else:
            members.update({"first": In(1), "psum": In(data.ArrayLayout(acc, self._cols)),
                            "psum_overflow": In(unsigned(self._cols))})
        members.update({"out_valid": Out(1),
                        "out_acc": Out(data.ArrayLayout(acc, self._cols)),
                        "out_overflow": Out(unsigned(self._cols))})
        super().__init__(members)

    # --- construction helpers ---

    def _widest_product(self) -> tuple:
        """``(bits, format, (min, max))`` of the widest single product over the columns."""
        act = self._act_format
        widest = None
        for fmt in dict.fromkeys(self._formats):
            span = interval_product(act.min_level, act.max_level, fmt.min_level,
                                    fmt.max_level)
            bits = bounds.signed_width(*span)
            if widest is None or bits > widest[0]:
                widest = (bits, fmt, span)
        return widest

    def _resolve_acc_bits(self, acc_bits, weights):
        product_bits, widest_format, (lo, hi) = self._widest_product()
        if not isinstance(acc_bits, str):
            width = check_acc_bits(acc_bits)
            if weights is not None:
                raise ValueError(f"weights: only used to compute a bound; acc_bits="
                                 f"{acc_bits} is a fixed width (pass acc_bits='exact', "
                                 "'l1', ... to use them)")
            if width < product_bits:
                raise ValueError(f"acc_bits={width}: the accumulator is narrower than a "
                                 f"product ({widest_format} x {self._act_format} products "
                                 f"span [{lo}, {hi}], {product_bits} signed bits); use "
                                 f"acc_bits >= {product_bits}")
            return width, None
        method = "datatype" if acc_bits == "auto" else acc_bits
        if method not in bounds.METHODS:
            raise ValueError(f"acc_bits={acc_bits!r}: expected an int width "
                             f"{ACC_BITS.start}..{ACC_BITS.stop - 1}, 'auto' or a bound "
                             f"method ({', '.join(bounds.METHODS)})")
        if method == "datatype":
            k = self._k
            if weights is not None:
                k_weights = int(np.shape(weights)[0]) if np.ndim(weights) else 0
                if k is not None and k != k_weights:
                    raise ValueError(f"k={k} does not match the weights' K = {k_weights}")
                k = k_weights
            if not k:
                raise ValueError(f"acc_bits={acc_bits!r}: the datatype bound needs k "
                                 "(the longest dot product the array will run)")
            found = [bounds.datatype(self._act_format, fmt, k)
                     for fmt in dict.fromkeys(self._formats)]
        else:
            if weights is None:
                raise ValueError(f"acc_bits={acc_bits!r}: the {method} bound needs weights "
                                 "(the integer weight levels [K, N] of the layer)")
            uniform = len(set(self._formats)) == 1
            found = [bounds.compute(method, self._act_format,
                                    self._formats[0] if uniform else None, k=self._k,
                                    weights=weights)]
        bound = max(found, key=lambda b: b.bits)
        self._k = bound.k
        width = max(bound.bits, product_bits)
        if width > ACC_BITS.stop - 1:
            raise ValueError(f"acc_bits={acc_bits!r}: the {method} bound needs {width} "
                             f"bits (range [{bound.min}, {bound.max}]); at most "
                             f"{ACC_BITS.stop - 1} are supported")
        return width, bound

    def _make_cells(self):
        cells = {}
        for i in range(self._rows):
            for j in range(self._cols):
                fmt = self._formats[j]
                if self._dataflow == "os":
                    mac = MacPE(fmt, self._act_format, acc_bits=self._acc_bits,
                                overflow=self._overflow, pipeline=self._pipeline,
                                unit=self._unit, multiplier=self._multiplier,
                                sign=self._sign)
                    cells[i, j] = _OutputStationaryCell(
                        mac, right=j < self._cols - 1, below=i < self._rows - 1,
                        top=i == 0, track_valid=j == self._cols - 1)
                else:
                    cells[i, j] = _WeightStationaryCell(
                        fmt, self._act_format, acc_bits=self._acc_bits,
                        overflow=self._overflow, pipeline=self._pipeline, unit=self._unit,
                        multiplier=self._multiplier, sign=self._sign,
                        right=j < self._cols - 1, below=i < self._rows - 1)
        return cells

    # --- properties ---

    @property
    def rows(self) -> int:
        return self._rows

    @property
    def cols(self) -> int:
        return self._cols

    @property
    def dataflow(self) -> str:
        return self._dataflow

    @property
    def column_formats(self) -> tuple:
        return self._formats

    @property
    def act_format(self):
        return self._act_format

    @property
    def acc_bits(self) -> int:
        return self._acc_bits

    @property
    def bound(self):
        return self._bound

    @property
    def k(self):
        return self._k

    @property
    def overflow_mode(self) -> str:
        return self._overflow

    @property
    def pipeline(self) -> int:
        return self._pipeline

    @property
    def weight_bits(self) -> int:
        """Width of one ``weight`` element (the widest column format's code)."""
        return self._weight_bits

    @property
    def drain_latency(self) -> int:
        """OS: cycles from a tile's ``last`` step to its first result row."""
        return self._pipeline + self._rows + self._cols + 1

    @property
    def step_latency(self) -> int:
        """WS: cycles from a step to its result row."""
        return self._pipeline + self._rows + self._cols + 1

    @property
    def latency(self) -> int:
        return self.drain_latency if self._dataflow == "os" else self.step_latency

    @property
    def preload_cycles(self) -> int:
        """WS: cycles of weight preload before a fold's first step (``rows``); 0 for OS."""
        return self._rows if self._dataflow == "ws" else 0

    # --- cycle model ---

    def folds(self, M, K, N) -> tuple:
        """``(row_folds, reduction_folds, col_folds)`` of an ``M x K x N`` GEMM.

        OS tiles ``M`` over rows and ``N`` over columns (``K`` streams through, one
        reduction fold); WS tiles ``K`` over rows and ``N`` over columns (``M`` streams).
        """
        M, K, N = (_check_shape_argument(v, name) for v, name in ((M, "M"), (K, "K"),
                                                                  (N, "N")))
        col_folds = -(-N // self._cols)
        if self._dataflow == "os":
            return -(-M // self._rows), 1, col_folds
        return 1, -(-K // self._rows), col_folds

    def fold_period(self, M, K, N, *, feedback_delay: int = 1) -> int:
        """Cycles between the first steps of consecutive folds.

        OS: ``max(K, rows)`` (a column drains one row per cycle). WS:
        ``max(M, rows, ceil((latency + feedback_delay) / col_folds))`` -- at least
        ``M`` steps, the ``rows``-cycle preload window of the next fold, and, when ``K``
        spans several folds, time for a step's result to come back as the partial sum
        of the same step one reduction fold later (folds are issued reduction fold
        outer, column fold inner, so that is ``col_folds`` folds later).

        Parameters
        ----------
        M, K, N : int
            GEMM shape ``[M, K] @ [K, N]``.
        feedback_delay : int
            WS: cycles from a result being on ``out_acc`` to the earliest cycle the
            host can present it as ``psum`` (1: the next cycle).
        """
        _, k_folds, n_folds = self.folds(M, K, N)
        if self._dataflow == "os":
            return max(K, self._rows)
        if isinstance(feedback_delay, bool) or not isinstance(feedback_delay, Integral) \
                or feedback_delay < 1:
            raise ValueError(f"feedback_delay={feedback_delay!r}: expected an int >= 1")
        period = max(M, self._rows)
        if k_folds > 1:
            period = max(period, -(-(self.step_latency + feedback_delay) // n_folds))
        return period

    def cycles(self, M, K, N, *, feedback_delay: int = 1) -> int:
        """Exact cycles of an ``M x K x N`` GEMM, from the first input cycle to the last result.

        Folds are issued every :meth:`fold_period` cycles (idle steps fill the rest).
        With ``F`` folds and period ``P``:

        * OS: ``(F - 1) P + K + drain_latency + rows - 1``
          ``= (F - 1) P + K + 2 rows + cols + L`` -- SCALE-Sim's ``T + R + C - 2`` per
          fold becomes ``P`` per fold, plus the fill, and the ``rows`` cycles in which
          the last tile's rows leave the bottom edge.
        * WS: ``rows + (F - 1) P + M + latency``
          ``= 2 rows + cols + (F - 1) P + M + L + 1`` -- one initial preload of ``rows``
          cycles (the later ones overlap the previous fold), then SCALE-Sim's
          ``T + R + C`` per fold overlapped to ``P``.
        """
        m_folds, k_folds, n_folds = self.folds(M, K, N)
        folds = m_folds * k_folds * n_folds
        period = self.fold_period(M, K, N, feedback_delay=feedback_delay)
        if self._dataflow == "os":
            return (folds - 1) * period + K + self.drain_latency + self._rows - 1
        return self._rows + (folds - 1) * period + M + self.step_latency

    def scalesim_cycles(self, M, K, N) -> int:
        """SCALE-Sim's analytic model (BACKGROUND.md section 6), folds not overlapped.

        OS: ``folds * (K + R + C - 2)``; WS: ``folds * (2R + C + M - 2)``.
        """
        m_folds, k_folds, n_folds = self.folds(M, K, N)
        folds = m_folds * k_folds * n_folds
        R, C = self._rows, self._cols
        if self._dataflow == "os":
            return folds * (K + R + C - 2)
        return folds * (2 * R + C + M - 2)

    def utilization(self, M, K, N, **kwargs) -> float:
        """``M K N / (cycles * rows * cols)``: the share of peak MACs done."""
        return M * K * N / (self.cycles(M, K, N, **kwargs) * self._rows * self._cols)

    # --- elaboration ---

    def elaborate(self, platform):
        m = Module()
        for (i, j), cell in self._cells.items():
            m.submodules[f"pe_{i}_{j}"] = cell
        if self._dataflow == "os":
            self._elaborate_os(m)
        else:
            self._elaborate_ws(m)
        return m

    def _column_weight(self, j):
        return self.weight[j][:self._formats[j].bits]

    def _deskew_outputs(self, m, bottom_acc, bottom_overflow):
        """Delay column ``j``'s bottom edge by ``cols - 1 - j`` so rows leave aligned."""
        last = self._cols - 1
        for j in range(self._cols):
            m.d.comb += [
                self.out_acc[j].eq(_shift_line(m, bottom_acc[j], last - j, f"out_acc{j}")),
                self.out_overflow[j].eq(_shift_line(m, bottom_overflow[j], last - j,
                                                    f"out_overflow{j}")),
            ]

    def _elaborate_os(self, m):
        R, C, cells = self._rows, self._cols, self._cells
        for i in range(R):
            # Row i waits 2i + 1 cycles: weights take two registers per row.
            stages = 2 * i + 1
            first = cells[i, 0]
            m.d.comb += [
                first.act_in.eq(_shift_line(m, self.act[i], stages, f"act{i}")),
                first.valid_in.eq(_shift_line(m, self.valid, stages, f"valid{i}")),
                first.last_in.eq(_shift_line(m, self.last, stages, f"last{i}")),
            ]
            for j in range(1, C):
                left, cell = cells[i, j - 1], cells[i, j]
                m.d.comb += [cell.act_in.eq(left.act_out), cell.valid_in.eq(left.valid_out),
                             cell.last_in.eq(left.last_out)]
        for j in range(C):
            m.d.comb += cells[0, j].weight_in.eq(
                _shift_line(m, self._column_weight(j), j + 1, f"weight{j}"))
            for i in range(1, R):
                above, cell = cells[i - 1, j], cells[i, j]
                m.d.comb += [cell.weight_in.eq(above.weight_out),
                             cell.drain_in.eq(above.drain_out),
                             cell.drain_overflow_in.eq(above.drain_overflow_out)]
                if j == C - 1:
                    m.d.comb += cell.drain_valid_in.eq(above.drain_valid_out)
        bottom = [cells[R - 1, j] for j in range(C)]
        self._deskew_outputs(m, [c.drain_out for c in bottom],
                             [c.drain_overflow_out for c in bottom])
        m.d.comb += self.out_valid.eq(bottom[-1].drain_valid_out)

    def _elaborate_ws(self, m):
        R, C, L, cells = self._rows, self._cols, self._pipeline, self._cells
        for i in range(R):
            first_cell = cells[i, 0]
            # The load token runs one register ahead of the activation it marks.
            m.d.comb += [
                first_cell.act_in.eq(_shift_line(m, self.act[i], i + 2, f"act{i}")),
                first_cell.load_in.eq(_shift_line(m, self.first, i + 1, f"load{i}")),
            ]
            for j in range(1, C):
                left, cell = cells[i, j - 1], cells[i, j]
                m.d.comb += [cell.act_in.eq(left.act_out), cell.load_in.eq(left.load_out)]
        for j in range(C):
            top = cells[0, j]
            m.d.comb += [
                top.weight_in.eq(_shift_line(m, self._column_weight(j), j, f"weight{j}")),
                # Partial sums meet row 0's product L + 2 + j cycles after the step.
                top.psum_in.eq(_shift_line(m, self.psum[j], j + 2 + L, f"psum{j}")),
                top.psum_overflow_in.eq(_shift_line(m, self.psum_overflow[j], j + 2 + L,
                                                    f"psum_overflow{j}")),
            ]
            for i in range(1, R):
                above, cell = cells[i - 1, j], cells[i, j]
                m.d.comb += [cell.weight_in.eq(above.weight_out),
                             cell.psum_in.eq(above.psum_out),
                             cell.psum_overflow_in.eq(above.psum_overflow_out)]
        bottom = [cells[R - 1, j] for j in range(C)]
        self._deskew_outputs(m, [c.psum_out for c in bottom],
                             [c.psum_overflow_out for c in bottom])
        m.d.comb += self.out_valid.eq(_shift_line(m, self.valid, self.step_latency,
                                                  "out_valid"))

    # --- metadata ---

    def _protocol(self) -> dict:
        R = self._rows
        if self._dataflow == "os":
            return {
                "step": "act[i] = A[m0 + i, k], weight[j] = W[k, n0 + j], valid = 1; "
                        "last = 1 on the tile's final step",
                "drain": "shift-out: per-column chain of drain registers towards the "
                         "bottom edge, filled when a tile ends; row i of the tile leaves "
                         "drain_latency + i cycles after its last step",
                "drain_latency": self.drain_latency,
                "min_tile_cycles": R,
                "output_row_order": "tile rows 0 .. rows-1 on consecutive cycles",
            }
        return {
            "preload": "weight[j] = W[k0 + rows - 1 - p, n0 + j] in cycle "
                       "t_first - rows + p, p = 0 .. rows-1 (may overlap the previous fold)",
            "step": "act[i] = A[m, k0 + i], psum[j] / psum_overflow[j] = partial result "
                    "to continue from, valid = 1; first = 1 on the fold's first step",
            "step_latency": self.step_latency,
            "preload_cycles": R,
        }

    def metadata(self) -> dict:
        from .export import signature_ports
        formats = [str(fmt) for fmt in self._formats]
        columns = []
        for j in range(self._cols):
            unit_meta = self._cells[0, j].product_unit.metadata()
            columns.append({"weight": formats[j], "unit": unit_meta["unit"],
                            "multiplier": unit_meta.get("implementation")})
        bound = None
        if self._bound is not None:
            bound = {"method": self._bound.method, **self._bound.to_dict(),
                     "k": int(self._bound.k),
                     "widened_to_product": self._acc_bits > self._bound.bits}
        return {
            "kind": "systolic_array",
            "rows": self._rows,
            "cols": self._cols,
            "dataflow": self._dataflow,
            "weight": formats[0] if len(set(formats)) == 1 else formats,
            "act": str(self._act_format),
            "acc_bits": self._acc_bits,
            "overflow": self._overflow,
            "pipeline": self._pipeline,
            "sign": self._sign,
            "k": self._k,
            "bound": bound,
            "latency": self.latency,
            "columns": columns,
            "protocol": self._protocol(),
            "ports": signature_ports(self),
        }


# --- MSQ mixed arrays ------------------------------------------------------------------

def msq_column_formats(cols, uniform_columns, uniform="int4", sp2="sp2-4") -> list:
    """Column formats of an MSQ array: ``uniform_columns`` multiplier columns first.

    Parameters
    ----------
    cols : int
        Array columns.
    uniform_columns : int
        How many columns hold the uniform format (multiplier PEs), 0..cols; they are
        columns ``0 .. uniform_columns - 1``, the rest hold ``sp2`` (shift-add PEs).
    uniform, sp2 : str or Format
        The two formats (MSQ's defaults: ``int4`` on DSP, ``sp2-4`` in LUTs).
    """
    cols = _check_dimension(cols, "cols")
    if isinstance(uniform_columns, bool) or not isinstance(uniform_columns, Integral) \
            or not 0 <= uniform_columns <= cols:
        raise ValueError(f"uniform_columns={uniform_columns!r}: expected an int 0..{cols}")
    u, s = check_weight_format(uniform, "uniform"), check_weight_format(sp2, "sp2")
    return [u] * int(uniform_columns) + [s] * (cols - int(uniform_columns))


@dataclass(frozen=True, eq=False)
class ColumnMap:
    """Where each output channel sits on an array with per-column formats.

    The layer's ``N`` output channels are spread over ``folds`` column folds of the
    array; slot ``s = fold * cols + j`` is column ``j`` of fold ``fold``. Feed the array
    the weight matrix :meth:`codes` (``[K, folds * cols]``, slot order) and undo the
    permutation of its results with :meth:`unpack`.

    Members
    -------
    slots : ndarray of int64, shape [folds * cols]
        The channel in each slot, ``-1`` for an idle (padding) slot.
    column_formats : tuple of Format
        The array's column formats.
    channel_formats : tuple of Format
        The format of each channel.
    """

    slots: np.ndarray
    column_formats: tuple
    channel_formats: tuple

    @property
    def cols(self) -> int:
        return len(self.column_formats)

    @property
    def folds(self) -> int:
        return self.slots.size // self.cols

    @property
    def slot_formats(self) -> tuple:
        """The format of every slot (its column's format)."""
        return self.column_formats * self.folds

    def codes(self, channel_codes) -> np.ndarray:
        """The array's weight codes ``[K, folds * cols]`` from per-channel codes.

        Parameters
        ----------
        channel_codes : array of int, shape [N, K], or potgen.quantize.MsqSplit
            Row ``n`` holds channel ``n``'s codes in its own format (MSQ's ``[out, in]``
            layout); an :class:`~potgen.quantize.MsqSplit` gives them directly. Idle
            slots get code 0.
        """
        if hasattr(channel_codes, "sp2_rows"):
            channel_codes = msq_channel_codes(channel_codes)
        w = np.asarray(channel_codes)
        if w.ndim != 2 or w.shape[0] != len(self.channel_formats):
            raise ValueError(f"channel_codes must have shape [N={len(self.channel_formats)}"
                             f", K], got {w.shape}")
        out = np.zeros((w.shape[1], self.slots.size), dtype=np.int64)
        used = self.slots >= 0
        out[:, used] = w[self.slots[used]].T
        return out

    def unpack(self, results) -> np.ndarray:
        """Per-channel results ``[..., N]`` from the array's slot-ordered ``[..., slots]``."""
        r = np.asarray(results)
        if r.shape[-1] != self.slots.size:
            raise ValueError(f"results must have {self.slots.size} slots on the last "
                             f"axis, got shape {r.shape}")
        order = np.empty(len(self.channel_formats), dtype=np.int64)
        used = np.nonzero(self.slots >= 0)[0]
        order[self.slots[used]] = used
        return r[..., order]


def msq_channel_codes(split) -> np.ndarray:
    """Every output channel's codes ``[N, K]`` (each in its own format) from an MSQ split."""
    mask = np.asarray(split.sp2_rows, dtype=bool)
    codes = np.zeros((mask.size, split.uniform_codes.shape[1]), dtype=np.int64)
    codes[~mask] = split.uniform_codes
    codes[mask] = split.sp2_codes
    return codes


def msq_column_map(split, column_formats) -> ColumnMap:
    """Place an MSQ row split (rows = output channels) onto an array's columns.

    Uniform channels go to columns holding ``split.uniform_format``, SP2 channels to
    columns holding ``split.sp2_format``, each group in ascending channel order,
    filling fold after fold; a fold with fewer channels of a kind than columns of that
    kind leaves those slots idle. The number of folds is the least that holds both
    groups.

    Parameters
    ----------
    split : potgen.quantize.MsqSplit
        The quantizer's split (``split.sp2_rows`` marks the SP2 output channels).
    column_formats : sequence of str or Format
        The array's column formats (:attr:`SystolicArray.column_formats`).

    Returns
    -------
    ColumnMap
    """
    cols = len(column_formats)
    formats = tuple(check_weight_format(f, f"column_formats[{j}]")
                    for j, f in enumerate(column_formats))
    mask = np.asarray(split.sp2_rows, dtype=bool)
    groups = {}
    for kind, fmt, channels in (("uniform", split.uniform_format, np.nonzero(~mask)[0]),
                                ("sp2", split.sp2_format, np.nonzero(mask)[0])):
        columns = [j for j, f in enumerate(formats) if f == fmt]
        if channels.size and not columns:
            raise ValueError(f"column_formats has no {fmt} column for the split's "
                             f"{channels.size} {kind} channel(s)")
        groups[kind] = (columns, channels)
    folds = max([1] + [-(-channels.size // len(columns))
                       for columns, channels in groups.values() if channels.size])
    slots = np.full(folds * cols, -1, dtype=np.int64)
    for columns, channels in groups.values():
        for index, channel in enumerate(channels):
            fold, column = divmod(index, len(columns))
            slots[fold * cols + columns[column]] = channel
    channel_formats = tuple(split.sp2_format if s else split.uniform_format for s in mask)
    slots.setflags(write=False)
    return ColumnMap(slots, formats, channel_formats)
