"""``potgen flash``: load a bitstream onto a board.

::

    potgen flash --board ulx3s-85f build/ulx3s-85f.bit            # SRAM (until power off)
    potgen flash --board ulx3s-85f build/ulx3s-85f.bit --flash    # SPI flash (persistent)
    potgen flash --board orangecrab-25f build/orangecrab-25f.bit --dry-run

openFPGALoader programs every board but the OrangeCrab, whose DFU bootloader is
driven by dfu-util (and always writes the flash). ``--dry-run`` prints the exact
command and runs nothing. A missing programmer is one line naming the package that
provides it (exit 1); a failing one exits 1 with its own last lines.
"""

from __future__ import annotations

import shlex
import subprocess
import sys

from ..boards import BOARDS, program_command
from ..boards import board as _board
from ..errors import ToolError


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "flash", help="program a board with a bitstream (openFPGALoader / dfu-util)",
        description="Load a bitstream built by `potgen build` onto a board: into the "
                    "FPGA's SRAM by default, into its SPI flash with --flash. Boards: "
                    + ", ".join(BOARDS) + ".")
    p.add_argument("--board", required=True, metavar="NAME", help="board name")
    p.add_argument("file", metavar="FILE", help="the .bit file")
    p.add_argument("--flash", action="store_true",
                   help="write the SPI flash (kept over power cycles)")
    p.add_argument("--dry-run", action="store_true",
                   help="print the command instead of running it")
    p.set_defaults(func=run)


def run(args) -> int:
    info = _board(args.board)
    if args.dry_run:
        cmd = program_command(info, args.file, flash=args.flash, require_tool=False)
        print(shlex.join(cmd))
        if info.programmer.sram is None and not args.flash:
            print(f"# {info.name}: {info.programmer.note}", file=sys.stderr)
        return 0
    cmd = program_command(info, args.file, flash=args.flash)
    print(f"potgen flash: {shlex.join(cmd)}", file=sys.stderr, flush=True)
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    sys.stdout.write(proc.stdout)
    if proc.returncode != 0:
        lines = [ln.strip() for ln in (proc.stdout + proc.stderr).splitlines() if ln.strip()]
        raise ToolError(info.programmer.tool, " | ".join(lines[-4:]) or
                        f"exit code {proc.returncode}; {info.programmer.note}")
    return 0
