"""A serial line at the pins of a simulated design: the transport of ``--backend uart-sim``.

:class:`VerilatorUartTransport` compiles a design that talks UART (a board top: UART
pins, framing, controller, array) with Verilator and the C++ harness
``potgen/data/harness/uart_main.cpp``, then behaves like a serial port: :meth:`write`
queues bytes that the harness bit-bangs into the design's receive pin, :meth:`read`
returns the bytes the harness decoded from its transmit pin. The harness is a
separate process driven over pipes; simulated time advances only while a call runs
(a read until its bytes arrived or its timeout of *device* time passed), so a slow
host never makes the device miss a byte, and a timeout costs simulated cycles, not
wall-clock seconds.

Line format: 8N1 (one start bit, eight data bits least significant first, one stop
bit). A bit lasts ``bit_cycles = round(clk_freq / baud)`` clock cycles, an integer,
because a design's UART counts whole cycles too; the resulting baud error must stay
within :data:`MAX_BAUD_ERROR`. Received frames are sampled in the middle of each bit
(``bit_cycles // 2`` cycles after the start bit's falling edge, then every
``bit_cycles``); a frame whose stop bit is low is dropped and counted in
:attr:`VerilatorUartTransport.framing_errors`.
"""

from __future__ import annotations

import math
import re
import struct
import subprocess

from ..errors import ToolError
from ..flow import verilator_harness as harness
from .link import Transport

__all__ = ["MAX_BAUD_ERROR", "MAX_WATCHED", "VerilatorUartTransport", "bit_cycles"]

#: Largest relative difference between ``clk_freq / bit_cycles`` and the requested baud
#: rate. Mid-bit sampling tolerates about half a bit of drift over a 10-bit frame (5%)
#: summed over both ends; 2% keeps a margin for the design's own rounding.
MAX_BAUD_ERROR = 0.02

#: Most outputs :meth:`VerilatorUartTransport.outputs` can report (each <= 64 bits).
MAX_WATCHED = 4

_STATUS = struct.Struct("<QQQI")


