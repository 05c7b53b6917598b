"""UPoT term-set search: optimal against brute force over a tiny space."""

import itertools

import numpy as np
import pytest

from potgen.explore.upot import candidate_formats, search_term_sets, weight_error
from potgen.formats import TermFormat, parse_format
from potgen.quantize import calibrate_scale, dequantize, quantize


def _weights(seed, shape=(12, 5)):
    rng = np.random.default_rng(seed)
    # Heavy-tailed, like trained weights.
    return rng.standard_t(3, size=shape) * 0.1


def _all_term_set_formats(bits, max_exponent):
    """Every ordered tuple of full term sets (0 plus powers of two) for ``bits`` bits,
    fields in every order, with every smallest term: no reduction at all."""
    powers = [1 << e for e in range(max_exponent + 1)]

    def compositions(n):
        if n == 0:
            yield ()
            return
        for first in range(1, n + 1):
            for rest in compositions(n - first):
                yield (first,) + rest

    for widths in compositions(bits - 1):
        options = [[(0,) + c for c in itertools.combinations(powers, (1 << w) - 1)]
                   for w in widths]
        for sets in itertools.product(*options):
            yield TermFormat(sets, signed=True)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("bits, max_exponent", [(3, 3), (4, 3)])
def test_search_is_optimal_against_brute_force(seed, bits, max_exponent):
    w = _weights(seed)
    brute = min(weight_error(w, fmt) for fmt in _all_term_set_formats(bits, max_exponent))
    best = search_term_sets(w, bits, max_exponent=max_exponent, top=1)[0]
    assert best.error == pytest.approx(brute, rel=1e-12, abs=0)
    # The reported error is the format's exact error.
    assert best.error == weight_error(w, best.format)
    assert parse_format(best.format).bits == bits


def test_weight_error_is_the_quantizer_error():
    w = _weights(5)
    fmt = parse_format("apot4")
    scales = calibrate_scale(w, fmt, "mse", axis=1)
    q = dequantize(quantize(w, fmt, scales, axis=1), fmt, scales, axis=1)
    assert weight_error(w, fmt) == pytest.approx(float(((w - q) ** 2).sum()), rel=1e-12)


def test_results_sorted_and_canonical():
    w = _weights(3, (20, 6))
    results = search_term_sets(w, 4, max_exponent=4, top=5)
    assert len(results) == 5
    assert [r.error for r in results] == sorted(r.error for r in results)
    for r in results:
        fmt = parse_format(r.format)
        # The smallest term is 1: a power-of-two rescaling is never listed twice.
        assert min(t for s in fmt.term_sets for t in s if t) == 1
        assert all(0 in s for s in fmt.term_sets)
    assert len({r.format for r in results}) == 5


def test_search_never_worse_than_named_term_formats():
    w = _weights(7, (30, 8))
    best = search_term_sets(w, 4, max_exponent=7)[0]
    for name in ("pot4", "apot4", "sp2-4"):
        assert best.error <= weight_error(w, name) + 1e-12


def test_candidate_count_small_space():
    # bits=3: one 2-bit field (3 of 3 powers: 1 way) or two 1-bit fields (multisets of
    # 2 from 3 powers: 6 ways).
    assert len(list(candidate_formats(3, max_exponent=2))) == 1 + 6


@pytest.mark.parametrize("bits", [1, 10, "4"])
def test_bad_bits(bits):
    with pytest.raises(ValueError, match="bits="):
        list(candidate_formats(bits))


def test_bad_top_and_weights():
    with pytest.raises(ValueError, match="top=0"):
        search_term_sets(_weights(0), 3, top=0)
    with pytest.raises(ValueError, match="weights"):
        weight_error(np.zeros(4), "pot4")
