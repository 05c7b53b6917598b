"""Accelerator top through the host driver and the Amaranth back end, bit-exact against golden.

GEMMs whose shapes do not divide the array are tiled and padded by
:class:`~potgen.runtime.AcceleratorDriver`, run in Amaranth simulation and compared
with ``golden.matmul`` (raw accumulators and overflow flags) and ``golden.requantize``
(requantized outputs), bit for bit. Random ``dout.ready`` exercises back-pressure; the
driver's cycle model must equal the hardware's ``cycles`` counter exactly.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from amaranth_sim import collect_unelaborated  # noqa: F401
from potgen import golden
from potgen.formats import parse_format
from potgen.hw.accelerator import OPCODES, Accelerator
from potgen.runtime import AcceleratorDriver, Program, RequantParams
from potgen.runtime.amaranth_backend import AmaranthBackend

pytestmark = pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")

K_MAX = 6
WEIGHTS = ("pot4", "apot4", "int8")
ACTS = ("uint8", "int4")


def _operands(rng, acc, M, K, N):
    act = acc.array.act_format
    acts = rng.integers(act.min_level, act.max_level + 1, (M, K))
    # Half of the activations at an end of the range, to reach the extreme sums.
    ends = rng.random((M, K)) < 0.5
    acts[ends] = rng.choice([act.min_level, act.max_level], ends.sum())
    codes = rng.integers(0, 1 << acc.array.column_formats[0].bits, (K, N))
    return acts, codes


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


gemm_cases = st.fixed_dictionaries({
    "rows": st.integers(2, 3), "cols": st.integers(2, 3),
    "weight": st.sampled_from(WEIGHTS), "act": st.sampled_from(ACTS),
    "M": st.integers(1, 7), "K": st.integers(1, K_MAX), "N": st.integers(1, 7),
    "seed": st.integers(0, 2**32 - 1),
})


@settings(max_examples=12)
@given(gemm_cases)
def test_raw_gemm_bit_exact(case):
    rng = np.random.default_rng(case["seed"])
    acc = Accelerator(case["rows"], case["cols"], case["weight"], case["act"], k_max=K_MAX)
    driver = AcceleratorDriver(acc, AmaranthBackend(acc))
    acts, codes = _operands(rng, acc, case["M"], case["K"], case["N"])
    result = driver.gemm(acts, codes)
    expected = _golden_acc(acc, acts, codes)
    np.testing.assert_array_equal(result.acc, expected.acc)
    np.testing.assert_array_equal(result.overflow, expected.overflow)
    assert result.cycles == driver.cycles(case["M"], case["K"], case["N"])
    assert result.tiles == -(-case["M"] // case["rows"]) * -(-case["N"] // case["cols"])


@settings(max_examples=10)
@given(gemm_cases, st.sampled_from(["uint8", "int8", "int4"]), st.booleans(),
       st.integers(0, 3), st.integers(0, 1))
def test_requantized_gemm_bit_exact(case, out_fmt, relu, requant_pipeline, pipeline):
    rng = np.random.default_rng(case["seed"])
    acc = Accelerator(case["rows"], case["cols"], case["weight"], case["act"], k_max=K_MAX,
                      out_fmt=out_fmt, multiplier_bits=12, max_shift=19,
                      requant_pipeline=requant_pipeline, pipeline=pipeline)
    driver = AcceleratorDriver(acc, AmaranthBackend(acc))
    acts, codes = _operands(rng, acc, case["M"], case["K"], case["N"])
    params = _requant_params(rng, acc, case["N"], relu)
    result = driver.gemm(acts, codes, params)
    expected = _golden_requant(acc, _golden_acc(acc, acts, codes).acc, params)
    np.testing.assert_array_equal(result.acc, expected)
    assert result.overflow is None
    assert result.cycles == driver.cycles(case["M"], case["K"], case["N"], requant=True)


@pytest.mark.parametrize("overflow", ["wrap", "saturate"])
def test_narrow_accumulator_overflow_flags(overflow):
    """A 16-bit accumulator overflows on uint8 x pot4 sums: values and flags as golden."""
    rng = np.random.default_rng(7)
    acc = Accelerator(2, 2, "pot4", "uint8", k_max=K_MAX, acc_bits=16, overflow=overflow)
    driver = AcceleratorDriver(acc, AmaranthBackend(acc))
    acts, codes = _operands(rng, acc, 3, K_MAX, 3)
    acts[0] = 255       # row 0 with the extreme weights of columns 0 and 2 overflows
    fmt = acc.array.column_formats[0]
    codes[:, 0] = fmt.encode([fmt.max_level])[0]
    codes[:, 2] = fmt.encode([fmt.min_level])[0]
    result = driver.gemm(acts, codes)
    expected = _golden_acc(acc, acts, codes)
    assert expected.overflow.any() and not expected.overflow.all()
    np.testing.assert_array_equal(result.acc, expected.acc)
    np.testing.assert_array_equal(result.overflow, expected.overflow)


@pytest.mark.parametrize("requant", [False, True])
def test_back_pressure_loses_nothing(requant):
    rng = np.random.default_rng(3)
    acc = Accelerator(3, 2, "apot4", "uint8", k_max=K_MAX, multiplier_bits=12,
                      max_shift=19)
    M, K, N = 5, 4, 5
    acts, codes = _operands(rng, acc, M, K, N)
    params = _requant_params(rng, acc, N, True) if requant else None
    driver = AcceleratorDriver(acc, AmaranthBackend(acc, ready_probability=0.3, seed=11))
    result = driver.gemm(acts, codes, params)
    raw = _golden_acc(acc, acts, codes)
    expected = _golden_requant(acc, raw.acc, params) if requant else raw.acc
    np.testing.assert_array_equal(result.acc, expected)
    # Stalled drain cycles are busy cycles: the run took longer than without stalls.
    assert result.cycles > driver.cycles(M, K, N, requant=requant)


def test_consecutive_gemms_share_one_accelerator_state():
    """A second program on the same design (fresh simulation) and K < rows tiles."""
    rng = np.random.default_rng(5)
    acc = Accelerator(3, 3, "int8", "int4", k_max=K_MAX)
    driver = AcceleratorDriver(acc, AmaranthBackend(acc))
    for M, K, N in ((4, 1, 4), (2, 2, 7)):
        acts, codes = _operands(rng, acc, M, K, N)
        np.testing.assert_array_equal(driver.gemm(acts, codes).acc,
                                      _golden_acc(acc, acts, codes).acc)


# --- bad input ----------------------------------------------------------------------

@pytest.fixture
def driver():
    acc = Accelerator(2, 2, "pot4", "uint8", k_max=4, multiplier_bits=8, max_shift=15)
    return AcceleratorDriver(acc, AmaranthBackend(acc))


def test_driver_refuses_bad_gemms(driver):
    ok_acts, ok_codes = np.zeros((3, 4), int), np.zeros((4, 3), int)
    with pytest.raises(ValueError, match=r"K=5 exceeds k_max=4"):
        driver.program(np.zeros((3, 5), int), np.zeros((5, 3), int))
    with pytest.raises(ValueError, match="disagree on K"):
        driver.program(ok_acts, np.zeros((3, 3), int))
    with pytest.raises(ValueError, match="2-D"):
        driver.program(np.zeros(4, int), ok_codes)
    with pytest.raises(TypeError, match="integers"):
        driver.program(ok_acts.astype(float), ok_codes)
    with pytest.raises(ValueError, match=r"acts: values -1\.\.0 outside .*uint8"):
        driver.program(ok_acts - (np.arange(4) == 0), ok_codes)
    with pytest.raises(ValueError, match=r"codes: values 0\.\.16 outside 0\.\.15"):
        driver.program(ok_acts, ok_codes + 16 * (np.arange(3) == 2))
    with pytest.raises(ValueError, match="every dimension"):
        driver.program(np.zeros((0, 4), int), ok_codes)


def test_driver_refuses_bad_requant_and_commands(driver):
    acts, codes = np.zeros((3, 4), int), np.zeros((4, 3), int)
    with pytest.raises(ValueError, match=r"requant\.multiplier: values .*256 outside 0\.\.255"):
        driver.program(acts, codes, RequantParams(256, 0))
    with pytest.raises(ValueError, match=r"requant\.shift: values 16\.\.16 outside 0\.\.15"):
        driver.program(acts, codes, RequantParams(1, 16))
    with pytest.raises(ValueError, match=r"requant\.zero_point: values -1\.\.-1"):
        driver.program(acts, codes, RequantParams(1, 0, -1))
    with pytest.raises(ValueError, match="2 values for N=3"):
        driver.program(acts, codes, RequantParams([1, 2], 0))
    with pytest.raises(TypeError, match="relu"):
        driver.program(acts, codes, RequantParams(1, 0, 0, relu=1))
    with pytest.raises(ValueError, match="unknown"):
        driver.command("STORE")
    with pytest.raises(ValueError, match=r"COMPUTE: K=0 must be 1\.\.4"):
        driver.command("COMPUTE", 0)
    with pytest.raises(ValueError, match="DRAIN_RAW: arg=1 must be 0"):
        driver.command("DRAIN_RAW", 1)
    with pytest.raises(TypeError, match="Backend"):
        AcceleratorDriver(Accelerator(2, 2, "pot4", "uint8"), backend=object())


def test_hardware_flags_refused_commands():
    acc = Accelerator(2, 2, "pot4", "uint8", k_max=4)
    backend = AmaranthBackend(acc, max_cycles=200)
    assert not backend.run(Program([OPCODES["NOP"]], [], 0)).error
    for word in (0xF, (0 << 4) | OPCODES["COMPUTE"], (5 << 4) | OPCODES["LOAD_ACT"]):
        result = backend.run(Program([word], [], 0))
        assert result.error and result.words == [] and result.cycles == 0


def test_accelerator_refuses_bad_parameters():
    with pytest.raises(ValueError, match="output-stationary dataflow only"):
        Accelerator(2, 2, "pot4", "uint8", dataflow="ws")
    with pytest.raises(ValueError, match="dataflow='xs'"):
        Accelerator(2, 2, "pot4", "uint8", dataflow="xs")
    with pytest.raises(ValueError, match=r"k_max=0: must be 1\.\."):
        Accelerator(2, 2, "pot4", "uint8", k_max=0)
    with pytest.raises(TypeError, match="k_max"):
        Accelerator(2, 2, "pot4", "uint8", k_max=2.0)
    with pytest.raises(ValueError, match="multiplier_bits=0"):
        Accelerator(2, 2, "pot4", "uint8", multiplier_bits=0)
    with pytest.raises(ValueError, match="out_fmt"):
        Accelerator(2, 2, "pot4", "uint8", out_fmt="pot4")


def test_metadata_documents_the_command_set():
    acc = Accelerator(3, 2, "pot4", "uint8", k_max=16)
    meta = json.loads(json.dumps(acc.metadata()))
    commands = meta["commands"]
    assert commands["opcodes"] == OPCODES
    assert commands["k_range"] == [1, 16]
    assert commands["data_out_bits"] == acc.data_out_bits == acc.acc_bits + 1
    for name in OPCODES:
        if name != "NOP":
            assert name in commands
    assert meta["buffers"]["act"] == {"depth": 16, "lanes": 3, "lane_bits": 8}
    assert meta["array"]["latency"] == acc.array.drain_latency
    ports = {p["name"]: p["width"] for p in meta["ports"]}
    assert ports == {"cmd__payload": 32, "cmd__valid": 1, "cmd__ready": 1,
                     "din__payload": 32, "din__valid": 1, "din__ready": 1,
                     "dout__payload": acc.data_out_bits, "dout__valid": 1,
                     "dout__ready": 1, "busy": 1, "error": 1, "cycles": 32}
    # A driver built from the JSON alone encodes the same words.
    from potgen.runtime.driver import Backend

    class Null(Backend):
        def run(self, program):
            raise AssertionError("not used")

    words = AcceleratorDriver(meta, Null()).program(np.ones((4, 3), int),
                                                    np.ones((3, 3), int))
    assert words.commands[0] == (3 << 4) | OPCODES["LOAD_ACT"]
    assert words.outputs == 2 * 2 * 3 * 2
    assert parse_format(meta["out"]).bits == 8


def test_verilog_has_the_three_buffer_memories():
    import re

    from potgen.hw.export import emit

    acc = Accelerator(2, 2, "pot4", "uint8", k_max=8)
    text, meta = emit(acc, "accelerator")
    # Each buffer is one Verilog memory array (block RAM for synthesis), sized as documented.
    memories = {name: (int(msb) + 1, abs(int(hi) - int(lo)) + 1) for msb, name, hi, lo in
                re.findall(r"reg \[(\d+):0\] (\w+_buffer) \[(\d+):(\d+)\]", text)}
    assert memories == {"act_buffer": (2 * 8, 8), "weight_buffer": (2 * 4, 8),
                        "out_buffer": (2 * acc.acc_bits + 2, 2)}
    assert meta["latency"] == acc.latency == acc.array.drain_latency + 2 + 1
    assert [p["name"] for p in meta["ports"]][:3] == ["clk", "rst", "cmd__payload"]
