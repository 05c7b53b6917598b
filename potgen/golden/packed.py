"""The packed golden kernel: exact matrix products with several lanes per machine word.

SAMD in software: ``L`` rows of the activation matrix share one machine word, spaced
``S`` bits apart, so one multiply-add does the work of ``L``:

    A'[r, k] = sum_l a[l R + r, k] 2^(l S)        (R = ceil(M / L), rows zero-padded)
    C'[r, n] = sum_k A'[r, k] w[k, n] = sum_l 2^(l S) C[l R + r, n]

and the ``L`` products are peeled out of ``C'`` (:func:`potgen.golden.lanes.unpack`,
two's complement lanes of ``S`` bits). Three word types (:data:`METHODS`):

``float32`` / ``float64``
    One BLAS GEMM on the packed rows. **Why it is exact.** Let ``B >= sum_k |a w|`` for
    every output (the bound :func:`potgen.golden.arith.matmul_values` uses). Every
    operand and every intermediate result of the GEMM for output ``(r, n)`` is a sum
    over some subset ``T`` of ``k`` of ``A'[r,k] w[k,n] = sum_l 2^(lS) sum_{k in T}
    a_l w``, so its magnitude is at most ``B_L = B (1 + 2^S + ... + 2^((L-1)S))``. If
    ``B_L < 2^24`` (float32) or ``2^53`` (float64) every such integer is representable,
    no rounding ever happens, and ``C'`` is exact. With ``S = bits(B) + 1`` every lane
    sum lies in ``[-(2^(S-1) - 1), 2^(S-1) - 1]``, so the peel returns it exactly.
``uint64``
    SWAR without BLAS: ``A'`` and ``w`` as ``uint64`` (two's complement), NumPy's
    integer matmul computes ``C'`` modulo ``2^64``; with ``L S <= 64`` that residue
    determines every ``S``-bit lane, and the peel is exact as above.

**When it pays** (:func:`select`). The plain golden path already runs one float32
GEMM whenever ``B < 2^24`` and one float64 GEMM below ``2^53``. Packing ``L`` rows
divides the GEMM's work by ``L`` but adds packing and peeling passes and may force the
wider word. On the issue's 256x1024x256 4-bit GEMM (``B = 2^16`` for int4 x int4, so
``S = 18``) float32 cannot hold two lanes (``2^16 (1 + 2^18) > 2^24``) and float64
holds three (``2^16 + 2^34 + 2^52 < 2^53``): three float64 lanes do 2/3 of the float32
GEMM's multiply-adds at about twice the cost each. Measured (process CPU time,
single-threaded OpenBLAS, ``benchmarks/bench_packed.py``, two runs): NumPy int64
matmul 170-250 ms, plain golden ``matmul`` 3.1-3.9 ms (55-65x), three float64 lanes
3.5-4.1 ms (0.88-0.94x the plain path's speed), three uint64 lanes 62-92 ms (2.7x). So
the plain path already exceeds the 10x goal and packing does not beat it there;
:func:`select` returns None. Packing wins where the plain path needs float64: uint8 x
int8 with K = 1024 (``B < 2^25``, ``S = 26``) fits two float64 lanes, half the plain
float64 GEMM's multiply-adds; measured 1.06x to 1.2x faster over several runs (the
packing and peeling passes eat most of the halved GEMM). ``uint64`` SWAR gains about ``L``x over NumPy's int64
matmul but stays far behind BLAS, so :func:`select` never picks it; it is an exact
BLAS-free kernel and a check on the others.
"""

from __future__ import annotations

from dataclasses import dataclass
from numbers import Integral

import numpy as np

from ..formats import parse_format
from .arith import _max_abs, _partial_sum_bound, as_integers

__all__ = ["METHODS", "PackedPlan", "plan_for", "select", "select_for_bound",
           "packed_matmul_values", "packed_matmul", "exact_matmul"]

#: Machine words a packed kernel can use.
METHODS = ("float32", "float64", "uint64")

#: Exactly representable integer magnitudes of the float words (mantissa + 1 bits).
_MANTISSA = {"float32": 24, "float64": 53}

# Relative costs for select(): one float32 BLAS multiply-add is 1. Measured on a
# 2-core x86-64 with OpenBLAS (NumPy 2.x), one thread: float64 GEMM ~2x float32; NumPy's
# integer matmul (no BLAS) several hundred times slower; one element of an elementwise
# NumPy pass ~60 float32 multiply-adds of a large GEMM.
_COST_PER_MAC = {"float32": 1.0, "float64": 2.0, "uint64": 400.0}
_COST_PER_ELEMENT = 60.0
#: Packing must beat the plain path's estimate by this factor to be selected.
_MARGIN = 0.8


