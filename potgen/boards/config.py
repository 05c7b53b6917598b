"""The configuration of one board build: a typed, frozen record that round-trips JSON and TOML.

``potgen build --config FILE`` reads it; every ``potgen build`` writes the one it
used into its report, so a build can be repeated exactly. Unknown keys, wrong types
and bad values are refused when the record is made (``ValueError`` / ``TypeError``
naming the key), before any hardware is elaborated.

TOML example::

    board = "ulx3s-85f"
    rows = 4
    cols = 4
    weight = "pot4"
    act = "uint8"
    k_max = 64
    clock_mhz = 50.0
"""

from __future__ import annotations

import dataclasses
import json
import sys
from dataclasses import dataclass
from pathlib import Path

from ..formats import parse_format
from .registry import board as _board

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = ["BuildConfig"]

_OVERFLOWS = ("wrap", "saturate")


def _check_int(value, key: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{key}={value!r}: expected an int {lo}..{hi}")
    if not lo <= value <= hi:
        raise ValueError(f"{key}={value}: must be {lo}..{hi}")
    return value


@dataclass(frozen=True)
class BuildConfig:
    """Everything that determines a board bitstream.

    Members
    -------
    board : str
        Board name (:data:`potgen.boards.BOARDS`); normalised to the canonical name.
    rows, cols : int
        Array size, 1..64 each.
    weight : str
        Weight format spec (canonical form).
    act : str
        Activation format (``intN`` / ``uintN``).
    k_max : int
        Buffer depth, the longest K, 1..65536.
    acc_bits : int or ``"auto"``
        Accumulator width or ``"auto"`` (the datatype bound for ``k_max``).
    overflow : ``"wrap"`` or ``"saturate"``
    pipeline : int
        Register stages in each product unit, 0..4.
    out : str
        Requantized output format.
    clock_mhz : float or None
        Accelerator clock; None takes the board's default.
    baud : int
        Host link baud rate.
    self_test : bool
        Include the power-on self-test.
    seed : int
        nextpnr placement seed.
    """

    board: str
    rows: int = 4
    cols: int = 4
    weight: str = "pot4"
    act: str = "uint8"
    k_max: int = 64
    acc_bits: object = "auto"
    overflow: str = "wrap"
    pipeline: int = 0
    out: str = "uint8"
    clock_mhz: float | None = None
    baud: int = 115200
    self_test: bool = True
    seed: int = 1

    def __post_init__(self):
        def set_(key, value):
            # Normalised values replace the given ones on the frozen record.
            object.__setattr__(self, key, value)
        set_("board", _board(self.board).name)
        _check_int(self.rows, "rows", 1, 64)
        _check_int(self.cols, "cols", 1, 64)
        for key in ("weight", "act", "out"):
            value = getattr(self, key)
            if not isinstance(value, str):
                raise TypeError(f"{key}={value!r}: expected a format spec string")
            set_(key, str(parse_format(value)))
        _check_int(self.k_max, "k_max", 1, 1 << 16)
        if isinstance(self.acc_bits, str):
            if self.acc_bits != "auto":
                raise ValueError(f"acc_bits={self.acc_bits!r}: expected 'auto' or an int "
                                 "2..64")
        else:
            _check_int(self.acc_bits, "acc_bits", 2, 64)
        if self.overflow not in _OVERFLOWS:
            raise ValueError(f"overflow={self.overflow!r}: allowed: {', '.join(_OVERFLOWS)}")
        _check_int(self.pipeline, "pipeline", 0, 4)
        if self.clock_mhz is not None:
            if isinstance(self.clock_mhz, bool) or \
                    not isinstance(self.clock_mhz, (int, float)):
                raise TypeError(f"clock_mhz={self.clock_mhz!r}: expected MHz as a number")
            if not 3.125 <= self.clock_mhz <= 400:
                raise ValueError(f"clock_mhz={self.clock_mhz!r}: must be 3.125..400 MHz "
                                 "(the ECP5 PLL's output range)")
            set_("clock_mhz", float(self.clock_mhz))
        _check_int(self.baud, "baud", 300, 12_000_000)
        if not isinstance(self.self_test, bool):
            raise TypeError(f"self_test={self.self_test!r}: expected true or false")
        _check_int(self.seed, "seed", 0, 2 ** 31 - 1)

    # --- derived ---

    @property
    def board_info(self):
        return _board(self.board)

    @property
    def effective_clock_mhz(self) -> float:
        """``clock_mhz`` or the board's default clock."""
        return self.clock_mhz if self.clock_mhz is not None else \
            self.board_info.default_clock_mhz

    def accelerator_kwargs(self) -> dict:
        """Arguments of :class:`~potgen.hw.accelerator.Accelerator`."""
        return {"rows": self.rows, "cols": self.cols, "weight": self.weight,
                "act": self.act, "k_max": self.k_max, "acc_bits": self.acc_bits,
                "overflow": self.overflow, "pipeline": self.pipeline,
                "out_fmt": self.out}

    def accelerator(self):
        from ..hw.accelerator import Accelerator
        kw = self.accelerator_kwargs()
        return Accelerator(kw.pop("rows"), kw.pop("cols"), kw.pop("weight"), kw.pop("act"),
                           **kw)

    @classmethod
    def default_for(cls, board, **overrides) -> BuildConfig:
        """The board's default design, with ``overrides`` applied."""
        info = _board(board)
        fields = dict(info.default_array)
        fields.update(overrides)
        return cls(board=info.name, **fields)

    # --- serialisation ---

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> BuildConfig:
        if not isinstance(values, dict):
            raise TypeError(f"config: expected a table of keys, got {type(values).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"config: unknown key {unknown[0]!r}; allowed keys: "
                             + ", ".join(f.name for f in dataclasses.fields(cls)))
        if "board" not in values:
            raise ValueError("config: the key 'board' is required; known boards: "
                             + ", ".join(_known_boards()))
        return cls(**values)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> BuildConfig:
        try:
            values = json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(f"config: not valid JSON ({e})") from None
        return cls.from_dict(values)

    def to_toml(self) -> str:
        lines = []
        for key, value in self.to_dict().items():
            if value is None:
                continue                      # TOML has no null: absent means default
            if isinstance(value, bool):
                text = "true" if value else "false"
            elif isinstance(value, (int, float)):
                text = repr(value)
            else:
                text = json.dumps(value)      # a basic TOML string is a JSON string
            lines.append(f"{key} = {text}")
        return "\n".join(lines) + "\n"

    @classmethod
    def from_toml(cls, text: str) -> BuildConfig:
        try:
            values = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise ValueError(f"config: not valid TOML ({e})") from None
        return cls.from_dict(values)

    @classmethod
    def load(cls, path) -> BuildConfig:
        """Read a ``.json`` or ``.toml`` file (by its suffix)."""
        path = Path(path)
        suffix = path.suffix.lower()
        if suffix not in (".json", ".toml"):
            raise ValueError(f"config: {str(path)!r} must end in .json or .toml")
        try:
            text = path.read_text()
        except OSError as e:
            raise ValueError(f"config: cannot read {str(path)!r} ({e.strerror})") from None
        return cls.from_json(text) if suffix == ".json" else cls.from_toml(text)


def _known_boards():
    from .registry import BOARDS
    return list(BOARDS)
