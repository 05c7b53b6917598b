"""The array and accelerator estimates against the committed array syntheses.

``synth/arrays/*.json`` hold ``potgen synth --kind array`` reports (2x2 calibration
arrays, the 8x8 / 16x16 figures and the moonshot). The estimate must reproduce every
one within the errors ``docs/synthesis.md`` states: flip-flops within 1% (they are
counted, not fitted), MULT18X18D exactly, comb cells and LUT4 sites within
:data:`LOGIC_TOLERANCE`, Fmax of the placed arrays within :data:`FMAX_TOLERANCE`.
"""

import json
from pathlib import Path

import pytest

from potgen.flow.estimate_array import (
    CALIBRATION,
    array_acc_bits,
    array_flip_flops,
    dp16kd_blocks,
    estimate_accelerator,
    estimate_array,
)
from potgen.flow.report import RESOURCE_KEYS

pytestmark = pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")

RESULTS = Path(__file__).resolve().parent.parent / "synth" / "arrays"
#: Stated accuracy of the logic estimate (relative), and of the Fmax of placed arrays.
LOGIC_TOLERANCE = 0.20
FMAX_TOLERANCE = 0.15


def _committed():
    reports = []
    for path in sorted(RESULTS.glob("*.json")):
        for r in json.loads(path.read_text()).get("reports", []):
            if (r.get("design") or {}).get("kind") == "array":
                reports.append(pytest.param(r, id=f"{path.stem}:{r['design']['label']}"
                                                   f":{r['design']['act']}"))
    return reports


COMMITTED = _committed()


def _estimate(report):
    d = report["design"]
    return estimate_array(d["rows"], d["cols"], d["name"], d["act"],
                          dataflow=d["dataflow"], acc_bits=d["acc_bits"],
                          device=report["device"], speed=report["speed"])


def test_there_are_committed_syntheses_of_both_dataflows():
    flows = {p.values[0]["design"]["dataflow"] for p in COMMITTED}
    assert flows == {"os", "ws"}
    assert any(p.values[0].get("fmax_mhz") for p in COMMITTED)


@pytest.mark.parametrize("report", COMMITTED)
def test_estimate_matches_committed_synthesis(report):
    est = _estimate(report)
    res, got = report["resources"], est["resources"]
    assert got["mult18"] == res["mult18"]
    assert abs(got["ff"] - res["ff"]) <= max(1, 0.01 * res["ff"])
    for key in ("comb_cells", "lut4_sites"):
        assert abs(got[key] - res[key]) <= LOGIC_TOLERANCE * res[key], key
    if report.get("fmax_mhz"):
        assert abs(est["fmax_mhz"] - report["fmax_mhz"]) <= \
            FMAX_TOLERANCE * report["fmax_mhz"]
    assert est["design"]["acc_bits"] == report["design"]["acc_bits"]


def test_report_schema_and_fit():
    r = estimate_array(8, 8, "pot4", "uint8")
    assert set(RESOURCE_KEYS) <= set(r["resources"])
    res = r["resources"]
    assert res["comb_cells"] == res["lut4"] + res["ccu2c"] + res["pfumx"] + res["l6mux"]
    assert res["lut4_sites"] == res["lut4"] + 2 * res["ccu2c"]
    assert res["mult18"] == 0 and r["fits"] is True
    assert r["utilization"]["TRELLIS_COMB"] == {"used": res["lut4_sites"],
                                                "available": 83640}
    assert r["design"]["acc_bits"] == 21 and r["design"]["pes"] == 64
    assert r["design_resources"]["ff"] == res["ff"] + r["harness_resources"]["ff"]
    assert 50 < r["fmax_mhz"] < 400
    # 256 DSP multipliers: more than the LFE5U-85F's 156.
    dsp = estimate_array(16, 16, "int8", "uint8")
    assert dsp["resources"]["mult18"] == 256 and dsp["fits"] is False
    assert dsp["design"]["name"] == "int8-dsp"
    assert estimate_array(12, 12, "int8", "uint8")["resources"]["mult18"] == 144
    assert estimate_array(32, 32, "pot4", "uint8", device="12k")["fits"] is False


def test_resources_grow_with_the_array_and_fall_with_narrower_operands():
    small, large = estimate_array(8, 8, "pot4", "uint8"), estimate_array(16, 16, "pot4",
                                                                          "uint8")
    assert 3.5 < large["resources"]["comb_cells"] / small["resources"]["comb_cells"] < 4.5
    narrow = estimate_array(16, 16, "pot4", "uint4")
    assert narrow["resources"]["lut4_sites"] < large["resources"]["lut4_sites"]
    ws = estimate_array(16, 16, "pot4", "uint8", dataflow="ws")
    assert ws["design"]["dataflow"] == "ws"


def test_flip_flops_by_hand():
    # 2x2 OS, A=4, W=4, P=17, PE 18 FF: cells 4 * (18 + 18) + right 2 * 4 + below
    # 2 * 8 + drain_valid 2 - 1 (merged into the last line) = 169; edges 4 * 4 +
    # 4 * 3 + 18 = 46; tokens 4 + 5 = 9.
    ff = array_flip_flops(2, 2, dataflow="os", act_bits=4, weight_bits=4, acc_bits=17,
                          pe_ff=18)
    assert ff == {"pes": 169, "edges": 46, "tokens": 9, "total": 224}
    # 2x2 WS: cells 4 * (12 + 18) + right 2 * 4 = 128; edges 4 * 5 + 4 * 1 +
    # 18 * (1 + 4) + 18 = 132; tokens 3 + 5 = 8.
    ff = array_flip_flops(2, 2, dataflow="ws", act_bits=4, weight_bits=4, acc_bits=17,
                          pe_ff=18)
    assert ff == {"pes": 128, "edges": 132, "tokens": 8, "total": 268}


