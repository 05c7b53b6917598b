"""Formal equivalence of packed product units against ``k`` separate multiplications.

:func:`prove_packed_equivalence` proves with yosys ``sat`` that a
:class:`~potgen.hw.packed_product.PackedProduct`'s emitted Verilog gives, in every lane
and for every input, exactly the product a separate Verilog ``*`` gives.
:func:`potgen.flow.formal.prove_product_equivalence` proves one-lane units; its miter
has one ``product`` port and one activation, so packed units get their own miter here,
built from the same independent reference
(:func:`potgen.flow.formal.reference_verilog`, a ``case`` table of the weight format's
levels and a two's complement ``act * level``), instantiated once per lane:

* ``shared-weight``: reference ``i`` multiplies lane ``i`` of ``act`` by ``weight``;
* ``shared-act``: reference ``i`` multiplies ``act`` by lane ``i`` of ``weight``.

The miter's ``ok`` is 1 when every lane of the unit's ``product``, sign-extended to the
reference's width (so a lane one bit too narrow fails), equals its reference.

Cases: with ``split="shared"`` there is one ``sat -prove`` per value of the shared
operand (the weight code, or the activation), all in one yosys run. The values
partition the input space, so together the cases still prove every input; each case
reduces the multiplier to a constant multiplication, which SAT handles far faster than
a general ``18 x W`` product. ``split="none"`` proves everything at once.

Pipelined units (``latency`` L > 0) are proved as sequential circuits over L + 1 steps
from an unconstrained initial state with ``rst`` low, the reference delayed by L
registers, as :mod:`potgen.flow.formal` does.
"""

from __future__ import annotations

import re
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ToolError
from ..formats import IntFormat
from . import tools
from .formal import reference_verilog

__all__ = ["PackedCounterexample", "PackedEquivalenceResult", "NotEquivalent",
           "packed_miter_verilog", "prove_packed_equivalence", "prove_many", "SPLITS"]

#: Values of ``split=``.
SPLITS = ("shared", "none")

_UNIT = "potgen_packed_product"
_CASE = "potgen-packed-case"
_MODEL_ROW = re.compile(r"^\s*(?:(\d+)\s+)?\\(\w+)\s+\S+\s+\S+\s+([01xz]+)\s*$")


@dataclass(frozen=True)
class PackedCounterexample:
    """Inputs on which a lane of the unit differs from its separate multiplication.

    Members
    -------
    act : int
        The ``act`` input (all lanes, as a bit pattern).
    weight : int
        The ``weight`` input (as a bit pattern).
    lane : int
        The first lane that differs.
    expected, got : int
        That lane's reference product and the unit's.
    """

    act: int
    weight: int
    lane: int
    expected: int
    got: int

    def __str__(self):
        return (f"act=0x{self.act:x}, weight=0x{self.weight:x}: lane {self.lane} gives "
                f"{self.got}, a separate multiplication {self.expected}")


@dataclass(frozen=True)
class PackedEquivalenceResult:
    """Outcome of :func:`prove_packed_equivalence`.

    Members
    -------
    unit : str
    proved : bool
    counterexample : PackedCounterexample or None
    seconds : float
    cases : int
        ``sat`` proofs run.
    split : str
    log : str
    """

    unit: str
    proved: bool
    counterexample: PackedCounterexample | None
    seconds: float
    cases: int
    split: str
    log: str = field(repr=False)

    def summary(self) -> str:
        if self.proved:
            return (f"{self.unit}: every lane equals a separate multiplication "
                    f"({self.cases} sat proof(s), {self.seconds:.1f} s)")
        return f"{self.unit}: NOT equivalent: {self.counterexample}"


class NotEquivalent(AssertionError):
    """A packed unit differs from separate multiplications (raised by ``check=True``)."""

    def __init__(self, result: PackedEquivalenceResult):
        self.result = result
        super().__init__(result.summary())


def _describe(unit) -> str:
    plan = unit.plan
    extra = f", latency {unit.latency}" if unit.latency else ""
    return (f"PackedProduct({plan.weight}, {plan.act}, lanes={plan.lanes}, "
            f"{plan.arrangement}{extra})")


