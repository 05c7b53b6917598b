"""Amaranth hardware generators: product units, accumulators, adder trees, MAC PEs,
systolic arrays, requantization, the accelerator top and SAMD-style packed lanes.

Every generator is an :class:`amaranth.lib.wiring.Component` whose parameters are
checked in ``__init__``; derived widths and ``latency`` are properties and
``metadata()`` describes the design. :func:`potgen.hw.export.emit` turns any of them
into Verilog plus metadata.
"""

from .accelerator import Accelerator
from .accumulator import Accumulator
from .adder_tree import AdderTree
from .array import SystolicArray
from .export import emit, write
from .mac import MacPE
from .packed_accumulator import PackedAccumulator
from .packed_mac import PackedMacPE
from .packed_memory import PackedOperandReader
from .packed_product import PackedProduct
from .product import MultiplierProduct, ShiftAddProduct, product_unit
from .requant import Requantizer

__all__ = ["ShiftAddProduct", "MultiplierProduct", "product_unit", "Accumulator",
           "AdderTree", "MacPE", "SystolicArray", "Requantizer", "Accelerator",
           "PackedProduct", "PackedAccumulator", "PackedMacPE", "PackedOperandReader",
           "emit", "write"]
