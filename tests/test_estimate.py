"""``potgen.flow.estimate`` and ``potgen estimate``.

Fast tests check the report schema against committed synthesis reports, the exactly
counted registers and DSP blocks, the model's sanity (monotone in the accumulator
width, ordered across designs and speed grades), validation and the command line. The
test marked ``synth`` synthesizes the :data:`~potgen.flow.fit_estimate.HELD_OUT`
designs, which no fit has seen, and checks the estimate's comb cells within 15%.
"""

import csv
import json
from pathlib import Path

import pytest
from amaranth.hdl import signed, unsigned

from potgen import cli
from potgen.flow import estimate as est
from potgen.flow.designs import DesignSpec
from potgen.flow.fit_estimate import HELD_OUT, _held_out_signatures, fit_set
from potgen.flow.harness import TimingHarness
from potgen.flow.report import RESOURCE_KEYS
from potgen.hw import Accumulator, AdderTree, MacPE, MultiplierProduct, ShiftAddProduct

pytestmark = pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")

REPO = Path(__file__).resolve().parents[1]
PE_COMPARISON = REPO / "synth" / "pe_comparison" / "results.json"
ACC_STUDY = REPO / "synth" / "accumulator_study" / "results.json"
FIT_RESULTS = REPO / "synth" / "estimate_fit" / "results.json"

# What a committed sweep report leaves out of synthesize()'s report (the run-to-run
# keys) and adds to it (the path's two ends, the ratios of a table).
_STRIPPED = {"build_dir", "cached", "seconds", "seconds_by_step", "critical_path"}
_ADDED = {"critical_path_ends", "ratios"}


def _reports(path):
    return json.loads(path.read_text())["reports"]


@pytest.fixture(scope="module")
def committed():
    return _reports(PE_COMPARISON) + _reports(ACC_STUDY)


# --- schema ------------------------------------------------------------------------------

def test_report_keys_are_the_synthesis_report_keys(committed):
    report = est.estimate(DesignSpec("pot4"))
    for synthesized in committed:
        assert set(report) == (set(synthesized) - _ADDED) | _STRIPPED
        assert set(report["resources"]) == set(synthesized["resources"]) \
            == set(RESOURCE_KEYS)
        assert set(report["design_resources"]) == set(synthesized["design_resources"])
    res = report["resources"]
    assert res["comb_cells"] == res["lut4"] + res["ccu2c"] + res["pfumx"] + res["l6mux"]
    assert res["lut4_sites"] == res["lut4"] + 2 * res["ccu2c"]
    assert (report["device"], report["package"], report["speed"]) == \
        ("LFE5U-85F", "CABGA381", 6)
    assert report["tools"]["estimate"].startswith("potgen-estimate-")
    assert report["cached"] is False and report["build_dir"] is None
    assert report["seconds"] < 0.5


def test_design_dict_is_the_one_synthesis_records(committed):
    by_label = {(r["design"]["label"], r["design"]["act"]): r for r in committed
                if r["design"]["kind"] == "mac" and r["design"]["acc_bits_choice"] == "auto"
                and r["design"]["k"] == 64}
    for name, act in (("pot4", "uint8"), ("int8-dsp", "uint4"), ("apot5", "uint8")):
        spec = DesignSpec(name, act=act)
        assert est.estimate(spec)["design"] == by_label[(name, act)]["design"]


def test_estimate_of_a_report_design_keeps_it(committed):
    design = committed[3]["design"]
    assert est.estimate(design)["design"] == design


# --- counted, not fitted ---------------------------------------------------------------------

def test_ff_and_mult18_equal_synthesis_on_every_committed_report(committed):
    for r in committed + _reports(FIT_RESULTS):
        got = est.estimate(r["design"], device=r["device"], speed=r["speed"])
        label = (r["design"].get("label"), r["design"].get("act"), r["design"].get("kind"))
        assert got["resources"]["ff"] == r["resources"]["ff"], label
        assert got["resources"]["mult18"] == r["resources"]["mult18"], label
        # The harness around the block is counted exactly too.
        assert got["design_resources"]["ff"] == r["design_resources"]["ff"], label


