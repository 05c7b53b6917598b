"""``potgen verilog packed-product``: the command, and the emitted Verilog exhaustively in
cocotb + Verilator.

Every uint/int 2-, 3- and 4-bit activation x weight pairing (36, each with the most
lanes that fit one MULT18X18D), in both arrangements, plus pipelined units, is emitted
with :func:`potgen.hw.export.emit` -- the text users take -- and instantiated side by
side under one generated top: one Verilator build. The bench
(``sim/tests/packed_bench.py``) drives the top's input through all of its values,
which drives every unit through its whole input space, and checks every lane against
``act * level`` computed from the format's level table.
"""

from __future__ import annotations

import json

import pytest

from potgen.formats import parse_format
from potgen.hw.export import emit
from potgen.hw.packed_product import PackedProduct

pytestmark = pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")

FORMATS = [f"{kind}{bits}" for bits in (2, 3, 4) for kind in ("uint", "int")]
PAIRS = [(weight, act) for act in FORMATS for weight in FORMATS]
#: Pipelined units added to the exhaustive top: (weight, act, arrangement, pipeline).
PIPELINED = [("int4", "int4", "shared-weight", 1), ("int4", "uint4", "shared-weight", 2),
             ("int2", "uint2", "shared-act", 1), ("uint3", "int3", "shared-act", 3)]


# --- the command ------------------------------------------------------------------------

def _parser():
    from potgen.cli import _Parser
    from potgen.cli.verilog_packed import add_packed_product
    parser = _Parser(prog="potgen verilog")
    kinds = parser.add_subparsers(dest="kind", parser_class=_Parser)
    add_packed_product(kinds)
    return parser


def run_command(argv):
    args = _parser().parse_args(["packed-product", *argv])
    return args.func(args)


def test_command_writes_verilog_and_metadata(tmp_path, capsys):
    out = tmp_path / "pp.v"
    assert run_command(["--weight", "int4", "--act", "int4", "-o", str(out)]) == 0
    text = out.read_text()
    meta = json.loads(out.with_suffix(".json").read_text())
    assert "module potgen_packed_product(" in text
    assert "*" in text  # the one multiplication
    assert meta["kind"] == "packed-product" and meta["lanes"] == 2
    assert meta["products_per_multiplier"] == 2
    assert meta["packing"]["spacing"] == 8 and meta["packing"]["offset"] == 8
    ports = {p["name"]: p for p in meta["ports"]}
    assert (ports["act"]["width"], ports["weight"]["width"], ports["product"]["width"]) \
        == (8, 4, 16)
    assert meta["port_lanes"] == {"act": {"count": 2, "width": 4, "signed": True},
                                  "product": {"count": 2, "width": 8, "signed": True}}
    assert "wrote" in capsys.readouterr().out
    # Same options -> byte-identical files.
    again = tmp_path / "again.v"
    run_command(["--weight", "int4", "--act", "int4", "-o", str(again)])
    assert again.read_text() == text
    assert again.with_suffix(".json").read_text() == out.with_suffix(".json").read_text()


def test_command_options(tmp_path):
    out = tmp_path / "pp.v"
    run_command(["--weight", "int2", "--act", "uint2", "--lanes", "3", "--pipeline", "1",
                 "--arrangement", "shared-act", "--name", "my_pp", "-o", str(out)])
    meta = json.loads(out.with_suffix(".json").read_text())
    assert (meta["name"], meta["lanes"], meta["latency"]) == ("my_pp", 3, 1)
    assert meta["arrangement"] == "shared-act"
    ports = {p["name"]: p for p in meta["ports"]}
    assert meta["port_lanes"]["weight"]["count"] == 3 and ports["act"]["width"] == 2
    assert {"clk", "rst"} <= set(ports)


def test_command_to_stdout(capsys):
    assert run_command(["--weight", "uint2", "--act", "uint2"]) == 0
    assert "module potgen_packed_product(" in capsys.readouterr().out


@pytest.mark.parametrize("argv, words", [
    (["--weight", "int4", "--act", "int4", "--lanes", "3"],
     ["lanes=3", "20-bit", "18 bits", "at most 2"]),
    (["--weight", "int4", "--act", "int4", "--lanes", "0"], ["--lanes 0", ">= 1"]),
    (["--weight", "int4", "--act", "int4", "--lanes", "two"], ["--lanes two"]),
    (["--weight", "int4", "--act", "pot4"], ["act", "intN or uintN"]),
    (["--weight", "int44", "--act", "int4"], ["weight"]),
])
def test_command_errors(argv, words):
    with pytest.raises((ValueError, TypeError)) as info:
        run_command(argv)
    for word in words:
        assert word in str(info.value)


def test_command_usage_error():
    from potgen.cli import UsageError
    with pytest.raises(UsageError, match="arrangement"):
        run_command(["--weight", "int4", "--act", "int4", "--arrangement", "diagonal"])


