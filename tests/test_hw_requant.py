"""Requantizer in Amaranth simulation against ``golden.requantize``.

Exhaustive on narrow inputs: every 8-bit accumulator with every (m, s, zp, relu) of a
grid that covers the corners (m = 0, 1, 2^16 - 1; s = 0, 1, the shift that lands on
the rounding boundary of an 8-bit accumulator, s beyond the product's width; zp at
both ends of the output range), per lane with a different parameter triple in each of
16 lanes. Hypothesis then covers wide accumulators, every output format width, shared
and per-channel parameters, every ReLU mode and pipeline depth, and parameters that
change on every cycle (they must travel down the pipeline with their accumulator).
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from amaranth_sim import collect_unelaborated, simulate  # noqa: F401
from potgen import golden
from potgen.formats import IntFormat, parse_format
from potgen.hw.export import emit
from potgen.hw.requant import Requantizer

pytestmark = pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")


def pack(values, width: int) -> int:
    mask = (1 << width) - 1
    return sum((int(v) & mask) << (i * width) for i, v in enumerate(values))


def unpack(word: int, width: int, count: int, signed: bool) -> list:
    out = []
    for i in range(count):
        v = (word >> (i * width)) & ((1 << width) - 1)
        out.append(v - (1 << width) if signed and v >> (width - 1) else v)
    return out


def raw(port):
    """The plain value behind a port (an array port is a ``data.View``)."""
    return port.as_value() if hasattr(port, "as_value") else port


def run(rq: Requantizer, acc, m=None, s=None, zp=None, relu=None, valid=None):
    """Feed one row per cycle; return (outputs [T, lanes], out_valid [T]) realigned to the
    input cycles. Each parameter is [T, lanes] (per channel) or [T] (shared)."""
    T = len(acc)
    valid = np.ones(T, dtype=np.int64) if valid is None else np.asarray(valid)
    fmt = rq.out_format
    lanes, latency = rq.lanes, rq.latency
    outs = np.zeros((T, lanes), dtype=np.int64)
    flags = np.zeros(T, dtype=np.int64)

    def word(values, width):
        return pack(values, width) if rq.per_channel else int(values) & ((1 << width) - 1)

    # Words are packed before the simulation starts: the bench only sets and samples.
    inputs = []
    for t in range(T):
        row = [(raw(rq.acc), pack(acc[t], rq.acc_bits)), (rq.valid, int(valid[t])),
               (raw(rq.zero_point), word(zp[t], fmt.bits))]
        if rq.multiplier_bits:
            row.append((raw(rq.multiplier), word(m[t], rq.multiplier_bits)))
        if rq.max_shift:
            row.append((raw(rq.shift), word(s[t], rq.shift_bits)))
        if rq.relu_mode == "input":
            row.append((rq.relu, int(relu[t])))
        inputs.append(row)
    idle = [(rq.valid, 0)]
    out_port = raw(rq.out)

    async def bench(ctx):
        for t in range(T + latency):
            for port, value in (inputs[t] if t < T else idle):
                ctx.set(port, value)
            if t >= latency:
                if latency == 0:
                    await ctx.delay(1e-9)       # combinational: let it settle
                outs[t - latency] = unpack(ctx.get(out_port), fmt.bits, lanes, fmt.signed)
                flags[t - latency] = ctx.get(rq.out_valid)
            if latency:
                await ctx.tick()

    simulate(rq, bench, clock=latency > 0)
    return outs, flags


def expected(rq: Requantizer, acc, m, s, zp, relu):
    """golden.requantize row by row (each row has its own parameters)."""
    fmt = rq.out_format
    acc = np.asarray(acc)
    out = np.zeros(acc.shape, dtype=np.int64)
    for t in range(acc.shape[0]):
        mode = rq.relu_mode
        row_relu = bool(relu[t]) if mode == "input" else bool(mode)
        out[t] = golden.requantize(
            acc[t], 1 if m is None else m[t], 0 if s is None else s[t], zp[t],
            fmt.min_level, fmt.max_level, relu=row_relu)
    return out


def check(rq, acc, m, s, zp, relu, valid=None):
    got, flags = run(rq, acc, m, s, zp, relu, valid)
    want = expected(rq, acc, m, s, zp, relu)
    bad = np.argwhere(got != want)
    assert bad.size == 0, (
        f"row {bad[0][0]} lane {bad[0][1]}: acc={np.asarray(acc)[tuple(bad[0])]} "
        f"m={None if m is None else np.asarray(m)[bad[0][0]]} "
        f"s={None if s is None else np.asarray(s)[bad[0][0]]} zp={np.asarray(zp)[bad[0][0]]}"
        f" relu={None if relu is None else relu[bad[0][0]]}: got {got[tuple(bad[0])]}, "
        f"want {want[tuple(bad[0])]}")
    want_valid = np.ones(len(acc), dtype=np.int64) if valid is None else np.asarray(valid)
    assert (flags == want_valid).all()
    return got


# --- exhaustive on 8-bit accumulators -------------------------------------------------------

MULTIPLIERS = [0, 1, 3, 255, 65535]
SHIFTS = [0, 1, 2, 7, 8, 9, 23, 24, 31]


@pytest.mark.parametrize("out", ["uint8", "int8", "int4"])
def test_exhaustive_8bit_accumulators(out):
    fmt = parse_format(out)
    zero_points = sorted({fmt.min_level, 0, fmt.max_level})
    triples = list(itertools.product(MULTIPLIERS, SHIFTS, zero_points))
    lanes = 16
    triples += [triples[-1]] * (-len(triples) % lanes)
    rq = Requantizer(8, fmt, lanes=lanes, multiplier_bits=16, max_shift=31, relu="input",
                     pipeline=3)
    accs = np.arange(-128, 128)
    acc_rows, m_rows, s_rows, zp_rows, relu_rows = [], [], [], [], []
    for group in range(0, len(triples), lanes):
        m, s, zp = (np.array(column) for column in zip(*triples[group:group + lanes]))
        for relu in (0, 1):
            acc_rows.append(np.repeat(accs[:, None], lanes, axis=1))
            for rows, value in ((m_rows, m), (s_rows, s), (zp_rows, zp)):
                rows.append(np.tile(value, (accs.size, 1)))
            relu_rows.append(np.full(accs.size, relu))
    acc, m, s, zp, relu = (np.concatenate(r) for r in (acc_rows, m_rows, s_rows, zp_rows,
                                                        relu_rows))
    got = check(rq, acc, m, s, zp, relu)
    # The grid reaches both clamps and the rounding boundary.
    assert (got == fmt.min_level).any() and (got == fmt.max_level).any()


def test_rounding_is_half_up_not_half_even():
    # acc * m = +-3, +-1 at s = 1: 1.5 -> 2, -1.5 -> -1, 0.5 -> 1, -0.5 -> 0.
    rq = Requantizer(4, "int8", lanes=4, per_channel=False, multiplier_bits=2, max_shift=1,
                     pipeline=0)
    acc = [[3, -3, 1, -1]]
    got = check(rq, acc, [1], [1], [0], None)
    assert got.tolist() == [[2, -1, 1, 0]]


# --- Hypothesis: wide accumulators, every configuration --------------------------------------

@st.composite
def configurations(draw):
    acc_bits = draw(st.integers(2, 40))
    out = IntFormat(draw(st.integers(2, 16)), draw(st.booleans()))
    return dict(acc_bits=acc_bits, out_fmt=out, lanes=draw(st.integers(1, 4)),
                per_channel=draw(st.booleans()),
                multiplier_bits=draw(st.sampled_from([0, 1, 4, 16, 20])),
                max_shift=draw(st.sampled_from([0, 1, 7, 31, 40, 63])),
                relu=draw(st.sampled_from([False, True, "input"])),
                pipeline=draw(st.integers(0, 3)))


def _extreme_biased(rng, lo, hi, size):
    values = rng.integers(lo, hi + 1, size=size, dtype=np.int64)
    ends = rng.random(size) < 0.3
    values[ends] = rng.choice([lo, hi, 0, -1 if lo < 0 else 1], size=ends.sum())
    return values


@settings(max_examples=30)
@given(config=configurations(), seed=st.integers(0, 2 ** 32 - 1))
def test_matches_golden(config, seed):
    rq = Requantizer(**config)
    rng = np.random.default_rng(seed)
    T, lanes = 40, rq.lanes
    a_lo, a_hi = -(1 << (rq.acc_bits - 1)), (1 << (rq.acc_bits - 1)) - 1
    acc = _extreme_biased(rng, a_lo, a_hi, (T, lanes))
    shape = (T, lanes) if rq.per_channel else (T,)
    m = (_extreme_biased(rng, 0, (1 << rq.multiplier_bits) - 1, shape)
         if rq.multiplier_bits else None)
    s = (_extreme_biased(rng, 0, (1 << rq.shift_bits) - 1, shape) if rq.max_shift
         else None)
    fmt = rq.out_format
    zp = _extreme_biased(rng, fmt.min_level, fmt.max_level, shape)
    relu = rng.integers(0, 2, T)
    valid = rng.integers(0, 2, T)
    check(rq, acc, m, s, zp, relu, valid)


def test_power_of_two_scale_needs_no_multiplier():
    rq = Requantizer(12, "uint8", lanes=2, multiplier_bits=0, max_shift=7, pipeline=2)
    assert not hasattr(rq, "multiplier")
    acc = np.array([[2047, -2048], [100, 37], [-1, 1]])
    got = check(rq, acc, None, [[3, 0], [2, 1], [0, 7]], [[0, 128], [5, 5], [0, 0]], None)
    # 2047/8 rounds to 256 -> 255; -2048 + 128 -> 0; 100/4 + 5 = 30; 37/2 -> 19 + 5.
    assert got.tolist() == [[255, 0], [30, 24], [0, 0]]


# --- latency, widths, metadata, bad input -------------------------------------------------

@pytest.mark.parametrize("pipeline", [0, 1, 2, 3])
def test_latency_and_valid(pipeline):
    rq = Requantizer(10, "int8", lanes=1, pipeline=pipeline)
    assert rq.latency == pipeline
    acc = np.array([[5], [-7], [300], [0]])
    got = check(rq, acc, [[1]] * 4, [[0]] * 4, [[0]] * 4, None, valid=[1, 0, 1, 1])
    assert got[:, 0].tolist() == [5, -7, 127, 0]


def test_ports_and_metadata():
    rq = Requantizer(24, "uint8", lanes=8, multiplier_bits=16, max_shift=31,
                     relu="input")
    text, meta = emit(rq, "requant")
    ports = {p["name"]: p for p in meta["ports"]}
    assert ports["acc"]["width"] == 24 * 8 and ports["acc"]["elements"]["signed"]
    assert ports["multiplier"]["width"] == 16 * 8 and ports["shift"]["width"] == 5 * 8
    assert ports["zero_point"]["width"] == 8 * 8 and ports["out"]["width"] == 64
    assert ports["relu"]["width"] == 1 and meta["latency"] == 3
    assert meta["kind"] == "requantizer" and rq.product_shape.width == 40
    shared = Requantizer(24, "int8", lanes=8, per_channel=False, max_shift=0)
    names = [p["name"] for p in shared.metadata()["ports"]]
    assert names == ["valid", "acc", "multiplier", "zero_point", "out_valid", "out"]
    assert emit(rq, "requant")[0] == text


@pytest.mark.parametrize("kwargs, error, words", [
    (dict(acc_bits=1), ValueError, ["acc_bits=1", "2..64"]),
    (dict(out_fmt="pot4"), ValueError, ["out_fmt='pot4'", "intN or uintN"]),
    (dict(out_fmt="int40"), ValueError, ["int40"]),
    (dict(out_fmt="float8"), ValueError, ["out_fmt"]),
    (dict(lanes=0), ValueError, ["lanes=0", "1..256"]),
    (dict(lanes=2.0), TypeError, ["lanes=2.0"]),
    (dict(per_channel="yes"), TypeError, ["per_channel='yes'"]),
    (dict(multiplier_bits=33), ValueError, ["multiplier_bits=33", "0..32"]),
    (dict(max_shift=-1), ValueError, ["max_shift=-1", "0..127"]),
    (dict(relu="maybe"), ValueError, ["relu='maybe'", "'input'"]),
    (dict(relu=1), ValueError, ["relu=1"]),
    (dict(pipeline=4), ValueError, ["pipeline=4", "0..3"]),
])
def test_bad_parameters(kwargs, error, words):
    args = dict(acc_bits=16, out_fmt="uint8")
    args.update(kwargs)
    with pytest.raises(error) as info:
        Requantizer(args.pop("acc_bits"), args.pop("out_fmt"), **args)
    for word in words:
        assert word in str(info.value)
