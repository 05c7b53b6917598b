"""The cocotb runner helper (sim/runner.py) on a small design of its own.

The design under test is a registered adder defined here; its bench
(``sim/tests/runner_bench.py``) checks it against a scalar model, and its ``bias``
setting makes that bench fail on purpose, which must fail the calling test.
"""

import json
import re

import pytest
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from potgen.errors import ToolError
from sim import runner

BENCH = "sim.tests.runner_bench"


class AddCount(wiring.Component):
    """``total = a + b`` (combinational) and ``count`` of the cycles with ``en``."""

    def __init__(self, count_bits=8):
        self.count_bits = count_bits
        super().__init__({"a": In(8), "b": In(8), "en": In(1), "total": Out(9),
                          "count": Out(count_bits)})

    def elaborate(self, platform):
        m = Module()
        m.d.comb += self.total.eq(self.a + self.b)
        with m.If(self.en):
            m.d.sync += self.count.eq(self.count + 1)
        return m


VERILOG_ADDCOUNT = """
module addcount_text(clk, rst, a, b, en, total, count);
  input clk, rst, en;
  input [7:0] a, b;
  output [8:0] total;
  output reg [7:0] count;
  assign total = a + b;
  always @(posedge clk)
    if (rst) count <= 8'd0;
    else if (en) count <= count + 8'd1;
endmodule
"""

verilator = pytest.mark.skipif(runner.unavailable("verilator") is not None,
                               reason=f"verilator: {runner.unavailable('verilator')}")


@pytest.fixture(scope="module")
def addcount():
    return runner.build(AddCount(), "addcount")


# --- building -------------------------------------------------------------------------

@verilator
def test_build_folder_is_keyed_by_simulator_top_and_hash(addcount):
    assert addcount.folder.parent == runner.BUILD_ROOT / "verilator"
    assert re.fullmatch(r"addcount-[0-9a-f]{16}", addcount.folder.name)
    assert addcount.verilog == addcount.folder / "addcount.v"
    assert "module addcount(" in addcount.verilog.read_text()
    stamp = json.loads((addcount.folder / "potgen-build.json").read_text())
    assert stamp["simulator"] == "verilator" and stamp["top"] == "addcount"


@verilator
def test_unchanged_design_reuses_its_build(addcount):
    again = runner.build(AddCount(), "addcount")
    assert again.reused and again.folder == addcount.folder and again.seconds == 0


@verilator
def test_changed_design_gets_its_own_folder(addcount, tmp_path):
    other = runner.build(AddCount(count_bits=7), "addcount", build_root=tmp_path)
    assert not other.reused and other.folder.parent == tmp_path / "verilator"
    assert other.folder.name != addcount.folder.name
    # Verilator's run-time library came from the shared cache: only the model and
    # cocotb's main file were compiled.
    log = (other.folder / "build.log").read_text()
    assert "verilated_vpi.cpp" not in log and "Vtop__ALL.cpp" in log


def test_build_options_are_validated():
    with pytest.raises(ValueError, match="simulator 'vcs'"):
        runner.build(VERILOG_ADDCOUNT, "addcount_text", simulator="vcs")
    with pytest.raises(ValueError, match="opt '-O3'"):
        runner.build(VERILOG_ADDCOUNT, "addcount_text", opt="-O3")
    with pytest.raises(ValueError, match="not a Verilog module name"):
        runner.build(VERILOG_ADDCOUNT, "1top")
    with pytest.raises(ValueError, match="defines no module 'other'"):
        runner.build(VERILOG_ADDCOUNT, "other")
    with pytest.raises(TypeError, match="Verilog text or an Amaranth Elaboratable"):
        runner.verilog_of(42, "top")


@verilator
def test_a_build_error_raises_tool_error_with_the_log(tmp_path):
    broken = "module broken(a, y);\n  input a;\n  output y;\n  assign y = a +;\nendmodule\n"
    with pytest.raises(ToolError, match="build of broken failed") as info:
        runner.build(broken, "broken", build_root=tmp_path)
    assert "syntax error" in str(info.value)


# --- running --------------------------------------------------------------------------

@verilator
def test_passing_bench(addcount):
    result = runner.simulate(addcount, BENCH, config={"seed": 3, "vectors": 400})
    assert result.passed and result.module == BENCH
    assert [(o.name, o.status) for o in result.outcomes] == [
        ("adder_and_counter", "passed"), ("reads_ports", "passed")]
    assert result.outcomes[0].sim_time_ns > 400
    assert result.results_xml.is_file() and result.log.is_file()


