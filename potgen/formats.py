"""Number formats: how a code of ``bits`` bits maps to an exact integer level.

Two kinds of format exist (DESIGN.md section 1):

* :class:`IntFormat` -- ``intN`` (two's complement) and ``uintN``.
* :class:`TermFormat` -- every power-of-two family (``potN``, ``potN-nz``, ``apotN``,
  ``sp2-N``, ``upot:...``). A level is an optional sign times the sum of one term picked
  from each *term set*; every term is 0 or a power of two. One description serves the
  golden model, the quantizer and the shift-add hardware generator.

Code layout of a :class:`TermFormat` (identical in the golden model and in hardware):
the sign bit is the MSB (signed formats only), then the fields, field 0 at the least
significant end. Field ``i`` is ``ceil(log2 |S_i|)`` bits wide and indexes ``S_i`` in
ascending order. An index past the end of a set *saturates*: it selects the largest
element of that set. A set sign bit with a zero magnitude decodes to 0.

Levels are exact Python/NumPy integers; floats never enter the formats.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np

__all__ = [
    "Format", "IntFormat", "TermFormat", "Field", "parse_format",
    "INT_BITS", "POT_BITS", "APOT_BITS", "SP2_BITS", "TERM_FORMAT_MAX_BITS",
]

#: Allowed N for ``intN`` / ``uintN``.
INT_BITS = range(2, 33)
#: Allowed N for ``potN`` and ``potN-nz`` (pot7 would need levels up to 2^62).
POT_BITS = range(2, 7)
#: Allowed N for ``apotN`` (magnitude bits B = N - 1 = 2..6, the reference construction).
APOT_BITS = range(3, 8)
#: Allowed N for ``sp2-N``.
SP2_BITS = range(3, 9)
#: Widest code of any term format (its level table is built eagerly).
TERM_FORMAT_MAX_BITS = 16
#: Largest term allowed in a ``upot:`` set (keeps every product well inside int64).
UPOT_MAX_TERM = 2 ** 31


class Format:
    """Base of every number format.

    Members
    -------
    bits : int
        Width of a code.
    signed : bool
        Whether some level is negative.
    min_level, max_level : int
        Smallest and largest level.
    max_abs : int
        Largest magnitude of any level.
    """

    bits: int
    signed: bool

    def levels(self) -> Sequence[int]:
        """Value of every code: ``levels()[code]`` is the exact integer level."""
        raise NotImplementedError

    def decode(self, codes) -> np.ndarray:
        """Codes (array-like of non-negative ints below ``2**bits``) to levels (int64)."""
        raise NotImplementedError

    def encode(self, values) -> np.ndarray:
        """Levels to codes (int64); the exact inverse of :meth:`decode`.

        Raises ``ValueError`` naming the first values that are not representable.
        """
        raise NotImplementedError

    @property
    def is_term_format(self) -> bool:
        """True for the power-of-two families (shift-add hardware applies)."""
        return False

    @property
    def min_level(self) -> int:
        raise NotImplementedError

    @property
    def max_level(self) -> int:
        raise NotImplementedError

    @property
    def max_abs(self) -> int:
        return max(abs(self.min_level), abs(self.max_level))

    def representable(self) -> np.ndarray:
        """Sorted distinct levels (only for formats of at most 16 bits)."""
        if self.bits > TERM_FORMAT_MAX_BITS:
            raise ValueError(f"{self}: representable() lists at most 16-bit formats")
        return np.unique(np.asarray(self.levels(), dtype=np.int64))

    def _check_codes(self, codes) -> np.ndarray:
        codes = np.asarray(codes)
        if codes.dtype.kind not in "iu":
            raise TypeError(f"{self}: codes must be integers, not {codes.dtype}")
        codes = codes.astype(np.int64)
        if codes.size and (codes.min() < 0 or codes.max() >= 1 << self.bits):
            bad = codes[(codes < 0) | (codes >= 1 << self.bits)].ravel()[:4].tolist()
            raise ValueError(
                f"{self}: codes {bad} out of range; allowed 0..{(1 << self.bits) - 1}")
        return codes

    def __repr__(self):
        return f"parse_format({str(self)!r})"


class _TwosComplementLevels(Sequence):
    """``levels()`` of an integer format without materialising 2^32 entries."""

    def __init__(self, fmt: "IntFormat"):
        self._fmt = fmt

    def __len__(self):
        return 1 << self._fmt.bits

    def __getitem__(self, code):
        if isinstance(code, slice):
            return [self[i] for i in range(*code.indices(len(self)))]
        if not 0 <= code < len(self):
            raise IndexError(code)
        return int(self._fmt.decode(code))


@dataclass(frozen=True)
class IntFormat(Format):
    """``intN`` (two's complement, ``signed=True``) or ``uintN``.

    Parameters
    ----------
    bits : int
        N, 2..32.
    signed : bool
        Two's complement when true, unsigned otherwise.
    """

    bits: int
    signed: bool = True

    def __post_init__(self):
        if not isinstance(self.bits, int) or self.bits not in INT_BITS:
            kind = "int" if self.signed else "uint"
            raise ValueError(f"{kind}{self.bits}: width must be 2..32")

    def __str__(self):
        return f"{'int' if self.signed else 'uint'}{self.bits}"

    @property
    def min_level(self) -> int:
        return -(1 << (self.bits - 1)) if self.signed else 0

    @property
    def max_level(self) -> int:
        return (1 << (self.bits - 1)) - 1 if self.signed else (1 << self.bits) - 1

    def levels(self) -> Sequence[int]:
        return _TwosComplementLevels(self)

    def decode(self, codes) -> np.ndarray:
        codes = self._check_codes(codes)
        if self.signed:
            return np.where(codes >= 1 << (self.bits - 1), codes - (1 << self.bits), codes)
        return codes

    def encode(self, values) -> np.ndarray:
        values = np.asarray(values)
        if values.dtype.kind not in "iu":
            raise TypeError(f"{self}: values must be integers, not {values.dtype}")
        values = values.astype(np.int64)
        out = (values < self.min_level) | (values > self.max_level)
        if out.any():
            raise ValueError(f"{self}: values {values[out].ravel()[:4].tolist()} not "
                             f"representable; allowed {self.min_level}..{self.max_level}")
        return values & ((1 << self.bits) - 1)


@dataclass(frozen=True)
class Field:
    """One field of a :class:`TermFormat` code.

    Members
    -------
    offset : int
        Bit position of the field's least significant bit in the code.
    width : int
        Field width, ``ceil(log2 len(terms))`` (0 for a one-element set).
    terms : tuple of int
        The term set, ascending.
    table : tuple of int
        Term selected by each of the ``2**width`` field values (indexes past the end
        of ``terms`` saturate to its largest element).
    """

    offset: int
    width: int
    terms: tuple
    table: tuple

    @property
    def shifts(self) -> tuple:
        """``table`` as shift amounts: ``None`` for a zero term, else log2 of the term."""
        return tuple(None if t == 0 else t.bit_length() - 1 for t in self.table)


def _is_term(t) -> bool:
    return isinstance(t, int) and (t == 0 or (t > 0 and t & (t - 1) == 0))


def _field_width(n: int) -> int:
    return (n - 1).bit_length()


@dataclass(frozen=True)
class TermFormat(Format):
    """A power-of-two family format: an optional sign and a sum of picked terms.

    Parameters
    ----------
    term_sets : tuple of tuple of int
        ``S_0, S_1, ...``; each non-empty, each element 0 or a power of two
        (at most 2^31). Field ``i`` of the code indexes ``S_i`` (sorted ascending).
    signed : bool
        Whether the code carries a sign bit (at the MSB).
    name : str or None
        Canonical spec of a named family (``"apot4"``); ``None`` means ``upot:...``.

    Members
    -------
    fields : tuple of :class:`Field`
    sign_bit : int or None
        Index of the sign bit, ``None`` for unsigned formats.
    """

    term_sets: tuple
    signed: bool = True
    name: str | None = None

    def __post_init__(self):
        spec = self.name or self._upot_spec()
        sets = []
        if not self.term_sets:
            raise ValueError(f"{spec}: needs at least one term set")
        for s in self.term_sets:
            s = tuple(s)
            if not s:
                raise ValueError(f"{spec}: empty term set; each set needs at least one "
                                 "element (0 or a power of two)")
            bad = [t for t in s if not _is_term(t) or t > UPOT_MAX_TERM]
            if bad:
                raise ValueError(f"{spec}: term {bad[0]!r} is neither 0 nor a power of two "
                                 f"up to 2^31")
            if len(set(s)) != len(s):
                raise ValueError(f"{spec}: term set {{{','.join(map(str, s))}}} repeats "
                                 "an element")
            sets.append(tuple(sorted(s)))
        object.__setattr__(self, "term_sets", tuple(sets))
        if self.bits > TERM_FORMAT_MAX_BITS or self.bits < 1:
            raise ValueError(f"{self}: code of {self.bits} bits; term formats allow 1..16 "
                             "bits (sign plus fields)")

    def _upot_spec(self) -> str:
        sets = "+".join("{" + ",".join(map(str, sorted(s))) + "}" for s in self.term_sets)
        return f"upot:{'' if self.signed else 'u'}{sets}"

    def __str__(self):
        return self.name or self._upot_spec()

    @property
    def is_term_format(self) -> bool:
        return True

    @cached_property
    def fields(self) -> tuple:
        fields, offset = [], 0
        for s in self.term_sets:
            width = _field_width(len(s))
            table = tuple(s[min(i, len(s) - 1)] for i in range(1 << width))
            fields.append(Field(offset, width, s, table))
            offset += width
        return tuple(fields)

    @property
    def magnitude_bits(self) -> int:
        return sum(f.width for f in self.fields)

    @property
    def bits(self) -> int:
        return self.magnitude_bits + int(self.signed)

    @property
    def sign_bit(self):
        return self.magnitude_bits if self.signed else None

    @property
    def max_term_sum(self) -> int:
        return sum(s[-1] for s in self.term_sets)

    @cached_property
    def _table(self) -> np.ndarray:
        codes = np.arange(1 << self.bits, dtype=np.int64)
        magnitude = np.zeros_like(codes)
        for f in self.fields:
            index = (codes >> f.offset) & ((1 << f.width) - 1)
            magnitude += np.asarray(f.table, dtype=np.int64)[index]
        if self.signed:
            magnitude = np.where((codes >> self.sign_bit) & 1, -magnitude, magnitude)
        magnitude.setflags(write=False)
        return magnitude

    @cached_property
    def _encoder(self):
        # The lowest code of each distinct level is canonical (zero gets sign 0).
        levels, first = np.unique(self._table, return_index=True)
        return levels, first.astype(np.int64)

    @property
    def min_level(self) -> int:
        if self.signed:
            return -self.max_term_sum
        return sum(s[0] for s in self.term_sets)

    @property
    def max_level(self) -> int:
        return self.max_term_sum

    def levels(self) -> tuple:
        return tuple(int(v) for v in self._table)

    def decode(self, codes) -> np.ndarray:
        return self._table[self._check_codes(codes)]

    def encode(self, values) -> np.ndarray:
        values = np.asarray(values)
        if values.dtype.kind not in "iu":
            raise TypeError(f"{self}: values must be integers, not {values.dtype}")
        values = values.astype(np.int64)
        levels, codes = self._encoder
        index = np.clip(np.searchsorted(levels, values), 0, len(levels) - 1)
        bad = levels[index] != values
        if bad.any():
            raise ValueError(f"{self}: values {values[bad].ravel()[:4].tolist()} not "
                             f"representable; levels are {levels.tolist()[:40]}")
        return codes[index]


# --- named families -----------------------------------------------------------------

def _pot_sets(n: int) -> tuple:
    # e = 0 is zero, e >= 1 is 2^(e-1).
    return ((0,) + tuple(1 << e for e in range((1 << (n - 1)) - 1)),)


def _pot_nz_sets(n: int) -> tuple:
    return (tuple(1 << e for e in range(1 << (n - 1))),)


def _apot_sets(n: int) -> tuple:
    """Term sets of APoT's reference ``build_power_value(B)``, B = n - 1 magnitude bits.

    The reference builds sets of fractions 2^-k; they are scaled here by 2^kmax so every
    term is an integer numerator (``apot4``: ``{0,1,4,8}`` and ``{0,2}``).
    """
    b = n - 1
    exps = {"a": [], "b": [], "c": []}
    if b == 2:
        exps["a"] = [i + 1 for i in range(3)]
    elif b == 3:
        exps["a"] = [1, 2, 4]
        exps["b"] = [3]
    elif b == 4:
        exps["a"] = [2 * i + 1 for i in range(3)]
        exps["b"] = [2 * i + 2 for i in range(3)]
    elif b == 5:
        exps["a"] = [1, 3, 6]
        exps["b"] = [2, 4, 7]
        exps["c"] = [5]
    elif b == 6:
        exps["a"] = [3 * i + 1 for i in range(3)]
        exps["b"] = [3 * i + 2 for i in range(3)]
        exps["c"] = [3 * i + 3 for i in range(3)]
    kmax = max(k for ks in exps.values() for k in ks)
    return tuple((0,) + tuple(1 << (kmax - k) for k in ks) for ks in exps.values() if ks)


def _sp2_sets(n: int) -> tuple:
    """MSQ's SP2: q1 + q2 with m1 = ceil(B/2), m2 = floor(B/2) bits, B = n - 1.

    q_j in {0, 2^-1, ..., 2^-(2^m_j - 1)}; scaled by 2^(2^m1 - 1) to integers.
    """
    b = n - 1
    m1, m2 = (b + 1) // 2, b // 2
    top = (1 << m1) - 1
    q1 = (0,) + tuple(1 << (top - i) for i in range(1, (1 << m1)))
    q2 = (0,) + tuple(1 << (top - i) for i in range(1, (1 << m2)))
    return (q1, q2)


_FAMILIES = {
    "pot": (POT_BITS, _pot_sets, "pot{n}"),
    "pot-nz": (POT_BITS, _pot_nz_sets, "pot{n}-nz"),
    "apot": (APOT_BITS, _apot_sets, "apot{n}"),
    "sp2": (SP2_BITS, _sp2_sets, "sp2-{n}"),
}

_ALLOWED = ("intN/uintN (N=2..32), potN and potN-nz (N=2..6), apotN (N=3..7), "
            "sp2-N (N=3..8), upot:{a,b,..}+{c,..} or upot:u{..}+{..} "
            "(elements 0 or powers of two)")

_SIMPLE = re.compile(r"^(?:(?P<int>u?int)(?P<ibits>\d+)|pot(?P<pbits>\d+)(?P<nz>-nz)?|"
                     r"apot(?P<abits>\d+)|sp2-(?P<sbits>\d+))$")
_UPOT = re.compile(r"^upot:(?P<u>u)?(?P<sets>\{[^{}]*\}(?:\+\{[^{}]*\})*)$")


def _family(kind: str, n: int, spec: str) -> TermFormat:
    allowed, build, name = _FAMILIES[kind]
    if n not in allowed:
        raise ValueError(f"format {spec!r}: {kind} needs N in {allowed.start}.."
                         f"{allowed.stop - 1}, got {n}")
    return TermFormat(build(n), signed=True, name=name.format(n=n))


def parse_format(spec) -> Format:
    """Parse a format spec (DESIGN.md section 1), case-insensitively.

    Parameters
    ----------
    spec : str or Format
        ``int8``, ``uint4``, ``pot4``, ``pot4-nz``, ``apot4``, ``sp2-4``,
        ``upot:{0,1,4,8}+{0,2}``, ``upot:u{0,1}+{0,2}``; a :class:`Format` is returned
        unchanged.

    Raises
    ------
    ValueError
        Naming the spec and what is allowed.
    """
    if isinstance(spec, Format):
        return spec
    if not isinstance(spec, str):
        raise TypeError(f"format spec must be a string, not {type(spec).__name__}")
    text = re.sub(r"\s+", "", spec.lower())
    m = _SIMPLE.match(text)
    if m:
        if m["int"]:
            n = int(m["ibits"])
            if n not in INT_BITS:
                raise ValueError(f"format {spec!r}: {m['int']}N needs N in 2..32, got {n}")
            return IntFormat(n, signed=m["int"] == "int")
        if m["pbits"]:
            return _family("pot-nz" if m["nz"] else "pot", int(m["pbits"]), spec)
        if m["abits"]:
            return _family("apot", int(m["abits"]), spec)
        return _family("sp2", int(m["sbits"]), spec)
    m = _UPOT.match(text)
    if m:
        sets = []
        for body in re.findall(r"\{([^{}]*)\}", m["sets"]):
            items = [t for t in body.split(",") if t != ""]
            if not all(re.fullmatch(r"\d+", t) for t in items):
                raise ValueError(f"format {spec!r}: set {{{body}}} must list non-negative "
                                 "integers (0 or powers of two)")
            sets.append(tuple(int(t) for t in items))
        try:
            return TermFormat(tuple(sets), signed=m["u"] is None)
        except ValueError as e:
            raise ValueError(f"format {spec!r}: {e}") from None
    raise ValueError(f"unknown format {spec!r}; allowed: {_ALLOWED}")
