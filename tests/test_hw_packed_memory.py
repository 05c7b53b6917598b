"""Packed memory words: the NumPy helpers against an independent scalar packing, and the
PackedOperandReader streaming a RAM in Amaranth simulation."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from amaranth_sim import collect_unelaborated, simulate  # noqa: F401 (fixture)
from potgen.hw.packed_memory import (MEMORY_WIDTHS, PackedOperandReader, operands_per_word,
                                     pack_words, unpack_words, words_needed)

pytestmark = pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")


def scalar_pack(values, bits, word_bits):
    """One operand at a time, with Python ints: the layout the module documents."""
    per = word_bits // bits
    words = [0] * -(-len(values) // per)
    for j, v in enumerate(values):
        words[j // per] |= (int(v) & ((1 << bits) - 1)) << ((j % per) * bits)
    return words


# --- host-side helpers -------------------------------------------------------------------------

def test_operands_per_word_for_dp16kd_widths():
    table = {w: [operands_per_word(b, w) for b in (2, 3, 4, 8)] for w in MEMORY_WIDTHS}
    assert table == {9: [4, 3, 2, 1], 18: [9, 6, 4, 2], 36: [18, 12, 9, 4]}
    assert words_needed(10, 4, 9) == 5 and words_needed(0, 4, 9) == 0
    assert words_needed(19, 2, 36) == 2


@given(bits=st.integers(1, 16), word_bits=st.integers(1, 64), signed=st.booleans(),
       count=st.integers(0, 60), rows=st.integers(1, 3), seed=st.integers(0, 2 ** 32 - 1))
def test_pack_round_trip(bits, word_bits, signed, count, rows, seed):
    if bits > word_bits:
        bits = word_bits
    rng = np.random.default_rng(seed)
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    values = rng.integers(lo, hi + 1, (rows, count), dtype=np.int64)
    if count:
        values[:, 0] = lo
        values[:, -1] = hi
    words = pack_words(values, bits, word_bits, signed)
    assert words.dtype == np.uint64
    assert words.shape == (rows, words_needed(count, bits, word_bits))
    for r in range(rows):
        assert [int(w) for w in words[r]] == scalar_pack(values[r], bits, word_bits)
    if words.size and word_bits < 64:
        assert int(words.max()) < 1 << word_bits
    np.testing.assert_array_equal(unpack_words(words, bits, word_bits, signed, count), values)


def test_an_operand_never_spans_two_words():
    # 36-bit words of 5-bit operands: 7 per word, the top bit stays zero.
    words = pack_words(np.full(14, 31), 5, 36, False)
    assert [int(w) for w in words] == [(1 << 35) - 1] * 2
    np.testing.assert_array_equal(unpack_words(words, 5, 36, False), np.full(14, 31))


def test_helper_errors():
    with pytest.raises(ValueError, match=r"values\[2\] = 8 is outside the signed 4-bit "
                                         r"range -8\.\.7"):
        pack_words([0, 1, 8], 4, 18, True)
    with pytest.raises(ValueError, match="bits=10: allowed 1..9"):
        pack_words([0], 10, 9, False)
    with pytest.raises(ValueError, match="word_bits=65"):
        words_needed(4, 4, 65)
    with pytest.raises(TypeError, match="signed=1"):
        pack_words([0], 4, 18, 1)
    with pytest.raises(ValueError, match="count=10: allowed 0..8"):
        unpack_words([0, 0], 4, 18, False, count=10)
    with pytest.raises(ValueError, match=r"words: values must be in 0\.\.2\^9-1"):
        unpack_words([512], 4, 9, False)


# --- the reader ----------------------------------------------------------------------------------

def stream_runs(reader, runs, rng, p_ready=0.6, write=None):
    """Start each (base, length) run, consume it with random backpressure; the items and
    the cycles each run took."""
    results = []

    async def bench(ctx):
        if write:
            for addr, word in write:
                ctx.set(reader.write_addr, addr)
                ctx.set(reader.write_data, word)
                ctx.set(reader.write_en, 1)
                await ctx.tick()
            ctx.set(reader.write_en, 0)
        for base, length in runs:
            ctx.set(reader.start, 1)
            ctx.set(reader.base, base)
            ctx.set(reader.length, length)
            await ctx.tick()
            ctx.set(reader.start, 0)
            items, cycles = [], 0
            while len(items) < length and cycles < 20 * length + 10:
                ready = int(rng.random() < p_ready)
                ctx.set(reader.data.ready, ready)
                if ctx.get(reader.data.valid) and ready:
                    items.append(ctx.get(reader.data.payload))
                await ctx.tick()
                cycles += 1
            ctx.set(reader.data.ready, 0)
            assert not ctx.get(reader.busy)
            assert not ctx.get(reader.data.valid)
            results.append((items, cycles))

    simulate(reader, bench)
    return results


@pytest.mark.parametrize("bits, word_bits, signed", [(4, 18, True), (3, 36, False),
                                                     (2, 9, True), (4, 36, True)])
def test_reader_streams_operands(bits, word_bits, signed):
    rng = np.random.default_rng(bits * word_bits)
    per = operands_per_word(bits, word_bits)
    depth = 12
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    values = rng.integers(lo, hi + 1, depth * per)
    reader = PackedOperandReader(bits, word_bits, depth, signed=signed,
                                 init=pack_words(values, bits, word_bits, signed))
    runs = [(0, depth * per), (3, 2 * per + 1), (depth - 1, per + 2), (5, 1)]
    for (base, length), (items, _) in zip(runs, stream_runs(reader, runs, rng)):
        order = [(base * per + j) % (depth * per) for j in range(length)]
        assert items == values[order].tolist()


def test_reader_has_no_bubbles():
    """With the consumer always ready, a run of n operands takes n cycles after the start."""
    values = np.arange(36) % 16
    reader = PackedOperandReader(4, 18, 9, init=pack_words(values, 4, 18, False))
    rng = np.random.default_rng(0)
    [(items, cycles)] = stream_runs(reader, [(0, 36)], rng, p_ready=1.0)
    assert items == values.tolist() and cycles == 36


def test_reader_word_mode_and_write_port():
    rng = np.random.default_rng(4)
    words = [int(w) for w in rng.integers(0, 1 << 36, 8, dtype=np.int64)]
    reader = PackedOperandReader(4, 36, 8, mode="word", writable=True)
    [(items, _)] = stream_runs(reader, [(6, 5)], rng, write=list(enumerate(words)))
    # 36-bit words of 4-bit operands: the payload is the 9 operands (36 bits).
    assert items == [words[(6 + i) % 8] for i in range(5)]
    assert len(reader.data.payload) == 36


def test_reader_converts_more_than_once():
    """Synthesis converts a design to RTLIL and to Verilog: the memory is built each time."""
    from amaranth.back import rtlil, verilog
    reader = PackedOperandReader(4, 36, 512, init=[1, 2, 3], writable=True)
    assert "module" in rtlil.convert(reader) and "module" in verilog.convert(reader)
    assert reader.init == [1, 2, 3]


def test_reader_ports_and_errors():
    reader = PackedOperandReader(3, 18, 100, signed=True)
    assert reader.per == 6 and reader.latency == 1
    assert reader.data.payload.shape().signed and len(reader.data.payload) == 3
    meta = reader.metadata()
    assert meta["per_word"] == 6 and meta["kind"] == "packed-reader"
    with pytest.raises(ValueError, match="word_bits=16: the ECP5 DP16KD widths are 9, 18, "
                                         "36"):
        PackedOperandReader(4, 16, 8)
    with pytest.raises(ValueError, match="init: 9 words do not fit depth=8"):
        PackedOperandReader(4, 18, 8, init=[0] * 9)
    with pytest.raises(ValueError, match="mode='lanes'"):
        PackedOperandReader(4, 18, 8, mode="lanes")
    with pytest.raises(ValueError, match="bits=20: allowed 1..18"):
        PackedOperandReader(20, 18, 8)