def packed_miter_verilog(unit) -> tuple:
    """The miter (reference module, then ``potgen_packed_miter``) and its output widths.

    Returns ``(text, reference_bits)``; the unit's module must be ``potgen_packed_product``.
    """
    plan = unit.plan
    act, weight, k = plan.act, plan.weight, plan.lanes
    ref_text, ref_bits = reference_verilog(weight, act, style="signed")
    p = plan.product_bits
    if plan.arrangement == "shared-weight":
        act_bits, weight_bits = k * act.bits, weight.bits

        def lane_inputs(i):
            return f"act[{(i + 1) * act.bits - 1}:{i * act.bits}]", "weight"
    else:
        act_bits, weight_bits = act.bits, k * weight.bits

        def lane_inputs(i):
            return "act", f"weight[{(i + 1) * weight.bits - 1}:{i * weight.bits}]"
    latency = unit.latency
    clocking = ", .clk(clk), .rst(rst)" if latency else ""
    inputs = ["act", "weight"] + (["clk", "rst"] if latency else [])
    lines = [ref_text,
             f"module potgen_packed_miter({', '.join(inputs)}, ok, unit_lanes, "
             "reference_lanes);",
             f"  input [{act_bits - 1}:0] act;",
             f"  input [{weight_bits - 1}:0] weight;"]
    if latency:
        lines += ["  input clk;", "  input rst;"]
    lines += ["  output ok;",
              f"  output [{k * ref_bits - 1}:0] unit_lanes;",
              f"  output [{k * ref_bits - 1}:0] reference_lanes;",
              f"  wire [{k * p - 1}:0] product;",
              f"  {_UNIT} unit (.act(act), .weight(weight), .product(product){clocking});"]
    for i in range(k):
        a, w = lane_inputs(i)
        lines += [f"  wire [{ref_bits - 1}:0] reference_now{i};",
                  f"  potgen_reference reference{i} (.act({a}), .weight({w}), "
                  f".product(reference_now{i}));"]
        previous = f"reference_now{i}"
        for stage in range(latency):
            lines += [f"  reg [{ref_bits - 1}:0] reference{i}_stage{stage};",
                      f"  always @(posedge clk) reference{i}_stage{stage} <= {previous};"]
            previous = f"reference{i}_stage{stage}"
        hi, lo = (i + 1) * ref_bits - 1, i * ref_bits
        lines += [f"  wire signed [{ref_bits - 1}:0] unit_lane{i} = "
                  f"$signed(product[{(i + 1) * p - 1}:{i * p}]);",
                  f"  assign unit_lanes[{hi}:{lo}] = unit_lane{i};",
                  f"  assign reference_lanes[{hi}:{lo}] = {previous};"]
    lines += ["  assign ok = unit_lanes == reference_lanes;", "endmodule"]
    return "\n".join(lines) + "\n", ref_bits


def _split_values(unit) -> tuple:
    """(input name, values) of the shared operand's cases."""
    plan = unit.plan
    if plan.arrangement == "shared-weight":
        return "weight", range(1 << plan.weight.bits)
    return "act", range(1 << plan.act.bits)


def _unit_script(unit, index: int, split: str) -> tuple:
    """(files, script lines, case count) proving one unit, its files suffixed ``index``."""
    from ..hw.export import emit
    from ..hw.packed_product import PackedProduct

    if not isinstance(unit, PackedProduct):
        raise TypeError(f"unit: expected a PackedProduct, got {type(unit).__name__}")
    if not isinstance(unit.plan.act, IntFormat):
        raise TypeError("the activation format must be intN / uintN")
    verilog, _ = emit(unit, _UNIT)
    miter, _ = packed_miter_verilog(unit)
    latency = unit.latency
    name, values = _split_values(unit)
    cases = list(values) if split == "shared" else [None]
    files = {f"unit{index}.v": verilog, f"miter{index}.v": miter}
    script = ["design -reset", f"read_verilog unit{index}.v", f"read_verilog miter{index}.v",
              "hierarchy -check -top potgen_packed_miter", "proc -norom", "flatten",
              "dffunmap", "opt -fast"]
    show = "-show act,weight,unit_lanes,reference_lanes"
    for value in cases:
        if latency:
            fix = f" -set-at 1 {name} {value}" if value is not None else ""
            cmd = (f"sat -seq {latency + 1} -prove-skip {latency} -set rst 0{fix} "
                   f"-prove ok 1 {show}")
        else:
            fix = f" -set {name} {value}" if value is not None else ""
            cmd = f"sat{fix} -prove ok 1 {show}"
        script += [f"log {_CASE} {index} {'all' if value is None else value}", cmd]
    return files, script, len(cases)


