"""Amaranth hardware generators: product units, accumulators, adder trees, MAC PEs.

Every generator is an :class:`amaranth.lib.wiring.Component` whose parameters are
checked in ``__init__``; derived widths and ``latency`` are properties and
``metadata()`` describes the design. :func:`potgen.hw.export.emit` turns any of them
into Verilog plus metadata.
"""

from .accumulator import Accumulator
from .adder_tree import AdderTree
from .export import emit, write
from .mac import MacPE
from .product import MultiplierProduct, ShiftAddProduct, product_unit

__all__ = ["ShiftAddProduct", "MultiplierProduct", "product_unit", "Accumulator",
           "AdderTree", "MacPE", "emit", "write"]
