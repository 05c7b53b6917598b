"""Programmer commands: openFPGALoader for most boards, dfu-util for the OrangeCrab.

:func:`program_command` gives the exact argv ``potgen flash`` runs (and prints with
``--dry-run``); a missing programmer is a :class:`~potgen.errors.ToolError` whose one
line names the Debian package that provides it (and the PyPI one where it exists).
"""

from __future__ import annotations

from pathlib import Path

from ..errors import ToolError
from ..flow import tools
from .registry import board as _board

__all__ = ["program_command", "PROVIDERS"]

#: Where each programmer comes from.
PROVIDERS = {
    "openFPGALoader": "Debian/Ubuntu: apt-get install openfpgaloader (or build it from "
                      "github.com/trabucayre/openFPGALoader)",
    "dfu-util": "Debian/Ubuntu: apt-get install dfu-util",
}


def program_command(board, bitstream, *, flash: bool = False,
                    require_tool: bool = True) -> list:
    """The argv that loads ``bitstream`` onto ``board``.

    Parameters
    ----------
    board : Board or str
    bitstream : path
        The ``.bit`` file (it must exist).
    flash : bool
        Write the SPI flash (kept over power cycles) instead of the SRAM.
    require_tool : bool
        Look the programmer up and raise :class:`~potgen.errors.ToolError` when it is
        missing; False gives the command with the bare tool name (``--dry-run``).
    """
    info = _board(board)
    path = Path(bitstream)
    if path.suffix.lower() != info.programmer.file_suffix:
        raise ValueError(f"FILE: {str(path)!r} is not a {info.programmer.file_suffix} "
                         f"bitstream; {info.programmer.tool} takes the "
                         f"{info.programmer.file_suffix} file potgen build writes")
    if not path.is_file():
        raise ValueError(f"FILE: {str(path)!r} does not exist")
    prog = info.programmer
    if flash or prog.sram is None:
        args = list(prog.flash)
    else:
        args = list(prog.sram)
    tool = prog.tool
    cmd = None
    if require_tool:
        cmd = tools.find(tool)
        if cmd is None:
            raise ToolError(tool, f"not installed; {PROVIDERS[tool]}")
    return [*(cmd or (tool,)), *args, str(path)]
