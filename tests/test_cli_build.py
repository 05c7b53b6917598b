"""``potgen build``: usage errors (exit 2), the fit check before any tool, tool and timing
failures that leave nothing behind (exit 1), the report, and one real bitstream build."""

import json
import subprocess

import pytest
from amaranth_sim import collect_unelaborated  # noqa: F401 (fixture)

from potgen import cli
from potgen.boards import BOARDS, BuildConfig
from potgen.boards import build as build_module

pytestmark = pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")

SMALL = ["--rows", "1", "--cols", "1", "--k-max", "4"]


@pytest.fixture
def run(monkeypatch, capsys):
    monkeypatch.setitem(cli.COMMANDS, "build", "potgen.cli.build")

    def _run(*argv):
        code = cli.main(["build", *argv])
        out, err = capsys.readouterr()
        return code, out, err
    return _run


@pytest.fixture
def no_tools(monkeypatch):
    """Fail the test if any tool would run."""
    def refuse(*args, **kwargs):
        raise AssertionError(f"a tool ran: {args}")
    monkeypatch.setattr(build_module.subprocess, "run", refuse)
    monkeypatch.setattr(build_module, "tool_environment", refuse)


def fake_tools(monkeypatch, *, returncode=0, fmax=60.0, output="Info: done"):
    """Stand in for yosys / nextpnr / ecppack: write the files they would."""
    calls = []
    real = subprocess.run

    def fake(cmd, cwd=None, env=None, **kwargs):
        if cmd[0] != "sh":          # tool version queries and the like
            return real(cmd, cwd=cwd, env=env, **kwargs)
        calls.append((cmd, env))
        if returncode == 0:
            (cwd / "potgen_top.bit").write_bytes(b"\xff\x00bitstream")
            (cwd / "report.json").write_text(json.dumps({
                "fmax": {"$glbnet$host.clk": {"achieved": fmax, "constraint": 25.0}},
                "utilization": {"TRELLIS_COMB": {"used": 4000, "available": 83640},
                                "TRELLIS_FF": {"used": 1400, "available": 83640},
                                "MULT18X18D": {"used": 3, "available": 156},
                                "DP16KD": {"used": 3, "available": 208},
                                "EHXPLLL": {"used": 1, "available": 4}},
                "critical_paths": []}))
        return subprocess.CompletedProcess(cmd, returncode, output, "")
    monkeypatch.setattr(build_module.subprocess, "run", fake)
    return calls


def test_unknown_board_exits_2_listing_the_known_boards(run, no_tools):
    code, out, err = run("--board", "ulx3s-99f")
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1
    assert all(name in err for name in BOARDS)


def test_board_is_required(run, no_tools):
    code, _, err = run("--rows", "2")
    assert code == 2 and "--board is required" in err


def test_list_names_every_board(run, no_tools):
    code, out, _ = run("--list")
    assert code == 0
    assert all(name in out for name in BOARDS)


def test_a_design_too_big_for_the_12f_is_refused_before_any_tool(run, no_tools, tmp_path):
    code, _, err = run("--board", "ulx3s-12f", "--rows", "16", "--cols", "16",
                         "--build-dir", str(tmp_path / "b"))
    assert code == 2 and "does not fit" in err and "LFE5U-12F" in err
    assert not (tmp_path / "b").exists()


@pytest.mark.parametrize("argv, match", [
    (["--acc-bits", "wide"], "--acc-bits 'wide'"),
    (["--rows", "0"], "rows=0"),
    (["--weight", "pot0"], "pot0"),
    (["--clock", "900"], "clock_mhz=900"),
])
def test_bad_design_options_exit_2(run, no_tools, argv, match):
    code, _, err = run("--board", "ulx3s-85f", *argv)
    assert code == 2 and match in err


def test_unreachable_clock_exits_2(run, no_tools):
    code, _, err = run("--board", "ecp5-5g-evn", *SMALL, "--clock", "25")
    assert code == 2 and "nearest EHXPLLL output" in err and "24.0000" in err


