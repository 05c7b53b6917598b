"""Weight-stationary accelerator through the driver and the Amaranth back end, bit-exact.

``Accelerator(dataflow="ws")``: PE ``(i, j)`` holds ``W[f rows + i, n cols + j]`` of a
fold, activation rows stream through it, and folds after the first continue from the
previous fold's partial sums (the on-chip partial-sum buffer) in golden sequential
``k`` order. GEMM shapes that divide nothing (``K > rows``, ``M > k_max``) are compared
with ``golden.matmul`` (accumulators and overflow flags, wrap and saturate) and
``golden.requantize``, and the hardware's ``cycles`` counter with the cycle model
(:mod:`potgen.runtime.cycles`) exactly.
"""

from __future__ import annotations

import numpy as np
import pytest
from amaranth_sim import collect_unelaborated  # noqa: F401
from hypothesis import given, settings
from hypothesis import strategies as st

from potgen import golden
from potgen.hw.accelerator import ARG_FIELDS, OPCODES, Accelerator
from potgen.runtime import AcceleratorDriver, Program, RequantParams
from potgen.runtime.amaranth_backend import AmaranthBackend
from potgen.runtime.cycles import gemm_cycles, model_metadata
from potgen.runtime.driver import plan_gemm

pytestmark = pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")


def _acts(rng, fmt, M, K):
    acts = rng.integers(fmt.min_level, fmt.max_level + 1, (M, K))
    # Half of the activations at an end of the range, to reach the extreme sums.
    ends = rng.random((M, K)) < 0.5
    acts[ends] = rng.choice([fmt.min_level, fmt.max_level], ends.sum())
    return acts


def _operands(rng, acc, M, K, N):
    codes = rng.integers(0, 1 << acc.array.column_formats[0].bits, (K, N))
    return _acts(rng, acc.array.act_format, M, K), codes


def _golden_acc(acc, acts, codes):
    spec = golden.AccSpec(acc.acc_bits, acc.array.overflow_mode)
    return golden.matmul(acts, codes, acc.array.column_formats[0], spec)


def _requant_params(rng, acc, N, relu):
    out = acc.requantizer.out_format
    return RequantParams(multiplier=rng.integers(0, 1 << 12, N),
                         shift=rng.integers(0, 20, N),
                         zero_point=rng.integers(out.min_level, out.max_level + 1, N),
                         relu=relu)


def _golden_requant(acc, raw, params):
    out = acc.requantizer.out_format
    return golden.requantize(raw, params.multiplier, params.shift, params.zero_point,
                             lo=out.min_level, hi=out.max_level, relu=params.relu)


ws_cases = st.fixed_dictionaries({
    "rows": st.integers(2, 4), "cols": st.integers(2, 4),
    "weight": st.sampled_from(("pot4", "int8")), "act": st.sampled_from(("uint8", "int4")),
    "M": st.integers(1, 11), "K": st.integers(1, 13), "N": st.integers(1, 7),
    "k_max_extra": st.integers(0, 3), "act_slots": st.integers(1, 4),
    "weight_slots": st.integers(1, 2), "dout_lanes": st.integers(1, 3),
    # (load_queue, compute_queue, out_rows as a multiple of rows)
    "queues": st.sampled_from([(2, 4, 2), (1, 1, 1), (3, 6, 1)]),
    "pipeline": st.integers(0, 1), "psum_tiles": st.integers(1, 3),
    "seed": st.integers(0, 2**32 - 1),
})


def _build(case, **extra):
    load_queue, compute_queue, out_tiles = case["queues"]
    return Accelerator(case["rows"], case["cols"], case["weight"], case["act"],
                       dataflow="ws", k_max=case["rows"] + case["k_max_extra"],
                       k_total_max=16, act_slots=case["act_slots"],
                       weight_slots=case["weight_slots"], dout_lanes=case["dout_lanes"],
                       load_queue=load_queue, compute_queue=compute_queue,
                       out_rows=out_tiles * case["rows"], pipeline=case["pipeline"],
                       psum_tiles=case["psum_tiles"], **extra)


