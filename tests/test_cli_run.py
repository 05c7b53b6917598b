"""``potgen run gemm|digits`` on the Amaranth back end (the Verilator one: tests/test_cli_run_verilator.py)."""

import json

import numpy as np
import pytest

from potgen import golden
from potgen.cli import main
from potgen.formats import parse_format


@pytest.fixture
def operands(tmp_path):
    rng = np.random.default_rng(3)
    acts = rng.integers(0, 256, (5, 9))
    codes = rng.integers(0, 16, (9, 7))
    np.save(tmp_path / "A.npy", acts)
    np.save(tmp_path / "W.npy", codes)
    return tmp_path, acts, codes


def test_gemm_writes_golden_accumulators_and_stats(operands):
    tmp, acts, codes = operands
    rc = main(["run", "gemm", "--acts", str(tmp / "A.npy"), "--codes", str(tmp / "W.npy"),
               "--weight", "pot4", "--act", "uint8", "--rows", "2", "--cols", "3",
               "--backend", "amaranth", "--out", str(tmp / "C.npy"),
               "--json", str(tmp / "s.json")])
    assert rc == 0
    expected = golden.matmul(acts, codes, parse_format("pot4")).acc
    np.testing.assert_array_equal(np.load(tmp / "C.npy"), expected)
    stats = json.loads((tmp / "s.json").read_text())
    assert stats["bit_exact"] is True and stats["shape"] == [5, 9, 7]
    assert stats["macs"] == 5 * 9 * 7
    assert stats["utilization"] == pytest.approx(stats["macs"] / (6 * stats["cycles"]))


@pytest.mark.parametrize("argv,message", [
    (["--backend", "foo"], "invalid choice: 'foo'"),
    (["--backend", "board"], "needs --board"),
    (["--acc-bits", "wide"], "--acc-bits 'wide'"),
    (["--weight", "pot99"], "pot99"),
])
def test_gemm_bad_input_exits_2_with_one_line(operands, capsys, argv, message):
    tmp, _, _ = operands
    base = ["run", "gemm", "--acts", str(tmp / "A.npy"), "--codes", str(tmp / "W.npy"),
            "--weight", "pot4", "--act", "uint8", "--backend", "amaranth",
            "--out", str(tmp / "C.npy")]
    assert main(base + argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err
    assert not (tmp / "C.npy").exists()


def test_gemm_refuses_mismatched_shapes_and_bad_codes(operands, capsys):
    tmp, acts, codes = operands
    np.save(tmp / "W2.npy", codes[:4])
    np.save(tmp / "W3.npy", codes + 16)
    for name, message in (("W2.npy", "do not form a GEMM"), ("W3.npy", "not codes of pot4")):
        assert main(["run", "gemm", "--acts", str(tmp / "A.npy"), "--codes", str(tmp / name),
                     "--weight", "pot4", "--act", "uint8", "--backend", "amaranth"]) == 2
        assert message in capsys.readouterr().err
    assert main(["run", "gemm", "--acts", str(tmp / "missing.npy"), "--codes",
                 str(tmp / "W.npy"), "--weight", "pot4", "--act", "uint8"]) == 2
    assert "no such file" in capsys.readouterr().err


def test_digits_few_images_bit_exact(tmp_path):
    rc = main(["run", "digits", "--weight", "pot4", "--rows", "4", "--cols", "4",
               "--backend", "amaranth", "--samples", "6", "--json", str(tmp_path / "o.json")])
    assert rc == 0
    out = json.loads((tmp_path / "o.json").read_text())
    for key in ("accuracy", "float_accuracy", "bit_exact", "samples", "cycles", "utilization"):
        assert key in out
    assert out["bit_exact"] is True and out["samples"] == 6
    assert out["accuracy"] == out["golden_accuracy"]
    assert out["cycles"] == sum(layer["cycles"] for layer in out["layers"])
    assert [layer["shape"] for layer in out["layers"]] == [[6, 65, 32], [6, 33, 10]]


def test_digits_cnn_convolution_runs_as_im2col_gemm(tmp_path):
    rc = main(["run", "digits", "--network", "cnn", "--rows", "4", "--cols", "4",
               "--backend", "amaranth", "--samples", "1", "--json", str(tmp_path / "o.json")])
    assert rc == 0
    out = json.loads((tmp_path / "o.json").read_text())
    assert out["bit_exact"] is True and out["network"] == "digits-cnn8"
    assert [layer["shape"] for layer in out["layers"]] == [[36, 10, 8], [1, 289, 10]]


@pytest.mark.parametrize("argv", [["--weight", "msq:0.5"], ["--dataflow", "ws"]])
def test_digits_msq_columns_and_weight_stationary(tmp_path, argv):
    rc = main(["run", "digits", "--rows", "2", "--cols", "2", "--backend", "amaranth",
               "--samples", "2", "--json", str(tmp_path / "o.json")] + argv)
    assert rc == 0
    out = json.loads((tmp_path / "o.json").read_text())
    assert out["bit_exact"] is True and out["accuracy"] == out["golden_accuracy"]


def test_digits_bad_samples(capsys):
    assert main(["run", "digits", "--samples", "0", "--backend", "amaranth"]) == 2
    assert "--samples 0" in capsys.readouterr().err
