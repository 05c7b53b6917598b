"""Stand-alone Verilator executables (potgen.flow.verilator_harness): names, caching, errors."""

from __future__ import annotations

import subprocess
import threading

import pytest

from potgen.errors import ToolError
from potgen.flow import verilator_harness as vh

COUNTER = """
module counter(clk, rst, step, value);
  input clk; input rst; input [7:0] step;
  output reg [15:0] value = 0;
  always @(posedge clk) value <= rst ? 16'd0 : value + step;
endmodule
"""

# Counts with the step from the command line for N cycles and prints the value; the
# port names come from the generated header, as in potgen's real harnesses.
MAIN = """
#include <cstdio>
#include <cstdlib>
#include "Vdut.h"
#include "verilated.h"
#include "ports.h"
int main(int argc, char** argv) {
    Vdut dut;
    dut.P_RST = 1; dut.P_CLK = 0; dut.eval();
    dut.P_CLK = 1; dut.eval(); dut.P_CLK = 0; dut.P_RST = 0;
    dut.P_STEP = std::atoi(argv[1]);
    for (int i = 0; i < CYCLES; ++i) { dut.P_CLK = 0; dut.eval(); dut.P_CLK = 1; dut.eval(); }
    std::printf("%d\\n", (int)dut.P_VALUE);
    return 0;
}
"""

HEADER = vh.port_header({"P_CLK": "clk", "P_RST": "rst", "P_STEP": "step",
                         "P_VALUE": "value", "CYCLES": 10})


def _run(build, step):
    out = subprocess.run([str(build.executable), str(step)], capture_output=True, text=True,
                         check=True, timeout=60)
    return int(out.stdout)


def test_cpp_names_follow_verilators_escaping():
    assert vh.cpp_name("busy") == "busy"
    assert vh.cpp_name("cmd__valid") == "cmd___05Fvalid"
    assert vh.cpp_name("a___b") == "a___05F_b"
    assert vh.cpp_name("a____b") == "a___05F___05Fb"
    assert vh.cpp_name("x$y") == "x__024y"
    assert vh.cpp_name("_x") == "_x"
    with pytest.raises(ValueError, match="not a plain Verilog identifier"):
        vh.cpp_name("1abc")


def test_port_header():
    text = vh.port_header({"P_VALID": "cmd__valid", "WORDS": 3})
    assert "#define P_VALID cmd___05Fvalid\n" in text
    assert "#define WORDS 3\n" in text
    with pytest.raises(ValueError, match="macro 'bad'"):
        vh.port_header({"bad": "x"})
    with pytest.raises(TypeError, match="macro P_X"):
        vh.port_header({"P_X": 1.5})


def test_harness_sources_are_shipped():
    for name in ("accelerator_main.cpp", "uart_main.cpp", "potgen_io.h"):
        assert "potgen" in vh.harness_source(name)
    with pytest.raises(ValueError, match="no such harness source; known: "
                                         "accelerator_main.cpp"):
        vh.harness_source("nope.cpp")
    with pytest.raises(ValueError, match="expected the file name"):
        vh.harness_source("../errors.py")


@pytest.mark.verilator
def test_build_runs_and_second_build_is_a_cache_hit(tmp_path):
    first = vh.build(COUNTER, "counter", MAIN, headers={"ports.h": HEADER}, root=tmp_path)
    assert not first.cached and first.seconds > 0
    assert first.executable.is_file() and first.folder.parent == tmp_path
    assert _run(first, 3) == 30 and _run(first, 200) == 2000
    again = vh.build(COUNTER, "counter", MAIN, headers={"ports.h": HEADER}, root=tmp_path)
    assert again.cached and again.seconds == 0 and again.executable == first.executable
    # Anything that changes the executable changes the build folder.
    header = vh.port_header({"P_CLK": "clk", "P_RST": "rst", "P_STEP": "step",
                             "P_VALUE": "value", "CYCLES": 7})
    other = vh.build(COUNTER, "counter", MAIN, headers={"ports.h": header}, root=tmp_path)
    assert not other.cached and other.folder != first.folder
    assert _run(other, 3) == 21
    # An interrupted build (no stamp) is started over, not reused.
    (first.folder / "potgen-harness.json").unlink()
    redo = vh.build(COUNTER, "counter", MAIN, headers={"ports.h": HEADER}, root=tmp_path)
    assert not redo.cached and _run(redo, 1) == 10


@pytest.mark.verilator
def test_concurrent_builds_of_one_design_compile_once(tmp_path):
    main = MAIN.replace("%d\\n", "value %d\\n")      # a design no other test built
    results = []

    def build():
        results.append(vh.build(COUNTER, "counter", main, headers={"ports.h": HEADER},
                                root=tmp_path))

    threads = [threading.Thread(target=build) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r.cached for r in results) == [False, True]
    assert results[0].executable == results[1].executable


@pytest.mark.verilator
def test_failures_are_tool_errors_with_the_compilers_lines(tmp_path):
    with pytest.raises(ToolError, match="(?s)compiling counter failed.*error:.*undeclared_thing"):
        vh.build(COUNTER, "counter", MAIN.replace("return 0;", "return undeclared_thing;"),
                 headers={"ports.h": HEADER}, root=tmp_path)
    with pytest.raises(ToolError, match="(?s)verilating counter failed.*%Error"):
        vh.build(COUNTER.replace("value + step", "value +"), "counter", MAIN,
                 headers={"ports.h": HEADER}, root=tmp_path)
    wrong = vh.port_header({"P_CLK": "clk", "P_RST": "reset", "P_STEP": "step",
                            "P_VALUE": "value", "CYCLES": 10})
    with pytest.raises(ToolError, match="P_RST names port member 'reset'.*ports: clk, rst"):
        vh.build(COUNTER, "counter", MAIN, headers={"ports.h": wrong}, root=tmp_path)


def test_bad_arguments(tmp_path):
    ok = {"headers": {"ports.h": HEADER}, "root": tmp_path}
    with pytest.raises(ValueError, match="top='other': the Verilog text defines no such"):
        vh.build(COUNTER, "other", MAIN, **ok)
    with pytest.raises(ValueError, match="top='1x'"):
        vh.build(COUNTER, "1x", MAIN, **ok)
    with pytest.raises(TypeError, match="verilog"):
        vh.build(None, "counter", MAIN, **ok)
    with pytest.raises(ValueError, match="opt '-O3'"):
        vh.build(COUNTER, "counter", MAIN, opt="-O3", **ok)
    with pytest.raises(ValueError, match="jobs=3: allowed 1..2"):
        vh.build(COUNTER, "counter", MAIN, jobs=3, **ok)
    with pytest.raises(ValueError, match="headers: file name '../x.h'"):
        vh.build(COUNTER, "counter", MAIN, headers={"../x.h": ""}, root=tmp_path)
    with pytest.raises(ValueError, match="main: expected C"):
        vh.build(COUNTER, "counter", "", **ok)