def prove_packed_equivalence(unit, *, split: str = "shared", check: bool = True,
                             timeout: float | None = 3600,
                             keep: str | Path | None = None) -> PackedEquivalenceResult:
    """Prove every lane of a packed product unit equal to a separate ``*`` for all inputs.

    Parameters
    ----------
    unit : potgen.hw.packed_product.PackedProduct
    split : ``"shared"`` or ``"none"``
        One proof per value of the shared operand, or one proof over all inputs.
    check : bool
        Raise :class:`NotEquivalent` on a counterexample (default).
    timeout : float or None
        Seconds before yosys is stopped (:class:`~potgen.errors.ToolError`).
    keep : path-like or None
        Folder to keep the Verilog, the script and the log in.

    Returns
    -------
    PackedEquivalenceResult
    """
    return prove_many([unit], split=split, check=check, timeout=timeout, keep=keep)[0]


def prove_many(units, *, split: str = "shared", check: bool = True,
               timeout: float | None = 3600, keep: str | Path | None = None) -> list:
    """:func:`prove_packed_equivalence` for several units in one yosys run.

    The WebAssembly yosys takes about a second to start; one run for many units saves
    that per unit. Returns one :class:`PackedEquivalenceResult` per unit, in order
    (``seconds`` is the shared run's time divided evenly); with ``check`` the first
    counterexample raises :class:`NotEquivalent`.
    """
    start = time.monotonic()
    if split not in SPLITS:
        raise ValueError(f"split={split!r}: allowed {', '.join(map(repr, SPLITS))}")
    units = list(units)
    if not units:
        raise ValueError("units: nothing to prove")
    files, script, counts = {}, [], []
    for index, unit in enumerate(units):
        unit_files, unit_script, count = _unit_script(unit, index, split)
        files.update(unit_files)
        script += unit_script
        counts.append(count)

    with tempfile.TemporaryDirectory(prefix="potgen-formal-packed-") as tmp:
        folder = Path(keep) if keep is not None else Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        for file_name, text in files.items():
            (folder / file_name).write_text(text)
        (folder / "prove.ys").write_text("\n".join(script) + "\n")
        tools.run("yosys", ["-q", "-l", "prove.log", "prove.ys"], cwd=folder,
                  timeout=timeout)
        log = (folder / "prove.log").read_text()

    pieces = log.split(_CASE)[1:]
    if len(pieces) != sum(counts):
        raise ToolError("yosys", f"expected {sum(counts)} sat results, found {len(pieces)}")
    seconds = (time.monotonic() - start) / len(units)
    results, position = [], 0
    for unit, count in zip(units, counts):
        counterexample = None
        for piece in pieces[position:position + count]:
            model = _parse_case(piece, unit.latency)
            if model is not None:
                counterexample = _counterexample(model, unit)
                break
        position += count
        result = PackedEquivalenceResult(_describe(unit), counterexample is None,
                                         counterexample, seconds, count,
                                         split if count > 1 else "none", log)
        if check and not result.proved:
            raise NotEquivalent(result)
        results.append(result)
    return results


def _parse_case(text: str, latency: int) -> dict | None:
    if "SUCCESS!" in text:
        return None
    if "FAIL!" not in text:
        raise ToolError("yosys", "sat printed neither SUCCESS nor FAIL: "
                        + " | ".join(text.strip().splitlines()[-6:]))
    model = {}
    for line in text.splitlines():
        m = _MODEL_ROW.match(line)
        if not m:
            continue
        step = int(m[1]) if m[1] else 1
        name, bits = m[2], m[3]
        if step == (1 if name in ("act", "weight") else latency + 1):
            model[name] = bits
    return model


def _signed(bits: str) -> int:
    value = int(bits, 2)
    return value - (1 << len(bits)) if bits[0] == "1" else value


def _counterexample(model: dict, unit) -> PackedCounterexample:
    missing = {"act", "weight", "unit_lanes", "reference_lanes"} - set(model)
    if missing or any(set(b) - {"0", "1"} for b in model.values()):
        raise ToolError("yosys", f"could not read the counterexample ({model})")
    k = unit.plan.lanes
    width = len(model["unit_lanes"]) // k
    got_all, ref_all = model["unit_lanes"], model["reference_lanes"]
    for lane in range(k):
        # Bit strings are MSB first: lane i sits at the end minus i widths.
        end = len(got_all) - lane * width
        got = _signed(got_all[end - width:end])
        expected = _signed(ref_all[end - width:end])
        if got != expected:
            return PackedCounterexample(int(model["act"], 2), int(model["weight"], 2),
                                        lane, expected, got)
    raise ToolError("yosys", f"sat reported a failure but every lane agrees ({model})")
