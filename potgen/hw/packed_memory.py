"""Packed memory words: several narrow operands per RAM word, and a reader that streams them.

Narrow operands are stored ``floor(word_bits / bits)`` per memory word (Klhufek et al.
2024); an operand never spans two words, so the ``word_bits mod bits`` top bits of
every word stay zero. Operand ``j`` of a row sits in word ``j // per`` at bits
``[(j % per) * bits, (j % per + 1) * bits)``, its two's complement bit pattern when
signed. These are raw fields (a memory keeps bits, it does not add them): not the
sign-extended arithmetic packing of :mod:`potgen.golden.lanes`.

Host side (NumPy, shared by array buffers and the host driver): :func:`words_needed`,
:func:`pack_words`, :func:`unpack_words`, packing along the last axis so every row of
a tensor starts on a word boundary.

Hardware: :class:`PackedOperandReader` holds the words in an
``amaranth.lib.memory.Memory`` whose width is one of the ECP5 ``DP16KD`` data widths
(:data:`MEMORY_WIDTHS`: 2048 x 9, 1024 x 18, 512 x 36 per block) and streams a run of
operands, one per cycle (or one whole word per cycle), with ``lib.stream`` valid /
ready handshaking. Operands per word: 9 bits hold 4 x 2-bit, 3 x 3-bit, 2 x 4-bit;
18 bits hold 9 x 2, 6 x 3, 4 x 4; 36 bits hold 18 x 2, 12 x 3, 9 x 4.
"""

from __future__ import annotations

from numbers import Integral

import numpy as np
from amaranth.hdl import Const, Module, Mux, Signal, unsigned
from amaranth.hdl import signed as signed_shape
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..golden.arith import as_integers
from .product import check_choice, silence_unused_on_error

__all__ = ["MEMORY_WIDTHS", "READ_MODES", "operands_per_word", "words_needed",
           "pack_words", "unpack_words", "PackedOperandReader"]

#: ECP5 DP16KD data widths (bits per word) the reader accepts.
MEMORY_WIDTHS = (9, 18, 36)
#: Values of ``PackedOperandReader(mode=...)``.
READ_MODES = ("operand", "word")


def _check_int(value, name: str, lo: int, hi: int | None = None) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, Integral):
        raise TypeError(f"{name}={value!r}: expected an int")
    if value < lo or (hi is not None and value > hi):
        allowed = f">= {lo}" if hi is None else f"{lo}..{hi}"
        raise ValueError(f"{name}={value}: allowed {allowed}")
    return int(value)


def operands_per_word(bits: int, word_bits: int) -> int:
    """``floor(word_bits / bits)``: operands of ``bits`` bits in one ``word_bits`` word."""
    word_bits = _check_int(word_bits, "word_bits", 1, 64)
    bits = _check_int(bits, "bits", 1, word_bits)
    return word_bits // bits


