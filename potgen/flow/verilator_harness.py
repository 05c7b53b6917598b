"""Stand-alone Verilator executables: Verilog + a C++ main, compiled once, cached.

The Verilator back ends of :mod:`potgen.runtime` run a design as a native program
(the Verilated model plus a C++ main from :mod:`potgen.data.harness <potgen>`) that
talks to Python through its standard input and output. :func:`build` makes that
program:

1. ``verilator --cc --exe`` writes the model's C++ and its makefile (``Vdut.mk``: the
   model class is always ``Vdut``, so one C++ main serves every design);
2. Verilator's run-time library objects are copied in from a
   :class:`~potgen.flow.verilator.RuntimeCache` when compiled before (most of a cold
   build's time goes into them);
3. ``make -j 2`` compiles with :func:`~potgen.flow.verilator.make_variables` (which also
   fixes the PyPI wheel's precompiled-header variable).

This is what ``verilator --build`` does, split in two so that step 2 can run between
the Verilator and ``make`` steps.

A build is cached in ``<cache>/verilator/<top>-<hash>/`` (``cache`` is
:func:`potgen.flow.cache.cache_dir`: ``$POTGEN_CACHE_DIR`` or ``~/.cache/potgen``). The
hash covers everything that changes the executable: the Verilog text, the top name, the
C++ sources and headers, the optimisation level and Verilator's version, so a changed
design can never reuse a stale executable and an unchanged one is never compiled twice.
A file lock serialises processes that build the same design at the same time (the
second one waits and reuses the first one's result); a build is only marked finished
(``potgen-harness.json``) once the executable exists, so an interrupted build is
started over.

C++ names of ports: Verilator escapes a Verilog name with ``__`` in it (Amaranth's
``cmd__valid``) as ``cmd___05Fvalid``; :func:`cpp_name` gives the escaped name, and
:func:`port_header` writes a header of ``#define``\\ s so that C++ mains refer to ports
through fixed macro names.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from ..errors import ToolError
from . import cache as _cache
from . import tools
from . import verilator as vl

__all__ = [
    "BUILD_JOBS",
    "DEFAULT_OPT",
    "EXECUTABLE",
    "MODEL_PREFIX",
    "SCHEMA",
    "HarnessBuild",
    "build",
    "build_root",
    "cpp_name",
    "harness_source",
    "port_header",
    "stop",
]

#: Bumped whenever the build recipe changes meaning (invalidates cached executables).
SCHEMA = "potgen-harness-1"
#: Parallel compile jobs (the machines are small and shared).
BUILD_JOBS = 2
#: Class name of every Verilated model (``--prefix``), so that one C++ main fits all.
MODEL_PREFIX = "Vdut"
#: Default C++ optimisation. On potgen's accelerators ``-O1`` simulates as fast as
#: ``-O2`` (8 x 8 pot4 array: 85.6 k against 84.2 k cycles/s) and compiles the model's
#: largest file in about half the CPU time (4.8 s against 8.4 s).
DEFAULT_OPT = "-O1"
#: File name of the executable inside the build folder.
EXECUTABLE = "potgen-sim"
#: File marking a finished build.
_STAMP = "potgen-harness.json"
#: Lines of a failing log quoted in the ToolError.
_TAIL_LINES = 25

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*")
_HEADER_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*\.(h|hpp)")


@dataclass(frozen=True)
class HarnessBuild:
    """A compiled Verilator executable.

    Members
    -------
    executable : Path
        The program to run.
    folder : Path
        Its build folder (``<cache>/verilator/<top>-<hash>``).
    top : str
        Top module of the Verilog.
    cached : bool
        True when an earlier identical build was reused (nothing compiled).
    seconds : float
        Time spent building (near zero when cached).
    """

    executable: Path
    folder: Path
    top: str
    cached: bool
    seconds: float


def harness_source(name: str) -> str:
    """Text of a C++ source shipped in ``potgen/data/harness/`` (``"accelerator_main.cpp"``)."""
    if not isinstance(name, str) or "/" in name or name.startswith("."):
        raise ValueError(f"name={name!r}: expected the file name of a harness source")
    path = resources.files("potgen").joinpath("data", "harness", name)
    if not path.is_file():
        known = sorted(p.name for p in resources.files("potgen").joinpath(
            "data", "harness").iterdir())
        raise ValueError(f"name={name!r}: no such harness source; known: "
                         f"{', '.join(known)}")
    return path.read_text(encoding="utf-8")


def cpp_name(name: str) -> str:
    """The C++ member name Verilator gives the Verilog port ``name``.

    Verilator escapes every ``__`` pair as ``___05F`` (the second underscore written as
    its hex code) and ``$`` as ``__024``, so that its own ``__`` separators stay
    unambiguous. The build checks the result against the generated model header.
    """
    if not isinstance(name, str) or not _IDENT.fullmatch(name):
        raise ValueError(f"port name {name!r} is not a plain Verilog identifier")
    out, i = [], 0
    while i < len(name):
        ch = name[i]
        if ch == "_" and i + 1 < len(name) and name[i + 1] == "_":
            out.append("___05F")
            i += 2
            continue
        out.append("__024" if ch == "$" else ch)
        i += 1
    return "".join(out)


def port_header(macros: dict) -> str:
    """A C++ header of ``#define MACRO value`` lines.

    Parameters
    ----------
    macros : dict of str to str or int
        A ``str`` value is a Verilog port name, written as its C++ member
        (:func:`cpp_name`); an ``int`` is written as a number.
    """
    lines = ["// Generated by potgen.flow.verilator_harness.port_header.", "#pragma once"]
    for macro, value in macros.items():
        if not isinstance(macro, str) or not re.fullmatch(r"[A-Z][A-Z0-9_]*", macro):
            raise ValueError(f"macro {macro!r}: expected an upper-case C identifier")
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise TypeError(f"macro {macro}: value {value!r} must be a port name or an int")
        text = cpp_name(value) if isinstance(value, str) else f"{int(value)}"
        lines.append(f"#define {macro} {text}")
    return "\n".join(lines) + "\n"


class _RuntimeCache(vl.RuntimeCache):
    # A stand-alone executable links no VPI or DPI, so Verilator's makefile compiles
    # only these two run-time objects (cocotb builds need all four).
    OBJECTS = ("verilated", "verilated_threads")


def build_root() -> Path:
    """Folder holding the cached builds (not created)."""
    return _cache.cache_dir() / "verilator"


def _tail(text: str, lines: int = _TAIL_LINES) -> str:
    """The compiler's error lines (Verilator's ``%Error``, GCC's ``error:`` with the
    source line after it), or the output's last lines when there are none."""
    out = text.strip().splitlines()
    errors = [i for i, line in enumerate(out)
              if line.startswith("%Error") or re.search(r"\berror\b:", line)]
    if not errors:
        return "\n".join(out[-lines:])
    picked = sorted({j for i in errors for j in (i, i + 1) if j < len(out)})
    return "\n".join(out[j] for j in picked[:lines])


