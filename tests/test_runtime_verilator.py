"""The Verilator back end (potgen.runtime.verilator_backend), bit-exact against golden.

GEMMs run through :class:`~potgen.runtime.AcceleratorDriver` on the accelerator's
emitted Verilog compiled by Verilator; raw accumulators, overflow flags and
requantized outputs are compared with ``golden.matmul`` / ``golden.requantize`` bit for
bit, and cycle counts with the Amaranth back end (identical without back-pressure).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from potgen import golden
from potgen.errors import ToolError
from potgen.formats import parse_format
from potgen.hw.accelerator import Accelerator
from potgen.hw.export import emit
from potgen.runtime import AcceleratorDriver, Program, RequantParams
from potgen.runtime.amaranth_backend import AmaranthBackend
from potgen.runtime.verilator_backend import VerilatorBackend

pytestmark = [pytest.mark.verilator,
              pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")]

K_MAX = 8


def _operands(rng, meta, M, K, N):
    act = parse_format(meta["act"])
    acts = rng.integers(act.min_level, act.max_level + 1, (M, K))
    # Half of the activations at an end of the range, to reach the extreme sums.
    ends = rng.random((M, K)) < 0.5
    acts[ends] = rng.choice([act.min_level, act.max_level], ends.sum())
    codes = rng.integers(0, 1 << parse_format(meta["weight"]).bits, (K, N))
    return acts, codes


def _golden(meta, acts, codes):
    spec = golden.AccSpec(meta["acc_bits"], meta["overflow"])
    return golden.matmul(acts, codes, parse_format(meta["weight"]), spec)


def _requant_params(rng, meta, N, relu):
    out = parse_format(meta["out"])
    return RequantParams(multiplier=rng.integers(0, 1 << 12, N),
                         shift=rng.integers(0, 20, N),
                         zero_point=rng.integers(out.min_level, out.max_level + 1, N),
                         relu=relu)


def _golden_requant(meta, raw, params):
    out = parse_format(meta["out"])
    return golden.requantize(raw, params.multiplier, params.shift, params.zero_point,
                             lo=out.min_level, hi=out.max_level, relu=params.relu)


@pytest.fixture(scope="module")
def small():
    """A 3 x 4 apot4 x uint8 accelerator, emitted once, and its Verilator back end."""
    acc = Accelerator(3, 4, "apot4", "uint8", k_max=K_MAX, multiplier_bits=12,
                      max_shift=19)
    verilog, meta = emit(acc, "small_acc")
    backend = VerilatorBackend((verilog, meta))
    yield acc, verilog, meta, backend
    backend.close()


@pytest.fixture(scope="module")
def big():
    """An 8 x 8 pot4 x uint8 accelerator."""
    verilog, meta = emit(Accelerator(8, 8, "pot4", "uint8", k_max=16), "acc8x8")
    with VerilatorBackend((verilog, meta)) as backend:
        yield verilog, meta, backend


# --- bit-exact GEMMs --------------------------------------------------------------------

def test_raw_gemm_bit_exact_and_cycles_equal_amaranth(small):
    acc, _, meta, backend = small
    rng = np.random.default_rng(1)
    M, K, N = 7, 5, 9                       # divides neither 3 rows nor 4 columns
    acts, codes = _operands(rng, meta, M, K, N)
    result = AcceleratorDriver(meta, backend).gemm(acts, codes)
    expected = _golden(meta, acts, codes)
    np.testing.assert_array_equal(result.acc, expected.acc)
    np.testing.assert_array_equal(result.overflow, expected.overflow)
    # The same program on Amaranth's simulation of the same component: same cycles.
    reference = AcceleratorDriver(acc, AmaranthBackend(acc)).gemm(acts, codes)
    assert result.cycles == reference.cycles
    assert result.tiles == reference.tiles


@pytest.mark.parametrize("relu", [False, True])
def test_requantized_gemm_bit_exact(small, relu):
    _, _, meta, backend = small
    rng = np.random.default_rng(2 + relu)
    M, K, N = 4, K_MAX, 6
    acts, codes = _operands(rng, meta, M, K, N)
    params = _requant_params(rng, meta, N, relu)
    result = AcceleratorDriver(meta, backend).gemm(acts, codes, params)
    expected = _golden_requant(meta, _golden(meta, acts, codes).acc, params)
    np.testing.assert_array_equal(result.acc, expected)


@pytest.mark.parametrize("requant", [False, True])
def test_random_back_pressure_loses_nothing(small, requant):
    _, verilog, meta, plain = small
    rng = np.random.default_rng(4)
    M, K, N = 5, 4, 7
    acts, codes = _operands(rng, meta, M, K, N)
    params = _requant_params(rng, meta, N, True) if requant else None
    raw = _golden(meta, acts, codes)
    expected = _golden_requant(meta, raw.acc, params) if requant else raw.acc
    stall_free = AcceleratorDriver(meta, plain).gemm(acts, codes, params).cycles
    cycles = []
    for seed in (11, 11, 12):
        backend = VerilatorBackend((verilog, meta), ready_probability=0.3, seed=seed)
        assert backend.build.cached            # same Verilog: the same executable
        result = AcceleratorDriver(meta, backend).gemm(acts, codes, params)
        backend.close()
        np.testing.assert_array_equal(result.acc, expected)
        cycles.append(result.cycles)
    # Stalled drain cycles are busy cycles; the pattern is a function of the seed.
    assert min(cycles) > stall_free
    assert cycles[0] == cycles[1] != cycles[2]


def test_persistent_process_serves_many_programs(small):
    _, verilog, meta, backend = small
    rng = np.random.default_rng(5)
    driver = AcceleratorDriver(meta, backend)
    one_shot = AcceleratorDriver(meta, VerilatorBackend((verilog, meta), persistent=False))
    for M, K, N in ((1, 1, 1), (6, 8, 8), (2, 3, 5), (9, 2, 3)):
        acts, codes = _operands(rng, meta, M, K, N)
        expected = _golden(meta, acts, codes).acc
        first = driver.gemm(acts, codes)
        np.testing.assert_array_equal(first.acc, expected)
        second = one_shot.gemm(acts, codes)
        np.testing.assert_array_equal(second.acc, expected)
        # Reset before every program: the cycle counter restarts.
        assert first.cycles == second.cycles
    # A harness that died is restarted by the next run.
    backend._process.kill()
    backend._process.wait()
    acts, codes = _operands(rng, meta, 3, 3, 3)
    np.testing.assert_array_equal(driver.gemm(acts, codes).acc,
                                  _golden(meta, acts, codes).acc)


def test_narrow_accumulator_wraps_and_flags_like_golden():
    rng = np.random.default_rng(7)
    acc = Accelerator(2, 2, "pot4", "uint8", k_max=K_MAX, acc_bits=16, overflow="wrap")
    with VerilatorBackend(acc) as backend:
        meta = backend.metadata
        acts, codes = _operands(rng, meta, 3, K_MAX, 3)
        acts[0] = 255
        fmt = parse_format(meta["weight"])
        codes[:, 0] = fmt.encode([fmt.max_level])[0]
        codes[:, 2] = fmt.encode([fmt.min_level])[0]
        # Weights beyond the accelerator's bound, on purpose: the flags must show it.
        result = AcceleratorDriver(meta, backend).gemm(acts, codes, check_bound=False)
    expected = _golden(meta, acts, codes)
    assert expected.overflow.any() and not expected.overflow.all()
    np.testing.assert_array_equal(result.acc, expected.acc)
    np.testing.assert_array_equal(result.overflow, expected.overflow)


def test_dout_wider_than_64_bits():
    """Four result lanes per dout word: more than 64 bits (a VlWide port in C++)."""
    rng = np.random.default_rng(8)
    acc = Accelerator(3, 4, "pot4", "uint8", k_max=K_MAX, dout_lanes=4)
    with VerilatorBackend(acc) as backend:
        assert backend.dout_bits > 64
        meta = backend.metadata
        acts, codes = _operands(rng, meta, 5, K_MAX, 6)
        driver = AcceleratorDriver(meta, backend)
        result = driver.gemm(acts, codes)
        program = driver.program(acts, codes)
        words = backend.run(program).words
    expected = _golden(meta, acts, codes)
    np.testing.assert_array_equal(result.acc, expected.acc)
    assert max(words) >> 64                     # the high C++ word carries results
    # Word for word what Amaranth's simulation of the same component gives.
    assert AmaranthBackend(acc).run(program).words == words


@settings(max_examples=6)
@given(M=st.integers(1, 20), K=st.integers(1, 16), N=st.integers(1, 20),
       ready=st.sampled_from([1.0, 0.5]), seed=st.integers(0, 2**32 - 1))
def test_gemm_shapes_on_an_8x8_array(big, M, K, N, ready, seed):
    verilog, meta, backend = big
    rng = np.random.default_rng(seed)
    acts, codes = _operands(rng, meta, M, K, N)
    if ready < 1:
        with VerilatorBackend((verilog, meta), ready_probability=ready,
                              seed=seed) as stalled:
            result = AcceleratorDriver(meta, stalled).gemm(acts, codes)
    else:
        result = AcceleratorDriver(meta, backend).gemm(acts, codes)
    expected = _golden(meta, acts, codes)
    np.testing.assert_array_equal(result.acc, expected.acc)
    np.testing.assert_array_equal(result.overflow, expected.overflow)


# --- errors -----------------------------------------------------------------------------

def test_hung_program_raises_with_counts(small):
    _, verilog, meta, _ = small
    backend = VerilatorBackend((verilog, meta), max_cycles=500)
    with pytest.raises(RuntimeError, match=r"not finished after 500 cycles \(1/1 commands, "
                                           r"0/0 data words, 0/4 results\)"):
        backend.run(Program(commands=[0], data=[], outputs=4))     # NOP yields nothing
    # The process survived and serves the next program.
    assert backend.run(Program(commands=[0])).words == []
    backend.close()


def test_unexpected_results_raise(small):
    _, _, meta, backend = small
    driver = AcceleratorDriver(meta, backend)
    program = driver.program(np.ones((1, 2), np.int64), np.ones((2, 1), np.int64))
    program.outputs -= 1
    with pytest.raises(RuntimeError, match=f"more than the {program.outputs} expected"):
        backend.run(program)


def test_refused_command_sets_the_error_flag(small):
    _, _, meta, backend = small
    bad_opcode = next(op for op in range(16) if op not in meta["commands"]["opcodes"].values())
    result = backend.run(Program(commands=[bad_opcode]))
    assert result.error and result.words == []
    assert not backend.run(Program(commands=[0])).error      # reset clears it


def test_bad_arguments(small):
    _, verilog, meta, backend = small
    for kwargs, message in (({"ready_probability": 0}, "ready_probability=0"),
                            ({"ready_probability": 1.5}, "ready_probability=1.5"),
                            ({"seed": -1}, "seed=-1"),
                            ({"max_cycles": 0}, "max_cycles=0"),
                            ({"top": "other"}, "top='other'")):
        with pytest.raises(ValueError, match=message):
            VerilatorBackend((verilog, meta), **kwargs)
    ports = [p for p in meta["ports"] if p["name"] != "busy"]
    with pytest.raises(ValueError, match="lacks port 'busy'"):
        VerilatorBackend((verilog, {**meta, "ports": ports}))
    with pytest.raises(TypeError, match="design"):
        VerilatorBackend(verilog)
    with pytest.raises(TypeError, match="program"):
        backend.run([1, 2])
    with pytest.raises(ValueError, match="0..2\\^32-1"):
        backend.run(Program(commands=[1 << 32]))


def test_build_failure_is_a_tool_error(small):
    _, verilog, meta, _ = small
    broken = verilog.replace("endmodule", "endmodule garbage", 1)
    with pytest.raises(ToolError, match="verilator failed: verilating small_acc"):
        VerilatorBackend((broken, meta))
