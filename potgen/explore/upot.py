"""UPoT term-set search: per layer, the term sets within a bit budget that fit its weights.

UPoT (IEEE TCAS-I 2023) writes a weight as a sign plus a sum of terms, one picked
from each of several sets of 0 and powers of two, and chooses the sets *per layer* to
fit the weight distribution. potgen formats express any such choice as
``upot:{..}+{..}`` (:class:`potgen.formats.TermFormat`); this module finds, for a
weight matrix and a code width, the term sets whose quantization error is least.

Search space for a signed ``bits``-bit code (``B = bits - 1`` magnitude bits): every
split of ``B`` into field widths ``w_1 >= w_2 >= ...`` (``w_i >= 1``), and for each
field a set of ``2^w_i`` terms: 0 and ``2^w_i - 1`` distinct powers of two from
``2^0 .. 2^max_exponent``. Each set holds 0 (so every field can contribute nothing)
and fills its field (a set with an unused code is never better: its levels are a
subset of a full set's, and nearest rounding on a superset of levels never has a
larger error at any scale).

Two reductions keep the search exact:

* the order of the fields does not change the levels, so only one order is tried;
* formats whose level sets differ by a power-of-two factor have identical errors
  (the scale search of :func:`potgen.quantize.calibrate_scale` is relative to the
  largest level, and dividing by a power of two is exact in floats), and formats with
  the same levels have identical errors; each distinct normalised level set is
  evaluated once.

Error: the total squared error ``sum (w - s_n q)^2`` of the matrix quantized per
output column with ``"mse"``-calibrated scales and nearest rounding -- exactly the
quantizer the explorer's accuracy evaluation uses (:mod:`potgen.explore.qnet`).
Ties are broken by fewer fields (fewer shift-add terms in hardware), then by the
canonical spec.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations, combinations_with_replacement

import numpy as np

from ..formats import TermFormat, parse_format
from ..quantize import MSE_GRID, calibrate_scale, dequantize, quantize

__all__ = ["TermSetResult", "candidate_formats", "weight_error", "search_term_sets",
           "MAX_EXPONENT"]

#: Default largest exponent of a term (terms up to 2^7).
MAX_EXPONENT = 7


@dataclass(frozen=True)
class TermSetResult:
    """One evaluated term-set format.

    Members
    -------
    format : str
        Canonical ``upot:`` spec.
    error : float
        Total squared quantization error of the weights.
    fields : int
        Number of term sets.
    """

    format: str
    error: float
    fields: int


def _partitions(total: int, largest: int):
    """Non-increasing tuples of positive ints summing to ``total``, parts <= largest."""
    if total == 0:
        yield ()
        return
    for first in range(min(total, largest), 0, -1):
        for rest in _partitions(total - first, first):
            yield (first,) + rest


def candidate_formats(bits: int, max_exponent: int = MAX_EXPONENT):
    """Every signed ``upot:`` format of ``bits`` bits in the search space (one field
    order; see the module docstring), as :class:`~potgen.formats.TermFormat`."""
    if isinstance(bits, bool) or not isinstance(bits, int) or not 2 <= bits <= 9:
        raise ValueError(f"bits={bits!r}: the term-set search takes a signed code of "
                         "2..9 bits")
    if isinstance(max_exponent, bool) or not isinstance(max_exponent, int) \
            or not 0 <= max_exponent <= 20:
        raise ValueError(f"max_exponent={max_exponent!r}: expected an int 0..20")
    powers = [1 << e for e in range(max_exponent + 1)]
    for widths in _partitions(bits - 1, bits - 1):
        per_width = {}
        for w in set(widths):
            need = (1 << w) - 1
            per_width[w] = [(0,) + c for c in combinations(powers, need)]
        if any(not per_width[w] for w in widths):
            continue
        # Equal widths are interchangeable: take their sets as a multiset.
        groups = []
        for w in sorted(set(widths), reverse=True):
            count = widths.count(w)
            groups.append(list(combinations_with_replacement(per_width[w], count)))
        yield from _product_of_groups(groups)


def _product_of_groups(groups, prefix=()):
    if not groups:
        yield TermFormat(prefix, signed=True)
        return
    for choice in groups[0]:
        yield from _product_of_groups(groups[1:], prefix + choice)


def _normalised_levels(fmt: TermFormat) -> tuple:
    mags = np.unique(np.abs(fmt.representable()))
    smallest = int(mags[mags > 0].min())
    return tuple(int(v) // smallest for v in mags)


def weight_error(weights, fmt) -> float:
    """Total squared error of ``weights [K, N]`` quantized per column (``"mse"`` scales)."""
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim != 2 or w.size == 0:
        raise ValueError(f"weights: expected a non-empty [K, N] matrix, got shape {w.shape}")
    fmt = parse_format(fmt)
    scales = calibrate_scale(w, fmt, "mse", axis=1)
    d = w - dequantize(quantize(w, fmt, scales, axis=1), fmt, scales, axis=1)
    return float(np.einsum("ij,ij->", d, d))


def _screening_error(w: np.ndarray, fmt: TermFormat) -> float:
    """:func:`weight_error` computed for every scale candidate at once (the search's
    inner loop): the same candidates, rounding and per-column minimum as
    :func:`potgen.quantize.calibrate_scale`; only the float summation order differs, so
    the winners are re-evaluated with :func:`weight_error`."""
    mags = np.unique(np.abs(fmt.representable())).astype(np.float64)
    mid = (mags[:-1] + mags[1:]) / 2.0
    col_max = np.abs(w).max(axis=0)
    base = np.where(col_max > 0, col_max / mags[-1], 1.0)
    best = np.full(w.shape[1], np.inf)
    step = max(1, (1 << 18) // w.size)
    for g0 in range(0, len(MSE_GRID), step):
        s = base[None, None, :] * MSE_GRID[g0:g0 + step, None, None]
        v = w[None] / s
        level = mags[np.searchsorted(mid, np.abs(v), side="right")]
        d = w[None] - np.where(v < 0, -level, level) * s
        best = np.minimum(best, np.einsum("gkn,gkn->gn", d, d).min(axis=0))
    return float(best.sum())


def search_term_sets(weights, bits: int, *, max_exponent: int = MAX_EXPONENT,
                     top: int = 1, progress=None) -> list:
    """The ``top`` term-set formats of ``bits`` bits with the least error on ``weights``.

    Parameters
    ----------
    weights : array of float, shape [K, N]
        A layer's weights (columns are output channels, each with its own scale).
    bits : int
        Code width including the sign, 2..9.
    max_exponent : int
        Largest term ``2^max_exponent`` (relative to the smallest, which is 1).
    top : int
        Number of results.
    progress : callable or None
        Called once per evaluated level set.

    Returns
    -------
    list of TermSetResult
        Best first.
    """
    if isinstance(top, bool) or not isinstance(top, int) or top < 1:
        raise ValueError(f"top={top!r}: expected an int >= 1")
    w = np.asarray(weights, dtype=np.float64)
    seen = {}
    for fmt in candidate_formats(bits, max_exponent):
        key = _normalised_levels(fmt)
        # Prefer few fields, then the representative whose smallest term is 1.
        rank = (len(fmt.term_sets), fmt.max_term_sum, str(fmt))
        if key not in seen or rank < seen[key][0]:
            seen[key] = (rank, fmt)
    screened = []
    for rank, fmt in seen.values():
        screened.append((_screening_error(w, fmt), rank, fmt))
        if progress is not None:
            progress()
    screened.sort(key=lambda r: (r[0], r[1]))
    # Re-evaluate a margin of near-winners exactly: summation order can swap near-ties.
    keep = screened[:top + 8]
    results = [TermSetResult(str(fmt), weight_error(w, fmt), rank[0])
               for _, rank, fmt in keep]
    results.sort(key=lambda r: (r.error, r.fields, r.format))
    return results[:top]
