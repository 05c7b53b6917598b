"""The explorer's cost model: analytic properties, the schedule model and the simulator."""

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from potgen.explore.cost import (
    ENERGY_WEIGHTS,
    ArrayConfig,
    energy_proxy,
    gemm_cost,
    operands_per_word,
)
from potgen.explore.hardware import (
    DEFAULT_SIM_CASES,
    bram_blocks,
    config_from_accelerator,
    design_resources,
    model_vs_sim,
    schedule_cycles,
)


def _ceil(a, b):
    return -(-a // b)


# --- packed words and buffers ---

@pytest.mark.parametrize("bits, expected", [(1, 32), (3, 10), (4, 8), (5, 6), (8, 4),
                                            (11, 2), (16, 2), (17, 1), (32, 1)])
def test_operands_per_word_never_split(bits, expected):
    assert operands_per_word(32, bits) == expected
    # No operand crosses a word boundary, and one more would not fit.
    assert expected * bits <= 32 < (expected + 1) * bits


def test_operand_wider_than_word_refused():
    with pytest.raises(ValueError, match="span two words"):
        operands_per_word(32, 33)


@pytest.mark.parametrize("depth, width, expected", [(16, 64, 0), (64, 36, 1), (512, 36, 1),
                                                    (513, 36, 2), (1024, 18, 1),
                                                    (64, 128, 4), (256, 8, 1)])
def test_bram_blocks(depth, width, expected):
    assert bram_blocks(depth, width) == expected


# --- the sequential (command after command) timing: an independent reference ---

def _sequential_reference(R, C, k_max, M, K, N, requant, L=0, rq_latency=1):
    """v1 accelerator: every command after the previous one (docs of that version)."""
    total = 0
    for _ in range(_ceil(M, R)):
        total += K * R                                      # LOAD_ACT
        for _ in range(_ceil(N, C)):
            total += K * C                                  # LOAD_WEIGHT
            total += 3 * C if requant else 0                # SET_REQUANT
            total += K + (L + R + C + 1) + R + 1            # COMPUTE
            total += R * (rq_latency + 1 + C)               # DRAIN
    return total


@given(R=st.integers(1, 8), C=st.integers(1, 8), M=st.integers(1, 40),
       K=st.integers(1, 32), N=st.integers(1, 40), requant=st.booleans())
def test_sequential_timing_matches_reference(R, C, M, K, N, requant):
    config = ArrayConfig(R, C, "os", k_max=32, timing="sequential")
    cost = gemm_cost(config, M, K, N, weight_bits=4, act_bits=8, requant=requant)
    assert cost.cycles == _sequential_reference(R, C, 32, M, K, N, requant)
    assert cost.folds == _ceil(M, R) * _ceil(N, C)
    assert cost.macs == M * K * N
    assert 0 < cost.utilization <= 1


@given(R=st.integers(1, 16), C=st.integers(1, 16), M=st.integers(1, 200),
       K=st.integers(1, 200), N=st.integers(1, 200), flow=st.sampled_from(["os", "ws"]),
       timing=st.sampled_from(["sequential", "overlapped"]), wbits=st.integers(2, 8))
def test_costs_are_consistent(R, C, M, K, N, flow, timing, wbits):
    config = ArrayConfig(R, C, flow, k_max=64, timing=timing, packed=timing == "overlapped")
    cost = gemm_cost(config, M, K, N, weight_bits=wbits, act_bits=8)
    # SCALE-Sim folds: OS tiles M x N, WS tiles K x N.
    sr = M if flow == "os" else K
    assert cost.folds == _ceil(sr, R) * _ceil(N, C)
    # The array cannot beat its peak, and every weight enters at least once.
    assert cost.cycles * R * C >= M * K * N
    assert cost.utilization <= 1
    per_word = 32 // wbits if config.packed else 1
    assert cost.din_words * per_word >= K * N
    assert cost.offchip_bytes == _ceil((cost.din_words + cost.dout_words) * 32, 8)


def test_packing_narrow_weights_saves_words():
    config = ArrayConfig(8, 8, "os", k_max=64, timing="overlapped", packed=True)
    words = {b: gemm_cost(config, 64, 64, 64, weight_bits=b, act_bits=8).din_words
             for b in (2, 4, 8, 16)}
    assert words[2] <= words[4] < words[8] < words[16]


def test_buffer_too_small_stalls():
    big = ArrayConfig(4, 4, "os", k_max=256, timing="overlapped", packed=True)
    small = ArrayConfig(4, 4, "os", k_max=16, timing="overlapped", packed=True)
    a = gemm_cost(big, 32, 256, 32, weight_bits=4, act_bits=8)
    b = gemm_cost(small, 32, 256, 32, weight_bits=4, act_bits=8)
    assert (a.chunks, b.chunks) == (1, 16)
    assert b.cycles > a.cycles


def test_config_errors_name_the_parameter():
    with pytest.raises(ValueError, match="rows=0"):
        ArrayConfig(0, 4)
    with pytest.raises(ValueError, match="dataflow='is'"):
        ArrayConfig(4, 4, "is")
    with pytest.raises(ValueError, match="timing='fast'"):
        ArrayConfig(4, 4, timing="fast")
    with pytest.raises(ValueError, match="M=0"):
        gemm_cost(ArrayConfig(4, 4), 0, 4, 4, weight_bits=4, act_bits=8)
    with pytest.raises(ValueError, match="outputs_per_word=4"):
        gemm_cost(ArrayConfig(4, 4, outputs_per_word=4), 4, 4, 4, weight_bits=4,
                  act_bits=8, requant=False, acc_bits=20)


def test_energy_proxy_weights_the_events():
    cost = gemm_cost(ArrayConfig(2, 2), 4, 4, 4, weight_bits=4, act_bits=8)
    pe = {"lut4": 100, "ff": 40, "mult18": 1}
    e = energy_proxy(cost, pe, 4)
    w = ENERGY_WEIGHTS
    expected = (cost.macs * (100 * w["lut4_active"] + 40 * w["ff_active"]
                             + w["mult18_active"])
                + (cost.cycles * 4 - cost.macs) * 40 * w["ff_idle"]
                + cost.onchip_bytes * 8 * w["buffer_bit"]
                + cost.offchip_bytes * 8 * w["offchip_bit"])
    assert e == pytest.approx(expected)


# --- against the accelerator ---

def _model_metadata():
    return pytest.importorskip("potgen.runtime.cycles").model_metadata


def test_analytic_model_tracks_the_schedule_model():
    """The analytic overlapped model against the accelerator's exact schedule model on
    mid-size shapes (the simulator agrees with the schedule model exactly)."""
    model_metadata = _model_metadata()
    errors = []
    for (R, C), w, k_max, (M, K, N), rq in itertools.product(
            [(4, 4), (8, 8), (8, 4)], ["pot4", "int8"], [32, 64],
            [(32, 64, 32), (64, 64, 64), (48, 100, 40), (128, 32, 16)], [False, True]):
        meta = model_metadata(R, C, w, "uint8", k_max=k_max, k_total_max=max(K, k_max))
        config = config_from_accelerator(dict(meta, commands={"data_in_bits": 32}))
        exact = schedule_cycles(config, M, K, N, w, "uint8", rq)
        bits = 4 if w == "pot4" else 8
        model = gemm_cost(config, M, K, N, weight_bits=bits, act_bits=8, requant=rq).cycles
        errors.append(abs(model - exact) / exact)
    assert sum(errors) / len(errors) <= 0.06
    assert max(errors) <= 0.20


def test_model_vs_simulator():
    """Simulated accelerator cycles against the explorer's figures (goal <= 5%)."""
    cases = [c for c in DEFAULT_SIM_CASES if c[5] * c[6] * c[7] <= 2000][:3]
    result = model_vs_sim(cases, seed=1)
    assert len(result["cases"]) == len(cases)
    for case in result["cases"]:
        assert case["sim_cycles"] > 0
    assert result["max_relative_cycle_error"] <= 0.05
    assert result["analytic_max_relative_cycle_error"] <= 0.25


def test_design_resources_fit_and_grow():
    small = design_resources(4, 4, ["pot4"], "uint8", k_max=64)
    big = design_resources(16, 16, ["pot4"], "uint8", k_max=64)
    assert small["fits"] and big["fits"]
    # Sixteen times the PEs (fixed controller and buffers aside).
    assert big["resources"]["lut4"] > 4 * small["resources"]["lut4"]
    assert big["resources"]["ff"] > 4 * small["resources"]["ff"]
    # Shift-add PEs need no multiplier; an int8 array eats one per PE.
    ints = design_resources(16, 16, ["int8"], "uint8", k_max=64)
    assert ints["resources"]["mult18"] >= 256 and not ints["fits"]
    assert any("MULT18X18D" in line for line in ints["over"])
    # A second format costs its product unit in every PE.
    both = design_resources(4, 4, ["pot4", "apot4"], "uint8", k_max=64)
    assert both["resources"]["lut4"] > max(
        small["resources"]["lut4"],
        design_resources(4, 4, ["apot4"], "uint8", k_max=64)["resources"]["lut4"])