@verilator
def test_failing_bench_fails_the_test(addcount):
    config = {"seed": 3, "vectors": 50, "bias": 1}
    with pytest.raises(runner.SimulationFailed, match="adder_and_counter FAILED: 50 mismatches"):
        runner.simulate(addcount, BENCH, config=config)
    result = runner.simulate(addcount, BENCH, config=config, check=False)
    assert not result.passed
    assert [o.name for o in result.failures] == ["adder_and_counter"]
    assert "total" in result.failures[0].message


@verilator
def test_one_testcase_only(addcount):
    result = runner.simulate(addcount, BENCH, testcase="reads_ports")
    assert [o.name for o in result.outcomes] == ["reads_ports"]


@verilator
def test_missing_bench_module_is_an_abnormal_end(addcount):
    result = runner.simulate(addcount, "sim.tests.no_such_bench", check=False)
    assert not result.passed and result.outcomes == ()
    assert "ended abnormally" in result.report()
    with pytest.raises(ValueError, match="not an importable module name"):
        runner.simulate(addcount, "sim/tests/runner_bench.py")


@pytest.mark.parametrize("simulator", runner.simulators())
def test_verilog_text_on_every_simulator(simulator):
    result = runner.run(VERILOG_ADDCOUNT, "addcount_text", BENCH, simulator=simulator,
                        config={"seed": 5, "vectors": 300})
    assert result.passed and result.build.simulator == simulator


# --- simulators and bundles -------------------------------------------------------------

def test_simulator_parameters():
    params = runner.simulators()
    assert [p.values[0] for p in params] == list(runner.SIMULATORS)
    for p in params:
        reason = runner.unavailable(p.values[0])
        skips = [m for m in p.marks if m.name == "skip"]
        assert bool(skips) == (reason is not None)
        assert any(m.name == p.values[0] for m in p.marks)
    assert set(runner.available_simulators()) <= set(runner.SIMULATORS)
    with pytest.raises(ValueError, match="allowed verilator, icarus"):
        runner.unavailable("xcelium")


def test_ports_of_amaranth_verilog():
    text = runner.verilog_of(AddCount(), "addcount")
    ports = {p.name: (p.direction, p.width) for p in runner.ports(text, "addcount")}
    assert ports == {"clk": ("input", 1), "rst": ("input", 1), "a": ("input", 8),
                     "b": ("input", 8), "en": ("input", 1), "total": ("output", 9),
                     "count": ("output", 8)}
    with pytest.raises(ValueError, match="no module 'nope'"):
        runner.ports(text, "nope")


def _module(name, act_bits, out_bits):
    return (name, f"module {name}(act, out);\n  input [{act_bits - 1}:0] act;\n"
                  f"  output [{out_bits - 1}:0] out;\n  assign out = act;\nendmodule\n")


def test_bundle_shares_inputs_and_concatenates_outputs():
    top = runner.bundle([_module("narrow", 4, 5), _module("wide", 8, 9),
                         _module("single", 1, 1)], "both")
    assert top.inputs == {"act": 8}
    assert top.outputs == {"out": 15}
    assert top.layout == {"narrow": {"out": (0, 5)}, "wide": {"out": (5, 9)},
                          "single": {"out": (14, 1)}}
    assert "narrow u_narrow (.act(act[3:0]), .out(out[4:0]));" in top.verilog
    assert "wide u_wide (.act(act[7:0]), .out(out[13:5]));" in top.verilog
    assert "single u_single (.act(act[0:0]), .out(out[14:14]));" in top.verilog
    assert top.verilog.count("module ") == 4


def test_bundle_refuses_ambiguous_designs():
    with pytest.raises(ValueError, match="distinct"):
        runner.bundle([_module("a", 4, 4), _module("a", 4, 4)], "top")
    with pytest.raises(ValueError, match="distinct"):
        runner.bundle([_module("top", 4, 4)], "top")
    clash = ("c", "module c(out, y);\n  input [3:0] out;\n  output y;\nendmodule\n")
    with pytest.raises(ValueError, match="inputs of one module and outputs of another"):
        runner.bundle([_module("a", 4, 4), clash], "top")
    with pytest.raises(ValueError, match="at least one module"):
        runner.bundle([], "top")
