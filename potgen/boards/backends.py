"""The board back ends of :mod:`potgen.runtime`: a real board over its serial port, and the
same board top simulated in Verilator with a serial model at its pins.

Both are :class:`potgen.runtime.link.LinkBackend` (the host-link protocol of
docs/host_link.md) under the same :class:`~potgen.runtime.AcceleratorDriver` the
simulation back ends use; only the transport differs:

``"board"``
    :class:`~potgen.runtime.link.SerialTransport` on ``port`` at the board's baud rate.
    The board must run the same accelerator the driver was given: the capability the
    link reports (rows, columns, formats, accumulator width, buffer depth) is compared
    first, and a different design is refused with both descriptions.
``"uart-sim"``
    :class:`~potgen.hw.host_top.HostTop` -- the host link, power-on self-test,
    accelerator and status LEDs that :class:`potgen.boards.BoardTop` puts into the
    bitstream, minus the board's PLL and pad buffers -- converted to Verilog and run
    by :class:`~potgen.runtime.serial_model.VerilatorUartTransport`, which bit-bangs
    8N1 frames into ``uart_rx`` and decodes ``uart_tx``. It runs at the board's default
    clock; the baud rate is ``clock / SIM_CLOCKS_PER_BIT`` unless given (the board's
    115200 baud would spend ~2000 simulated cycles per byte), a parameter of the same
    UART logic.
"""

from __future__ import annotations

from ..errors import ToolError
from ..hw.host_top import DEFAULT_BAUD, HostTop, capability_string
from .registry import board as find_board

__all__ = ["BOARD_BACKENDS", "SIM_CLOCKS_PER_BIT", "make_board_backend"]

#: Back ends that talk to a board top.
BOARD_BACKENDS = ("uart-sim", "board")
#: UART bit length of the ``uart-sim`` back end, in clock cycles.
SIM_CLOCKS_PER_BIT = 16


def _checked(backend, accelerator):
    expected = capability_string(accelerator)
    found = backend.query().capability
    if found != expected:
        backend.close()
        raise ValueError(f"the board runs '{found.decode('ascii', 'replace')}', the driver "
                         f"expects '{expected.decode('ascii')}': build and flash the same "
                         "design options you pass to potgen run")
    return backend


def make_board_backend(name: str, accelerator, *, board: str, port: str | None = None,
                       baud: int | None = None, self_test: bool = True):
    """A :class:`~potgen.runtime.link.LinkBackend` for ``accelerator`` on ``board``.

    Parameters
    ----------
    name : {"uart-sim", "board"}
    accelerator : Accelerator
        The design the board runs (or, for ``uart-sim``, the one to simulate).
    board : str
        A name of :func:`potgen.boards.board_names`.
    port : str or None
        Serial device of the ``board`` back end (``/dev/ttyUSB0``).
    baud : int or None
        Baud rate (default: the board's 115200; ``uart-sim``: clock / 16).
    self_test : bool
        ``uart-sim`` only: include the power-on self-test (the link waits for it).
    """
    from ..runtime.link import LinkBackend

    if name not in BOARD_BACKENDS:
        raise ValueError(f"backend={name!r}: unknown; board back ends: "
                         f"{', '.join(BOARD_BACKENDS)}")
    spec = find_board(board)
    if name == "board":
        if not port:
            raise ValueError("--backend board needs --port DEVICE (e.g. /dev/ttyUSB0)")
        from ..runtime.link import SerialTransport
        try:
            transport = SerialTransport(port, baud or DEFAULT_BAUD)
        except OSError as e:
            raise ToolError("serial port", f"board {spec.name}: cannot open {port}: {e}") \
                from None
        return _checked(LinkBackend(transport, accelerator), accelerator)
    from ..runtime.serial_model import VerilatorUartTransport
    clk_freq = int(round(spec.default_clock_mhz * 1e6))
    baud = baud or clk_freq // SIM_CLOCKS_PER_BIT
    top = HostTop(accelerator, clk_freq=clk_freq, baud=baud, self_test=self_test)
    transport = VerilatorUartTransport.for_component(top, name="potgen_host_top",
                                                     clk_freq=clk_freq, baud=baud)
    return _checked(LinkBackend(transport, accelerator), accelerator)
