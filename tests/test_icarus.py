"""The runner on Icarus Verilog (skipped with the reason when Icarus is absent).

The product and MAC benches run on Icarus too: ``tests/test_verilog_products.py`` and
``tests/test_verilog_mac.py`` are parametrised over :func:`sim.runner.simulators`. This
file checks what is particular to Icarus: Amaranth's Verilog has no ``timescale``
directive, so the runner must give the build one, and the build folder is keyed by the
simulator.
"""

import pytest

from sim import runner

from test_verilator_runner import BENCH, VERILOG_ADDCOUNT

needs_icarus = pytest.mark.skipif(runner.unavailable("icarus") is not None,
                                  reason=f"icarus: {runner.unavailable('icarus')}")


@pytest.mark.icarus
@needs_icarus
def test_icarus_build_has_the_timescale_and_its_own_folder():
    build = runner.build(VERILOG_ADDCOUNT, "addcount_text", simulator="icarus")
    assert build.folder.parent == runner.BUILD_ROOT / "icarus"
    assert "+timescale+1ns/1ps" in (build.folder / "cmds.f").read_text()
    result = runner.simulate(build, BENCH, config={"seed": 2, "vectors": 100})
    # Every step is two 1 ns waits: 100 vectors plus the reset step take 202 ns, which
    # only holds when the simulator's time unit is the nanosecond it was given.
    assert result.outcomes[0].sim_time_ns == pytest.approx(202)


@pytest.mark.icarus
@needs_icarus
def test_failing_bench_fails_on_icarus():
    build = runner.build(VERILOG_ADDCOUNT, "addcount_text", simulator="icarus")
    with pytest.raises(runner.SimulationFailed, match="adder_and_counter FAILED"):
        runner.simulate(build, BENCH, config={"seed": 2, "vectors": 20, "bias": -1})


def test_missing_icarus_is_reported_with_the_way_to_install_it(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    reason = runner.unavailable("icarus")
    assert "Icarus Verilog is not installed" in reason and "apt-get install iverilog" in reason
    param = next(p for p in runner.simulators() if p.values[0] == "icarus")
    assert any(m.name == "skip" and "icarus" in m.kwargs["reason"] for m in param.marks)