def _run(cmd, cwd: Path, log, timeout: float, what: str) -> None:
    # A session of its own, so that a timeout or an interrupt stops make's compiler
    # children too, not only make.
    try:
        proc = subprocess.Popen([str(c) for c in cmd], cwd=cwd, env=tools.verilator_env(),
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, start_new_session=True)
    except OSError as e:
        raise ToolError("verilator", f"{what}: cannot run {cmd[0]}: {e}", str(log)) from e
    try:
        output, _ = proc.communicate(timeout=timeout)
    except BaseException as e:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
        if isinstance(e, subprocess.TimeoutExpired):
            raise ToolError("verilator", f"{what} timed out after {timeout} s",
                            str(log)) from e
        raise
    with open(log, "a", encoding="utf-8") as f:
        f.write(f"$ {' '.join(map(str, cmd))}\n{output}\n")
    if proc.returncode != 0:
        raise ToolError("verilator", f"{what} failed (exit {proc.returncode}):\n"
                        f"{_tail(output)}", str(log))


def build(verilog: str, top: str, main: str, *, headers=None, opt: str = DEFAULT_OPT,
          jobs: int = BUILD_JOBS, root=None, timeout: float = 1800) -> HarnessBuild:
    """Compile ``verilog`` with the C++ ``main`` into an executable, or reuse the cached one.

    Parameters
    ----------
    verilog : str
        Verilog source text defining module ``top``.
    top : str
        Top module name.
    main : str
        C++ source of the program's ``main`` (e.g. :func:`harness_source`); it includes
        ``"Vdut.h"``.
    headers : dict of str to str, optional
        Extra header files (name to text) written beside ``main``, e.g. a
        :func:`port_header`.
    opt : str
        C++ optimisation of the model and of ``main`` (``-O0``, ``-O1``, ``-O2``,
        ``-Os``; default :data:`DEFAULT_OPT`).
    jobs : int
        Parallel compile jobs, 1..:data:`BUILD_JOBS`.
    root : path-like, optional
        Folder of the build folders (default :func:`build_root`). Verilator's run-time
        objects are always cached in :func:`build_root`, shared by every build.
    timeout : float
        Seconds allowed for each of the Verilator and ``make`` steps.

    Returns
    -------
    HarnessBuild

    Raises
    ------
    ToolError
        Verilator, ``make`` or the compiler is missing or fails (the log's last lines
        in the message, the full log in the build folder).
    """
    if not isinstance(verilog, str):
        raise TypeError(f"verilog: expected Verilog source text, got {type(verilog).__name__}")
    if not isinstance(top, str) or not _IDENT.fullmatch(top):
        raise ValueError(f"top={top!r}: not a Verilog module name")
    if not re.search(rf"\bmodule\s+{re.escape(top)}\s*[(;#]", verilog):
        raise ValueError(f"top={top!r}: the Verilog text defines no such module")
    if not isinstance(main, str) or "main" not in main:
        raise ValueError("main: expected C++ source text defining main()")
    headers = dict(headers or {})
    for name, text in headers.items():
        if not isinstance(name, str) or not _HEADER_NAME.fullmatch(name):
            raise ValueError(f"headers: file name {name!r} must be a plain NAME.h / NAME.hpp")
        if not isinstance(text, str):
            raise TypeError(f"headers[{name!r}]: expected source text, got "
                            f"{type(text).__name__}")
    make_vars = vl.make_variables(opt)
    if isinstance(jobs, bool) or not isinstance(jobs, int) or not 1 <= jobs <= BUILD_JOBS:
        raise ValueError(f"jobs={jobs!r}: allowed 1..{BUILD_JOBS}")
    vl.require()
    for exe in ("make", "c++"):
        if shutil.which(exe) is None:
            raise ToolError("verilator", f"building a Verilator executable needs {exe!r} "
                            "on PATH (apt-get install build-essential)")

    key = json.dumps({"schema": SCHEMA, "verilog": verilog, "top": top, "main": main,
                      "headers": headers, "make": make_vars,
                      "verilator": [str(tools.find("verilator")), vl.version()]},
                     sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:20]
    root = Path(root) if root is not None else build_root()
    folder = root / f"{top}-{digest}"
    executable = folder / "obj" / EXECUTABLE
    if (folder / _STAMP).exists() and executable.exists():
        return HarnessBuild(executable, folder, top, True, 0.0)

    root.mkdir(parents=True, exist_ok=True)
    with open(root / f".{folder.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (folder / _STAMP).exists() and executable.exists():
            return HarnessBuild(executable, folder, top, True, 0.0)
        start = time.monotonic()
        if folder.exists():
            shutil.rmtree(folder)       # an interrupted build: start over
        folder.mkdir()
        (folder / f"{top}.v").write_text(verilog, encoding="utf-8")
        (folder / "main.cpp").write_text(main, encoding="utf-8")
        for name, text in headers.items():
            (folder / name).write_text(text, encoding="utf-8")
        log = folder / "build.log"
        obj = folder / "obj"
        # Relative paths only: make runs in obj/, so "-I.." is the folder with the
        # headers; the run-time objects (cached across folders) see the same flags.
        cflags = f"-I.. -std=c++17 {opt}"
        verilate = [*tools.find("verilator"), "--cc", "--exe", "--prefix", MODEL_PREFIX,
                    "--top-module", top, "-O3", "--x-assign", "fast", "--x-initial",
                    "fast", "--noassert", "-Wno-fatal", "-Wno-lint", "-Wno-style",
                    "--Mdir", "obj", "-o", EXECUTABLE, "-CFLAGS", cflags,
                    f"{top}.v", "main.cpp"]
        _run(verilate, folder, log, timeout, f"verilating {top}")
        _check_ports(obj / f"{MODEL_PREFIX}.h", headers, log)
        runtime = _RuntimeCache(build_root(), json.dumps({"make": make_vars, "cflags": cflags,
                                                    "harness": SCHEMA}, sort_keys=True))
        restore = runtime.restore_command(obj)
        if restore:
            _run(restore, folder, log, timeout, "restoring the Verilator run-time objects")
        _run(["make", "-C", "obj", "-f", f"{MODEL_PREFIX}.mk", "-j", str(jobs),
              *(f"{k}={v}" for k, v in make_vars.items())],
             folder, log, timeout, f"compiling {top}")
        if not executable.exists():
            raise ToolError("verilator", f"make finished but {executable} is missing",
                            str(log))
        runtime.store(obj)
        seconds = time.monotonic() - start
        (folder / _STAMP).write_text(json.dumps({"top": top, "opt": opt,
                                                 "seconds": round(seconds, 2)}, indent=1))
    return HarnessBuild(executable, folder, top, False, seconds)


def stop(process) -> None:
    """End a harness process started with pipes: close its input (the harness exits at
    end of input), wait up to 10 s, kill it otherwise, and close its output pipes."""
    try:
        process.stdin.close()
        process.wait(timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        process.kill()
        process.wait()
    finally:
        process.stdout.close()
        process.stderr.close()


def _check_ports(model_header: Path, headers: dict, log) -> None:
    """Every port a generated header names must be a member of the model."""
    try:
        members = set(re.findall(r"VL_(?:IN|OUT)\w*\(&(\w+),", model_header.read_text()))
    except OSError as e:
        raise ToolError("verilator", f"no model header {model_header.name}", str(log)) from e
    for name, text in headers.items():
        for macro, member in re.findall(r"^#define (\w+) ([A-Za-z_]\w*)$", text, re.MULTILINE):
            if member not in members:
                raise ToolError("verilator", f"{name}: {macro} names port member "
                                f"{member!r}, which the model lacks (ports: "
                                f"{', '.join(sorted(members))})", str(log))