def test_ff_of_known_registers():
    # Accumulator and sticky flag.
    assert est.estimate(Accumulator(signed(12), 20))["resources"]["ff"] == 21
    # pot4 x uint8 folds its sign: the pipeline stage holds the 14-bit magnitude
    # (255 * 64 = 16320), the sign bit, valid and clear; then 21 + 1 accumulator bits.
    mac = MacPE("pot4", "uint8", acc_bits=21, pipeline=1)
    assert est.estimate(mac)["resources"]["ff"] == 14 + 1 + 2 + 22
    assert est.estimate(MacPE("pot4", "uint8", acc_bits=21, pipeline=2)
                        )["resources"]["ff"] == 2 * 17 + 22
    # Adder tree of 8 x int8 with stages after levels 2 and 3: two 10-bit partial
    # sums ([-512, 508]) and the 11-bit sum.
    assert est.estimate(AdderTree(8, signed(8), pipeline=2))["resources"]["ff"] == 31
    assert est.estimate(AdderTree(4, unsigned(8)))["resources"]["ff"] == 0
    # Every bit of a stage is a flip-flop, even a constant one (synthesis keeps
    # reset registers): a product whose levels are all even, one that is never
    # negative.
    unit = ShiftAddProduct("upot:{0,2,8}", "uint4", pipeline=1)
    assert est.estimate(unit)["resources"]["ff"] == unit.product_shape.width == 8
    assert est.estimate(MultiplierProduct("uint4", "uint4", implementation="lut",
                                          pipeline=2))["resources"]["ff"] == 2 * 9


def test_multiplier_blocks_are_counted():
    assert est.estimate(DesignSpec("int8-dsp"))["resources"]["mult18"] == 1
    assert est.estimate(DesignSpec("int16-dsp", act="uint16"))["resources"]["mult18"] == 1
    for name in ("int8-lut", "pot4", "apot4"):
        assert est.estimate(DesignSpec(name))["resources"]["mult18"] == 0


# --- the model's sanity ---------------------------------------------------------------------

@pytest.mark.parametrize("name, kind", [("pot4", "mac"), ("int8-dsp", "mac"),
                                        ("int8-lut", "mac"), ("apot4", "accumulator"),
                                        ("int4-dsp", "accumulator")])
def test_monotone_in_accumulator_width(name, kind):
    reports = [est.estimate(DesignSpec(name, kind=kind, acc_bits=bits))
               for bits in range(22, 50, 3)]
    for key in ("comb_cells", "ff", "ccu2c"):
        values = [r["resources"][key] for r in reports]
        assert values == sorted(values), (key, values)
    fmax = [r["fmax_mhz"] for r in reports]
    assert fmax == sorted(fmax, reverse=True)


def test_designs_are_ordered_as_their_structure():
    def comb(name, **kw):
        return est.estimate(DesignSpec(name, acc_bits=24, **kw))["resources"]["comb_cells"]
    assert comb("int8-lut") > comb("int4-lut") > comb("int4-dsp")
    assert comb("pot5") > comb("pot4") > comb("pot2")
    assert comb("int8-lut", act="int8") > comb("int8-lut", act="uint8") > \
        comb("int8-lut", act="uint4")
    assert comb("apot4", overflow="saturate") > comb("apot4")
    # The DSP PE's Fmax is set by the MULT18X18D; the shift-add PE is faster.
    fmax = {n: est.estimate(DesignSpec(n))["fmax_mhz"] for n in ("pot4", "int8-dsp")}
    assert fmax["pot4"] > 1.2 * fmax["int8-dsp"]


def test_speed_grade_and_device():
    spec = DesignSpec("apot4")
    r6, r7, r8 = (est.estimate(spec, speed=s) for s in (6, 7, 8))
    assert r6["fmax_mhz"] < r7["fmax_mhz"] < r8["fmax_mhz"]
    assert r6["resources"] == r8["resources"]
    small = est.estimate(spec, device="12k", package="CABGA256")
    assert (small["device"], small["package"]) == ("LFE5U-12F", "CABGA256")
    assert small["resources"] == r6["resources"]
    assert small["utilization"]["TRELLIS_COMB"]["available"] == 12_000


def test_estimate_of_committed_studies_stays_close(committed):
    """In-sample regression guard: the shipped model reproduces the committed studies
    (a feature changed without refitting the model breaks this)."""
    errors = []
    for r in committed:
        got = est.estimate(r["design"])["resources"]["comb_cells"]
        errors.append(abs(got - r["resources"]["comb_cells"]) / r["resources"]["comb_cells"])
    assert sum(errors) / len(errors) < 0.08
    assert max(errors) < 0.35


