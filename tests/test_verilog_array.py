"""The emitted Verilog of systolic arrays: Verilator lint, and cocotb + Verilator runs.

The pytest side tiles a random GEMM with the same host loop as the Amaranth tests
(:func:`test_hw_array.build_schedule`), hands the packed input words of every cycle to
the cocotb bench below through :func:`sim.runner.simulate`, and checks the rows the
bench recorded: every ``out_valid`` cycle where the protocol puts it, the last one at
``array.cycles(M, K, N) - 1``, and the assembled result bit-exact against
``golden.matmul``. WS partial sums are fed back live by the bench, from the array's
own earlier outputs.

The bench (:func:`array_gemm_bench`) runs inside the simulator process; this module is
importable there because cocotb puts pytest's ``sys.path`` on ``PYTHONPATH``.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pytest

try:
    import cocotb
except ImportError:      # pragma: no cover - the runner reports the reason and skips
    cocotb = None

#: Where the bench writes the rows it saw, next to its configuration.
OUTPUTS_FILE = "outputs.json"


# --- the cocotb bench (inside the simulator) ----------------------------------------------

if cocotb is not None:
    async def _step(dut, inputs: dict) -> tuple:
        """Apply one cycle's inputs, settle, sample the outputs, give one rising edge.

        The outputs are registers, so the sample shows them during this cycle, the same
        convention as the Amaranth tests (set, sample, tick).
        """
        from cocotb.triggers import Timer
        for name, value in inputs.items():
            getattr(dut, name).value = value
        await Timer(1, "ns")
        sampled = (int(dut.out_valid.value), int(dut.out_acc.value),
                   int(dut.out_overflow.value))
        dut.clk.value = 1
        await Timer(1, "ns")
        dut.clk.value = 0
        return sampled

    @cocotb.test()
    async def array_gemm_bench(dut):
        """Drive the scheduled input words; record every ``out_valid`` row."""
        from sim.tests.bench import config, log

        cfg = config()
        ws = cfg["dataflow"] == "ws"
        control = "first" if ws else "last"
        dut.clk.value = 0
        dut.rst.value = 1
        idle = {"act": 0, "weight": 0, "valid": 0, control: 0}
        if ws:
            idle.update({"psum": 0, "psum_overflow": 0})
        await _step(dut, idle)
        dut.rst.value = 0
        feedback = {int(k): tuple(v) for k, v in cfg["feedback"].items()}
        expected = {int(k): tuple(v) for k, v in cfg["expected"].items()}
        by_key, rows = {}, {}
        start = time.monotonic()
        for cycle, (act, weight, valid, ctrl) in enumerate(cfg["inputs"]):
            inputs = {"act": act, "weight": weight, "valid": valid, control: ctrl}
            if ws:
                source = feedback.get(cycle)
                psum, flags = (0, 0) if source is None else by_key[source]
                inputs.update({"psum": psum, "psum_overflow": flags})
            out_valid, out_acc, out_overflow = await _step(dut, inputs)
            if out_valid:
                rows[cycle] = (out_acc, out_overflow)
                if cycle in expected:
                    by_key[expected[cycle]] = (out_acc, out_overflow)
        seconds = time.monotonic() - start
        log(f"{len(cfg['inputs'])} cycles in {seconds:.2f} s")
        out = Path(os.environ["POTGEN_BENCH_CONFIG"]).with_name(OUTPUTS_FILE)
        out.write_text(json.dumps({"rows": {str(k): v for k, v in rows.items()},
                                   "seconds": seconds}))


# --- pytest ------------------------------------------------------------------------------

def _runner():
    from sim import runner
    return runner


def _verilator_missing():
    try:
        return _runner().unavailable("verilator")
    except ImportError as e:
        return f"sim.runner is not importable: {e}"


needs_verilator = pytest.mark.skipif(_verilator_missing() is not None,
                                     reason=f"verilator: {_verilator_missing()}")
pytestmark = [pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable"),
              needs_verilator]


def run_verilator(array, acts, codes, top):
    """Build the array's Verilog, run the bench on one GEMM, return (sched, rows, timing)."""
    from potgen.hw.export import emit
    from test_hw_array import build_schedule, pack

    runner = _runner()
    sched = build_schedule(array, acts, codes)
    inputs = [[pack(sched.act[t], array.act_format.bits),
               pack(sched.weight[t], array.weight_bits), int(sched.valid[t]),
               int(sched.control[t])] for t in range(sched.length)]
    text, _ = emit(array, top)
    start = time.monotonic()
    # -O0: the model runs a few thousand cycles; compiling it is what takes time.
    build = runner.build(text, top, opt="-O0")
    build_seconds = time.monotonic() - start
    config = {"dataflow": array.dataflow, "inputs": inputs,
              "feedback": {str(k): list(v) for k, v in sched.feedback.items()},
              "expected": {str(k): list(v) for k, v in sched.expected.items()}}
    result = runner.simulate(build, "test_verilog_array", config=config)
    recorded = json.loads(result.results_xml.with_name(OUTPUTS_FILE).read_text())
    rows = {}
    for cycle, (acc_word, flags) in recorded["rows"].items():
        from test_hw_array import unpack
        rows[int(cycle)] = (unpack(acc_word, array.acc_bits, array.cols), flags)
    timing = {"build_s": round(build_seconds, 2), "reused": build.reused,
              "run_s": round(result.seconds, 2), "bench_s": round(recorded["seconds"], 2),
              "cycles": sched.length}
    return sched, rows, timing


