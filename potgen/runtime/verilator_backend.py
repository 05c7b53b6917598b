"""Verilator back end: runs :class:`~potgen.runtime.driver.Program`\\ s on the emitted Verilog.

The accelerator's Verilog (from :func:`potgen.hw.export.emit`) is compiled once with
Verilator and the C++ harness ``potgen/data/harness/accelerator_main.cpp`` into a
native program (:func:`potgen.flow.verilator_harness.build`, cached across processes).
:class:`VerilatorBackend` keeps that program running and sends it one program after
another through a pipe, in binary; the harness resets the model before each one. The
cycle-by-cycle behaviour is the Amaranth back end's (:class:`~potgen.runtime.
amaranth_backend.AmaranthBackend`): words offered as fast as the accelerator takes
them, ``dout.ready`` high with a given probability from a seeded generator, the
``cycles`` and ``error`` outputs read when every word has moved and ``busy`` is low.

Why one long-lived process: the digits network runs hundreds of small GEMMs, and
starting the program (process creation, model construction) costs more than
simulating a small GEMM: 8 x 16 x 8 GEMMs on an 8 x 8 array took 2.0 ms each with one
process against 8.3 ms with a process per GEMM
(``benchmarks/bench_verilator_backend.py``). ``persistent=False`` starts a fresh
process per program instead.

The back end depends only on the accelerator's port names (``cmd``, ``din``, ``dout``
streams, ``busy``, ``error``, ``cycles``, ``clk``, ``rst``) and widths, read from
``metadata["ports"]``; ``dout`` may be wider than 64 bits.
"""

from __future__ import annotations

import struct
import subprocess
import threading

import numpy as np

from ..errors import ToolError
from ..flow import verilator_harness as harness
from .driver import Backend, Program, RunResult

__all__ = ["REQUIRED_PORTS", "RESET_CYCLES", "VerilatorBackend"]

#: Ports the harness drives or reads: name -> (direction, largest width or None).
REQUIRED_PORTS = {
    "clk": ("input", 1), "rst": ("input", 1),
    "cmd__valid": ("input", 1), "cmd__ready": ("output", 1),
    "cmd__payload": ("input", 32),
    "din__valid": ("input", 1), "din__ready": ("output", 1),
    "din__payload": ("input", 32),
    "dout__valid": ("output", 1), "dout__ready": ("input", 1),
    "dout__payload": ("output", None),
    "busy": ("output", 1), "error": ("output", 1), "cycles": ("output", 64),
}
#: Cycles of synchronous reset before every program.
RESET_CYCLES = 2
#: Default top module name when an Accelerator component is given.
DEFAULT_TOP = "potgen_accelerator"

_REQUEST_MAGIC = int.from_bytes(b"POGN_RQ1", "little")
_REPLY_MAGIC = int.from_bytes(b"POGN_RP1", "little")
_HEADER = struct.Struct("<8Q")
_STATUS_OK, _STATUS_TIMEOUT, _STATUS_EXTRA = 0, 1, 2


def _design(design, top):
    """``(verilog, metadata)`` from an Accelerator or a ``(verilog, metadata)`` pair."""
    if isinstance(design, tuple):
        if len(design) != 2 or not isinstance(design[0], str) \
                or not isinstance(design[1], dict):
            raise TypeError("design: expected an Accelerator or a (verilog text, "
                            "metadata dict) pair")
        verilog, meta = design
        name = meta.get("name")
        if top is not None and name is not None and top != name:
            raise ValueError(f"top={top!r} differs from metadata['name']={name!r}")
        top = top or name
        if top is None:
            raise ValueError("top: the metadata has no 'name'; pass top=")
        return verilog, meta, top
    from amaranth.lib import wiring
    if not isinstance(design, wiring.Component) or not hasattr(design, "metadata"):
        raise TypeError(f"design: expected an Accelerator or a (verilog, metadata) pair, "
                        f"got {type(design).__name__}")
    from ..hw.export import emit
    verilog, meta = emit(design, top or DEFAULT_TOP)
    return verilog, meta, meta["name"]


