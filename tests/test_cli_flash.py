"""``potgen flash``: exact dry-run commands, a missing programmer (one line, exit 1), a
programmer that runs, and bad input (exit 2)."""

import shlex
import stat

import pytest

from potgen import cli
from potgen.flow import tools


@pytest.fixture
def run(monkeypatch, capsys):
    monkeypatch.setitem(cli.COMMANDS, "flash", "potgen.cli.flash")

    def _run(*argv):
        code = cli.main(["flash", *argv])
        out, err = capsys.readouterr()
        return code, out, err
    return _run


@pytest.fixture
def bitfile(tmp_path):
    path = tmp_path / "design.bit"
    path.write_bytes(b"\xff" * 64)
    return path


@pytest.fixture
def no_tools(monkeypatch, tmp_path):
    """No programmer anywhere: empty PATH, no override variables."""
    for var in ("OPENFPGALOADER", "DFU_UTIL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    tools.find.cache_clear()
    yield
    tools.find.cache_clear()


@pytest.mark.parametrize("board, flash, expected", [
    ("ulx3s-85f", False, "openFPGALoader -b ulx3s {}"),
    ("ulx3s-12f", True, "openFPGALoader -b ulx3s -f {}"),
    ("ecp5-5g-evn", False, "openFPGALoader -b ecp5_evn {}"),
    ("ecpix5-45f", True, "openFPGALoader -b ecpix5 -f {}"),
    ("colorlight-5a75b", False, "openFPGALoader -c ft232 {}"),
    ("orangecrab-25f", True, "dfu-util -a 0 -D {}"),
    ("orangecrab-85f", False, "dfu-util -a 0 -D {}"),
])
def test_dry_run_prints_the_exact_command(run, bitfile, board, flash, expected):
    code, out, err = run("--board", board, str(bitfile), "--dry-run",
                         *(["--flash"] if flash else []))
    assert code == 0
    assert out == expected.format(shlex.quote(str(bitfile))) + "\n"
    if board.startswith("orangecrab") and not flash:
        assert "bootloader" in err


@pytest.mark.parametrize("board, package", [("ulx3s-85f", "apt-get install openfpgaloader"),
                                            ("orangecrab-25f", "apt-get install dfu-util")])
def test_missing_programmer_is_one_line_naming_its_package(run, bitfile, no_tools, board,
                                                           package):
    code, out, err = run("--board", board, str(bitfile))
    assert code == 1 and out == ""
    assert len(err.strip().splitlines()) == 1 and package in err


def test_the_programmer_runs_with_those_arguments(run, bitfile, monkeypatch, tmp_path):
    log = tmp_path / "args.txt"
    fake = tmp_path / "fake-loader"
    fake.write_text(f'#!/bin/sh\necho "$@" > {log}\necho done\n')
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("OPENFPGALOADER", str(fake))
    tools.find.cache_clear()
    try:
        code, out, _ = run("--board", "ulx3s-45f", str(bitfile), "--flash")
    finally:
        tools.find.cache_clear()
    assert code == 0 and out == "done\n"
    assert log.read_text().split() == ["-b", "ulx3s", "-f", str(bitfile)]


def test_a_failing_programmer_exits_1_with_its_message(run, bitfile, monkeypatch, tmp_path):
    fake = tmp_path / "fake-loader"
    fake.write_text('#!/bin/sh\necho "JTAG init failed: no device found" >&2\nexit 3\n')
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("OPENFPGALOADER", str(fake))
    tools.find.cache_clear()
    try:
        code, _, err = run("--board", "ulx3s-85f", str(bitfile))
    finally:
        tools.find.cache_clear()
    assert code == 1 and "no device found" in err


def test_bad_input_exits_2(run, bitfile, tmp_path):
    code, _, err = run("--board", "ulx9s", str(bitfile), "--dry-run")
    assert code == 2 and "known boards" in err and "ulx3s-85f" in err
    code, _, err = run("--board", "ulx3s-85f", str(tmp_path / "missing.bit"), "--dry-run")
    assert code == 2 and "does not exist" in err
    svf = tmp_path / "design.svf"
    svf.write_text("")
    code, _, err = run("--board", "ulx3s-85f", str(svf), "--dry-run")
    assert code == 2 and ".bit" in err