@pytest.mark.parametrize("depth, width, granularity, blocks", [
    (512, 36, None, 1), (1024, 18, None, 1), (1024, 36, None, 2), (256, 32, None, 1),
    (256, 128, None, 4), (16384, 1, None, 1), (16384, 2, None, 2), (0, 8, None, 0),
    (2048, 9, None, 1),
    # Measured on the accelerator: 4 x 8-bit and 4 x 4-bit lanes take one block each,
    # 8 x 4-bit lanes two.
    (256, 32, 8, 1), (128, 16, 4, 1), (128, 32, 4, 2), (4096, 32, 8, 8)])
def test_dp16kd_blocks(depth, width, granularity, blocks):
    assert dp16kd_blocks(depth, width, granularity) == blocks


def test_accelerator_adds_buffers_and_control():
    array = estimate_array(16, 16, "pot4", "uint8")
    acc = estimate_accelerator(16, 16, "pot4", "uint8", k_max=64)
    bufs = acc["breakdown"]["buffers"]
    # 4 slots x 64 steps of 16 x 8-bit lanes: 256 deep, 4 lanes per 512 x 36 block.
    assert bufs["act"] == {"depth": 256, "width": 128, "granularity": 8, "dp16kd": 4,
                           "dpram": 0}
    # 16 lanes of 4 bits, each in a 9-bit byte lane of its own: again 4 blocks.
    assert bufs["weight"] == {"depth": 128, "width": 64, "granularity": 4, "dp16kd": 4,
                              "dpram": 0}
    # 2 * 16 result rows of 16 x 22 bits: shallow, so LUT RAM (16 x 4 per cell).
    assert bufs["out"] == {"depth": 32, "width": 352, "granularity": None, "dp16kd": 0,
                           "dpram": 2 * 88}
    assert acc["resources"]["dp16kd"] == 8
    assert acc["resources"]["dpram"] >= 176
    # One P x 16-bit requantization multiplier per column: P = 21 takes two MULT18X18D.
    assert acc["breakdown"]["control"]["mult18"] == 32 == acc["resources"]["mult18"]
    for key in ("lut4_sites", "ff"):
        assert acc["resources"][key] > array["resources"][key]
    assert acc["harness"] is False and acc["design"]["k_max"] == 64
    assert acc["design"]["acc_bits"] == array_acc_bits("pot4", "uint8", k=64) == 21
    deep = estimate_accelerator(16, 16, "pot4", "uint8", out_rows=64)
    assert deep["breakdown"]["buffers"]["out"]["dp16kd"] == 10


@pytest.mark.parametrize("call, needle", [
    (lambda: estimate_array(0, 8, "pot4", "uint8"), "rows=0"),
    (lambda: estimate_array(8, 300, "pot4", "uint8"), "cols=300"),
    (lambda: estimate_array(8, 8, "pot9x", "uint8"), "weight='pot9x'"),
    (lambda: estimate_array(8, 8, "pot4", "pot4"), "act='pot4'"),
    (lambda: estimate_array(8, 8, "pot4", "uint8", dataflow="rs"), "dataflow='rs'"),
    (lambda: estimate_array(8, 8, "pot4", "uint8", acc_bits=8), "acc_bits=8"),
    (lambda: estimate_array(8, 8, "pot4", "uint8", device="100k"), "100k"),
    (lambda: estimate_accelerator(8, 8, "pot4", "uint8", k_max=0), "k_max=0"),
    (lambda: estimate_accelerator(8, 8, "pot4", "uint8", act_slots=0), "act_slots=0"),
])
def test_bad_parameters_raise_value_error_naming_them(call, needle):
    with pytest.raises(ValueError, match=needle.replace("(", r"\(")):
        call()


def test_wrong_types_raise_type_error():
    with pytest.raises(TypeError, match="rows=8.0"):
        estimate_array(8.0, 8, "pot4", "uint8")
    with pytest.raises(TypeError, match="cols=True"):
        estimate_array(8, True, "pot4", "uint8")


def test_calibration_records_its_provenance():
    assert set(CALIBRATION["dataflows"]) == {"os", "ws"}
    for cal in CALIBRATION["dataflows"].values():
        assert cal["reports"] >= 2
    assert CALIBRATION["tools"]["yosys"].startswith("Yosys")


def test_potgen_estimate_kind_array(tmp_path, capsys):
    from potgen.cli import main
    out = tmp_path / "est.json"
    assert main(["estimate", "--kind", "array", "--rows", "16", "--cols", "16",
                 "--weight", "pot4,int8-dsp", "--act", "uint8", "--reference", "none",
                 "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "pot4 16x16 os" in text and "int8-dsp 16x16 os" in text
    assert "int8-dsp 16x16 os x uint8: does not fit the LFE5U-85F" in text
    pot4, dsp = json.loads(out.read_text())["reports"]
    assert pot4 == {**estimate_array(16, 16, "pot4", "uint8"),
                    "seconds": pot4["seconds"], "seconds_by_step": pot4["seconds_by_step"],
                    "ratios": pot4["ratios"]}
    assert (pot4["fits"], dsp["fits"]) == (True, False)
    assert dsp["resources"]["mult18"] == 256


def test_potgen_estimate_compares_array_reports(capsys):
    from potgen.cli import main
    assert main(["estimate", "--compare", str(RESULTS / "array_8x8_os.json"),
                 "--reference", "none"]) == 0
    text = capsys.readouterr().out
    assert "pot4 8x8 os" in text and "int8-dsp 8x8 os" in text
    assert "skipped" not in text