# --- the model file -----------------------------------------------------------------------

def test_shipped_model_provenance_and_held_out():
    model = est.load_model()
    prov = model["provenance"]
    assert prov["tools"] == {"yosys": "Yosys 0.70", "nextpnr": "nextpnr-0.11.1"}
    assert {s["path"] for s in prov["sources"]} == {
        "synth/pe_comparison/results.json", "synth/accumulator_study/results.json",
        "synth/estimate_fit/results.json"}
    assert all(len(s["sha256"]) == 64 and s["used"] > 0 for s in prov["sources"])
    assert model["residuals"]["ff_exact"]["mismatches"] == []
    assert model["residuals"]["mult18_exact"]["mismatches"] == []
    for group, res in model["residuals"]["resources"].items():
        assert res["samples"] == model["resources"][group]["samples"] > 0
    assert [h["name"] for h in prov["held_out"]] == [h["name"] for h in HELD_OUT]


def test_fit_leaves_out_held_out_designs_and_their_twins(tmp_path):
    """apot3 has pot3's levels, int8 x int4 in LUTs is int4 x int8's multiplier: to the
    model they are the held-out designs, so the fit must not see them either."""
    from potgen.flow.fit_estimate import load_reports
    assert len(_held_out_signatures()) == len(HELD_OUT)
    fit_specs = [e for _, entries in fit_set() for e in entries]
    assert len(fit_specs) > 200
    reports = _reports(FIT_RESULTS)
    twins = [r for r in reports if r["design"].get("kind") == "mac" and
             (r["design"].get("name"), r["design"].get("act")) in
             (("apot3", "uint8"), ("int8-lut", "int4"))]
    other = next(r for r in reports if r["design"].get("name") == "apot4")
    assert len(twins) == 2
    path = tmp_path / "results.json"
    path.write_text(json.dumps({"reports": twins + [other]}))
    samples, sources = load_reports([path])
    assert [s["report"]["design"]["name"] for s in samples] == ["apot4"]
    assert sources[0]["held_out"] == 2 and sources[0]["used"] == 1


def test_refit_writes_a_usable_model(tmp_path, capsys):
    from potgen.flow.fit_estimate import main as fit_main
    out = tmp_path / "model.json"
    assert fit_main([str(PE_COMPARISON), str(ACC_STUDY), "--out", str(out)]) == 0
    assert "mac/shift-add" in capsys.readouterr().out
    model = json.loads(out.read_text())
    assert [s["used"] for s in model["provenance"]["sources"]] == [28, 30]
    assert set(model["resources"]) == {"accumulator", "mac/multiplier-dsp",
                                       "mac/multiplier-lut", "mac/shift-add"}
    report = est.estimate(DesignSpec("apot4"), model=str(out))
    assert report["resources"]["comb_cells"] > 0
    assert report["resources"]["ff"] == est.estimate(DesignSpec("apot4"))["resources"]["ff"]


# --- validation -------------------------------------------------------------------------

def test_validation_errors():
    spec = DesignSpec("pot4")
    with pytest.raises(TypeError, match="component_or_design"):
        est.estimate("pot4")
    with pytest.raises(ValueError, match="device: '100k'"):
        est.estimate(spec, device="100k")
    with pytest.raises(ValueError, match="speed"):
        est.estimate(spec, speed=5)
    with pytest.raises(ValueError, match="package"):
        est.estimate(spec, package="QFN9")
    with pytest.raises(TypeError, match="TimingHarness"):
        est.estimate(TimingHarness(Accumulator(8, 12)))
    with pytest.raises(ValueError, match="cannot rebuild"):
        est.estimate({"kind": "array", "rows": 4})
    with pytest.raises(TypeError, match="design"):
        est.estimate(spec, design=["not", "a", "dict"])
    with pytest.raises(TypeError, match="model"):
        est.estimate(spec, model=42)
    partial = dict(est.load_model(), resources={})
    with pytest.raises(ValueError, match="no 'mac/shift-add' group"):
        est.estimate(spec, model=partial)


# --- command line ---------------------------------------------------------------------

@pytest.fixture
def estimate_cli(monkeypatch):
    monkeypatch.setitem(cli.COMMANDS, "estimate", "potgen.cli.estimate")
    return cli.main


