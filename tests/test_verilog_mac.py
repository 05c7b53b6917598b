"""MAC PEs' emitted Verilog under long random valid / clear / reset streams (DESIGN.md 7).

Twelve PEs, emitted by :func:`potgen.hw.export.emit` and bundled under one top, run a
4000-cycle stream together (see ``sim/tests/mac_bench.py``); every cycle each PE's
``acc`` and sticky ``overflow`` are compared with :func:`potgen.golden.matmul` over the
sums the stream's ``clear`` and ``rst`` delimit. The PEs cover wrap and saturate,
shift-add (sign folded into the accumulator and negated in the unit), DSP and LUT
multipliers, three-set ``upot:`` formats, latencies 0..2 and accumulators from the
product's own width up: narrow enough that every one of them overflows.
"""

import pytest

from potgen import bounds, parse_format
from potgen.hw import MacPE
from potgen.hw.export import emit
from sim import runner

TOP = "potgen_mac_bench"
CYCLES = 4000
RESETS = (1337, 2890, 2891)


def _product_bits(weight, act):
    w, a = parse_format(weight), parse_format(act)
    corners = [x * y for x in (a.min_level, a.max_level) for y in (w.min_level, w.max_level)]
    return bounds.signed_width(min(corners), max(corners))


def _mac(weight, act, extra_bits, **kw):
    return MacPE(weight, act, acc_bits=_product_bits(weight, act) + extra_bits, **kw)


def _macs():
    return [
        _mac("pot4", "uint8", 2, overflow="wrap"),
        _mac("pot4", "uint8", 2, overflow="saturate"),
        _mac("apot4", "int8", 1, overflow="saturate", pipeline=1),
        _mac("apot4", "int8", 2, overflow="wrap", sign="negate", pipeline=2),
        _mac("sp2-4", "int8", 3, overflow="wrap"),
        _mac("int4", "int8", 2, overflow="saturate"),
        _mac("uint4", "uint8", 2, overflow="wrap", multiplier="lut", pipeline=1),
        _mac("int4", "uint8", 0, overflow="saturate", multiplier="lut"),
        _mac("upot:{0,1}+{0,4}+{0,16}", "int8", 2, overflow="saturate"),
        _mac("upot:u{0,1,2,4}+{0,8}+{0,32}", "uint8", 1, overflow="wrap"),
        _mac("apot3", "uint8", 0, overflow="wrap", pipeline=2),
        # The datatype bound for K = 8 is exact for sums of up to 8 products; the
        # stream's longer sums overflow it.
        MacPE("pot4-nz", "uint8", acc_bits="auto", k=8, overflow="saturate"),
    ]


def _design():
    modules, metas = [], []
    for i, mac in enumerate(_macs()):
        name = f"mac{i:02d}"
        text, meta = emit(mac, name)
        modules.append((name, text))
        metas.append((name, meta))
    top = runner.bundle(modules, TOP)
    units = [{"name": name, "weight": meta["weight"], "act": meta["act"],
              "latency": meta["latency"], "acc_bits": meta["acc_bits"],
              "mode": meta["overflow"], "expect_overflow": True, **top.layout[name]}
             for name, meta in metas]
    config = {"cycles": CYCLES, "seed": 7, "resets": list(RESETS),
              "act_bits": top.inputs["act"], "weight_bits": top.inputs["weight"],
              "units": units}
    return top, config


@pytest.fixture(scope="module")
def design():
    return _design()


@pytest.fixture(scope="module", params=runner.simulators())
def built(request, design):
    top, config = design
    return runner.build(top.verilog, TOP, simulator=request.param), config


def test_bundle_covers_modes_latencies_and_units(design):
    top, config = design
    assert set(top.inputs) == {"clk", "rst", "act", "weight", "valid", "clear"}
    units = config["units"]
    assert {u["mode"] for u in units} == {"wrap", "saturate"}
    assert {u["latency"] for u in units} == {0, 1, 2}
    assert any(u["acc_bits"] == _product_bits(u["weight"], u["act"]) for u in units)


def test_macs_match_golden_on_random_streams(built):
    build, config = built
    result = runner.simulate(build, "sim.tests.mac_bench", config=config)
    assert [o.status for o in result.outcomes] == ["passed"]


def test_bench_reports_a_wrong_overflow_mode(built):
    """The same build, but the bench told that a saturating PE wraps."""
    build, config = built
    units = [dict(u) for u in config["units"]]
    victim = next(u for u in units if u["mode"] == "saturate")
    victim["mode"] = "wrap"
    result = runner.simulate(build, "sim.tests.mac_bench",
                             config={**config, "units": units}, check=False)
    assert not result.passed
    message = result.failures[0].message
    assert message.startswith(f"{victim['name']} (") and message.count("cycles wrong") == 1


def test_bench_reports_a_wrong_latency(built):
    """The same build, but the bench told that a latency-1 PE has latency 0."""
    build, config = built
    units = [dict(u) for u in config["units"]]
    victim = next(u for u in units if u["latency"] == 1)
    victim["latency"] = 0
    result = runner.simulate(build, "sim.tests.mac_bench",
                             config={**config, "units": units}, check=False)
    assert not result.passed
    assert result.failures[0].message.startswith(f"{victim['name']} (")
