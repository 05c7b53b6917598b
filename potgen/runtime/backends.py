"""Back ends by name, for the command line and for scripts.

``make_backend(name, accelerator, **options)`` returns a :class:`~potgen.runtime.Backend`
that runs the given accelerator:

``"verilator"`` (default)
    the emitted Verilog compiled by Verilator (:mod:`potgen.runtime.verilator_backend`);
``"amaranth"``
    Amaranth's Python simulator (small arrays: some thousand cycles per second).

The board back ends (``"uart-sim"``, ``"board"``) need the board top around the
accelerator and are made by :mod:`potgen.boards`.
"""

from __future__ import annotations

__all__ = ["BACKENDS", "make_backend", "DEFAULT_BACKEND"]

#: Back ends that run an accelerator directly (the board ones wrap it in a board top).
BACKENDS = ("verilator", "amaranth")
DEFAULT_BACKEND = "verilator"


def make_backend(name: str, accelerator, **options):
    """The back end called ``name`` for ``accelerator`` (options go to its constructor)."""
    if name == "verilator":
        from .verilator_backend import VerilatorBackend
        return VerilatorBackend(accelerator, **options)
    if name == "amaranth":
        from .amaranth_backend import AmaranthBackend
        return AmaranthBackend(accelerator, **options)
    raise ValueError(f"backend={name!r}: unknown; allowed: {', '.join(BACKENDS)}")
