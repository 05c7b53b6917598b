"""Helpers for driving potgen components in Amaranth's simulator.

A design is elaborated once and many vectors are pushed through it in a single async
testbench, so a test can check thousands of (input, output) pairs in well under a
second. Combinational designs need no clock: after ``ctx.set`` the testbench reads
settled values with ``ctx.get``.
"""

from __future__ import annotations

import numpy as np
from amaranth.sim import Simulator

__all__ = ["simulate", "drive"]

#: Clock period of simulated designs (its value is irrelevant to the results).
CLOCK_PERIOD = 1e-6


def simulate(dut, bench, *, clock: bool = True, vcd: str | None = None):
    """Run one async testbench ``bench(ctx)`` on ``dut``, with a ``sync`` clock if asked."""
    sim = Simulator(dut)
    if clock:
        sim.add_clock(CLOCK_PERIOD)
    sim.add_testbench(bench)
    if vcd:
        with sim.write_vcd(vcd):
            sim.run()
    else:
        sim.run()


def drive(dut, inputs: dict, outputs, *, clocked: bool = False) -> dict:
    """Apply input vectors one by one and sample outputs after each.

    Parameters
    ----------
    dut : wiring.Component
    inputs : dict
        Port name -> sequence of values (all of the same length ``T``); a value may be a
        list for an array port.
    outputs : sequence of str
        Port names to sample.
    clocked : bool
        If true, each vector is followed by one rising edge and the outputs are sampled
        after it (so ``result[name][t]`` is the state after the edge that saw vector
        ``t``); otherwise the outputs are sampled combinationally.

    Returns
    -------
    dict
        Port name -> ``int64`` array of ``T`` samples.
    """
    names = list(inputs)
    columns = [list(inputs[name]) for name in names]
    length = len(columns[0]) if columns else 0
    if any(len(c) != length for c in columns):
        raise ValueError("every input sequence must have the same length")
    ports_in = [getattr(dut, name) for name in names]
    ports_out = [getattr(dut, name) for name in outputs]
    samples = {name: np.zeros(length, dtype=np.int64) for name in outputs}

    async def bench(ctx):
        for t in range(length):
            for port, column in zip(ports_in, columns):
                value = column[t]
                ctx.set(port, value if isinstance(value, list) else int(value))
            if clocked:
                await ctx.tick()
            for name, port in zip(outputs, ports_out):
                samples[name][t] = ctx.get(port)

    simulate(dut, bench, clock=clocked)
    return samples


# --- Hypothesis strategies shared by the hardware tests ---------------------------------

from hypothesis import strategies as st  # noqa: E402

from potgen.formats import IntFormat, TermFormat, parse_format  # noqa: E402


def _upot_formats():
    terms = st.sampled_from([0] + [1 << e for e in range(9)])
    sets = st.lists(st.lists(terms, min_size=1, max_size=4, unique=True),
                    min_size=1, max_size=3)
    # An unsigned format of one-element sets would have a 0-bit code: give it a sign.
    return st.builds(lambda s, signed: TermFormat(
        tuple(map(tuple, s)), signed=signed or all(len(t) == 1 for t in s)),
        sets, st.booleans())


def term_formats():
    """pot / pot-nz 2..5, apot3..6, sp2-3..6 and random upot with 1..3 sets."""
    named = st.one_of(
        st.integers(2, 5).map(lambda n: f"pot{n}"),
        st.integers(2, 5).map(lambda n: f"pot{n}-nz"),
        st.integers(3, 6).map(lambda n: f"apot{n}"),
        st.integers(3, 6).map(lambda n: f"sp2-{n}"),
    ).map(parse_format)
    return st.one_of(named, _upot_formats())


def int_formats(bits=(2, 8)):
    return st.builds(IntFormat, st.integers(*bits), st.booleans())


def weight_formats():
    return st.one_of(int_formats(), term_formats())


def act_formats(bits=(2, 12)):
    return int_formats(bits)


def product_vectors(act_fmt, weight_fmt, rng, limit=512):
    """(acts, codes): every pair when there are at most ``limit``, else every code with
    the extreme activations plus random pairs."""
    acts = np.arange(act_fmt.min_level, act_fmt.max_level + 1)
    codes = np.arange(1 << weight_fmt.bits)
    if acts.size * codes.size <= limit:
        a, c = np.meshgrid(acts, codes, indexing="ij")
        return a.ravel(), c.ravel()
    corner = sorted({act_fmt.min_level, act_fmt.max_level, 0, 1, -1 if act_fmt.signed else 2})
    a = np.repeat(corner, codes.size)
    c = np.tile(codes, len(corner))
    extra = max(limit - a.size, 64)
    a = np.concatenate([a, rng.integers(act_fmt.min_level, act_fmt.max_level + 1, extra)])
    c = np.concatenate([c, rng.integers(0, 1 << weight_fmt.bits, extra)])
    return a, c


# --- golden reference of a valid / clear stream -----------------------------------------

def stream_reference(valid, clear, acc, *, values=None, acts=None, codes=None, fmt=None):
    """Expected ``(acc, overflow)`` after each accumulating edge of a valid/clear stream.

    Edge ``t`` applies DESIGN.md section 4: ``clear`` starts a new sum (with this edge's
    product if ``valid``), else ``valid`` adds. The stream splits into segments at every
    clear (the first also starts at reset); for a segment of n edges the n prefix sums
    are one golden ``matmul`` of a lower-triangular [n, n] matrix of the (valid-masked)
    activations with the segment's codes (or ``matmul_values`` of plain ``values``).

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        int64 accumulator values and bool overflow flags, one per edge.
    """
    from potgen import golden

    valid = np.asarray(valid, dtype=bool)
    clear = np.asarray(clear, dtype=bool)
    data = np.asarray(values if values is not None else acts, dtype=np.int64)
    length = valid.size
    out_acc = np.zeros(length, dtype=np.int64)
    out_flag = np.zeros(length, dtype=bool)
    starts = [0] + [t for t in range(1, length) if clear[t]]
    for start, end in zip(starts, starts[1:] + [length]):
        index = np.arange(start, end)
        masked = np.where(valid[index], data[index], 0)
        prefixes = np.tril(np.tile(masked, (index.size, 1)))
        if values is not None:
            result = golden.matmul_values(prefixes, np.ones((index.size, 1), np.int64), acc)
        else:
            result = golden.matmul(prefixes, np.asarray(codes)[index][:, None], fmt, acc)
        out_acc[index] = result.acc[:, 0]
        out_flag[index] = result.overflow[:, 0]
    return out_acc, out_flag


def random_stream(rng, length, *, p_valid=0.8, p_clear=0.05):
    """Random valid / clear bits (clear and valid may coincide)."""
    return (rng.random(length) < p_valid).astype(int), (rng.random(length) < p_clear).astype(int)


def biased_values(rng, lo, hi, length, p_extreme=0.5):
    """Values in [lo, hi], half of them at an end of the range (to provoke overflow)."""
    values = rng.integers(lo, hi + 1, length)
    ends = rng.random(length) < p_extreme
    values[ends] = np.where(rng.random(ends.sum()) < 0.5, lo, hi)
    return values


# --- fixtures ------------------------------------------------------------------------

import gc  # noqa: E402

import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def collect_unelaborated():
    """Collect a test's components before its warning filters end.

    Width, metadata and bad-input tests build components without elaborating them;
    Amaranth warns (``UnusedElaboratable``) when such an object is collected, which
    would otherwise happen later, outside the test. Import this fixture into a test
    module and mark the module with
    ``pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")``.
    """
    yield
    gc.collect()
