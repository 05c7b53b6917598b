"""The ``potgen`` command line (DESIGN.md section 5).

Each command lives in its own module of this package and exposes
``register(subparsers)``, which adds its parser and sets ``func(args) -> int``.
Errors: ``ValueError`` / ``TypeError`` (bad input) print one line and exit 2;
:class:`potgen.errors.ToolError` prints the tool's message and exits 1.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import warnings

from ..errors import ToolError

#: Command name -> module that registers it, in the order ``--help`` lists them.
COMMANDS = {
    "verilog": "potgen.cli.verilog",
    "synth": "potgen.cli.synth",
    "sweep": "potgen.cli.sweep",
    "estimate": "potgen.cli.estimate",
    "bound": "potgen.cli.bound",
    "run": "potgen.cli.run",
    "explore": "potgen.cli.explore",
    "build": "potgen.cli.build",
    "flash": "potgen.cli.flash",
}


class UsageError(ValueError):
    """A bad command-line value (exit code 2)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        # One line, no usage dump: the contract is "one line, exit 2".
        raise UsageError(f"{self.prog}: {message}")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="potgen", description="Hardware generators for power-of-two "
                     "quantized neural networks (Lattice ECP5, open toolchain).")
    from .. import __version__
    parser.add_argument("--version", action="version", version=f"potgen {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, module in COMMANDS.items():
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as e:
            if e.name != module:
                raise
            continue
        mod.register(sub)
    return parser


def main(argv=None) -> int:
    # Commands build components for their metadata or refuse input after building them;
    # Amaranth's "created but never used" warning would only add noise to one-line errors.
    from amaranth.hdl import UnusedElaboratable
    warnings.filterwarnings("ignore", category=UnusedElaboratable)
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if not getattr(args, "func", None):
            parser.print_help()
            return 2
        return int(args.func(args) or 0)
    except ToolError as e:
        print(f"potgen: {e}", file=sys.stderr)
        return 1
    except (ValueError, TypeError) as e:
        print(f"potgen: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