@settings(max_examples=12)
@given(ws_cases)
def test_ws_raw_gemm_bit_exact_and_cycles_exact(case):
    rng = np.random.default_rng(case["seed"])
    acc = _build(case)
    driver = AcceleratorDriver(acc, AmaranthBackend(acc))
    M, K, N = case["M"], case["K"], case["N"]
    acts, codes = _operands(rng, acc, M, K, N)
    result = driver.gemm(acts, codes)
    expected = _golden_acc(acc, acts, codes)
    np.testing.assert_array_equal(result.acc, expected.acc)
    np.testing.assert_array_equal(result.overflow, expected.overflow)
    assert result.cycles == driver.cycles(M, K, N)
    assert result.tiles == -(-M // acc.k_max) * -(-N // acc.cols)


@settings(max_examples=8)
@given(ws_cases, st.sampled_from(["uint8", "int8", "int4"]), st.booleans(),
       st.integers(0, 3))
def test_ws_requantized_gemm_bit_exact(case, out_fmt, relu, requant_pipeline):
    rng = np.random.default_rng(case["seed"])
    acc = _build(case, out_fmt=out_fmt, multiplier_bits=12, max_shift=19,
                 requant_pipeline=requant_pipeline)
    driver = AcceleratorDriver(acc, AmaranthBackend(acc))
    M, K, N = case["M"], case["K"], case["N"]
    acts, codes = _operands(rng, acc, M, K, N)
    params = _requant_params(rng, acc, N, relu)
    result = driver.gemm(acts, codes, params)
    expected = _golden_requant(acc, _golden_acc(acc, acts, codes).acc, params)
    np.testing.assert_array_equal(result.acc, expected)
    assert result.overflow is None
    assert result.cycles == driver.cycles(M, K, N, requant=True)


def test_ws_mid_size_gemm_four_by_four():
    """4 x 4, K over four folds, M over three row tiles, requantized and raw."""
    rng = np.random.default_rng(5)
    acc = Accelerator(4, 4, "pot4", "uint8", dataflow="ws", k_max=8, k_total_max=16,
                      dout_lanes=2)
    driver = AcceleratorDriver(acc, AmaranthBackend(acc))
    M, K, N = 19, 14, 9
    acts, codes = _operands(rng, acc, M, K, N)
    raw = driver.gemm(acts, codes)
    expected = _golden_acc(acc, acts, codes)
    np.testing.assert_array_equal(raw.acc, expected.acc)
    assert raw.cycles == gemm_cycles(acc.metadata(), M, K, N).total
    params = _requant_params(rng, acc, N, True)
    out = driver.gemm(acts, codes, params)
    np.testing.assert_array_equal(out.acc, _golden_requant(acc, expected.acc, params))
    assert out.cycles == driver.cycles(M, K, N, requant=True)


@pytest.mark.parametrize("overflow", ["wrap", "saturate"])
def test_ws_overflow_across_folds_matches_golden(overflow):
    """A 16-bit accumulator overflows on uint8 x pot4 sums over three K folds; the
    saturated value and the sticky flag must follow the golden sequential order."""
    rng = np.random.default_rng(7)
    acc = Accelerator(2, 2, "pot4", "uint8", dataflow="ws", k_max=3, k_total_max=6,
                      acc_bits=16, overflow=overflow)
    driver = AcceleratorDriver(acc, AmaranthBackend(acc))
    acts, codes = _operands(rng, acc, 4, 6, 3)
    acts[0] = 255
    fmt = acc.array.column_formats[0]
    codes[:, 0] = fmt.encode([fmt.max_level])[0]
    codes[:3, 2] = fmt.encode([fmt.min_level])[0]     # down past -2^15, then back up
    codes[3:, 2] = fmt.encode([fmt.max_level])[0]
    with pytest.raises(ValueError, match=r"column 0 reaches partial sums in \[0, 97920\]"):
        driver.gemm(acts, codes)
    result = driver.gemm(acts, codes, check_bound=False)
    expected = _golden_acc(acc, acts, codes)
    assert expected.overflow.any() and not expected.overflow.all()
    np.testing.assert_array_equal(result.acc, expected.acc)
    np.testing.assert_array_equal(result.overflow, expected.overflow)
    # Summed in another order, column 2 would not saturate the same way.
    if overflow == "saturate":
        assert expected.acc[0, 2] != int(np.sum(acts[0] * fmt.decode(codes[:, 2])))


def test_ws_back_pressure_loses_nothing():
    rng = np.random.default_rng(3)
    acc = Accelerator(3, 2, "pot4", "uint8", dataflow="ws", k_max=4, k_total_max=8,
                      multiplier_bits=12, max_shift=19, out_rows=3)
    M, K, N = 9, 7, 5
    acts, codes = _operands(rng, acc, M, K, N)
    driver = AcceleratorDriver(acc, AmaranthBackend(acc, ready_probability=0.3, seed=11))
    result = driver.gemm(acts, codes)
    np.testing.assert_array_equal(result.acc, _golden_acc(acc, acts, codes).acc)
    assert result.cycles > driver.cycles(M, K, N)


def test_ws_plan_and_metadata():
    acc = Accelerator(2, 3, "pot4", "uint8", dataflow="ws", k_max=4, k_total_max=8)
    meta = acc.metadata()
    assert meta["dataflow"] == "ws"
    assert meta["timing"]["step_latency"] == acc.array.step_latency == 2 + 3 + 1
    assert meta["commands"]["arg_fields"]["accumulate"] == list(ARG_FIELDS["accumulate"])
    plan = plan_gemm(meta, 5, 5, 4)
    computes = [c for c in plan if c.name == "COMPUTE"]
    # Row tiles of k_max = 4 rows (4 + 1), 2 column tiles, 3 folds of rows = 2.
    assert [c.tile for c in computes] == [(t, n, f) for t in range(2) for n in range(2)
                                          for f in range(3)]
    assert [c.fields["accumulate"] for c in computes[:3]] == [0, 1, 1]
    assert [c.fields["last"] for c in computes[:3]] == [0, 0, 1]
    assert [c.fields["k"] for c in plan if c.name == "DRAIN"] == [4, 4, 1, 1]
    assert all(c.fields["k"] == 2 for c in plan if c.name == "LOAD_WEIGHT")
    # The fast model metadata gives the same cycles as the full one.
    fast = model_metadata(2, 3, "pot4", "uint8", dataflow="ws", k_max=4, k_total_max=8)
    assert gemm_cycles(fast, 13, 8, 7).total == gemm_cycles(meta, 13, 8, 7).total


def _word(name, **fields):
    arg = 0
    for key, value in fields.items():
        arg |= value << ARG_FIELDS[key][0]
    return (arg << 4) | OPCODES[name]


@pytest.mark.parametrize("dataflow, word", [
    ("ws", _word("DRAIN", k=1)),                           # no result rows outstanding
    ("ws", _word("DRAIN", k=0)),                           # k = 0
    ("ws", _word("COMPUTE", k=5)),                         # k > k_max
    ("ws", _word("SET_PSUM", psum_tile=2)),                # region beyond psum_tiles
    ("os", _word("SET_PSUM", psum_tile=0)),                # no partial-sum buffer
])
def test_ws_hardware_flags_refused_commands(dataflow, word):
    acc = Accelerator(2, 2, "pot4", "uint8", dataflow=dataflow, k_max=4,
                      psum_tiles=2 if dataflow == "ws" else 1)
    result = AmaranthBackend(acc, max_cycles=200).run(Program([word], [], 0))
    assert result.error and result.words == [] and result.cycles == 0


def test_ws_partial_sum_regions_interleave_column_tiles():
    """psum_tiles = 3: the folds of three column tiles interleave (SET_PSUM between
    them), each activation load serving all three; exact, and fewer din words."""
    rng = np.random.default_rng(12)
    M, K, N = 6, 9, 8
    loads = {}
    for tiles in (1, 3):
        acc = Accelerator(2, 2, "pot4", "uint8", dataflow="ws", k_max=4, k_total_max=16,
                          psum_tiles=tiles, act_slots=2)
        driver = AcceleratorDriver(acc, AmaranthBackend(acc))
        acts, codes = _operands(rng, acc, M, K, N)
        result = driver.gemm(acts, codes)
        np.testing.assert_array_equal(result.acc, _golden_acc(acc, acts, codes).acc)
        assert result.cycles == driver.cycles(M, K, N)
        plan = plan_gemm(acc.metadata(), M, K, N)
        assert any(c.name == "SET_PSUM" for c in plan) == (tiles > 1)
        loads[tiles] = gemm_cycles(acc.metadata(), M, K, N).load
    assert loads[3] < loads[1]


def test_ws_refusals():
    with pytest.raises(ValueError, match=r"k_max=2: a weight-stationary weight slot "
                                         r"holds the 3 preload rows"):
        Accelerator(3, 2, "pot4", "uint8", dataflow="ws", k_max=2)
    with pytest.raises(ValueError, match=r"dataflow='is': allowed values are 'os'"):
        Accelerator(2, 2, "pot4", "uint8", dataflow="is")
    acc = Accelerator(2, 2, "pot4", "uint8", dataflow="ws", k_max=4)
    driver = AcceleratorDriver(acc, AmaranthBackend(acc))
    with pytest.raises(ValueError, match=r"DRAIN: k=5 must be 1\.\.4"):
        driver.command("DRAIN", k=5)
    with pytest.raises(ValueError, match="DRAIN: needs k"):
        driver.command("DRAIN")
    with pytest.raises(ValueError, match=r"SET_PSUM: psum_tile=1 must be 0\.\.0"):
        driver.command("SET_PSUM", psum_tile=1)
    os_driver = AcceleratorDriver(Accelerator(2, 2, "pot4", "uint8", k_max=4),
                                  AmaranthBackend(acc))
    with pytest.raises(ValueError, match="field 'accumulate' not allowed"):
        os_driver.command("COMPUTE", k=1, act_slot=0, weight_slot=0, accumulate=1)
    with pytest.raises(ValueError, match="only a weight-stationary accelerator"):
        os_driver.command("SET_PSUM", psum_tile=0)
    with pytest.raises(ValueError, match=r"psum_tiles=2: only the weight-stationary"):
        Accelerator(2, 2, "pot4", "uint8", psum_tiles=2)
    with pytest.raises(ValueError, match=r"psum_tiles=17: must be 1\.\.16"):
        Accelerator(2, 2, "pot4", "uint8", dataflow="ws", psum_tiles=17)


def test_ws_utilisation_from_the_model():
    """The figures quoted in docs/accelerator.md (pot4 x uint8 on 8 x 8, k_max = 256)."""
    meta = model_metadata(8, 8, "pot4", "uint8", dataflow="ws", k_max=256,
                          k_total_max=256, act_slots=4)
    b = gemm_cycles(meta, 256, 256, 256)
    assert b.compute == 256 * 32 * 32            # 32 column tiles x 32 folds x 256 steps
    # 32 folds cannot stay resident: activations are re-sent per column tile (din-bound).
    assert b.load == 32 * 32 * 256 * 2 + 32 * 32 * 8 and round(b.utilisation, 3) == 0.465
    # K = 128 (16 folds) with 16 activation slots and one dout word per row: resident.
    meta = model_metadata(8, 8, "pot4", "uint8", dataflow="ws", k_max=256,
                          k_total_max=256, act_slots=16, dout_lanes=8)
    assert round(gemm_cycles(meta, 256, 128, 256).utilisation, 3) == 0.896
    assert round(gemm_cycles(meta, 512, 128, 512).utilisation, 3) == 0.927
    # Four partial-sum regions: 256^3 with activations re-sent per 4 column tiles only.
    meta = model_metadata(8, 8, "pot4", "uint8", dataflow="ws", k_max=256,
                          k_total_max=256, act_slots=4, dout_lanes=8, psum_tiles=4)
    b = gemm_cycles(meta, 256, 256, 256)
    assert round(b.utilisation, 3) == 0.948 and b.load == 139264
