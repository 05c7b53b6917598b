"""potgen: FPGA hardware generators for power-of-two quantized neural networks.

The top-level modules hold the specification every piece of hardware is checked
against: :mod:`potgen.formats` (number formats), :mod:`potgen.golden` (the bit-exact
NumPy model), :mod:`potgen.bounds` (provable accumulator widths) and
:mod:`potgen.quantize` (floats to codes). Hardware generators live in
:mod:`potgen.hw`, toolchain runs in :mod:`potgen.flow`.
"""

from .formats import Format, IntFormat, TermFormat, parse_format

__version__ = "0.1.0"

__all__ = ["Format", "IntFormat", "TermFormat", "parse_format", "__version__"]
