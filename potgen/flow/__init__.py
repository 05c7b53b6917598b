"""Toolchain runs: synthesis (yosys, nextpnr), timing harness, reports, Verilator, formal.

The usual entry points are :func:`synthesize` / :func:`synthesize_many` (one design or
many in parallel, cached) and :class:`TimingHarness` (registered inputs and outputs
around a block so its Fmax is its own).
"""

from .harness import TimingHarness
from .synth import synthesize, synthesize_many

__all__ = ["TimingHarness", "synthesize", "synthesize_many"]