@dataclass(frozen=True)
class PackedPlan:
    """How a packed kernel packs: word type, lanes and spacing, proved exact for a bound.

    Parameters
    ----------
    method : str
        One of :data:`METHODS`.
    lanes : int
        Rows of the activations per word, >= 1.
    spacing : int
        Bits per lane ``S``.
    bound : int
        ``B``: a bound on ``sum_k |a w|`` of every output the plan is used for.

    Raises
    ------
    ValueError
        When the plan is not exact for ``bound``: a lane sum would not fit ``S`` bits,
        a packed partial sum would reach the float mantissa, or the lanes would not fit
        64 bits.
    """

    method: str
    lanes: int
    spacing: int
    bound: int

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(f"method={self.method!r}: allowed "
                             f"{', '.join(map(repr, METHODS))}")
        for name, low in (("lanes", 1), ("spacing", 2), ("bound", 0)):
            value = getattr(self, name)
            if isinstance(value, (bool, np.bool_)) or not isinstance(value, Integral):
                raise TypeError(f"{name}={value!r}: expected an int")
            if value < low:
                raise ValueError(f"{name}={value}: must be >= {low}")
        need = self.bound.bit_length() + 1
        if self.spacing < need:
            raise ValueError(f"spacing={self.spacing}: lane sums up to +-{self.bound} need "
                             f"{need} signed bits")
        if self.method == "uint64":
            if self.lanes * self.spacing > 64:
                raise ValueError(f"lanes={self.lanes}: {self.lanes} x {self.spacing} bits "
                                 "exceed a 64-bit word")
        else:
            p = _MANTISSA[self.method]
            if self.packed_bound >= 1 << p:
                raise ValueError(
                    f"lanes={self.lanes}: packed partial sums reach {self.packed_bound} "
                    f">= 2^{p}, beyond {self.method}'s exact integers")

    @property
    def packed_bound(self) -> int:
        """``B (1 + 2^S + ... + 2^((L-1)S))``: the largest packed partial sum."""
        return self.bound * sum(1 << (i * self.spacing) for i in range(self.lanes))

    def to_dict(self) -> dict:
        return {"method": self.method, "lanes": self.lanes, "spacing": self.spacing,
                "bound": self.bound, "packed_bound": self.packed_bound}


def _most_lanes(method: str, bound: int, spacing: int) -> int:
    if method == "uint64":
        return 64 // spacing
    # Lanes beyond the mantissa's width would only pack zeros (a zero bound).
    p = _MANTISSA[method]
    lanes = 1
    while (lanes + 1) * spacing <= p + spacing and \
            bound * sum(1 << (i * spacing) for i in range(lanes + 1)) < 1 << p:
        lanes += 1
    return lanes


def plan_for(bound: int, method: str, lanes: int | None = None) -> PackedPlan:
    """The plan for a partial-sum bound: spacing ``bits(B) + 1`` and the most lanes.

    Raises ``ValueError`` when ``method`` cannot hold even one lane exactly (or
    ``lanes`` given is too many).
    """
    if isinstance(bound, (bool, np.bool_)) or not isinstance(bound, Integral) or bound < 0:
        raise ValueError(f"bound={bound!r}: expected an int >= 0")
    if method not in METHODS:
        raise ValueError(f"method={method!r}: allowed {', '.join(map(repr, METHODS))}")
    spacing = max(int(bound).bit_length() + 1, 2)
    if lanes is None:
        lanes = max(_most_lanes(method, int(bound), spacing), 1)
    return PackedPlan(method, lanes, spacing, int(bound))


def _plain_cost(bound: int, macs: int) -> float:
    if bound < 1 << 24:
        return macs * _COST_PER_MAC["float32"]
    if bound < 1 << 53:
        return macs * _COST_PER_MAC["float64"]
    return 4 * macs * _COST_PER_MAC["float64"]   # the limb path: several GEMMs


