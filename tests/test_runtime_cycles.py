"""The GEMM planner and the cycle model, without simulation.

The plan is executed by a pure-Python interpreter of the command set (slot contents,
sums continued across chunks, tiles drained in order) and must give ``golden.matmul``;
the cycle model must reach the throughput goal on large GEMMs and agree with the
component's metadata. (The model's equality with the hardware's ``cycles`` counter is
checked in ``tests/test_hw_accelerator.py``.)
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from potgen import golden
from potgen.formats import parse_format
from potgen.runtime.cycles import accelerator_metadata, gemm_cycles, model_metadata, program_cycles
from potgen.runtime.driver import Command, column_map, plan_gemm

pytestmark = pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")


def _execute(meta, plan, acts, levels):
    """Run a plan on an ideal machine: what the command stream means, sequentially."""
    R, C, KM = meta["rows"], meta["cols"], meta["k_max"]
    M, K = acts.shape
    N = levels.shape[1]
    a = np.zeros((-(-M // R) * R, K), dtype=np.int64)
    a[:M] = acts
    w = np.zeros((K, -(-N // C) * C), dtype=np.int64)
    w[:, :N] = levels
    act_slots = [None] * meta["act_slots"]
    weight_slots = [None] * meta["weight_slots"]
    partial = np.zeros((R, C), dtype=np.int64)
    done, out = [], np.zeros((a.shape[0], w.shape[1]), dtype=np.int64)
    for cmd in plan:
        f = cmd.fields
        if cmd.name == "LOAD_ACT":
            t, c = cmd.tile
            act_slots[f["act_slot"]] = a[t * R:(t + 1) * R, c * KM:c * KM + f["k"]]
        elif cmd.name == "LOAD_WEIGHT":
            n, c = cmd.tile
            weight_slots[f["weight_slot"]] = w[c * KM:c * KM + f["k"], n * C:(n + 1) * C]
        elif cmd.name == "COMPUTE":
            x, y = act_slots[f["act_slot"]], weight_slots[f["weight_slot"]]
            assert x.shape[1] == f["k"] == y.shape[0]
            partial = partial + x @ y
            if f["last"]:
                done.append(partial)
                partial = np.zeros((R, C), dtype=np.int64)
        elif cmd.name == "DRAIN":
            t, n = cmd.tile
            out[t * R:(t + 1) * R, n * C:(n + 1) * C] = done.pop(0)
    assert not done and not partial.any()
    return out[:M, :N]


@settings(max_examples=60)
@given(rows=st.integers(1, 4), cols=st.integers(1, 4), M=st.integers(1, 20),
       K=st.integers(1, 30), N=st.integers(1, 20), k_max=st.integers(1, 8),
       act_slots=st.integers(1, 8), weight_slots=st.integers(1, 4),
       requant=st.booleans(), seed=st.integers(0, 2**32 - 1))
def test_plan_means_the_gemm(rows, cols, M, K, N, k_max, act_slots, weight_slots,
                             requant, seed):
    meta = model_metadata(rows, cols, "int8", "int8", k_max=k_max, k_total_max=30,
                          act_slots=act_slots, weight_slots=weight_slots)
    rng = np.random.default_rng(seed)
    acts = rng.integers(-128, 128, (M, K))
    levels = rng.integers(-128, 128, (K, N))
    plan = plan_gemm(meta, M, K, N, requant=requant)
    np.testing.assert_array_equal(_execute(meta, plan, acts, levels), acts @ levels)
    computes = [c for c in plan if c.name == "COMPUTE"]
    assert sum(c.fields["k"] for c in computes) == -(-M // rows) * -(-N // cols) * K
    assert all(c.fields["requant"] == (requant and c.fields["last"]) for c in computes)
    banks = [c for c in plan if c.name == "SET_REQUANT"]
    assert bool(banks) == requant
    # The model runs every plan and never counts fewer cycles than the steps.
    b = gemm_cycles(meta, M, K, N, requant=requant)
    assert b.compute == sum(c.fields["k"] for c in computes) <= b.total
    assert b.stall == b.total - b.compute
    assert b.utilisation == pytest.approx(M * K * N / (rows * cols * b.total))


@pytest.mark.parametrize("size, act_slots", [(8, 4), (16, 8)])
@pytest.mark.parametrize("requant", [False, True])
def test_large_gemms_reach_ninety_percent_of_peak(size, act_slots, requant):
    meta = model_metadata(size, size, "pot4", "uint8", k_max=256, act_slots=act_slots)
    b = gemm_cycles(meta, 256, 256, 256, requant=requant)
    assert b.utilisation >= 0.9, b
    # Packed words: pot4 codes 8 per word, uint8 activations 4 per word.
    assert meta["timing"]["weight_words_per_step"] == size // 8
    assert meta["timing"]["act_words_per_step"] == size // 4


def test_streamed_k_keeps_the_array_busy():
    """K = 512 on 256-deep slots: two chunks per tile, two row tiles per block (weight
    words are reused twice, as with one chunk and four slots), still above 90%."""
    meta = model_metadata(8, 8, "pot4", "uint8", k_max=256, k_total_max=512,
                          act_slots=8, weight_slots=4)
    assert gemm_cycles(meta, 128, 512, 256).utilisation >= 0.9


@pytest.mark.parametrize("weight, kwargs", [
    ("pot4", {}),
    ("int8", {"k_max": 32, "act_slots": 3, "dout_lanes": 3, "pipeline": 1,
              "requant_pipeline": 2, "out_fmt": "int4", "multiplier_bits": 30}),
    (["int4", "sp2-4", "sp2-4"], {"k_total_max": 200, "out_rows": 9}),
])
def test_model_metadata_matches_the_component(weight, kwargs):
    full = accelerator_metadata(3, 3, weight, "uint8", **kwargs)
    cheap = model_metadata(3, 3, weight, "uint8", **kwargs)
    assert {key: full[key] for key in cheap} == cheap


def test_plan_refuses_k_beyond_the_bound():
    meta = model_metadata(2, 2, "pot4", "uint8", k_max=4, k_total_max=8)
    with pytest.raises(ValueError, match=r"K=9 exceeds k_total_max=8"):
        plan_gemm(meta, 2, 9, 2)
    with pytest.raises(ValueError, match="every dimension must be >= 1"):
        gemm_cycles(meta, 0, 4, 2)
    with pytest.raises(TypeError, match="accelerator"):
        plan_gemm({"kind": "systolic_array"}, 2, 2, 2)


def test_model_refuses_programs_it_cannot_time():
    meta = model_metadata(2, 2, "pot4", "uint8", k_max=4)
    load = [Command("LOAD_ACT", {"k": 1, "act_slot": 0}, (0, 0), 1),
            Command("LOAD_WEIGHT", {"k": 1, "weight_slot": 0}, (0, 0), 1)]
    compute = Command("COMPUTE", {"k": 1, "act_slot": 0, "weight_slot": 0, "last": 1},
                      (0, 0, 0))
    with pytest.raises(ValueError, match="never drained"):
        program_cycles(meta, load + [compute])
    # Three tiles before any DRAIN: the third waits for room the model cannot place.
    with pytest.raises(ValueError, match="DRAIN that comes later"):
        program_cycles(meta, load + [compute] * 3 + [Command("DRAIN", {}, (0, 0), 2)] * 3)
    with pytest.raises(ValueError, match="unknown command"):
        program_cycles(meta, [Command("STORE", {}, ())])


def test_column_map_places_channels_on_their_format_columns():
    mapping = column_map(["sp2-4", "int4", "sp2-4", "sp2-4"], ["int4", "sp2-4", "sp2-4"])
    assert mapping.slots.tolist() == [1, 0, 2, -1, 3, -1]
    codes = np.arange(8).reshape(2, 4)                  # [K=2, N=4]
    slotted = mapping.codes(codes.T)
    assert slotted.tolist() == [[1, 0, 2, 0, 3, 0], [5, 4, 6, 0, 7, 0]]
    np.testing.assert_array_equal(mapping.unpack(slotted), codes)
    assert [str(f) for f in mapping.slot_formats] == ["int4", "sp2-4", "sp2-4"] * 2


def test_golden_reference_of_the_interpreter():
    """The interpreter itself against golden.matmul on PoT levels (guards the guard)."""
    meta = model_metadata(3, 2, "pot4", "uint8", k_max=3, k_total_max=7, act_slots=2)
    fmt = parse_format("pot4")
    rng = np.random.default_rng(4)
    acts, codes = rng.integers(0, 256, (5, 7)), rng.integers(0, 16, (7, 3))
    got = _execute(meta, plan_gemm(meta, 5, 7, 3), acts, fmt.decode(codes))
    np.testing.assert_array_equal(got, golden.matmul(acts, codes, fmt).acc)
