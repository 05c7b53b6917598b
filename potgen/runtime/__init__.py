"""Host runtime: drive a generated accelerator from Python.

:class:`~potgen.runtime.driver.AcceleratorDriver` turns GEMMs into the accelerator's
command and data words (tiling, slot placement, packing, requantization parameters,
MSQ column maps) and decodes its results; a :class:`~potgen.runtime.driver.Backend`
moves the words (Amaranth simulation in :mod:`potgen.runtime.amaranth_backend`).
:mod:`potgen.runtime.cycles` gives the exact busy-cycle count of a GEMM from the
accelerator's metadata alone.
"""

from .cycles import CycleBreakdown, gemm_cycles, model_metadata
from .driver import (
                     AcceleratorDriver,
                     Backend,
                     Command,
                     GemmResult,
                     Program,
                     RequantParams,
                     RunResult,
                     plan_gemm,
)

__all__ = ["AcceleratorDriver", "Backend", "Command", "CycleBreakdown", "GemmResult",
           "Program", "RequantParams", "RunResult", "gemm_cycles", "model_metadata",
           "plan_gemm"]
