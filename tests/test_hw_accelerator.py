"""Accelerator top through the host driver and the Amaranth back end, bit-exact against golden.

GEMMs whose shapes do not divide the array (and whose ``K`` spans several slots) are
planned by :class:`~potgen.runtime.AcceleratorDriver`, run in Amaranth simulation and
compared with ``golden.matmul`` (raw accumulators and overflow flags) and
``golden.requantize`` (requantized outputs), bit for bit. The cycle model
(:mod:`potgen.runtime.cycles`) must equal the hardware's ``cycles`` counter exactly;
random ``dout.ready`` exercises back-pressure; hand-written programs check the slot
hazards and every refusal.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from amaranth_sim import collect_unelaborated  # noqa: F401
from hypothesis import given, settings
from hypothesis import strategies as st

from potgen import golden
from potgen.formats import parse_format
from potgen.hw.accelerator import ARG_FIELDS, OPCODES, Accelerator
from potgen.hw.export import emit
from potgen.runtime import AcceleratorDriver, Program, RequantParams
from potgen.runtime.amaranth_backend import AmaranthBackend
from potgen.runtime.cycles import gemm_cycles, model_metadata

pytestmark = pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")

WEIGHTS = ("pot4", "apot4", "sp2-4", "int8")
ACTS = ("uint8", "int4")


def _acts(rng, fmt, M, K):
    acts = rng.integers(fmt.min_level, fmt.max_level + 1, (M, K))
    # Half of the activations at an end of the range, to reach the extreme sums.
    ends = rng.random((M, K)) < 0.5
    acts[ends] = rng.choice([fmt.min_level, fmt.max_level], ends.sum())
    return acts


def _operands(rng, acc, M, K, N):
    act = acc.array.act_format
    codes = rng.integers(0, 1 << acc.array.column_formats[0].bits, (K, N))
    return _acts(rng, act, M, K), codes


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
    "rows": st.integers(1, 3), "cols": st.integers(1, 3),
    "weight": st.sampled_from(WEIGHTS), "act": st.sampled_from(ACTS),
    "M": st.integers(1, 7), "K": st.integers(1, 11), "N": st.integers(1, 7),
    "k_max": st.integers(2, 5), "act_slots": st.integers(1, 4),
    "weight_slots": st.integers(1, 2), "dout_lanes": st.integers(1, 3),
    # (load_queue, compute_queue, out_rows in tiles): the defaults, the shallowest,
    # and a deep compute queue with a one-tile output FIFO.
    "queues": st.sampled_from([(2, 4, 2), (1, 1, 1), (3, 6, 1)]),
    "seed": st.integers(0, 2**32 - 1),
})


def _build(case, **extra):
    load_queue, compute_queue, out_tiles = case["queues"]
    return Accelerator(case["rows"], case["cols"], case["weight"], case["act"],
                       k_max=case["k_max"], k_total_max=12, act_slots=case["act_slots"],
                       weight_slots=case["weight_slots"], dout_lanes=case["dout_lanes"],
                       load_queue=load_queue, compute_queue=compute_queue,
                       out_rows=out_tiles * case["rows"], **extra)


@settings(max_examples=14)
@given(gemm_cases)
def test_raw_gemm_bit_exact_and_cycles_exact(case):
    rng = np.random.default_rng(case["seed"])
    acc = _build(case)
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
    # 12 + 5 + 8 bits: one din word per column; int4 with 24-bit m: two words.
    multiplier_bits = 24 if out_fmt == "int4" else 12
    acc = _build(case, out_fmt=out_fmt, multiplier_bits=multiplier_bits, max_shift=19,
                 requant_pipeline=requant_pipeline, pipeline=pipeline)
    assert acc.requant_words_per_column == (1 if multiplier_bits == 12 else 2)
    driver = AcceleratorDriver(acc, AmaranthBackend(acc))
    acts, codes = _operands(rng, acc, case["M"], case["K"], case["N"])
    params = _requant_params(rng, acc, case["N"], relu)
    result = driver.gemm(acts, codes, params)
    expected = _golden_requant(acc, _golden_acc(acc, acts, codes).acc, params)
    np.testing.assert_array_equal(result.acc, expected)
    assert result.overflow is None
    assert result.cycles == driver.cycles(case["M"], case["K"], case["N"], requant=True)


def test_mid_size_gemm_overlaps_load_compute_and_drain():
    """Several row blocks, two K chunks, requantized: exact, and the cycles show overlap."""
    rng = np.random.default_rng(1)
    acc = Accelerator(4, 4, "pot4", "uint8", k_max=16, k_total_max=32, act_slots=4,
                      dout_lanes=2)
    driver = AcceleratorDriver(acc, AmaranthBackend(acc))
    M, K, N = 20, 24, 17
    acts, codes = _operands(rng, acc, M, K, N)
    result = driver.gemm(acts, codes)
    np.testing.assert_array_equal(result.acc, _golden_acc(acc, acts, codes).acc)
    model = gemm_cycles(acc.metadata(), M, K, N)
    assert result.cycles == model.total
    # Serialised, the loads alone (one word per cycle) plus the steps would take longer.
    assert model.total < model.load + model.compute
    params = _requant_params(rng, acc, N, False)
    out = driver.gemm(acts, codes, params)
    np.testing.assert_array_equal(
        out.acc, _golden_requant(acc, _golden_acc(acc, acts, codes).acc, params))
    assert out.cycles == driver.cycles(M, K, N, requant=True)


@pytest.mark.parametrize("overflow", ["wrap", "saturate"])
def test_narrow_accumulator_overflow_flags(overflow):
    """A 16-bit accumulator overflows on uint8 x pot4 sums (across K chunks too)."""
    rng = np.random.default_rng(7)
    acc = Accelerator(2, 2, "pot4", "uint8", k_max=3, k_total_max=6, acc_bits=16,
                      overflow=overflow)
    driver = AcceleratorDriver(acc, AmaranthBackend(acc))
    acts, codes = _operands(rng, acc, 3, 6, 3)
    acts[0] = 255       # row 0 with the extreme weights of columns 0 and 2 overflows
    fmt = acc.array.column_formats[0]
    codes[:, 0] = fmt.encode([fmt.max_level])[0]
    codes[:, 2] = fmt.encode([fmt.min_level])[0]
    with pytest.raises(ValueError, match=r"column 0 reaches partial sums in \[0, 97920\]"):
        driver.gemm(acts, codes)
    result = driver.gemm(acts, codes, check_bound=False)
    expected = _golden_acc(acc, acts, codes)
    assert expected.overflow.any() and not expected.overflow.all()
    np.testing.assert_array_equal(result.acc, expected.acc)
    np.testing.assert_array_equal(result.overflow, expected.overflow)


@pytest.mark.parametrize("requant", [False, True])
def test_back_pressure_loses_nothing(requant):
    rng = np.random.default_rng(3)
    acc = Accelerator(3, 2, "apot4", "uint8", k_max=4, k_total_max=8, multiplier_bits=12,
                      max_shift=19, dout_lanes=2)
    M, K, N = 7, 6, 5
    acts, codes = _operands(rng, acc, M, K, N)
    params = _requant_params(rng, acc, N, True) if requant else None
    driver = AcceleratorDriver(acc, AmaranthBackend(acc, ready_probability=0.3, seed=11))
    result = driver.gemm(acts, codes, params)
    raw = _golden_acc(acc, acts, codes)
    expected = _golden_requant(acc, raw.acc, params) if requant else raw.acc
    np.testing.assert_array_equal(result.acc, expected)
    # Stalled drain cycles are busy cycles: the run took longer than without stalls.
    assert result.cycles > driver.cycles(M, K, N, requant=requant)


def test_msq_array_maps_channel_formats_onto_columns():
    """int4 multiplier columns and sp2-4 shift-add columns; channels in any order."""
    rng = np.random.default_rng(9)
    acc = Accelerator(2, 3, ["int4", "sp2-4", "sp2-4"], "uint8", k_max=8,
                      multiplier_bits=12, max_shift=19)
    driver = AcceleratorDriver(acc, AmaranthBackend(acc))
    M, K = 3, 5
    channel_formats = ["sp2-4", "int4", "sp2-4", "sp2-4", "int4", "sp2-4", "sp2-4"]
    N = len(channel_formats)
    acts = _acts(rng, parse_format("uint8"), M, K)
    codes = rng.integers(0, 16, (K, N))
    expected = np.zeros((M, N), dtype=np.int64)
    for n, spec in enumerate(channel_formats):
        expected[:, n] = golden.matmul(acts, codes[:, n:n + 1], parse_format(spec)).acc[:, 0]
    result = driver.gemm(acts, codes, channel_formats=channel_formats)
    np.testing.assert_array_equal(result.acc, expected)
    assert not result.overflow.any()
    params = _requant_params(rng, acc, N, False)
    out = driver.gemm(acts, codes, params, channel_formats=channel_formats)
    np.testing.assert_array_equal(out.acc, _golden_requant(acc, expected, params))
    with pytest.raises(ValueError, match="give the format of each of the N output channels"):
        driver.program(acts, codes)
    with pytest.raises(ValueError, match="no pot4 column"):
        driver.program(acts, codes, channel_formats=["pot4"] * N)


# --- hand-written programs: hazards and refusals ---------------------------------------

def _word(name, **fields):
    arg = 0
    for key, value in fields.items():
        arg |= value << ARG_FIELDS[key][0]
    return (arg << 4) | OPCODES[name]


def test_slot_hazards_keep_the_sequential_meaning():
    """Reload the slot a queued COMPUTE reads, with no wait in the program: the load
    must wait for that COMPUTE, and the next COMPUTE must see the new data."""
    acc = Accelerator(2, 2, "int8", "int8", k_max=4, act_slots=1, weight_slots=1)
    backend = AmaranthBackend(acc)
    rng = np.random.default_rng(2)
    tiles = [(rng.integers(-128, 128, (2, 4)), rng.integers(0, 256, (4, 2)))
             for _ in range(3)]
    prog = Program()
    for a, w in tiles:
        prog.commands += [_word("LOAD_ACT", k=4, act_slot=0),
                          _word("LOAD_WEIGHT", k=4, weight_slot=0),
                          _word("COMPUTE", k=4, last=1), _word("DRAIN")]
        prog.data += [int(x) for x in (a.T & 0xFF)[:, 0] | ((a.T & 0xFF)[:, 1] << 8)]
        prog.data += [int(x) for x in w[:, 0] | (w[:, 1] << 8)]
        prog.outputs += 4
    result = backend.run(prog)
    assert not result.error
    P = acc.acc_bits
    got = [w & ((1 << P) - 1) for w in result.words]
    got = [v - (1 << P) if v >> (P - 1) else v for v in got]
    for index, (a, w) in enumerate(tiles):
        expected = golden.matmul(a, w, parse_format("int8")).acc
        assert got[4 * index:4 * index + 4] == expected.ravel().tolist()


@pytest.mark.parametrize("word", [
    0xF,                                                   # unknown opcode
    _word("COMPUTE", k=0),                                 # K = 0
    _word("LOAD_ACT", k=5),                                # K > k_max
    _word("LOAD_ACT", k=1, act_slot=4),                    # slot beyond act_slots
    _word("LOAD_WEIGHT", k=1, weight_slot=2),              # slot beyond weight_slots
    _word("DRAIN"),                                        # nothing to drain
])
def test_hardware_flags_refused_commands(word):
    acc = Accelerator(2, 2, "pot4", "uint8", k_max=4)
    backend = AmaranthBackend(acc, max_cycles=200)
    result = backend.run(Program([word], [], 0))
    assert result.error and result.words == [] and result.cycles == 0


def test_hardware_accepts_nop():
    acc = Accelerator(2, 2, "pot4", "uint8", k_max=4)
    result = AmaranthBackend(acc, max_cycles=200).run(Program([OPCODES["NOP"]], [], 0))
    assert not result.error and result.cycles == 0


@pytest.fixture
def driver():
    acc = Accelerator(2, 2, "pot4", "uint8", k_max=4, k_total_max=8, multiplier_bits=8,
                      max_shift=15)
    return AcceleratorDriver(acc, AmaranthBackend(acc))


def test_driver_refuses_bad_gemms(driver):
    ok_acts, ok_codes = np.zeros((3, 4), int), np.zeros((4, 3), int)
    with pytest.raises(ValueError, match=r"K=9 exceeds k_total_max=8"):
        driver.program(np.zeros((3, 9), int), np.zeros((9, 3), int))
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
    with pytest.raises(ValueError, match="2 formats for N=3"):
        driver.program(ok_acts, ok_codes, channel_formats=["pot4"] * 2)


def test_driver_refuses_weights_beyond_a_weight_based_bound():
    """acc_bits from the exact bound of one layer: another layer's heavier column is
    refused, naming the column, its range and the accumulator range."""
    fmt = parse_format("pot4")
    built_for = np.array([[1, 2], [2, 1], [1, 1]])             # levels [K, N]
    acc = Accelerator(2, 2, fmt, "uint8", k_max=3, acc_bits="exact", weights=built_for)
    driver = AcceleratorDriver(acc, AmaranthBackend(acc))
    assert acc.metadata()["bound"]["method"] == "exact"
    driver.program(np.full((2, 3), 255), fmt.encode(built_for))
    heavy = fmt.encode(np.array([[1, 64, 1], [2, 64, 1], [1, 64, 1]]))
    lo, hi = -(1 << (acc.acc_bits - 1)), (1 << (acc.acc_bits - 1)) - 1
    with pytest.raises(ValueError, match=rf"column 1 reaches partial sums in \[0, 48960\] "
                                         rf"over uint8 activations, outside the "
                                         rf"{acc.acc_bits}-bit accumulator range "
                                         rf"\[{lo}, {hi}\] \(the exact bound"):
        driver.program(np.zeros((2, 3), int), heavy)


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
    with pytest.raises(ValueError, match=r"COMPUTE: k=0 must be 1\.\.4"):
        driver.command("COMPUTE", k=0, act_slot=0, weight_slot=0)
    with pytest.raises(ValueError, match=r"LOAD_ACT: act_slot=4 must be 0\.\.3"):
        driver.command("LOAD_ACT", k=1, act_slot=4)
    with pytest.raises(ValueError, match="DRAIN: field 'k' not allowed"):
        driver.command("DRAIN", k=1)
    with pytest.raises(TypeError, match="Backend"):
        AcceleratorDriver(Accelerator(2, 2, "pot4", "uint8"), backend=object())


@pytest.mark.parametrize("kwargs, error, message", [
    ({"dataflow": "ws", "k_max": 1}, ValueError, "k_max"),
    ({"dataflow": "xs"}, ValueError, "dataflow='xs'"),
    ({"k_max": 0}, ValueError, r"k_max=0: must be 1\.\."),
    ({"k_max": 2.0}, TypeError, "k_max"),
    ({"k_max": 8, "k_total_max": 4}, ValueError, r"k_total_max=4: must be 8\.\."),
    ({"act_slots": 17}, ValueError, r"act_slots=17: must be 1\.\.16"),
    ({"weight_slots": 0}, ValueError, r"weight_slots=0: must be 1\.\.4"),
    ({"dout_lanes": 0}, ValueError, "dout_lanes=0"),
    ({"out_rows": 1}, ValueError, r"out_rows=1: must be 2\.\.32"),
    ({"compute_queue": 0}, ValueError, "compute_queue=0"),
    ({"multiplier_bits": 0}, ValueError, "multiplier_bits=0"),
    ({"out_fmt": "pot4"}, ValueError, "out_fmt"),
])
def test_accelerator_refuses_bad_parameters(kwargs, error, message):
    with pytest.raises(error, match=message):
        Accelerator(2, 2, "pot4", "uint8", **kwargs)


def test_metadata_documents_the_command_set():
    acc = Accelerator(3, 2, "pot4", "uint8", k_max=16, dout_lanes=2)
    meta = json.loads(json.dumps(acc.metadata()))
    commands = meta["commands"]
    assert commands["opcodes"] == OPCODES
    assert commands["k_range"] == [1, 16]
    assert commands["arg_fields"] == {k: list(v) for k, v in ARG_FIELDS.items()}
    assert acc.lane_bits == acc.acc_bits + 1
    assert commands["data_out_bits"] == acc.data_out_bits == 2 * acc.lane_bits
    for name in OPCODES:
        if name != "NOP":
            assert name in commands
    assert meta["buffers"]["act"] == {"slots": 4, "depth": 16, "lanes": 3, "lane_bits": 8,
                                      "per_word": 4}
    assert meta["buffers"]["weight"]["per_word"] == 8
    assert meta["array"]["latency"] == acc.array.drain_latency
    ports = {p["name"]: p["width"] for p in meta["ports"]}
    assert ports == {"cmd__payload": 32, "cmd__valid": 1, "cmd__ready": 1,
                     "din__payload": 32, "din__valid": 1, "din__ready": 1,
                     "dout__payload": acc.data_out_bits, "dout__valid": 1,
                     "dout__ready": 1, "busy": 1, "error": 1, "cycles": 32}
    # The cycle model's cheap metadata agrees with the component's.
    cheap = model_metadata(3, 2, "pot4", "uint8", k_max=16, dout_lanes=2)
    assert {key: meta[key] for key in cheap} == cheap
    # A driver built from the JSON alone encodes the same words.
    from potgen.runtime.driver import Backend

    class Null(Backend):
        def run(self, program):
            raise AssertionError("not used")

    words = AcceleratorDriver(meta, Null()).program(np.ones((4, 3), int),
                                                    np.ones((3, 3), int))
    assert words.commands[0] == _word("LOAD_ACT", k=3, act_slot=0)
    # 3 rows of uint8 in one word per step; 2 pot4 codes in one word per step.
    assert words.data[:3] == [0x010101] * 3
    assert words.outputs == 2 * 2 * 3 * 1
    assert parse_format(meta["out"]).bits == 8


def test_verilog_has_the_three_buffer_memories():
    acc = Accelerator(2, 2, "pot4", "uint8", k_max=8, act_slots=3, dout_lanes=2)
    text, meta = emit(acc, "accelerator")
    # Each buffer is one Verilog memory array (block RAM for synthesis), sized as documented.
    memories = {name: (int(msb) + 1, abs(int(hi) - int(lo)) + 1) for msb, name, hi, lo in
                re.findall(r"reg \[(\d+):0\] (\w+_buffer) \[(\d+):(\d+)\]", text)}
    assert memories == {"act_buffer": (2 * 8, 3 * 8), "weight_buffer": (2 * 4, 2 * 8),
                        "out_buffer": (2 * acc.lane_bits, 4)}
    assert meta["latency"] == acc.latency == 1 + acc.array.drain_latency + 3
    assert [p["name"] for p in meta["ports"]][:3] == ["clk", "rst", "cmd__payload"]


def test_dout_follows_the_stream_rules_under_back_pressure():
    """A word offered on dout stays, unchanged, until it is taken (lib.stream rule)."""
    from amaranth.sim import Simulator

    rng = np.random.default_rng(12)
    acc = Accelerator(2, 3, "pot4", "uint8", k_max=4, dout_lanes=2)
    driver = AcceleratorDriver(acc, AmaranthBackend(acc))
    acts, codes = _operands(rng, acc, 4, 4, 5)
    prog = driver.program(acts, codes)
    words, held = [], []

    async def bench(ctx):
        ci = di = 0
        offered = None
        for _ in range(2000):
            ctx.set(acc.cmd.valid, ci < len(prog.commands))
            ctx.set(acc.cmd.payload, prog.commands[ci] if ci < len(prog.commands) else 0)
            ctx.set(acc.din.valid, di < len(prog.data))
            ctx.set(acc.din.payload, prog.data[di] if di < len(prog.data) else 0)
            ready = bool(rng.random() < 0.25)
            ctx.set(acc.dout.ready, ready)
            valid, payload = ctx.get(acc.dout.valid), ctx.get(acc.dout.payload)
            if offered is not None:
                held.append(valid and payload == offered)
            offered = payload if valid and not ready else None
            if valid and ready:
                words.append(payload)
            ci += bool(ctx.get(acc.cmd.valid) and ctx.get(acc.cmd.ready))
            di += bool(ctx.get(acc.din.valid) and ctx.get(acc.din.ready))
            await ctx.tick()

    sim = Simulator(acc)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    assert held and all(held)
    values, _ = driver.decode(words, 4, 5, False, prog.tiles)
    np.testing.assert_array_equal(values, _golden_acc(acc, acts, codes).acc)