def _packed_cost(plan: PackedPlan, m: int, k: int, n: int) -> float:
    rows = -(-m // plan.lanes)
    gemm = rows * k * n * _COST_PER_MAC[plan.method]
    passes = (m * k + 3 * rows * n * plan.lanes) * _COST_PER_ELEMENT
    return gemm + passes


def select_for_bound(m: int, k: int, n: int, bound: int) -> PackedPlan | None:
    """The packed plan that is exact for ``bound`` and faster than the plain path, or None.

    ``None`` means :func:`potgen.golden.matmul`'s own path (one float32 / float64 GEMM,
    or limbs) is estimated to be at least as fast.
    """
    if bound == 0 or m < 2:
        return None
    macs = m * k * n
    plain = _plain_cost(bound, macs)
    best, best_cost = None, _MARGIN * plain
    for method in METHODS:
        try:
            plan = plan_for(bound, method)
        except ValueError:
            continue
        if plan.lanes < 2:
            continue
        cost = _packed_cost(plan, m, k, n)
        if cost < best_cost:
            best, best_cost = plan, cost
    return best


def _operands(acts, weights):
    a = as_integers(acts, "acts")
    w = as_integers(weights, "weights")
    if a.ndim != 2 or w.ndim != 2:
        raise ValueError(f"a matrix product needs acts [M, K] and weights [K, N]; got "
                         f"shapes {a.shape} and {w.shape}")
    if a.shape[1] != w.shape[0]:
        raise ValueError(f"acts has K={a.shape[1]} columns but weights has "
                         f"K={w.shape[0]} rows")
    return a, w


def select(acts, weights) -> PackedPlan | None:
    """The packed plan for these operands when it is exact and faster, else None.

    The bound is the plain path's (``K max|a| max|w|`` tightened by row and column L1
    norms), so a plan is exact for exactly the operands it was selected for.
    """
    a, w = _operands(acts, weights)
    if a.dtype == object or w.dtype == object:
        return None
    bound = _partial_sum_bound(a, w, _max_abs(a), _max_abs(w))
    return select_for_bound(a.shape[0], a.shape[1], w.shape[1], bound)


def _peel(c: np.ndarray, lanes: int, spacing: int) -> list:
    """Lane values of exact packed sums (int64), by the peel rule, lane 0 first."""
    half, mask = 1 << (spacing - 1), (1 << spacing) - 1
    out = []
    for _ in range(lanes - 1):
        # ((c + 2^(S-1)) mod 2^S) - 2^(S-1): the two's complement low field.
        f = ((c + half) & mask) - half
        out.append(f)
        c = (c - f) >> spacing
    out.append(c)   # the top lane is what remains
    return out


def _pack_rows(a: np.ndarray, plan: PackedPlan, dtype):
    m = a.shape[0]
    rows = -(-m // plan.lanes)
    packed = np.zeros((rows, a.shape[1]), dtype=dtype)
    for lane in range(plan.lanes):
        block = a[lane * rows:(lane + 1) * rows]
        if block.shape[0] == 0:
            break
        if dtype == np.uint64:
            part = block.astype(np.int64).view(np.uint64) << np.uint64(lane * plan.spacing)
        else:
            part = block.astype(dtype) * dtype(2.0 ** (lane * plan.spacing))
        packed[:block.shape[0]] += part
    return packed, rows


def packed_matmul_values(acts, weights, plan: PackedPlan | None = None) -> np.ndarray:
    """Exact ``acts @ weights`` (integer values) by a packed kernel.

    Parameters
    ----------
    acts : array-like of int, shape [M, K]
    weights : array-like of int, shape [K, N]
    plan : PackedPlan or None
        ``None``: :func:`select`'s plan, or else the most float64 lanes that are exact.
        A given plan is checked against these operands' bound (``ValueError`` if it is
        not exact for them).

    Returns
    -------
    numpy.ndarray of int64, shape [M, N]
    """
    a, w = _operands(acts, weights)
    if a.dtype == object or w.dtype == object:
        raise ValueError("packed kernels need int64 operands; use potgen.golden.matmul "
                         "for values beyond int64")
    bound = _partial_sum_bound(a, w, _max_abs(a), _max_abs(w))
    if plan is None:
        plan = select_for_bound(a.shape[0], a.shape[1], w.shape[1], bound)
        if plan is None:
            plan = plan_for(bound, "float64")
    elif not isinstance(plan, PackedPlan):
        raise TypeError(f"plan must be a PackedPlan or None, not {type(plan).__name__}")
    elif plan.bound < bound:
        raise ValueError(f"plan is proved for partial sums up to {plan.bound}, these "
                         f"operands reach {bound}")
    return _run(a, w, plan)


def _run(a: np.ndarray, w: np.ndarray, plan: PackedPlan) -> np.ndarray:
    m, n = a.shape[0], w.shape[1]
    if plan.method == "uint64":
        packed, rows = _pack_rows(a, plan, np.uint64)
        c = np.matmul(packed, w.astype(np.int64).view(np.uint64)).view(np.int64)
        if plan.lanes * plan.spacing < 64:
            # Keep the residue modulo 2^(L S), read as a signed value: the peel needs
            # only the low L S bits, and the top lane then comes out signed.
            top = 64 - plan.lanes * plan.spacing
            c = (c << top) >> top
    else:
        dtype = np.float32 if plan.method == "float32" else np.float64
        packed, rows = _pack_rows(a, plan, dtype)
        c = np.matmul(packed, w.astype(dtype)).astype(np.int64)
    out = np.empty((rows * plan.lanes, n), dtype=np.int64)
    for lane, values in enumerate(_peel(c, plan.lanes, plan.spacing)):
        out[lane * rows:(lane + 1) * rows] = values
    return out[:m]


def packed_matmul(acts, codes, fmt, plan: PackedPlan | None = None) -> np.ndarray:
    """:func:`packed_matmul_values` with weights given as codes of ``fmt`` (exact sums)."""
    fmt = parse_format(fmt)
    return packed_matmul_values(acts, fmt.decode(codes), plan)


def exact_matmul(a: np.ndarray, w: np.ndarray, bound: int) -> np.ndarray | None:
    """Hook for :func:`potgen.golden.arith._exact_matmul`: the packed result, or None.

    ``a`` [M, K] and ``w`` [K, N] are int64 arrays and ``bound`` bounds every
    ``sum_k |a w|`` (as in ``_exact_matmul``). Returns None when :func:`select_for_bound`
    finds no packed plan faster than the plain path; the caller then proceeds as before.
    """
    if a.dtype == object or w.dtype == object:
        return None
    plan = select_for_bound(a.shape[0], a.shape[1], w.shape[1], bound)
    if plan is None:
        return None
    return _run(a, w, plan)

