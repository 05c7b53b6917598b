"""Board support: ECP5 development boards, their PLL, the board top and the bitstream build.

::

    from potgen.boards import BuildConfig, build_bitstream
    config = BuildConfig.default_for("ulx3s-85f", rows=2, cols=2)
    report = build_bitstream(config, build_dir="build")   # report["bitstream"]

Modules: :mod:`~potgen.boards.registry` (the boards), :mod:`~potgen.boards.pll`
(EHXPLLL dividers), :mod:`~potgen.boards.top` (:class:`BoardTop`),
:mod:`~potgen.boards.config` (:class:`BuildConfig`), :mod:`~potgen.boards.fit` (the
fit check by the estimate), :mod:`~potgen.boards.build` (the tool run) and
:mod:`~potgen.boards.program` (programmer commands).
"""

from .build import FitError, TimingError, build_bitstream
from .config import BuildConfig
from .fit import check_fit, estimate_board_design
from .pll import EcpPll, PllConfig, pll_config
from .program import program_command
from .registry import BOARDS, Board, LedPin, Programmer, UartPins, board, board_names
from .top import BoardTop

__all__ = ["BOARDS", "Board", "LedPin", "Programmer", "UartPins", "board", "board_names",
           "PllConfig", "pll_config", "EcpPll", "BoardTop", "BuildConfig", "check_fit",
           "estimate_board_design", "build_bitstream", "FitError", "TimingError",
           "program_command"]
