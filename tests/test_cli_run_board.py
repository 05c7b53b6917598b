"""``potgen run --backend uart-sim``: the board top (host link, self-test, accelerator) in
Verilator behind a serial model, bit-exact against the golden model; board back-end errors."""

import json

import numpy as np
import pytest

from potgen import golden
from potgen.cli import main
from potgen.formats import parse_format

pytestmark = pytest.mark.verilator


def test_gemm_through_the_board_top_pins(tmp_path):
    rng = np.random.default_rng(11)
    acts, codes = rng.integers(0, 256, (5, 7)), rng.integers(0, 16, (7, 3))
    np.save(tmp_path / "A.npy", acts)
    np.save(tmp_path / "W.npy", codes)
    rc = main(["run", "gemm", "--acts", str(tmp_path / "A.npy"), "--codes",
               str(tmp_path / "W.npy"), "--weight", "pot4", "--act", "uint8", "--rows", "2",
               "--cols", "2", "--backend", "uart-sim", "--board", "ulx3s-85f",
               "--out", str(tmp_path / "C.npy"), "--json", str(tmp_path / "s.json")])
    assert rc == 0
    np.testing.assert_array_equal(np.load(tmp_path / "C.npy"),
                                  golden.matmul(acts, codes, parse_format("pot4")).acc)
    assert json.loads((tmp_path / "s.json").read_text())["bit_exact"] is True


def test_digits_images_through_the_board_top_pins(tmp_path):
    rc = main(["run", "digits", "--weight", "pot4", "--rows", "2", "--cols", "2",
               "--samples", "3", "--backend", "uart-sim", "--board", "ulx3s-85f",
               "--json", str(tmp_path / "o.json")])
    assert rc == 0
    out = json.loads((tmp_path / "o.json").read_text())
    assert out["bit_exact"] is True and out["samples"] == 3
    assert out["accuracy"] == out["golden_accuracy"]


@pytest.mark.parametrize("argv,code,message", [
    (["--backend", "uart-sim"], 2, "needs --board"),
    (["--backend", "board", "--board", "ulx3s-85f"], 2, "needs --port"),
    (["--backend", "uart-sim", "--board", "ulx3s-99f"], 2, "ulx3s-85f"),
    (["--backend", "board", "--board", "ulx3s-85f", "--port", "/dev/potgen-no-such-port"],
     1, "cannot open /dev/potgen-no-such-port"),
])
def test_board_backend_errors(capsys, argv, code, message):
    assert main(["run", "digits", "--samples", "1", "--rows", "2", "--cols", "2"] + argv) \
        == code
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err
