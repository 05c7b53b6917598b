"""Host driver of :class:`potgen.hw.accelerator.Accelerator`, independent of the back end.

The driver knows the accelerator only through its ``metadata()`` dictionary (the
``commands`` section, the array size, formats and buffer depths), so a back end that
runs emitted Verilog or a board can reuse it unchanged: a back end only moves words
(:class:`Backend`).

Tiling of ``C[M, N] = A[M, K] @ W[K, N]`` (output-stationary): for every tile of
``rows`` activation rows, ``LOAD_ACT``; then for every tile of ``cols`` weight
columns, ``LOAD_WEIGHT``, (``SET_REQUANT``,) ``COMPUTE``, ``DRAIN``. Rows and columns
beyond ``M`` / ``N`` are padded (activation 0, code 0) and their results dropped; ``K``
is never tiled and must be at most ``k_max`` (longer dot products would need partial
sums carried between tiles, which the accumulator bound does not cover).
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field

import numpy as np

from ..formats import parse_format

__all__ = ["AcceleratorDriver", "Backend", "Program", "RunResult", "RequantParams",
           "GemmResult"]


@dataclass
class Program:
    """Words for one back-end run.

    Members
    -------
    commands : list of int
        ``cmd`` stream words, in order.
    data : list of int
        ``din`` stream words, in the order the commands take them.
    outputs : int
        Number of ``dout`` words the program produces.
    """

    commands: list = field(default_factory=list)
    data: list = field(default_factory=list)
    outputs: int = 0


@dataclass
class RunResult:
    """What a back end returns.

    Members
    -------
    words : list of int
        The ``dout`` words, in order.
    cycles : int
        The accelerator's ``cycles`` status counter at the end of the run.
    error : bool
        The accelerator's sticky ``error`` flag.
    """

    words: list
    cycles: int
    error: bool = False


class Backend(abc.ABC):
    """Moves a :class:`Program`'s words to an accelerator and collects its outputs."""

    @abc.abstractmethod
    def run(self, program: Program) -> RunResult:
        """Send ``program.commands`` / ``program.data``, receive ``program.outputs`` words."""


@dataclass
class RequantParams:
    """Per-output-channel requantization (golden :func:`potgen.golden.requantize`).

    Members
    -------
    multiplier, shift, zero_point : int or array of N ints
        ``m`` (unsigned), ``s`` and ``zp``, one per output column or shared.
    relu : bool
        Clamp below at ``zp``.
    """

    multiplier: object
    shift: object
    zero_point: object = 0
    relu: bool = False


@dataclass
class GemmResult:
    """Result of :meth:`AcceleratorDriver.gemm`.

    Members
    -------
    acc : ndarray [M, N] of int64
        Accumulators (``requant is None``), else the requantized values.
    overflow : ndarray [M, N] of bool or None
        Sticky overflow flags of the accumulators (``None`` for requantized outputs).
    cycles : int
        Accelerator cycles (busy cycles, loads and drains included).
    tiles : int
        Number of ``COMPUTE`` commands.
    """

    acc: np.ndarray
    overflow: np.ndarray | None
    cycles: int
    tiles: int


def _metadata(accelerator) -> dict:
    meta = accelerator if isinstance(accelerator, dict) else accelerator.metadata()
    if not isinstance(meta, dict) or meta.get("kind") != "accelerator":
        raise TypeError(f"accelerator: expected an Accelerator or its metadata() dict, "
                        f"got {type(accelerator).__name__}")
    return meta


def _integers(values, name: str, ndim: int) -> np.ndarray:
    arr = np.asarray(values)
    if arr.dtype == object:
        arr = np.array(arr.tolist(), dtype=np.int64)
    if not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"{name}: expected integers, got dtype {arr.dtype}")
    if arr.ndim != ndim:
        raise ValueError(f"{name}: expected a {ndim}-D array, got shape {arr.shape}")
    return arr.astype(np.int64)