# --- cocotb + Verilator, exhaustive ----------------------------------------------------

def _runner():
    from sim import runner
    return runner


def _verilator_missing():
    try:
        return _runner().unavailable("verilator")
    except ImportError as e:
        return f"sim.runner is not importable: {e}"


def exhaustive_units():
    units = []
    for arrangement in ("shared-weight", "shared-act"):
        for weight, act in PAIRS:
            units.append((PackedProduct(weight, act, arrangement=arrangement), 0))
    for weight, act, arrangement, pipeline in PIPELINED:
        units.append((PackedProduct(weight, act, arrangement=arrangement,
                                    pipeline=pipeline), pipeline))
    return units


def wrapper(units):
    """Verilog of the top ``packed_top(clk, rst, x, product)`` and the bench config."""
    def lo_bits(unit):
        plan = unit.plan
        return plan.lanes * (plan.act.bits if plan.arrangement == "shared-weight"
                             else plan.weight.bits)

    def hi_bits(unit):
        plan = unit.plan
        return plan.weight.bits if plan.arrangement == "shared-weight" else plan.act.bits

    lo_width = max(lo_bits(u) for u, _ in units)
    input_bits = lo_width + max(hi_bits(u) for u, _ in units)
    texts, instances, configs, offset = [], [], [], 0
    for index, (unit, latency) in enumerate(units):
        plan = unit.plan
        name = f"pp{index}"
        text, meta = emit(unit, name)
        texts.append(text)
        width = plan.lanes * plan.product_bits
        lo = f"x[{lo_bits(unit) - 1}:0]"
        hi = f"x[{lo_width + hi_bits(unit) - 1}:{lo_width}]"
        act, weight = (lo, hi) if plan.arrangement == "shared-weight" else (hi, lo)
        clocking = ", .clk(clk), .rst(rst)" if latency else ""
        instances.append(f"  {name} u{index} (.act({act}), .weight({weight}), "
                         f".product(product[{offset + width - 1}:{offset}]){clocking});")
        configs.append({
            "name": f"{name}: {meta['weight']} x {meta['act']} {plan.arrangement} "
                    f"k={plan.lanes} latency={latency}",
            "arrangement": plan.arrangement, "lanes": plan.lanes,
            "act_bits": plan.act.bits, "act_signed": plan.act.signed,
            "weight_bits": plan.weight.bits,
            "levels": [int(v) for v in parse_format(plan.weight).levels()],
            "product_bits": plan.product_bits, "out_offset": offset, "latency": latency,
            "lo_offset": 0, "hi_offset": lo_width})
        offset += width
    top = ["module packed_top(clk, rst, x, product);", "  input clk;", "  input rst;",
           f"  input [{input_bits - 1}:0] x;", f"  output [{offset - 1}:0] product;",
           *instances, "endmodule"]
    verilog = "\n".join(texts) + "\n" + "\n".join(top) + "\n"
    return verilog, {"input_bits": input_bits, "output_bits": offset, "units": configs}


@pytest.mark.verilator
@pytest.mark.skipif(_verilator_missing() is not None,
                    reason=f"verilator: {_verilator_missing()}")
def test_every_pairing_exhaustively_in_verilator(record_property):
    units = exhaustive_units()
    verilog, config = wrapper(units)
    # Every pairing fits at least 2 products; the goals: >= 2 for 4-bit x 4-bit and
    # >= 3 for 2-bit x 2-bit.
    lanes = {(str(u.plan.weight), str(u.plan.act)): u.lanes for u, _ in units}
    assert min(lanes.values()) >= 2
    assert all(lanes[(w, a)] >= 2 for w in ("int4", "uint4") for a in ("int4", "uint4"))
    assert all(lanes[(w, a)] >= 3 for w in ("int2", "uint2") for a in ("int2", "uint2"))
    assert config["input_bits"] == 16
    runner = _runner()
    build = runner.build(verilog, "packed_top", opt="-O0")
    result = runner.simulate(build, "sim.tests.packed_bench", config=config)
    assert result.passed and len(result.outcomes) == 1
    record_property("units", len(units))
    record_property("build_s", round(build.seconds, 1))
    record_property("run_s", round(result.seconds, 1))


@pytest.mark.verilator
@pytest.mark.skipif(_verilator_missing() is not None,
                    reason=f"verilator: {_verilator_missing()}")
def test_bench_catches_a_wrong_lane():
    """The bench can fail: a reference table off by one in a single level is caught."""
    unit = PackedProduct("int2", "int2")
    verilog, config = wrapper([(unit, 0)])
    config["units"][0]["levels"][3] += 1   # code 3 = -1 claimed to be 0
    runner = _runner()
    build = runner.build(verilog, "packed_top", opt="-O0")
    result = runner.simulate(build, "sim.tests.packed_bench", config=config, check=False)
    assert not result.passed
    assert "vectors wrong" in result.failures[0].message