def test_config_file_and_overrides(tmp_path):
    from potgen.cli.build import config_from_args
    path = tmp_path / "a.toml"
    path.write_text(BuildConfig(board="ulx3s-45f", rows=3, cols=5, weight="apot4").to_toml())

    class Args:
        board, config, rows, cols, weight, act, k_max, acc_bits = ("ulx3s-45f", str(path),
                                                                   None, 7, None, None, None,
                                                                   "20")
        overflow = pipeline = out = clock = baud = seed = None
        no_self_test = True
    c = config_from_args(Args)
    assert (c.rows, c.cols, c.weight, c.acc_bits, c.self_test) == (3, 7, "apot4", 20, False)
    Args.board = None                      # the config names the board
    assert config_from_args(Args).board == "ulx3s-45f"
    Args.board = "ulx3s-85f"
    with pytest.raises(ValueError, match="differs from --board"):
        config_from_args(Args)


def test_tool_failure_exits_1_and_leaves_no_outputs(run, monkeypatch, tmp_path):
    fake_tools(monkeypatch, returncode=1, output="ERROR: Unable to place cell 'x'")
    out_dir = tmp_path / "b"
    code, _, err = run("--board", "ulx3s-85f", *SMALL, "--build-dir", str(out_dir),
                         "--json", str(tmp_path / "r.json"), "-q")
    assert code == 1 and "Unable to place cell" in err
    assert not list(out_dir.glob("*.bit")) and not list(out_dir.glob("*.json"))
    assert not (tmp_path / "r.json").exists()


def test_missed_timing_exits_1_unless_allowed(run, monkeypatch, tmp_path):
    calls = fake_tools(monkeypatch, fmax=20.5)
    out_dir = tmp_path / "b"
    code, _, err = run("--board", "ulx3s-85f", *SMALL, "--build-dir", str(out_dir), "-q")
    assert code == 1 and "timing missed" in err and "20.5" in err
    assert len(err.strip().splitlines()) == 1
    assert not list(out_dir.glob("*.bit"))
    env = calls[0][1]
    assert {"YOSYS", "NEXTPNR_ECP5", "ECPPACK"} <= set(env)
    assert "yowasp" in env["NEXTPNR_ECP5"]

    code, out, err = run("--board", "ulx3s-85f", *SMALL, "--build-dir", str(out_dir),
                         "--allow-timing-fail")
    assert code == 0 and "MISSED" in out
    report = json.loads((out_dir / "ulx3s-85f.json").read_text())
    assert report["timing_met"] is False and report["fmax_mhz"] == 20.5


def test_report_fields_and_files(run, monkeypatch, tmp_path):
    fake_tools(monkeypatch, fmax=61.25)
    out_dir = tmp_path / "b"
    code, out, err = run("--board", "ulx3s-85f", *SMALL, "--build-dir", str(out_dir),
                         "--json", str(tmp_path / "r.json"))
    assert code == 0, err
    report = json.loads((tmp_path / "r.json").read_text())
    assert report == json.loads((out_dir / "ulx3s-85f.json").read_text())
    assert report["bitstream"] == str(out_dir / "ulx3s-85f.bit")
    assert (out_dir / "ulx3s-85f.bit").read_bytes() == b"\xff\x00bitstream"
    assert report["board"] == "ulx3s-85f" and report["clock_mhz"] == 25.0
    assert report["fmax_mhz"] == 61.25 and report["timing_met"] is True
    assert report["resources"]["lut4"] == 4000 and report["resources"]["mult18"] == 3
    assert report["pll"]["output_mhz"] == 25.0 and report["seconds"] > 0
    assert BuildConfig.from_dict(report["config"]).rows == 1
    assert report["estimate"]["resources"]["lut4_sites"] > 0
    assert "Fmax 61.25 MHz" in out and str(out_dir / "ulx3s-85f.bit") in out


@pytest.mark.synth
@pytest.mark.slow
def test_real_bitstream_for_the_ulx3s_85f_meets_the_board_clock(run, tmp_path):
    out_dir = tmp_path / "build"
    code, _, err = run("--board", "ulx3s-85f", "--rows", "2", "--cols", "2",
                         "--weight", "pot4", "--k-max", "16", "--build-dir", str(out_dir),
                         "--json", str(tmp_path / "report.json"))
    assert code == 0, err
    report = json.loads((tmp_path / "report.json").read_text())
    bit = out_dir / "ulx3s-85f.bit"
    assert report["bitstream"] == str(bit) and bit.stat().st_size > 50_000
    assert report["clock_mhz"] == BOARDS["ulx3s-85f"].default_clock_mhz
    assert report["timing_met"] and report["fmax_mhz"] >= report["clock_mhz"]
    assert report["resources"]["pll"] == 1 and report["resources"]["lut4"] > 500
