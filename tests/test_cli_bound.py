"""``potgen bound``: table and JSON output, weights files, one-line errors (exit 2)."""

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from potgen import bounds
from potgen.cli import main


def run(capsys, *argv):
    code = main(["bound", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_done_when_uint8_int8_json_reports_25_bits(capsys):
    code, out, err = run(capsys, "--k", "512", "--act", "uint8", "--weight", "int8", "--json")
    assert (code, err) == (0, "")
    assert json.loads(out) == {"datatype": {"bits": 25, "min": -16711680, "max": 16581120}}


def test_pot4_weights_need_24_bits(capsys):
    code, out, _ = run(capsys, "--k", "512", "--act", "uint8", "--weight", "pot4", "--json")
    assert code == 0
    assert json.loads(out) == {"datatype": {"bits": 24, "min": -8355840, "max": 8355840}}


def test_table_lists_each_method(capsys):
    code, out, err = run(capsys, "--k", "512", "--act", "uint8", "--weight", "int8")
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0] == "K=512  act=uint8  weight=int8"
    assert lines[1].split() == ["method", "bits", "min", "max"]
    assert lines[2].split() == ["datatype", "25", "-16711680", "16581120"]
    assert len(lines) == 3


@pytest.fixture
def weights_file(tmp_path):
    w = np.random.default_rng(11).integers(-128, 128, size=(512, 8))
    path = tmp_path / "w.npy"
    np.save(path, w)
    return path, w


def test_weights_add_the_weight_methods(capsys, weights_file):
    path, w = weights_file
    code, out, err = run(capsys, "--act", "uint8", "--weight", "int8", "--weights",
                         str(path), "--json")
    assert (code, err) == (0, "")
    got = json.loads(out)
    assert list(got) == list(bounds.METHODS)
    assert got["datatype"] == bounds.datatype("uint8", "int8", 512).to_dict()
    assert got["l1"] == bounds.l1("uint8", w).to_dict()
    assert got["exact"] == bounds.exact("uint8", w).to_dict()
    assert got["exact"]["bits"] == 24
    assert set(got["l1_zero_centered"]) == {"error"}
    assert "column 0" in got["l1_zero_centered"]["error"]


def test_balanced_weights_get_an_a2q_plus_bound(capsys, tmp_path):
    path = tmp_path / "balanced.npy"
    np.save(path, np.array([[3, -2], [-1, 2], [-2, 0]], dtype=np.int8))
    code, out, _ = run(capsys, "--k", "3", "--act", "uint4", "--weight", "int4",
                       "--weights", str(path), "--json")
    assert code == 0
    assert json.loads(out)["l1_zero_centered"] == {"bits": 7, "min": -45, "max": 45}


def test_table_with_weights_explains_a_refused_method(capsys, tmp_path):
    path = tmp_path / "w.npy"
    np.save(path, np.array([5, -1]))
    code, out, _ = run(capsys, "--act", "uint4", "--weight", "int8", "--weights", str(path))
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "K=2  act=uint4  weight=int8  weights: 1 column"
    rows = {line.split()[0]: line.split()[1:] for line in lines[2:6]}
    assert rows["l1_zero_centered"] == ["-", "-", "-"]
    assert rows["exact"] == ["8", "-15", "75"]
    assert "positive weight mass 5 and negative mass 1" in lines[6]


def test_json_file_is_written_and_table_printed(capsys, tmp_path):
    target = tmp_path / "bounds.json"
    code, out, _ = run(capsys, "--k", "64", "--act", "int8", "--weight", "apot4",
                       "--json", str(target))
    assert code == 0 and out.splitlines()[2].split()[0] == "datatype"
    assert json.loads(target.read_text()) == {
        "datatype": bounds.datatype("int8", "apot4", 64).to_dict()}


@pytest.mark.parametrize("argv, message", [
    (["--k", "0", "--act", "uint8", "--weight", "int8"], "--k must be a positive integer.*got 0"),
    (["--k", "-3", "--act", "uint8", "--weight", "int8"], "got -3"),
    (["--k", "abc", "--act", "uint8", "--weight", "int8"], "argument --k: invalid int value: 'abc'"),
    (["--k", "8", "--act", "uint8", "--weight", "int99"], "int99"),
    (["--k", "8", "--act", "pot4", "--weight", "int8"], "--act pot4: activations are intN or uintN"),
    (["--k", "8", "--act", "uint8"], "required: --weight"),
    (["--act", "uint8", "--weight", "int8"], "--k is required unless --weights"),
    (["--act", "uint8", "--weight", "int8", "--weights", "{missing}"], "cannot read a .npy array"),
    (["--act", "uint8", "--weight", "int8", "--weights", "{text}"], "cannot read a .npy array"),
    (["--act", "uint8", "--weight", "int8", "--weights", "{floats}"], "weights must be integer levels, got dtype float64"),
    (["--act", "uint8", "--weight", "int8", "--weights", "{cube}"], r"shape must be \[K\] or \[K, N\].*\(2, 2, 2\)"),
    (["--act", "uint8", "--weight", "pot4", "--weights", "{ints}"], "not representable in --weight pot4.*3"),
    (["--k", "5", "--act", "uint8", "--weight", "int8", "--weights", "{ints}"], "--k 5 does not match K = 4"),
    (["--k", "4", "--act", "uint8", "--weight", "int8", "--json", "{nodir}"], "--json .*cannot write"),
])
def test_bad_values_give_one_line_and_exit_2(capsys, tmp_path, argv, message):
    files = {"missing": tmp_path / "missing.npy", "text": tmp_path / "text.npy",
             "floats": tmp_path / "floats.npy", "cube": tmp_path / "cube.npy",
             "ints": tmp_path / "ints.npy", "nodir": tmp_path / "no" / "such" / "b.json"}
    files["text"].write_text("not numpy")
    np.save(files["floats"], np.array([1.0, 2.0]))
    np.save(files["cube"], np.zeros((2, 2, 2), dtype=np.int64))
    np.save(files["ints"], np.array([1, 3, -2, 0]))
    argv = [a.format(**files) for a in argv]
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("potgen")
    assert "Traceback" not in err
    assert re.search(message, err), err


def test_installed_script(tmp_path):
    script = Path(sys.executable).with_name("potgen")
    result = subprocess.run([str(script), "bound", "--k", "512", "--act", "uint8",
                             "--weight", "int8", "--json"], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["datatype"]["bits"] == 25
    bad = subprocess.run([str(script), "bound", "--k", "0", "--act", "uint8",
                          "--weight", "int8"], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr.strip() == ("potgen: error: --k must be a positive integer "
                                  "(the dot-product length), got 0")