def test_cli_table_json_csv(estimate_cli, tmp_path, capsys):
    out = tmp_path / "est"
    assert estimate_cli(["estimate", "--designs", "pot4,int8-lut", "--acc-bits", "24",
                         "--json", f"{out}.json", "--csv", f"{out}.csv"]) == 0
    text = capsys.readouterr().out.splitlines()
    assert text[0].split()[:4] == ["design", "act", "acc", "comb"]
    assert [line.split()[0] for line in text[2:4]] == ["pot4", "int8-lut"]
    assert any("no tool ran" in line for line in text)
    reports = json.loads((tmp_path / "est.json").read_text())["reports"]
    assert [r["design"]["name"] for r in reports] == ["pot4", "int8-lut"]
    assert reports[1]["ratios"]["area_x"] == 1.0
    assert reports[0]["design"]["acc_bits"] == 24
    rows = list(csv.DictReader(open(f"{out}.csv")))
    assert int(rows[0]["comb_cells"]) == reports[0]["resources"]["comb_cells"]


def test_cli_default_family_and_compare(estimate_cli, capsys):
    assert estimate_cli(["estimate", "-q"]) == 0
    assert capsys.readouterr().out == ""
    assert estimate_cli(["estimate", "--compare", str(PE_COMPARISON)]) == 0
    text = capsys.readouterr().out
    assert text.splitlines()[0].split()[:7] == ["design", "kind", "act", "acc", "comb",
                                                "est", "err"]
    assert "comb cells: mean |error|" in text and "Fmax: mean |error|" in text


def test_cli_compare_skips_what_it_does_not_model(estimate_cli, tmp_path, capsys):
    mixed = tmp_path / "mixed.json"
    mixed.write_text(json.dumps({"reports": [_reports(PE_COMPARISON)[0], {
        "design": {"kind": "systolic-array", "label": "array-4x4"},
        "resources": {"comb_cells": 900, "ff": 300}, "fmax_mhz": 90.0}]}))
    assert estimate_cli(["estimate", "--compare", str(mixed), "--json",
                         str(tmp_path / "est.json")]) == 0
    text = capsys.readouterr().out
    assert "note: skipped array-4x4 (systolic-array)" in text
    assert len(json.loads((tmp_path / "est.json").read_text())["reports"]) == 1


@pytest.mark.parametrize("argv, needle", [
    (["--device", "100k"], "device: '100k'"),
    (["--speed", "5"], "allowed: 6, 7, 8"),
    (["--designs", "int8"], "int8-dsp or int8-lut"),
    (["--acc-bits", "l1"], "actual weights"),
    (["--compare", "nowhere.json"], "--compare nowhere.json"),
    (["--compare", "x.json", "--designs", "pot4"], "takes no --designs"),
    (["--frobnicate"], "unrecognized arguments"),
])
def test_cli_bad_options_exit_2(estimate_cli, argv, needle, capsys):
    assert estimate_cli(["estimate", *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and needle in err


# --- against synthesis ------------------------------------------------------------------

@pytest.mark.synth
def test_held_out_designs_within_15_percent():
    """The designs no fit has seen: comb cells within 15% of synthesis (issue 4)."""
    from potgen.flow.synth import synthesize_many
    specs = [DesignSpec(**held) for held in HELD_OUT]
    components = [spec.build() for spec in specs]
    reports = synthesize_many(components, designs=[s.design(c) for s, c in
                                                   zip(specs, components)], jobs=2,
                              progress=False)
    lines = []
    for spec, synthesized in zip(specs, reports):
        estimated = est.estimate(spec)
        assert set(estimated) == set(synthesized)
        assert set(estimated["resources"]) == set(synthesized["resources"])
        assert estimated["design"] == synthesized["design"]
        assert estimated["resources"]["ff"] == synthesized["resources"]["ff"]
        comb, guess = synthesized["resources"]["comb_cells"], \
            estimated["resources"]["comb_cells"]
        fmax, fguess = synthesized["fmax_mhz"], estimated["fmax_mhz"]
        lines.append(f"{spec.label} x {spec.act} acc {synthesized['design']['acc_bits']}: "
                     f"comb {comb} est {guess} ({100 * (guess - comb) / comb:+.1f}%), "
                     f"Fmax {fmax} est {fguess} ({100 * (fguess - fmax) / fmax:+.1f}%)")
        assert abs(guess - comb) <= 0.15 * comb, lines[-1]
    print("\n".join(lines))