def _port_widths(meta: dict) -> dict:
    if "ports" not in meta:
        raise ValueError("metadata: no 'ports' (emit the accelerator with "
                         "potgen.hw.export.emit)")
    ports = meta["ports"]
    if not isinstance(ports, list):
        raise TypeError(f"metadata['ports']: expected a list, got {type(ports).__name__}")
    found = {p["name"]: (p["direction"], p["width"]) for p in ports}
    for name, (direction, limit) in REQUIRED_PORTS.items():
        if name not in found:
            raise ValueError(f"metadata['ports']: the accelerator lacks port {name!r}; "
                             f"the Verilator back end needs {', '.join(REQUIRED_PORTS)}")
        got_dir, width = found[name]
        if got_dir != direction:
            raise ValueError(f"port {name!r} is an {got_dir}; expected an {direction}")
        if limit is not None and not 1 <= width <= limit:
            raise ValueError(f"port {name!r} is {width} bits wide; the harness handles "
                             f"1..{limit}")
    return {name: width for name, (_, width) in found.items()}


class VerilatorBackend(Backend):
    """Runs each :class:`Program` on the Verilated accelerator.

    Parameters
    ----------
    design : Accelerator or (str, dict)
        The accelerator component (emitted here as module ``top``), or its emitted
        Verilog text and metadata (:func:`potgen.hw.export.emit`).
    ready_probability : float
        Probability that ``dout.ready`` is high in a cycle, in (0, 1] (1.0: never
        back-pressure). Resolution 2^-32.
    seed : int
        Seed of the ``dout.ready`` pattern, 0..2^64-1; every program replays it from
        the start.
    max_cycles : int or None
        A run not finished after this many cycles raises ``RuntimeError`` (a hung
        design or a refused command); ``None``: 64 cycles per word moved, divided by
        ``ready_probability``, plus 1000 (as the Amaranth back end).
    top : str or None
        Top module name (default: ``metadata["name"]``, or ``"potgen_accelerator"``
        when a component is given).
    persistent : bool
        Keep one harness process for every program (default); ``False`` starts one per
        program.
    opt : str
        C++ optimisation of the build (default
        :data:`potgen.flow.verilator_harness.DEFAULT_OPT`).

    Members
    -------
    metadata : dict
        The accelerator's metadata (for :class:`~potgen.runtime.AcceleratorDriver`).
    build : potgen.flow.verilator_harness.HarnessBuild
        The compiled harness (``build.cached``, ``build.seconds``).
    dout_bits : int
        Width of ``dout.payload``.
    simulated_cycles : int
        Cycles simulated by this back end so far (resets excluded).
    """

    def __init__(self, design, *, ready_probability=1.0, seed=0, max_cycles=None,
                 top=None, persistent=True, opt=harness.DEFAULT_OPT):
        if isinstance(ready_probability, bool) or not isinstance(
                ready_probability, (int, float)) or not 0 < ready_probability <= 1:
            raise ValueError(f"ready_probability={ready_probability!r}: must be in (0, 1]")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) \
                or not 0 <= seed < 1 << 64:
            raise ValueError(f"seed={seed!r}: must be an int in 0..2^64-1")
        if max_cycles is not None and (isinstance(max_cycles, bool) or not isinstance(
                max_cycles, (int, np.integer)) or max_cycles < 1):
            raise ValueError(f"max_cycles={max_cycles!r}: must be a positive int or None")
        if not isinstance(persistent, bool):
            raise TypeError(f"persistent={persistent!r}: expected a bool")
        verilog, meta, top = _design(design, top)
        widths = _port_widths(meta)
        self.metadata = meta
        self.dout_bits = widths["dout__payload"]
        self._dout_words = -(-self.dout_bits // 32)
        self._ready_probability = float(ready_probability)
        self._threshold = min(round(self._ready_probability * 2 ** 32), 2 ** 32)
        self._seed = int(seed)
        self._max_cycles = None if max_cycles is None else int(max_cycles)
        self._persistent = persistent
        macros = {"P_CLK": "clk", "P_RST": "rst"}
        for stream in ("cmd", "din", "dout"):
            for field in ("valid", "ready", "payload"):
                macros[f"P_{stream.upper()}_{field.upper()}"] = f"{stream}__{field}"
        macros.update({"P_BUSY": "busy", "P_ERROR": "error", "P_CYCLES": "cycles",
                       "DOUT_WORDS": self._dout_words})
        self.build = harness.build(
            verilog, top, harness.harness_source("accelerator_main.cpp"),
            headers={"potgen_io.h": harness.harness_source("potgen_io.h"),
                     "potgen_ports.h": harness.port_header(macros)},
            opt=opt)
        self.simulated_cycles = 0
        self._process = None
        self._lock = threading.Lock()

    @property
    def pid(self):
        """Process id of the running harness (``None`` before the first run or after
        :meth:`close`), e.g. to read its CPU time."""
        return self._process.pid if self._process is not None else None

    # --- process ---

    def _start(self):
        try:
            return subprocess.Popen([str(self.build.executable)], stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        except OSError as e:
            raise ToolError("verilator", f"cannot start {self.build.executable}: {e}") from e

    def close(self) -> None:
        """Stop the harness process (a later :meth:`run` starts a new one)."""
        # getattr: __del__ also runs on an instance whose __init__ failed.
        process, self._process = getattr(self, "_process", None), None
        if process is not None:
            harness.stop(process)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        self.close()

    def _failed(self, process, what: str) -> ToolError:
        process.kill()
        process.wait()
        stderr = process.stderr.read().decode(errors="replace").strip()
        self._process = None
        return ToolError("verilator", f"the harness {self.build.executable} {what} "
                         f"(exit {process.returncode}): {stderr[-2000:] or 'no message'}")

    # --- running ---

    def _request(self, program: Program, max_cycles: int) -> bytes:
        header = _HEADER.pack(_REQUEST_MAGIC, len(program.commands), len(program.data),
                              program.outputs, self._threshold, self._seed, max_cycles,
                              RESET_CYCLES)
        try:
            words = np.array([*program.commands, *program.data], dtype=np.int64)
        except (OverflowError, TypeError, ValueError):
            words = None
        if words is None or words.ndim != 1 or (words.size and (
                words.min() < 0 or words.max() >= 1 << 32)):
            raise ValueError("program: command and data words must be ints in 0..2^32-1")
        return header + words.astype("<u4").tobytes()

    def _decode(self, raw: bytes, count: int) -> list:
        words = np.frombuffer(raw, dtype="<u4").reshape(count, self._dout_words)
        if self._dout_words == 1:
            return words[:, 0].astype(np.uint64).tolist()
        if self._dout_words == 2:
            combined = words[:, 0].astype(np.uint64) | (words[:, 1].astype(np.uint64) << 32)
            return combined.tolist()
        out = []
        for row in words.tolist():
            value = 0
            for i, w in enumerate(row):
                value |= w << (32 * i)
            out.append(value)
        return out

    def run(self, program: Program) -> RunResult:
        """Reset the accelerator, move ``program``'s words, return its results and status.

        Raises
        ------
        RuntimeError
            The run did not finish within ``max_cycles``, or the accelerator offered
            more than ``program.outputs`` result words.
        ToolError
            The harness process failed.
        """
        if not isinstance(program, Program):
            raise TypeError(f"program: expected a Program, got {type(program).__name__}")
        commands, data, expected = program.commands, program.data, program.outputs
        max_cycles = self._max_cycles
        if max_cycles is None:
            words = len(commands) + len(data) + expected
            max_cycles = int(64 * words / self._ready_probability) + 1000
        request = self._request(program, max_cycles)
        with self._lock:
            process = self._process if self._persistent else None
            if process is None or process.poll() is not None:
                process = self._start()
                if self._persistent:
                    self._process = process
            try:
                process.stdin.write(request)
                process.stdin.flush()
                header = process.stdout.read(_HEADER.size)
                if len(header) != _HEADER.size:
                    raise self._failed(process, "stopped during a run")
                (magic, status, cycle, counter, error, ci, di, no) = _HEADER.unpack(header)
                if magic != _REPLY_MAGIC:
                    raise self._failed(process, "sent a malformed reply")
                size = 4 * no * self._dout_words
                raw = process.stdout.read(size)
                if len(raw) != size:
                    raise self._failed(process, "stopped while sending results")
            except BrokenPipeError:
                raise self._failed(process, "closed its input") from None
            finally:
                if not self._persistent:
                    process.stdin.close()
                    process.wait()
                    process.stdout.close()
                    process.stderr.close()
        self.simulated_cycles += cycle
        if status == _STATUS_TIMEOUT:
            raise RuntimeError(f"accelerator simulation: not finished after {max_cycles} "
                               f"cycles ({ci}/{len(commands)} commands, {di}/{len(data)} "
                               f"data words, {no}/{expected} results)")
        if status == _STATUS_EXTRA:
            raise RuntimeError(f"accelerator simulation: more than the {expected} expected "
                               "result words")
        return RunResult(self._decode(raw, no), int(counter), bool(error))