def check_against_golden(array, acts, codes, sched, rows):
    from test_hw_array import assemble, golden_result
    M, K = acts.shape
    N = codes.shape[1]
    assert sorted(rows) == sorted(sched.expected)
    assert max(rows) + 1 == array.cycles(M, K, N)
    got_acc, got_flags = assemble(array, sched, rows, M, N)
    want_acc, want_flags = golden_result(array, acts, codes)
    bad = np.argwhere((got_acc != want_acc) | (got_flags != want_flags))
    assert bad.size == 0, (f"first mismatch at {tuple(bad[0])}: got "
                           f"{got_acc[tuple(bad[0])]}, want {want_acc[tuple(bad[0])]}")
    return want_flags


@pytest.mark.verilator
@pytest.mark.parametrize("dataflow, rows, cols, shape", [
    ("os", 8, 8, (45, 37, 29)),
    ("ws", 4, 4, (23, 13, 10)),
])
def test_pot4_array_in_verilator(dataflow, rows, cols, shape, record_property):
    from potgen.hw.array import SystolicArray
    from test_hw_array import random_operands

    M, K, N = shape
    array = SystolicArray(rows, cols, "pot4", "uint8", dataflow=dataflow, acc_bits=16,
                          overflow="saturate", pipeline=1)
    rng = np.random.default_rng(2024)
    acts, codes = random_operands(rng, array.act_format, array.column_formats, M, K, N,
                                  p_extreme=0.2)
    sched, rows_seen, timing = run_verilator(array, acts, codes,
                                             f"potgen_array_{dataflow}{rows}x{cols}")
    flags = check_against_golden(array, acts, codes, sched, rows_seen)
    # A 16-bit accumulator with uint8 x pot4 products: some sums saturate, some do not.
    assert flags.any() and not flags.all()
    for key, value in timing.items():
        record_property(key, value)


def amaranth_waivers():
    """Lint waivers for artefacts of Amaranth's Verilog, on top of the flow's defaults.

    An array is a hierarchy of PE modules with array-layout ports; Amaranth's Verilog
    for those has artefacts that the default waivers (written for flat designs with
    plain ports) do not cover.
    """
    from potgen.flow.verilator import WAIVERS, Waiver
    return WAIVERS + (
        Waiver("DECLFILENAME", "*MODULE name: '*.*'",
               "Amaranth names a submodule '<top>.<path>'; only the top module can match "
               "the file name."),
        Waiver("UNUSEDSIGNAL", "*",
               "in every parent module Amaranth declares a wire for each port of each "
               "submodule, for each array element of a port ('act[0]') and for each named "
               "signal that yosys merged into another ('clamped0' when the register reads "
               "the expression itself); those aliases are never read."),
        Waiver("WIDTHTRUNC", "Logical operator LOGNOT expects 1 bit*",
               "yosys writes the comparison 'x == 0' of a multi-bit x as '!x', which is "
               "exactly its meaning in Verilog."),
    )


@pytest.mark.verilator
@pytest.mark.parametrize("dataflow", ["os", "ws"])
def test_array_verilog_lints_clean(dataflow):
    """``verilator --lint-only -Wall``: nothing beyond the documented waivers."""
    from potgen.flow import verilator
    from potgen.hw.array import SystolicArray
    from potgen.hw.export import emit
    from potgen.hw.requant import Requantizer

    array = SystolicArray(4, 4, ["int4", "sp2-4", "pot4", "pot4"], "uint8",
                          dataflow=dataflow, k=256, pipeline=1)
    text, _ = emit(array, f"lint_array_{dataflow}")
    result = verilator.lint(text, f"lint_array_{dataflow}", waivers=amaranth_waivers())
    assert result.clean, result.summary()
    if dataflow == "os":
        text, _ = emit(Requantizer(20, "uint8", lanes=4, relu="input"), "lint_requant")
        result = verilator.lint(text, "lint_requant", waivers=amaranth_waivers())
        assert result.clean, result.summary()
