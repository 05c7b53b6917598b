"""``potgen synth``: option handling, exit codes and output files.

Option errors and the tool-failure path are checked without running the real tools
(fast); one test runs yosys on two designs end to end (marked ``synth``).
"""

import csv
import json
import stat
from types import SimpleNamespace

import pytest

from potgen.cli import main
from potgen.cli.synth import specs_from_args
from potgen.flow import synth as flow_synth
from potgen.flow import tools

pytestmark = pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    path = tmp_path / "cache"
    monkeypatch.setenv("POTGEN_CACHE_DIR", str(path))
    return path


def _args(**kw):
    base = dict(designs=None, formats=None, act=None, acc_bits=None, k=64,
                overflow="wrap", pipeline=0, sign="fold", kind="mac")
    base.update(kw)
    return SimpleNamespace(**base)


def test_default_selection_is_the_pe_family():
    specs = specs_from_args(_args())
    assert [s.name for s in specs] == ["int8-dsp", "int8-lut", "int4-dsp", "int4-lut",
                                       "pot4", "pot4-nz", "apot4", "sp2-4", "pot5",
                                       "apot5"]
    assert {(s.act, s.acc_bits, s.k, s.kind) for s in specs} == {("uint8", "auto", 64,
                                                                  "mac")}


def test_selection_options():
    specs = specs_from_args(_args(designs=["pot4,int8-lut"], formats=["int4"],
                                  sign="both"))
    assert [s.label for s in specs] == ["pot4", "pot4 (negate)", "int8-lut", "int4-dsp",
                                        "int4-lut"]
    specs = specs_from_args(_args(designs=["upot:{0,1,4,8}+{0,2},apot4"],
                                  act=["4,int8"], acc_bits=["auto,32"]))
    assert len(specs) == 2 * 2 * 2
    assert specs[0].name == "upot:{0,1,4,8}+{0,2}" and specs[0].act == "uint4"
    assert {s.acc_bits for s in specs} == {"auto", 32}


@pytest.mark.parametrize("argv, needle", [
    (["--device", "100k"], "device: '100k'"),
    (["--acc-bits", "l1"], "actual weights"),
    (["--designs", "int8"], "int8-dsp or int8-lut"),
    (["--designs", "pot9"], "pot9"),
    (["--speed", "5"], "allowed: 6, 7, 8"),
    (["--package", "CABGA256"], "not a package of the LFE5U-85F"),
    (["--jobs", "0"], "--jobs 0"),
    (["--k", "0"], "--k 0"),
    (["--act", "pot4"], "activation"),
    (["--acc-bits", "8", "--designs", "int8-lut"], "narrower than a product"),
    (["--frobnicate"], "unrecognized arguments"),
])
def test_bad_options_exit_2_with_one_line(argv, needle, capsys, cache_dir):
    assert main(["synth", *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and needle in err
    assert not (cache_dir / "synth").exists()  # nothing ran


@pytest.fixture
def failing_yosys(tmp_path, monkeypatch, cache_dir):
    """potgen's yosys is a script that fails like yosys does (Amaranth's own is untouched)."""
    script = tmp_path / "fake-yosys"
    script.write_text('#!/bin/sh\nif [ "$1" = "-V" ]; then echo "Yosys 9.99 (fake)"; '
                      'exit 0; fi\necho "ERROR: synthetic failure in pass synth_ecp5" >&2\n'
                      "exit 1\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    real_find = tools.find

    def clear():
        tools.version.cache_clear()
        flow_synth.full_version.cache_clear()
    monkeypatch.setattr(tools, "find",
                        lambda name: (str(script),) if name == "yosys" else real_find(name))
    clear()
    yield script
    monkeypatch.undo()
    clear()


def test_tool_failure_exits_1_with_message_and_log(failing_yosys, capsys):
    assert main(["synth", "--designs", "pot4", "--no-place", "-q"]) == 1
    err = capsys.readouterr().err
    assert "yosys failed: ERROR: synthetic failure in pass synth_ecp5" in err
    log = err.split("(log: ")[1].split(")")[0]
    assert log.endswith("yosys.log")
    assert "synthetic failure" in open(log).read()


@pytest.mark.synth
def test_synth_writes_table_json_csv_markdown(tmp_path, cache_dir, capsys):
    out = tmp_path / "pe"
    argv = ["synth", "--designs", "pot4,int8-lut", "--no-place", "--json",
            f"{out}.json", "--csv", f"{out}.csv", "--markdown", f"{out}.md"]
    assert main(argv) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:4] == ["design", "act", "acc", "comb"]
    assert [line.split()[0] for line in table[2:4]] == ["pot4", "int8-lut"]

    reports = json.loads((tmp_path / "pe.json").read_text())["reports"]
    assert [r["design"]["name"] for r in reports] == ["pot4", "int8-lut"]
    for r in reports:
        assert {"kind", "weight", "act", "acc_bits", "multiplier"} <= set(r["design"])
    assert reports[0]["design"]["multiplier"] == "none"
    assert reports[1]["design"]["multiplier"] == "lut"
    ratio = reports[0]["ratios"]["area_x"]
    assert ratio == pytest.approx(reports[0]["resources"]["comb_cells"]
                                  / reports[1]["resources"]["comb_cells"], abs=1e-3)
    assert reports[1]["ratios"]["area_x"] == 1.0

    rows = list(csv.DictReader(open(f"{out}.csv")))
    assert [r["design"] for r in rows] == ["pot4", "int8-lut"]
    assert int(rows[0]["comb_cells"]) == reports[0]["resources"]["comb_cells"]
    assert (tmp_path / "pe.md").read_text().startswith("| design |")

    # The second run comes from the cache.
    assert main([*argv, "-q"]) == 0
    again = json.loads((tmp_path / "pe.json").read_text())["reports"]
    assert all(r["cached"] for r in again)