def bit_cycles(clk_freq: float, baud: float) -> int:
    """Clock cycles per bit: ``round(clk_freq / baud)``, checked against :data:`MAX_BAUD_ERROR`.

    Raises
    ------
    ValueError
        A frequency is not positive, fewer than 2 cycles per bit, or the rounding
        error is too large.
    """
    for name, value in (("clk_freq", clk_freq), ("baud", baud)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not math.isfinite(value) or value <= 0:
            raise ValueError(f"{name}={value!r}: must be a positive number (Hz / bit/s)")
    cycles = round(clk_freq / baud)
    if cycles < 2:
        raise ValueError(f"clk_freq={clk_freq} / baud={baud} gives {clk_freq / baud:.3g} "
                         "cycles per bit; at least 2 are needed to sample mid-bit")
    error = abs(clk_freq / cycles - baud) / baud
    if error > MAX_BAUD_ERROR:
        raise ValueError(f"clk_freq={clk_freq} / baud={baud} = {clk_freq / baud:.4g} "
                         f"rounds to {cycles} cycles per bit, a baud error of "
                         f"{100 * error:.2f}% (allowed {100 * MAX_BAUD_ERROR:.0f}%)")
    return cycles


def _port_names(verilog: str, top: str) -> set:
    module = re.search(rf"\bmodule\s+{re.escape(top)}\s*\(([^)]*)\)", verilog)
    if module is None:
        raise ValueError(f"top={top!r}: the Verilog text defines no such module")
    return {p.strip() for p in module.group(1).split(",") if p.strip()}


def _output_width(verilog: str, top: str, name: str):
    """Width of output ``name`` of ``top`` from a non-ANSI declaration (None: not found)."""
    start = re.search(rf"\bmodule\s+{re.escape(top)}\b", verilog).start()
    end = verilog.find("endmodule", start)
    decl = re.search(rf"^\s*output\s+(?:reg\s+|wire\s+)?(?:signed\s+)?"
                     rf"(?:\[\s*(\d+)\s*:\s*(\d+)\s*\]\s*)?{re.escape(name)}\s*;",
                     verilog[start:end], re.MULTILINE)
    if decl is None:
        return None
    return abs(int(decl[1]) - int(decl[2])) + 1 if decl[1] is not None else 1


class VerilatorUartTransport(Transport):
    """A byte transport to a Verilated design through its UART pins.

    Parameters
    ----------
    verilog : str
        Verilog text of the design.
    top : str
        Its top module, with ports ``clk``, ``uart_rx`` (input, idle high), ``uart_tx``
        (output) and optionally ``rst`` (synchronous, active high); other inputs stay 0.
    clk_freq : float
        Frequency of ``clk`` in Hz (converts timeouts to cycles).
    baud : float
        Line rate in bit/s; see :func:`bit_cycles`.
    clk, rst, rx, tx : str or None
        Port names (``rst=None``: the design has no reset port).
    watch : sequence of str
        Other outputs (at most :data:`MAX_WATCHED`, each at most 64 bits wide) whose
        current values :meth:`outputs` reports, e.g. a board top's ``leds``.
    reset_cycles : int
        Cycles of reset (``rx`` idle high) before the line starts.
    idle_bits : int
        Idle bit times between transmitted frames (0: back to back).
    opt : str
        C++ optimisation of the build.

    Members
    -------
    bit_cycles : int
        Clock cycles per bit.
    baud_error : float
        Relative difference between the line's real rate and ``baud``.
    build : potgen.flow.verilator_harness.HarnessBuild
    cycles : int
        Simulated cycles since reset.
    framing_errors : int
        Received frames dropped because their stop bit was low.
    tx_pending : int
        Written bytes not yet completely sent into the design.
    watch : tuple of str
        The outputs :meth:`outputs` reports.
    """

    def __init__(self, verilog, *, top, clk_freq, baud, clk="clk", rst="rst",
                 rx="uart_rx", tx="uart_tx", watch=(), reset_cycles=4, idle_bits=0,
                 opt=harness.DEFAULT_OPT):
        if not isinstance(verilog, str):
            raise TypeError(f"verilog: expected Verilog source text, got "
                            f"{type(verilog).__name__}")
        if not isinstance(top, str):
            raise TypeError(f"top={top!r}: expected a module name")
        self.bit_cycles = bit_cycles(clk_freq, baud)
        self.baud_error = abs(clk_freq / self.bit_cycles - baud) / baud
        self.clk_freq = float(clk_freq)
        for name, value in (("reset_cycles", reset_cycles), ("idle_bits", idle_bits)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name}={value!r}: must be an int >= 0")
        if rst is not None and reset_cycles < 1:
            raise ValueError(f"reset_cycles={reset_cycles}: a design with a reset port "
                             "needs at least 1")
        ports = _port_names(verilog, top)
        wanted = {"clk": clk, "rx": rx, "tx": tx, **({"rst": rst} if rst else {})}
        for role, name in wanted.items():
            if name not in ports:
                raise ValueError(f"{role}={name!r}: module {top!r} has no such port "
                                 f"(ports: {', '.join(sorted(ports))})")
        if isinstance(watch, str):
            watch = (watch,)
        self.watch = tuple(watch)
        if len(self.watch) > MAX_WATCHED:
            raise ValueError(f"watch={list(self.watch)}: at most {MAX_WATCHED} outputs")
        for name in self.watch:
            if name not in ports:
                raise ValueError(f"watch: module {top!r} has no port {name!r} (ports: "
                                 f"{', '.join(sorted(ports))})")
            width = _output_width(verilog, top, name)
            if width is not None and width > 64:
                raise ValueError(f"watch: port {name!r} is {width} bits wide; at most 64")
        macros = {"P_CLK": clk, "P_RX": rx, "P_TX": tx, "HAS_RST": int(rst is not None),
                  "WATCH_COUNT": len(self.watch)}
        macros.update({f"P_WATCH{i}": name for i, name in enumerate(self.watch)})
        if rst is not None:
            macros["P_RST"] = rst
        self.build = harness.build(
            verilog, top, harness.harness_source("uart_main.cpp"),
            headers={"potgen_io.h": harness.harness_source("potgen_io.h"),
                     "potgen_ports.h": harness.port_header(macros)},
            opt=opt)
        self.cycles = 0
        self.framing_errors = 0
        self.tx_pending = 0
        try:
            self._process = subprocess.Popen(
                [str(self.build.executable), str(self.bit_cycles), str(reset_cycles),
                 str(idle_bits)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        except OSError as e:
            raise ToolError("verilator", f"cannot start {self.build.executable}: {e}") from e

    # --- Transport ---

    def write(self, data: bytes) -> None:
        """Queue ``data`` for transmission into the design (sent as simulated time runs)."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"data: expected bytes, got {type(data).__name__}")
        data = bytes(data)
        if data:
            self._send(b"W" + struct.pack("<I", len(data)) + data)
            self.tx_pending += len(data)

    def read(self, n: int, timeout: float) -> bytes:
        """Up to ``n`` bytes from the design, waiting at most ``timeout`` s of device time.

        Returns fewer than ``n`` bytes (possibly none) when the timeout passes first.
        """
        if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n < 1 << 32:
            raise ValueError(f"n={n!r}: must be an int in 0..2^32-1")
        return self._command(b"R" + struct.pack("<IQ", n, self._timeout_cycles(timeout)))

    def advance(self, seconds: float) -> None:
        """Let ``seconds`` of device time pass (bytes received meanwhile stay queued)."""
        self._command(b"A" + struct.pack("<Q", self._timeout_cycles(seconds, "seconds")))

    def flush(self, timeout: float = 1.0) -> bool:
        """Run until every written byte is sent (at most ``timeout`` s of device time).

        Returns True when nothing is left to send.
        """
        self._command(b"F" + struct.pack("<Q", self._timeout_cycles(timeout)))
        return self.tx_pending == 0

    def outputs(self) -> dict:
        """Current values of the ``watch`` outputs, ``{name: int}``."""
        self._send(b"O")
        raw = self._process.stdout.read(8 * len(self.watch))
        if len(raw) != 8 * len(self.watch):
            raise self._failed()
        return dict(zip(self.watch, struct.unpack(f"<{len(self.watch)}Q", raw)))

    @classmethod
    def for_component(cls, component, *, name="potgen_top", **options):
        """A transport to an Amaranth component (converted to Verilog as module ``name``).

        ``options`` are the constructor's (``clk_freq``, ``baud``, ``watch``, ...).
        """
        from amaranth.back import verilog
        # emit_src=False: no paths of this machine in the text, so the build hash is
        # the same wherever the design is converted.
        text = verilog.convert(component, name=name, emit_src=False)
        return cls(text, top=name, **options)

    @property
    def time(self) -> float:
        """Device time since reset, in seconds."""
        return self.cycles / self.clk_freq

    def close(self) -> None:
        """Stop the simulation process."""
        process, self._process = getattr(self, "_process", None), None
        if process is not None:
            harness.stop(process)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        self.close()

    # --- pipe ---

    def _timeout_cycles(self, seconds, name="timeout") -> int:
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) \
                or not math.isfinite(seconds) or seconds < 0:
            raise ValueError(f"{name}={seconds!r}: must be a finite number of seconds >= 0")
        # A timeout that is a whole number of cycles up to float rounding is that many.
        return math.ceil(seconds * self.clk_freq - 1e-9)

    def _send(self, message: bytes) -> None:
        if self._process is None:
            raise ValueError("the transport is closed")
        try:
            self._process.stdin.write(message)
            self._process.stdin.flush()
        except BrokenPipeError:
            raise self._failed() from None

    def _command(self, message: bytes) -> bytes:
        self._send(message)
        status = self._process.stdout.read(_STATUS.size)
        if len(status) != _STATUS.size:
            raise self._failed()
        self.cycles, self.framing_errors, self.tx_pending, count = _STATUS.unpack(status)
        data = self._process.stdout.read(count)
        if len(data) != count:
            raise self._failed()
        return data

    def _failed(self) -> ToolError:
        process, self._process = self._process, None
        process.kill()
        process.wait()
        stderr = process.stderr.read().decode(errors="replace").strip()
        return ToolError("verilator", f"the UART harness {self.build.executable} stopped "
                         f"(exit {process.returncode}): {stderr[-2000:] or 'no message'}")