def words_needed(count: int, bits: int, word_bits: int) -> int:
    """Words that hold ``count`` operands of ``bits`` bits (an operand never spans two)."""
    per = operands_per_word(bits, word_bits)
    count = _check_int(count, "count", 0)
    return -(-count // per)


def pack_words(values, bits: int, word_bits: int, signed: bool) -> np.ndarray:
    """Pack operands into memory words along the last axis.

    Parameters
    ----------
    values : array-like of int, shape [..., count]
        Operands: ``-2^(bits-1)..2^(bits-1)-1`` when ``signed``, else ``0..2^bits-1``.
    bits : int
        Operand width.
    word_bits : int
        Memory word width, 1..64.
    signed : bool
        Whether operands are two's complement.

    Returns
    -------
    numpy.ndarray of uint64, shape [..., words_needed(count, bits, word_bits)]
        The words; unused fields (the tail of the last word, the top
        ``word_bits mod bits`` bits) are zero.
    """
    per = operands_per_word(bits, word_bits)
    if not isinstance(signed, (bool, np.bool_)):
        raise TypeError(f"signed={signed!r}: expected True or False")
    v = as_integers(values, "values")
    if v.ndim == 0:
        raise ValueError("values must have at least one axis (the operands to pack)")
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    if v.size and (int(v.min()) < lo or int(v.max()) > hi):
        bad = np.argwhere((v < lo) | (v > hi))[0]
        index = tuple(int(i) for i in bad)
        raise ValueError(f"values[{', '.join(map(str, index))}] = {v[index]} is outside "
                         f"the {'signed' if signed else 'unsigned'} {bits}-bit range "
                         f"{lo}..{hi}")
    count = v.shape[-1]
    words = words_needed(count, bits, word_bits)
    padded = np.zeros(v.shape[:-1] + (words * per,), dtype=np.int64)
    padded[..., :count] = v
    fields = padded.view(np.uint64) & np.uint64((1 << bits) - 1)
    fields = fields.reshape(v.shape[:-1] + (words, per))
    out = np.zeros(v.shape[:-1] + (words,), dtype=np.uint64)
    for j in range(per):
        out |= fields[..., j] << np.uint64(j * bits)
    return out


def unpack_words(words, bits: int, word_bits: int, signed: bool,
                 count: int | None = None) -> np.ndarray:
    """Operands out of memory words (the inverse of :func:`pack_words`).

    Parameters
    ----------
    words : array-like of int, shape [..., n]
        Words, ``0 <= word < 2^word_bits``.
    bits, word_bits, signed
        As for :func:`pack_words`.
    count : int or None
        Operands to return per row (default: every field, ``n * per``); at most
        ``n * per``.

    Returns
    -------
    numpy.ndarray of int64, shape [..., count]
    """
    per = operands_per_word(bits, word_bits)
    if not isinstance(signed, (bool, np.bool_)):
        raise TypeError(f"signed={signed!r}: expected True or False")
    w = as_integers(words, "words")
    if w.ndim == 0:
        raise ValueError("words must have at least one axis")
    if w.size and (int(w.min()) < 0 or (word_bits < 64 and int(w.max()) >> word_bits)):
        raise ValueError(f"words: values must be in 0..2^{word_bits}-1, got "
                         f"[{int(w.min())}, {int(w.max())}]")
    total = w.shape[-1] * per
    count = total if count is None else _check_int(count, "count", 0, total)
    u = w.astype(np.int64).view(np.uint64) if w.dtype != object else \
        np.array(w, dtype=np.uint64)
    mask = np.uint64((1 << bits) - 1)
    fields = np.stack([(u >> np.uint64(j * bits)) & mask for j in range(per)], axis=-1)
    fields = fields.reshape(w.shape[:-1] + (total,))[..., :count].astype(np.int64)
    if signed:
        fields = np.where(fields >= 1 << (bits - 1), fields - (1 << bits), fields)
    return fields


class PackedOperandReader(wiring.Component):
    """A RAM of packed words and a stream of the operands it holds, one per cycle.

    On a cycle with ``start``, the reader begins a run of ``length`` items at word
    ``base``: operands (``mode="operand"``), lane 0 of the word first, or whole words
    (``mode="word"``). The first item is valid on the next cycle; after that one item
    leaves on every cycle the consumer is ready (the next word is read while the last
    operand of the current one is taken), so the stream has no bubbles. ``start``
    during a run abandons it. Word addresses wrap from ``depth - 1`` to 0.

    Parameters
    ----------
    bits : int
        Operand width, 1..``word_bits``.
    word_bits : int
        Memory word width: 9, 18 or 36 (the DP16KD widths).
    depth : int
        Words in the memory, >= 1.
    signed : bool
        Whether operands are two's complement (the ``operand`` payload's shape).
    init : array-like of int or None
        Initial words (e.g. from :func:`pack_words`), at most ``depth``.
    mode : ``"operand"`` or ``"word"``
        One operand per item, or all ``per`` operands of a word per item.
    writable : bool
        Add a write port (``write_addr``, ``write_data``, ``write_en``) through which
        the host fills the memory.

    Members
    -------
    start : ``In(1)``
    base : ``In(range(depth))``
        First word of the run.
    length : ``In(range(depth * per + 1))`` or ``In(range(depth + 1))``
        Items in the run (operands, or words with ``mode="word"``).
    data : ``Out(stream.Signature(shape))``
        ``payload`` (``signed(bits)`` / ``unsigned(bits)``, or ``per * bits`` bits with
        operand ``j`` at bits ``[j*bits, (j+1)*bits)``), ``valid``, ``ready``.
    busy : ``Out(1)``
        A run is in progress (items remain).
    write_addr, write_data, write_en : inputs
        Only with ``writable=True``.

    Attributes
    ----------
    per : int
        Operands per word.
    latency : int
        1: cycles from ``start`` to the first valid item.
    init : list of int
        The memory's initial words (an ``amaranth.lib.memory.Memory`` of ``depth`` words
        of ``word_bits`` bits is built at elaboration).
    """

    @silence_unused_on_error
    def __init__(self, bits, word_bits, depth, *, signed=False, init=None, mode="operand",
                 writable=False):
        if isinstance(word_bits, bool) or word_bits not in MEMORY_WIDTHS:
            raise ValueError(f"word_bits={word_bits!r}: the ECP5 DP16KD widths are "
                             f"{', '.join(map(str, MEMORY_WIDTHS))}")
        self._per = operands_per_word(bits, word_bits)
        self._bits, self._word_bits = int(bits), word_bits
        self._depth = _check_int(depth, "depth", 1)
        if not isinstance(signed, bool):
            raise TypeError(f"signed={signed!r}: expected True or False")
        if not isinstance(writable, bool):
            raise TypeError(f"writable={writable!r}: expected True or False")
        self._signed, self._writable = signed, writable
        self._mode = check_choice(mode, READ_MODES, "mode")
        words = []
        if init is not None:
            w = as_integers(init, "init").reshape(-1)
            if w.size > self._depth:
                raise ValueError(f"init: {w.size} words do not fit depth={self._depth}")
            if w.size and (int(w.min()) < 0 or int(w.max()) >> word_bits):
                raise ValueError(f"init: words must be in 0..2^{word_bits}-1, got "
                                 f"[{int(w.min())}, {int(w.max())}]")
            words = [int(x) for x in w]
        self._init = words
        if mode == "operand":
            payload = signed_shape(bits) if signed else unsigned(bits)
            length = range(self._depth * self._per + 1)
        else:
            payload = unsigned(self._per * self._bits)
            length = range(self._depth + 1)
        members = {"start": In(1), "base": In(range(self._depth)), "length": In(length),
                   "data": Out(stream.Signature(payload)), "busy": Out(1)}
        if writable:
            members.update({"write_addr": In(range(self._depth)),
                            "write_data": In(word_bits), "write_en": In(1)})
        super().__init__(members)

    @property
    def per(self) -> int:
        return self._per

    @property
    def bits(self) -> int:
        return self._bits

    @property
    def word_bits(self) -> int:
        return self._word_bits

    @property
    def depth(self) -> int:
        return self._depth

    @property
    def mode(self) -> str:
        return self._mode

    @property
    def latency(self) -> int:
        return 1

    @property
    def init(self) -> list:
        """The memory's initial words."""
        return list(self._init)

    def elaborate(self, platform):
        m = Module()
        # A fresh Memory per elaboration: a design may be converted more than once
        # (RTLIL and Verilog), and a memory takes no new ports once elaborated.
        m.submodules.memory = mem = Memory(shape=unsigned(self._word_bits),
                                           depth=self._depth, init=self._init)
        if self._writable:
            write = mem.write_port()
            m.d.comb += [write.addr.eq(self.write_addr), write.data.eq(self.write_data),
                         write.en.eq(self.write_en)]
            # Transparent: a word written while it is being read is read new. yosys
            # emulates either behaviour around a DP16KD; this one costs fewer
            # flip-flops (measured 37 instead of 83 for 512 x 36).
            read = mem.read_port(transparent_for=(write,))
        else:
            read = mem.read_port()

        addr = Signal(range(self._depth), name="word_addr")
        lane = Signal(range(self._per), name="lane")
        left = Signal.like(self.length, name="left")
        loaded = Signal(name="loaded")   # the read port holds the word at `addr`
        if self._depth & (self._depth - 1):
            next_addr = Mux(addr == self._depth - 1, 0, addr + 1)
        else:
            next_addr = (addr + 1)[:len(addr)]   # wraps by itself

        m.d.comb += [self.data.valid.eq(loaded & (left != 0)), self.busy.eq(left != 0)]
        taken = self.data.valid & self.data.ready
        if self._mode == "operand":
            fields = [read.data[j * self._bits:(j + 1) * self._bits]
                      for j in range(self._per)]
            with m.Switch(lane):
                for j, f in enumerate(fields):
                    with m.Case(j):
                        m.d.comb += self.data.payload.eq(f)
            word_done = lane == self._per - 1
        else:
            m.d.comb += self.data.payload.eq(read.data[:self._per * self._bits])
            word_done = Const(1, 1)

        # The port reads on every edge: the word at `addr` again while the consumer
        # stalls, the next word when the last operand of this one leaves. (Holding the
        # port with its enable instead makes yosys add a hold register and multiplexers
        # around the DP16KD.)
        # `fetch` is both the address read on this edge and the next `addr`.
        fetch = Signal.like(addr, name="fetch_addr")
        m.d.comb += [fetch.eq(addr), read.addr.eq(fetch)]
        m.d.sync += addr.eq(fetch)
        with m.If(self.start):
            m.d.comb += fetch.eq(self.base)
            m.d.sync += [lane.eq(0), left.eq(self.length), loaded.eq(1)]
        with m.Elif(taken):
            m.d.sync += left.eq(left - 1)
            with m.If(word_done):
                m.d.comb += fetch.eq(next_addr)
                m.d.sync += lane.eq(0)
            with m.Else():
                m.d.sync += lane.eq(lane + 1)
        return m

    def metadata(self) -> dict:
        from .export import signature_ports
        return {
            "kind": "packed-reader",
            "bits": self._bits, "word_bits": self._word_bits, "depth": self._depth,
            "per_word": self._per, "signed": self._signed, "mode": self._mode,
            "writable": self._writable, "latency": self.latency,
            "ports": signature_ports(self),
        }
