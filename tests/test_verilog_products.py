"""Every product unit's emitted Verilog, exhaustively, under cocotb (DESIGN.md 7, layers 3-4).

All units are emitted by :func:`potgen.hw.export.emit` (the text users take), bundled
side by side under one top (one simulator build for all of them) and driven with every
8-bit activation pattern times every 4-bit weight pattern: each unit sees every
``(act, code)`` pair of its formats, 3-bit codes twice. Every product is compared with
:func:`potgen.golden.product`.

Coverage: signed and unsigned 8-bit activations x every 3- and 4-bit weight format of
every family (int, uint, pot, pot-nz, apot, sp2) and two three-set ``upot:`` formats
(signed and unsigned), shift-add units for the power-of-two families, DSP and LUT
multipliers for int / uint; plus split-sign units, pipelined units (latency 1 and 2),
decode-table multipliers and narrower activations on the low bits of the shared input.
"""

import pytest

from potgen.hw import MultiplierProduct, ShiftAddProduct
from potgen.hw.export import emit
from sim import runner

ACTS = ("int8", "uint8")
TERM_FORMATS = ("pot3", "pot4", "pot3-nz", "pot4-nz", "apot3", "apot4", "sp2-3", "sp2-4",
                "upot:{0,1}+{0,4}+{0,16}", "upot:u{0,1,2,4}+{0,8}+{0,32}")
INT_FORMATS = ("int3", "int4", "uint3", "uint4")
TOP = "potgen_product_bench"


def _units():
    units = []
    for act in ACTS:
        units += [ShiftAddProduct(w, act) for w in TERM_FORMATS]
        units += [MultiplierProduct(w, act, implementation=impl)
                  for w in INT_FORMATS for impl in ("dsp", "lut")]
    units += [
        ShiftAddProduct("apot4", "int8", sign="split"),
        ShiftAddProduct("sp2-4", "uint8", sign="split"),
        ShiftAddProduct("pot4", "int8", pipeline=1),
        ShiftAddProduct("apot4", "uint8", pipeline=2, sign="split"),
        MultiplierProduct("int4", "uint8", pipeline=2),
        MultiplierProduct("apot4", "int8", implementation="lut"),
        MultiplierProduct("sp2-4", "uint8"),
        ShiftAddProduct("pot4", "int4"),
        ShiftAddProduct("apot3", "uint5"),
    ]
    return units


def _design():
    """The bundled Verilog and the bench configuration describing every unit."""
    modules, metas = [], []
    for i, unit in enumerate(_units()):
        name = f"unit{i:02d}"
        text, meta = emit(unit, name)
        modules.append((name, text))
        metas.append((name, unit, meta))
    top = runner.bundle(modules, TOP)
    units = []
    for name, unit, meta in metas:
        entry = {"name": name, "weight": meta["weight"], "act": meta["act"],
                 "latency": meta["latency"], **top.layout[name]}
        if "magnitude" in entry:
            entry["magnitude_signed"] = unit.magnitude_shape.signed
        units.append(entry)
    config = {"act_bits": top.inputs["act"], "weight_bits": top.inputs["weight"],
              "vectors": "exhaustive", "clocked": "clk" in top.inputs, "units": units}
    return top, config


@pytest.fixture(scope="module")
def design():
    return _design()


@pytest.fixture(scope="module", params=runner.simulators())
def built(request, design):
    top, config = design
    return runner.build(top.verilog, TOP, simulator=request.param), config


def test_bundle_covers_the_required_formats(design):
    _, config = design
    assert config["act_bits"] == 8 and config["weight_bits"] == 4
    seen = {(u["weight"], u["act"]) for u in config["units"]}
    for act in ACTS:
        for weight in TERM_FORMATS + INT_FORMATS:
            assert (weight, act) in seen
    assert {u["latency"] for u in config["units"]} == {0, 1, 2}


def test_every_product_unit_exhaustively(built):
    build, config = built
    result = runner.simulate(build, "sim.tests.product_bench", config=config)
    assert [o.status for o in result.outcomes] == ["passed"]


def test_bench_reports_a_unit_that_disagrees_with_golden(built):
    """The same build, but the bench told that one pot4 unit has pot4-nz levels."""
    build, config = built
    units = [dict(u) for u in config["units"]]
    victim = next(u for u in units if u["weight"] == "pot4" and u["act"] == "uint8")
    victim["weight"] = "pot4-nz"
    result = runner.simulate(build, "sim.tests.product_bench",
                             config={**config, "units": units}, check=False)
    assert not result.passed
    message = result.failures[0].message
    assert f"{victim['name']} (pot4-nz x uint8" in message
    # Every other unit still matches: exactly one unit is reported.
    assert message.count(" wrong; ") == 1
    with pytest.raises(runner.SimulationFailed, match=victim["name"]):
        result.check()