class AcceleratorDriver:
    """Encodes GEMMs for an :class:`~potgen.hw.accelerator.Accelerator` and decodes results.

    Parameters
    ----------
    accelerator : Accelerator or dict
        The accelerator or its ``metadata()``.
    backend : Backend
        Moves the words (Amaranth simulation, Verilator, a board).

    Attributes
    ----------
    rows, cols, k_max, acc_bits : int
    weight_format, act_format, out_format : Format
    """

    def __init__(self, accelerator, backend: Backend):
        meta = _metadata(accelerator)
        if not isinstance(backend, Backend):
            raise TypeError(f"backend: expected a potgen.runtime.Backend, got "
                            f"{type(backend).__name__}")
        self._meta = meta
        self._backend = backend
        self._commands = meta["commands"]
        self.rows, self.cols = meta["rows"], meta["cols"]
        self.k_max = meta["k_max"]
        self.acc_bits = meta["acc_bits"]
        if not isinstance(meta["weight"], str):
            raise ValueError("accelerator: per-column weight formats are not supported by "
                             "the driver")
        self.weight_format = parse_format(meta["weight"])
        self.act_format = parse_format(meta["act"])
        self.out_format = parse_format(meta["out"])
        self._opcodes = self._commands["opcodes"]
        self._arg_bits = self._commands["arg_field"][1] - self._commands["arg_field"][0]
        self._opcode_bits = self._commands["opcode_field"][1]
        self._weight_bits = meta["buffers"]["weight"]["lane_bits"]

    # --- words ---

    def command(self, name: str, arg: int = 0) -> int:
        """One command word; refuses unknown commands and arguments the hardware rejects."""
        if name not in self._opcodes:
            raise ValueError(f"command {name!r}: unknown; allowed "
                             f"{', '.join(sorted(self._opcodes))}")
        if isinstance(arg, bool) or not isinstance(arg, (int, np.integer)):
            raise TypeError(f"{name}: arg={arg!r}: expected an int")
        if name in ("LOAD_ACT", "LOAD_WEIGHT", "COMPUTE") and not 1 <= arg <= self.k_max:
            raise ValueError(f"{name}: K={arg} must be 1..{self.k_max} (k_max, the "
                             "depth of the activation and weight buffers)")
        if name == "SET_REQUANT" and arg not in (0, 1):
            raise ValueError(f"SET_REQUANT: arg={arg} must be 0 or 1 (relu)")
        if name in ("NOP", "DRAIN_RAW", "DRAIN_REQUANT") and arg != 0:
            raise ValueError(f"{name}: arg={arg} must be 0")
        return (int(arg) << self._opcode_bits) | self._opcodes[name]

    @staticmethod
    def _twos(value: int, bits: int) -> int:
        return int(value) & ((1 << bits) - 1)

    @staticmethod
    def _signed(word: int, bits: int) -> int:
        word &= (1 << bits) - 1
        return word - (1 << bits) if word >> (bits - 1) else word

    # --- checks ---

    def _check_gemm(self, acts, codes):
        acts = _integers(acts, "acts", 2)
        codes = _integers(codes, "codes", 2)
        (M, K), (K2, N) = acts.shape, codes.shape
        if K != K2:
            raise ValueError(f"acts [M, K] = {list(acts.shape)} and codes [K, N] = "
                             f"{list(codes.shape)} disagree on K")
        if 0 in (M, K, N):
            raise ValueError(f"GEMM shape M={M}, K={K}, N={N}: every dimension must be >= 1")
        if K > self.k_max:
            raise ValueError(f"K={K} exceeds k_max={self.k_max}, the depth of the "
                             "accelerator's activation and weight buffers (and the K its "
                             "accumulator bound covers); split the layer or build a "
                             "larger accelerator")
        act = self.act_format
        if acts.min() < act.min_level or acts.max() > act.max_level:
            raise ValueError(f"acts: values {int(acts.min())}..{int(acts.max())} outside "
                             f"the activation format {act} ({act.min_level}.."
                             f"{act.max_level})")
        code_max = (1 << self.weight_format.bits) - 1
        if codes.min() < 0 or codes.max() > code_max:
            raise ValueError(f"codes: values {int(codes.min())}..{int(codes.max())} "
                             f"outside 0..{code_max} ({self.weight_format} codes)")
        return acts, codes

    def _check_requant(self, requant: RequantParams, N: int):
        if not isinstance(requant, RequantParams):
            raise TypeError(f"requant: expected RequantParams or None, got "
                            f"{type(requant).__name__}")
        out = []
        limits = {"multiplier": (0, (1 << self._meta["multiplier_bits"]) - 1),
                  "shift": (0, self._meta["max_shift"]),
                  "zero_point": (self.out_format.min_level, self.out_format.max_level)}
        for name, (lo, hi) in limits.items():
            value = getattr(requant, name)
            if np.ndim(value) == 0:     # one value shared by every output column
                value = np.full(N, value)
            value = _integers(value, f"requant.{name}", 1)
            if value.shape != (N,):
                raise ValueError(f"requant.{name}: {value.shape[0]} values for N={N} "
                                 "output columns")
            if value.min() < lo or value.max() > hi:
                raise ValueError(f"requant.{name}: values {int(value.min())}.."
                                 f"{int(value.max())} outside {lo}..{hi}")
            out.append(value)
        if not isinstance(requant.relu, (bool, np.bool_)):
            raise TypeError(f"requant.relu={requant.relu!r}: expected a bool")
        return (*out, bool(requant.relu))

    # --- GEMM ---

    def program(self, acts, codes, requant: RequantParams | None = None) -> Program:
        """The command / data words of ``acts @ levels(codes)`` (see the module docstring)."""
        acts, codes = self._check_gemm(acts, codes)
        (M, K), N = acts.shape, codes.shape[1]
        R, C = self.rows, self.cols
        if requant is not None:
            mult, shift, zp, relu = self._check_requant(requant, N)
        prog = Program()
        A = self.act_format.bits
        for m0 in range(0, M, R):
            tile = np.zeros((R, K), np.int64)
            tile[:min(R, M - m0)] = acts[m0:m0 + R]
            prog.commands.append(self.command("LOAD_ACT", K))
            prog.data += [self._twos(v, A) for v in tile.T.ravel()]
            for n0 in range(0, N, C):
                w = np.zeros((K, C), np.int64)
                w[:, :min(C, N - n0)] = codes[:, n0:n0 + C]
                prog.commands.append(self.command("LOAD_WEIGHT", K))
                prog.data += [int(v) for v in w.ravel()]
                if requant is not None:
                    prog.commands.append(self.command("SET_REQUANT", int(relu)))
                    for j in range(C):
                        n = n0 + j
                        if n < N:
                            prog.data += [int(mult[n]), int(shift[n]),
                                          self._twos(zp[n], self.out_format.bits)]
                        else:
                            prog.data += [0, 0, 0]
                prog.commands.append(self.command("COMPUTE", K))
                prog.commands.append(self.command("DRAIN_RAW" if requant is None
                                                  else "DRAIN_REQUANT"))
                prog.outputs += R * C
        return prog

    def decode(self, words, M: int, N: int, requant: bool):
        """``(values [M, N], overflow [M, N] or None)`` from :meth:`program`'s ``dout`` words."""
        R, C = self.rows, self.cols
        tiles_m, tiles_n = -(-M // R), -(-N // C)
        if len(words) != tiles_m * tiles_n * R * C:
            raise ValueError(f"decode: {len(words)} words for a {M} x {N} result; expected "
                             f"{tiles_m * tiles_n * R * C}")
        values = np.zeros((tiles_m * R, tiles_n * C), np.int64)
        flags = np.zeros_like(values, dtype=bool)
        P = self.acc_bits
        index = 0
        for tm in range(tiles_m):
            for tn in range(tiles_n):
                block = words[index:index + R * C]
                index += R * C
                for i in range(R):
                    for j in range(C):
                        word = int(block[i * C + j])
                        if requant:
                            value = word & ((1 << self.out_format.bits) - 1)
                            if self.out_format.signed:
                                value = self._signed(value, self.out_format.bits)
                        else:
                            value = self._signed(word, P)
                            flags[tm * R + i, tn * C + j] = bool((word >> P) & 1)
                        values[tm * R + i, tn * C + j] = value
        return values[:M, :N], (None if requant else flags[:M, :N])

    def cycles(self, M: int, K: int, N: int, requant: bool = False) -> int:
        """Exact ``cycles`` counter increase of :meth:`gemm` without stalls.

        Busy cycles per command, with ``din`` words arriving every cycle and ``dout``
        never back-pressured: ``LOAD_ACT`` ``K rows``, ``LOAD_WEIGHT`` ``K cols``,
        ``SET_REQUANT`` ``3 cols``, ``COMPUTE`` ``K + drain_latency + rows + 1`` (the
        last step, the array's drain latency, one cycle per result row, and the cycle
        that sees the last row stored), a drain ``rows (requant_latency + 1 + cols)``
        (each buffer row settles through the requantizer, then leaves one word per
        cycle). Each command also spends one idle cycle being decoded, not counted.
        """
        R, C = self.rows, self.cols
        tiles_m, tiles_n = -(-M // R), -(-N // C)
        per_tile = (K * C + (3 * C if requant else 0) + K + self._meta["compute_latency"]
                    + R * (self._meta["requant_latency"] + 1 + C))
        return tiles_m * (K * R + tiles_n * per_tile)

    def gemm(self, acts, codes, requant: RequantParams | None = None) -> GemmResult:
        """Run ``acts [M, K] @ levels(codes [K, N])`` on the accelerator.

        Parameters
        ----------
        acts : array [M, K] of int
            Activation values in the accelerator's activation format.
        codes : array [K, N] of int
            Weight codes of its weight format.
        requant : RequantParams or None
            ``None``: return the raw accumulators and overflow flags. Otherwise return
            the requantized outputs.

        Returns
        -------
        GemmResult
        """
        prog = self.program(acts, codes, requant)
        M, N = np.shape(acts)[0], np.shape(codes)[1]
        result = self._backend.run(prog)
        if result.error:
            raise RuntimeError("the accelerator refused a command (error flag set)")
        values, flags = self.decode(result.words, M, N, requant is not None)
        tiles = -(-M // self.rows) * -(-N // self.cols)
        return GemmResult(values, flags, int(result.cycles), tiles)
