"""``potgen verilog accelerator``: deterministic Verilog + metadata, and its refusals."""

from __future__ import annotations

import json

import numpy as np
import pytest

from potgen.cli import main
from potgen.runtime import AcceleratorDriver, Backend, gemm_cycles

pytestmark = pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")

BASE = ["verilog", "accelerator", "--rows", "2", "--cols", "3", "--weight", "pot4",
        "--act", "uint8", "--k-max", "8", "--k-total", "16", "--act-slots", "3",
        "--dout-lanes", "2"]


class _Null(Backend):
    def run(self, program):
        raise AssertionError("not used")


def test_writes_identical_verilog_and_usable_metadata(tmp_path):
    first, second = tmp_path / "a.v", tmp_path / "b.v"
    assert main(BASE + ["-o", str(first)]) == 0
    assert main(BASE + ["-o", str(second), "--name", "potgen_accelerator"]) == 0
    assert first.read_bytes() == second.read_bytes()
    assert "module potgen_accelerator(" in first.read_text()
    meta = json.loads((tmp_path / "a.json").read_text())
    assert (meta["kind"], meta["rows"], meta["cols"], meta["k_max"],
            meta["k_total_max"], meta["act_slots"], meta["dout_lanes"]) == \
        ("accelerator", 2, 3, 8, 16, 3, 2)
    # The JSON alone drives the planner and the cycle model.
    driver = AcceleratorDriver(meta, _Null())
    program = driver.program(np.ones((3, 12), int), np.ones((12, 4), int))
    assert program.outputs == 2 * 2 * 2 * 2       # 4 tiles, 2 rows, 2 words per row
    assert gemm_cycles(meta, 3, 12, 4).total > 12


def test_msq_columns(tmp_path):
    out = tmp_path / "msq.v"
    args = ["verilog", "accelerator", "--rows", "2", "--cols", "3", "--act", "uint8",
            "--weight", "int4", "--weight", "sp2-4", "--weight", "sp2-4", "-o", str(out)]
    assert main(args) == 0
    meta = json.loads((tmp_path / "msq.json").read_text())
    assert meta["weight"] == ["int4", "sp2-4", "sp2-4"]
    assert [c["unit"] for c in meta["array"]["columns"]] == \
        ["multiplier", "shift-add", "shift-add"]


@pytest.mark.parametrize("extra, message", [
    (["--act-slots", "40"], "act_slots=40: must be 1..16"),
    (["--k-max", "0"], "k_max=0"),
    (["--k-total", "4"], "k_total_max=4: must be 8.."),
    (["--weight", "int4"], "--weight given 2 times for --cols 3"),
    (["--acc-bits", "exact"], "needs --weights"),
])
def test_refusals_exit_2(extra, message, capsys):
    assert main(BASE + extra) == 2
    assert message in capsys.readouterr().err
