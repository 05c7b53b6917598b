"""``potgen sweep``: configuration parsing, the sweep's points, and one small run."""

import csv
import json
from pathlib import Path

import pytest

from potgen.cli import COMMANDS, main
from potgen.flow.designs import LayerSpec
from potgen.flow.sweep import family, load_config, parse_config, points

pytestmark = pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")

SYNTH = Path(__file__).parent.parent / "synth"


def _doc(**sweep):
    return {"sweep": {"designs": ["pot4"], **sweep}}


def test_points_are_the_cartesian_product_without_duplicates():
    config = parse_config(_doc(designs=["pot4", "int8-lut"], act=["uint4", "uint8"],
                               acc_bits=["auto", 24], k=[64, 576], sign=["fold", "negate"],
                               place=False))
    pts = points(config)
    labels = [(s.label, s.act, s.acc_bits, s.k) for s, _ in pts]
    # acc auto: 2 K x (pot4 fold, pot4 negate, int8-lut) per act; acc 24: K and
    # the multiplier's sign collapse.
    assert len(pts) == 2 * (2 * 3 + 3)
    assert len(set(labels)) == len(labels)
    assert ("pot4 (negate)", "uint8", 24, 64) in labels
    assert ("int8-lut", "uint4", "auto", 576) in labels
    assert not any(lbl == "int8-lut (negate)" for lbl, *_ in labels)


def test_formats_expand_and_layers_enable_weight_bounds():
    config = parse_config({"sweep": {"formats": ["int4", "apot4"], "acc_bits": ["l1"]},
                           "layer": {"columns": 8, "seed": 3}})
    assert config.designs == ["int4-dsp", "int4-lut", "apot4"]
    assert config.layer == LayerSpec(columns=8, seed=3)
    spec = points(config)[2][0]
    pe = spec.build()
    levels = config.layer.levels("apot4", 64)
    assert levels.shape == (64, 8)
    # The widest column's L1 norm times 255 must fit, and one bit fewer must not.
    reach = int(abs(levels).sum(axis=0).max()) * 255
    assert reach <= 2 ** (pe.acc_bits - 1) - 1 < 2 * reach
    assert spec.design(pe)["layer"]["columns"] == 8


@pytest.mark.parametrize("doc, needle", [
    ({}, "needs a [sweep] table"),
    ({"sweep": {}}, "needs designs or formats"),
    (_doc(colour="red"), "unknown key colour in [sweep]"),
    ({"sweep": {"designs": ["pot4"]}, "plot": {}}, "unknown key plot in [top level]"),
    (_doc(acc_bits=["l1"]), "actual weights"),
    (_doc(device="100k"), "device: '100k'"),
    (_doc(designs=[]), "designs is an empty list"),
    ({"sweep": {"designs": ["pot4"], "acc_bits": [32]}, "output": {"acc_baseline": 24}},
     "acc_baseline 24"),
    ({"sweep": {"designs": ["pot4"]}, "layer": {"columns": 0}}, "layer columns"),
])
def test_bad_configs_are_clear_errors(doc, needle):
    with pytest.raises(ValueError) as info:
        parse_config(doc)
    assert needle in str(info.value)


def test_committed_configs_parse():
    pe = load_config(SYNTH / "pe_comparison.toml")
    assert len(points(pe)) == 14 * 2
    acc = load_config(SYNTH / "accumulator_study.toml")
    assert acc.acc_baseline == 32 and acc.layer is not None
    assert {s.kind for s, _ in points(acc)} == {"accumulator", "mac"}


def test_family_names():
    def rep(weight, mult):
        return {"design": {"weight": weight, "multiplier": mult}}
    assert family(rep("int8", "lut")) == "int-lut"
    assert family(rep("pot4-nz", "none")) == "pot-nz"
    assert family(rep("sp2-4", "none")) == "sp2"
    assert family(rep("upot:{0,1}+{0,2}", "none")) == "upot"


@pytest.mark.synth
def test_small_sweep_writes_every_output(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("POTGEN_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setitem(COMMANDS, "sweep", "potgen.cli.sweep")
    config = tmp_path / "small.toml"
    config.write_text('[sweep]\ndesigns = ["pot4", "int4-lut"]\nkind = "product"\n'
                      'act = "uint4"\nplace = false\nreference = "int4-lut"\n'
                      '[output]\ndir = "out"\n')
    assert main(["sweep", str(config), "-q"]) == 0
    out = tmp_path / "out"
    doc = json.loads((out / "results.json").read_text())
    assert doc["config"]["sweep"]["kind"] == "product"
    assert [r["design"]["name"] for r in doc["reports"]] == ["pot4", "int4-lut"]
    assert doc["reports"][0]["resources"]["mult18"] == 0
    assert "build_dir" not in doc["reports"][0]  # results do not depend on the machine
    rows = list(csv.DictReader(open(out / "results.csv")))
    assert rows[1]["area_x"] == "1.0"
    md = (out / "results.md").read_text()
    assert "## product, uint4 activations, LFE5U-85F" in md
    assert (out / "area_vs_weight_bits.png").stat().st_size > 1000
    assert not (out / "area_vs_fmax.png").exists()  # nothing placed, no Fmax to plot
