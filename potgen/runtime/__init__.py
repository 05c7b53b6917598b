"""Host runtime: drive a generated accelerator from Python.

:class:`~potgen.runtime.driver.AcceleratorDriver` turns GEMMs into the accelerator's
command and data words (tiling, padding, requantization parameters) and decodes its
results; a :class:`~potgen.runtime.driver.Backend` moves the words (Amaranth
simulation in :mod:`potgen.runtime.amaranth_backend`).
"""

from .driver import (AcceleratorDriver, Backend, GemmResult, Program, RequantParams,
                     RunResult)

__all__ = ["AcceleratorDriver", "Backend", "GemmResult", "Program", "RequantParams",
           "RunResult"]
