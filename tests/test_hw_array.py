"""Systolic arrays in Amaranth simulation: tiled GEMMs bit-exact against golden ``matmul``.

A small test-side tiling loop (:func:`build_schedule`) cuts an ``M x K x N`` GEMM into
the array's folds -- shapes that do not divide the array are zero padded -- and lays
out the host's inputs cycle by cycle, exactly as the array's protocol describes. The
simulation feeds them and collects every ``out_valid`` row. The tests then check:

* the assembled accumulators and overflow flags equal ``golden.matmul`` with the
  array's :class:`~potgen.golden.AccSpec`, bit for bit;
* ``out_valid`` is high in exactly the cycles the protocol predicts, and the last one
  is cycle ``array.cycles(M, K, N) - 1`` (the analytic model is exact);
* WS partial sums are fed back live from the array's own outputs, so the feedback
  timing that :meth:`SystolicArray.fold_period` promises is exercised, not assumed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from amaranth_sim import biased_values, collect_unelaborated, simulate  # noqa: F401
from potgen import golden
from potgen.formats import parse_format
from potgen.hw.array import SystolicArray, msq_column_formats, msq_column_map
from potgen.hw.product import interval_product
from potgen.quantize import msq_split

pytestmark = pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")


# --- the test-side host: tiling and the cycle-by-cycle schedule ---------------------------

@dataclass
class Schedule:
    """Every input cycle of one GEMM and the output rows it must produce.

    Members
    -------
    length : int
        Cycles to simulate (the model's count plus a few idle ones, to see that no
        stray row follows).
    act, weight : ndarray [length, rows] / [length, cols]
    valid, control : ndarray [length]
        ``control`` is ``last`` (OS) or ``first`` (WS).
    feedback : dict
        WS: cycle -> (fold, step) whose result must be presented as ``psum`` then.
    expected : dict
        cycle -> (fold, index): the result row that must leave then (OS: tile row
        ``index``; WS: step ``index``).
    folds : list of (int, int)
        OS: (row fold, column fold); WS: (reduction fold, column fold), in issue order.
    """

    length: int
    act: np.ndarray
    weight: np.ndarray
    valid: np.ndarray
    control: np.ndarray
    feedback: dict = field(default_factory=dict)
    expected: dict = field(default_factory=dict)
    folds: list = field(default_factory=list)


def _padded(matrix, rows, cols):
    out = np.zeros((rows, cols), dtype=np.int64)
    out[:matrix.shape[0], :matrix.shape[1]] = matrix
    return out


def build_schedule(array: SystolicArray, acts, codes, extra: int = 3) -> Schedule:
    """The host's inputs for ``acts [M, K] @ codes [K, N]`` (codes in each column's format)."""
    R, C = array.rows, array.cols
    M, K = acts.shape
    N = codes.shape[1]
    m_folds, k_folds, n_folds = array.folds(M, K, N)
    period = array.fold_period(M, K, N)
    total = array.cycles(M, K, N)
    length = total + extra
    act = np.zeros((length, R), dtype=np.int64)
    weight = np.zeros((length, C), dtype=np.int64)
    valid = np.zeros(length, dtype=np.int64)
    control = np.zeros(length, dtype=np.int64)
    sched = Schedule(length, act, weight, valid, control)
    if array.dataflow == "os":
        a = _padded(acts, m_folds * R, K)
        w = _padded(codes, K, n_folds * C)
        for f, (mf, nf) in enumerate((mf, nf) for mf in range(m_folds)
                                     for nf in range(n_folds)):
            sched.folds.append((mf, nf))
            start = f * period
            steps = slice(start, start + K)
            act[steps] = a[mf * R:(mf + 1) * R].T
            weight[steps] = w[:, nf * C:(nf + 1) * C]
            valid[steps] = 1
            control[start + K - 1] = 1
            for i in range(R):
                sched.expected[start + K - 1 + array.drain_latency + i] = (f, i)
    else:
        a = _padded(acts, M, k_folds * R)
        w = _padded(codes, k_folds * R, n_folds * C)
        for f, (kf, nf) in enumerate((kf, nf) for kf in range(k_folds)
                                     for nf in range(n_folds)):
            sched.folds.append((kf, nf))
            start = R + f * period
            for p in range(R):
                weight[start - R + p] = w[kf * R + R - 1 - p, nf * C:(nf + 1) * C]
            steps = slice(start, start + M)
            act[steps] = a[:, kf * R:(kf + 1) * R]
            valid[steps] = 1
            control[start] = 1
            for step in range(M):
                if kf > 0:
                    sched.feedback[start + step] = (f - n_folds, step)
                sched.expected[start + step + array.step_latency] = (f, step)
    assert max(sched.expected) == total - 1
    return sched


def pack(values, width: int) -> int:
    """Elements into one integer, element 0 at the least significant end."""
    mask = (1 << width) - 1
    word = 0
    for index, value in enumerate(values):
        word |= (int(value) & mask) << (index * width)
    return word


def unpack(word: int, width: int, count: int, signed: bool = True) -> list:
    mask = (1 << width) - 1
    out = []
    for index in range(count):
        value = (word >> (index * width)) & mask
        if signed and value >> (width - 1):
            value -= 1 << width
        out.append(value)
    return out


def simulate_schedule(array: SystolicArray, sched: Schedule) -> dict:
    """Run the schedule in Amaranth's simulator: cycle -> (acc row, overflow bits) of each
    ``out_valid`` cycle. WS partial sums are taken from earlier outputs as they appear."""
    acc_bits, act_bits = array.acc_bits, array.act_format.bits
    rows = {}
    by_key = {}
    control = array.last if array.dataflow == "os" else array.first
    ports_in = [array.act.as_value(), array.weight.as_value(), array.valid, control]
    words = [[pack(sched.act[t], act_bits), pack(sched.weight[t], array.weight_bits),
              int(sched.valid[t]), int(sched.control[t])] for t in range(sched.length)]

    async def bench(ctx):
        for t in range(sched.length):
            for port, word in zip(ports_in, words[t]):
                ctx.set(port, word)
            if array.dataflow == "ws":
                source = sched.feedback.get(t)
                psum, flags = ([0] * array.cols, 0) if source is None else by_key[source]
                ctx.set(array.psum.as_value(), pack(psum, acc_bits))
                ctx.set(array.psum_overflow, flags)
            if ctx.get(array.out_valid):
                row = (unpack(ctx.get(array.out_acc.as_value()), acc_bits, array.cols),
                       ctx.get(array.out_overflow))
                rows[t] = row
                if t in sched.expected:
                    by_key[sched.expected[t]] = row
            await ctx.tick()

    simulate(array, bench)
    return rows


def assemble(array: SystolicArray, sched: Schedule, rows: dict, M: int, N: int):
    """The result matrix [M, N] and its flags from the output rows."""
    R, C = array.rows, array.cols
    n_pad = -(-N // C) * C
    if array.dataflow == "os":
        m_pad = -(-M // R) * R
    else:
        m_pad = M
    acc = np.zeros((m_pad, n_pad), dtype=np.int64)
    flags = np.zeros((m_pad, n_pad), dtype=bool)
    last_fold = {nf: f for f, (_, nf) in enumerate(sched.folds)}
    for cycle, (fold, index) in sched.expected.items():
        values, bits = rows[cycle]
        first_fold, nf = sched.folds[fold]
        if array.dataflow == "os":
            r = first_fold * R + index
        else:
            if last_fold[nf] != fold:
                continue        # a partial sum, fed back; not a result
            r = index
        acc[r, nf * C:(nf + 1) * C] = values
        flags[r, nf * C:(nf + 1) * C] = [(bits >> j) & 1 for j in range(C)]
    return acc[:M, :N], flags[:M, :N]


def golden_result(array: SystolicArray, acts, codes, column_formats=None):
    """Golden ``matmul`` per column format (slot ``n`` has column ``n % cols``'s format)."""
    spec = golden.AccSpec(array.acc_bits, array.overflow_mode)
    N = codes.shape[1]
    formats = column_formats or [array.column_formats[n % array.cols] for n in range(N)]
    acc = np.zeros((acts.shape[0], N), dtype=np.int64)
    flags = np.zeros((acts.shape[0], N), dtype=bool)
    for fmt in dict.fromkeys(formats):
        index = [n for n in range(N) if formats[n] == fmt]
        result = golden.matmul(acts, codes[:, index], fmt, acc=spec)
        acc[:, index], flags[:, index] = result.acc, result.overflow
    return acc, flags


def run_and_check(array: SystolicArray, acts, codes):
    """Simulate one GEMM; check values, flags and every output cycle. Returns the flags."""
    M, N = acts.shape[0], codes.shape[1]
    sched = build_schedule(array, acts, codes)
    rows = simulate_schedule(array, sched)
    assert sorted(rows) == sorted(sched.expected), (
        f"out_valid cycles {sorted(rows)} differ from the protocol's "
        f"{sorted(sched.expected)}")
    assert max(rows) + 1 == array.cycles(M, acts.shape[1], N)
    got_acc, got_flags = assemble(array, sched, rows, M, N)
    want_acc, want_flags = golden_result(array, acts, codes)
    bad = np.argwhere((got_acc != want_acc) | (got_flags != want_flags))
    assert bad.size == 0, (
        f"{array.rows}x{array.cols} {array.dataflow} {[str(f) for f in array.column_formats]}"
        f" x {array.act_format}, acc {array.acc_bits} {array.overflow_mode}: first "
        f"mismatch at {tuple(bad[0])}: got ({got_acc[tuple(bad[0])]}, "
        f"{got_flags[tuple(bad[0])]}), want ({want_acc[tuple(bad[0])]}, "
        f"{want_flags[tuple(bad[0])]})")
    return want_flags


def random_operands(rng, act_fmt, formats, M, K, N, p_extreme=0.5):
    """Activations biased to their extremes and codes biased to the largest levels."""
    acts = biased_values(rng, act_fmt.min_level, act_fmt.max_level, M * K,
                         p_extreme).reshape(M, K)
    codes = np.zeros((K, N), dtype=np.int64)
    for n in range(N):
        fmt = formats[n % len(formats)]
        levels = np.abs(np.asarray(fmt.levels(), dtype=np.int64))
        column = rng.integers(0, 1 << fmt.bits, K)
        big = rng.random(K) < p_extreme
        column[big] = rng.choice(np.nonzero(levels == levels.max())[0], big.sum())
        codes[:, n] = column
    return acts, codes


def product_bits(act, weight):
    act, weight = parse_format(act), parse_format(weight)
    lo, hi = interval_product(act.min_level, act.max_level, weight.min_level,
                              weight.max_level)
    return max(lo.bit_length(), hi.bit_length()) + 1


# --- Hypothesis over shapes, formats, dataflows and array sizes ----------------------------

WEIGHTS = ["pot4", "apot4", "sp2-4", "int8", "int4", "pot3-nz", "upot:{0,1,4}+{0,2,16}",
           "uint3"]
ACTS = ["uint8", "int8", "uint4", "int5"]


@given(rows=st.integers(1, 4), cols=st.integers(1, 4),
       dataflow=st.sampled_from(["os", "ws"]), weight=st.sampled_from(WEIGHTS),
       act=st.sampled_from(ACTS), pipeline=st.integers(0, 2),
       overflow=st.sampled_from(["wrap", "saturate"]), narrow=st.booleans(),
       M=st.integers(1, 9), K=st.integers(1, 9), N=st.integers(1, 9),
       seed=st.integers(0, 2 ** 32 - 1))
def test_gemm_matches_golden(rows, cols, dataflow, weight, act, pipeline, overflow, narrow,
                             M, K, N, seed):
    # A narrow accumulator (one bit above a product) overflows often: flags, wrapping and
    # saturation all get exercised; otherwise the datatype bound, which never overflows.
    acc_bits = product_bits(act, weight) + 1 if narrow else "auto"
    array = SystolicArray(rows, cols, weight, act, dataflow=dataflow, acc_bits=acc_bits,
                          k=K, overflow=overflow, pipeline=pipeline)
    rng = np.random.default_rng(seed)
    acts, codes = random_operands(rng, array.act_format, array.column_formats, M, K, N)
    flags = run_and_check(array, acts, codes)
    if not narrow:
        assert not flags.any()


# --- deterministic corners ------------------------------------------------------------------

@pytest.mark.parametrize("dataflow", ["os", "ws"])
@pytest.mark.parametrize("overflow", ["wrap", "saturate"])
def test_overflow_flags_propagate(dataflow, overflow):
    """A narrow accumulator over several folds: flags set on some outputs, not on others,
    and (WS) carried from one reduction fold to the next through ``psum_overflow``."""
    array = SystolicArray(3, 2, "pot4", "int6", dataflow=dataflow, acc_bits=14,
                          overflow=overflow, pipeline=1)
    rng = np.random.default_rng(7)
    acts, codes = random_operands(rng, array.act_format, array.column_formats, 7, 11, 5,
                                  p_extreme=0.35)
    flags = run_and_check(array, acts, codes)
    assert flags.any() and not flags.all()


@pytest.mark.parametrize("rows, cols, M, K, N", [
    (4, 2, 6, 1, 3),      # OS: K < rows, every tile padded to `rows` cycles
    (4, 3, 9, 3, 7),
    (2, 2, 1, 7, 2),      # WS: one column fold, four reduction folds, M = 1: the
    (3, 1, 2, 10, 1),     # feedback of the partial sums sets the fold period
])
@pytest.mark.parametrize("dataflow", ["os", "ws"])
def test_short_folds(rows, cols, M, K, N, dataflow):
    array = SystolicArray(rows, cols, "apot4", "uint8", dataflow=dataflow, k=K)
    acts, codes = random_operands(np.random.default_rng(M * K * N), array.act_format,
                                  array.column_formats, M, K, N)
    run_and_check(array, acts, codes)


def test_fold_period_rules():
    os_array = SystolicArray(4, 3, "pot4", "uint8", k=64)
    assert os_array.fold_period(9, 2, 5) == 4 and os_array.fold_period(9, 17, 5) == 17
    ws = SystolicArray(2, 2, "pot4", "uint8", dataflow="ws", k=64, pipeline=1)
    assert ws.step_latency == 2 + 2 + 1 + 1
    # Four reduction folds of one column fold with M = 1: a result needs
    # latency + 1 = 7 cycles to come back.
    assert ws.fold_period(1, 7, 2) == 7
    assert ws.fold_period(1, 7, 2, feedback_delay=3) == 9
    assert ws.fold_period(1, 7, 8) == 2          # 4 column folds: ceil(7 / 4) = 2 = rows
    assert ws.fold_period(1, 2, 2) == 2          # one reduction fold: no feedback
    assert ws.fold_period(30, 7, 2) == 30


@pytest.mark.parametrize("dataflow", ["os", "ws"])
def test_cycle_model_against_scalesim(dataflow):
    """One fold: the design's fill / drain overhead over SCALE-Sim's formula is a constant;
    large GEMMs keep the array >= 90 % busy."""
    for rows, cols, pipeline in [(4, 4, 0), (8, 4, 2), (16, 16, 1)]:
        array = SystolicArray(rows, cols, "pot4", "uint8", dataflow=dataflow, k=4096,
                              pipeline=pipeline)
        one_fold = (rows, 50, cols) if dataflow == "os" else (50, rows, cols)
        extra = rows + pipeline + 2 if dataflow == "os" else pipeline + 3
        assert array.cycles(*one_fold) == array.scalesim_cycles(*one_fold) + extra
        assert array.utilization(512, 512, 512) >= 0.9
        # Overlapped folds are never slower than SCALE-Sim's serial ones.
        for shape in [(37, 61, 23), (100, 9, 70), (5, 300, 40)]:
            assert array.cycles(*shape) <= array.scalesim_cycles(*shape) + extra


# --- MSQ mixed arrays ---------------------------------------------------------------------

@pytest.mark.parametrize("dataflow", ["os", "ws"])
def test_msq_mixed_array(dataflow):
    """int4 multiplier columns and sp2-4 shift-add columns; the quantizer's row split is
    mapped onto them and the permutation undone after the run."""
    rng = np.random.default_rng(21)
    n_channels, K, M = 10, 6, 5
    weights = rng.normal(size=(n_channels, K)) * rng.uniform(0.1, 2, size=(n_channels, 1))
    split = msq_split(weights, 0.6)
    formats = msq_column_formats(4, 1)
    array = SystolicArray(3, 4, formats, "uint8", dataflow=dataflow, k=K)
    meta = array.metadata()
    assert [c["unit"] for c in meta["columns"]] == ["multiplier"] + ["shift-add"] * 3
    assert meta["weight"] == ["int4", "sp2-4", "sp2-4", "sp2-4"]

    mapping = msq_column_map(split, array.column_formats)
    # 4 uniform channels on 1 column, 6 SP2 channels on 3: 4 folds.
    assert mapping.folds == 4 and sorted(mapping.slots[mapping.slots >= 0]) == list(range(10))
    for slot, channel in enumerate(mapping.slots):
        if channel >= 0:
            assert mapping.slot_formats[slot] == mapping.channel_formats[channel]
    codes = mapping.codes(split)
    acts = rng.integers(0, 256, size=(M, K))
    sched = build_schedule(array, acts, codes)
    rows = simulate_schedule(array, sched)
    got, _ = assemble(array, sched, rows, M, codes.shape[1])
    got = mapping.unpack(got)
    channel_codes = split.uniform_codes, split.sp2_codes
    want = np.zeros((M, n_channels), dtype=np.int64)
    for mask, fmt, block in ((~split.sp2_rows, split.uniform_format, channel_codes[0]),
                             (split.sp2_rows, split.sp2_format, channel_codes[1])):
        want[:, mask] = golden.matmul(acts, block.T, fmt).acc
    assert (got == want).all()


def test_column_map_layout():
    class Split:      # the two members msq_column_map reads, plus the formats
        sp2_rows = np.array([True, False, True, True, False])
        uniform_format, sp2_format = parse_format("int4"), parse_format("sp2-4")
    mapping = msq_column_map(Split, msq_column_formats(3, 1))
    # Uniform channels 1, 4 on column 0; SP2 channels 0, 2, 3 on columns 1, 2.
    assert mapping.slots.tolist() == [1, 0, 2, 4, 3, -1]
    assert mapping.unpack(np.array([[10, 11, 12, 13, 14, 15]])).tolist() == [[11, 10, 12,
                                                                              14, 13]]
    codes = mapping.codes(np.arange(5)[:, None] * np.ones((5, 2), dtype=int))
    assert codes.tolist() == [[1, 0, 2, 4, 3, 0]] * 2
    with pytest.raises(ValueError, match="no sp2-4 column"):
        msq_column_map(Split, ["int4", "int4"])


# --- structure, metadata, bad input ----------------------------------------------------------

def test_metadata_and_verilog():
    from potgen.hw.export import emit
    array = SystolicArray(3, 4, "pot4", "uint8", k=100, pipeline=1)
    text, meta = emit(array, "potgen_array")
    assert meta["kind"] == "systolic_array" and meta["dataflow"] == "os"
    assert meta["acc_bits"] == 22 and meta["bound"]["method"] == "datatype"
    assert meta["latency"] == array.drain_latency == 1 + 3 + 4 + 1
    ports = {p["name"]: p for p in meta["ports"]}
    assert ports["act"]["elements"] == {"count": 3, "width": 8, "signed": False}
    assert ports["weight"]["elements"] == {"count": 4, "width": 4, "signed": False}
    assert ports["out_acc"]["elements"] == {"count": 4, "width": 22, "signed": True}
    assert list(ports) == ["clk", "rst", "act", "weight", "valid", "last", "out_valid",
                           "out_acc", "out_overflow"]
    assert emit(SystolicArray(3, 4, "pot4", "uint8", k=100, pipeline=1),
                "potgen_array")[0] == text
    ws = SystolicArray(2, 2, "int8", "int8", dataflow="ws", acc_bits=24)
    names = [p["name"] for p in ws.metadata()["ports"]]
    assert names == ["act", "weight", "valid", "first", "psum", "psum_overflow",
                     "out_valid", "out_acc", "out_overflow"]
    assert ws.metadata()["protocol"]["preload_cycles"] == 2


def test_bounds_from_weights():
    levels = np.array([[64, -64], [32, 1], [0, -2]])   # pot4 levels, K = 3, N = 2
    array = SystolicArray(2, 2, "pot4", "uint8", acc_bits="exact", weights=levels)
    assert array.bound.method == "exact" and array.k == 3
    # Columns [-16320, 24480] and [-16830, 255]: 16 bits, one more than a product.
    assert (array.bound.min, array.bound.max, array.acc_bits) == (-16830, 24480, 16)
    narrow = SystolicArray(2, 2, "pot4", "uint8", acc_bits="exact", weights=[[1], [1]])
    assert narrow.bound.bits == 10 and narrow.acc_bits == 15    # widened to a product
    assert narrow.metadata()["bound"]["widened_to_product"]
    mixed = SystolicArray(2, 2, ["int4", "sp2-4"], "uint8", acc_bits="auto", k=9)
    assert mixed.bound.method == "datatype" and mixed.acc_bits == max(
        mixed.bound.bits, product_bits("uint8", "int4"))


@pytest.mark.parametrize("kwargs, error, words", [
    (dict(rows=0), ValueError, ["rows=0", "1..256"]),
    (dict(cols=300), ValueError, ["cols=300"]),
    (dict(rows=2.0), TypeError, ["rows=2.0"]),
    (dict(weight=["pot4"] * 3), ValueError, ["3 column formats", "cols=2"]),
    (dict(weight="float8"), ValueError, ["weight"]),
    (dict(weight=["pot4", "pot20"]), ValueError, ["weight[1]"]),
    (dict(weight=4), TypeError, ["weight=4"]),
    (dict(act="pot4"), ValueError, ["act='pot4'"]),
    (dict(dataflow="is"), ValueError, ["dataflow='is'", "'os'", "'ws'"]),
    (dict(overflow="error"), ValueError, ["overflow='error'"]),
    (dict(acc_bits=14), ValueError, ["acc_bits=14", "narrower than a product"]),
    (dict(acc_bits="auto", k=None), ValueError, ["needs k"]),
    (dict(acc_bits="l1"), ValueError, ["needs weights"]),
    (dict(acc_bits="widest"), ValueError, ["acc_bits='widest'"]),
    (dict(k=0), ValueError, ["k=0"]),
    (dict(k=2.5), TypeError, ["k=2.5"]),
    (dict(acc_bits=20, weights=[[1]]), ValueError, ["weights", "acc_bits=20"]),
    (dict(weight=["int4", "pot4"], unit="shift-add"), ValueError, ["column 0", "int4"]),
    (dict(pipeline=-1), ValueError, ["pipeline=-1"]),
    (dict(sign="split"), ValueError, ["sign='split'"]),
])
def test_bad_parameters(kwargs, error, words):
    args = dict(rows=2, cols=2, weight="pot4", act="uint8", k=8)
    args.update(kwargs)
    with pytest.raises(error) as info:
        SystolicArray(args.pop("rows"), args.pop("cols"), args.pop("weight"),
                      args.pop("act"), **args)
    for word in words:
        assert word in str(info.value)


def test_bad_gemm_shapes():
    array = SystolicArray(2, 2, "pot4", "uint8", k=8)
    for shape, word in [((0, 3, 3), "M=0"), ((3, -1, 3), "K=-1"), ((3, 3, 2.5), "N=2.5")]:
        with pytest.raises((ValueError, TypeError), match=word.replace(".", r"\.")):
            array.cycles(*shape)


# --- command line (potgen verilog array) -----------------------------------------------------

def _array_command(argv):
    """Parse and run ``potgen verilog array ...`` through :func:`add_array` alone."""
    from potgen.cli import _Parser
    from potgen.cli.verilog_array import add_array
    parser = _Parser(prog="potgen verilog")
    add_array(parser.add_subparsers(dest="kind", parser_class=_Parser))
    args = parser.parse_args(["array", *argv])
    return args.func(args)


def test_cli_writes_verilog_and_metadata(tmp_path, capsys):
    import json
    out = tmp_path / "arr.v"
    assert _array_command(["--rows", "2", "--cols", "3", "--weight", "int4", "--weight",
                           "sp2-4", "--weight", "sp2-4", "--act", "uint8", "--k", "64",
                           "--dataflow", "ws", "--overflow", "saturate", "--pipeline", "1",
                           "--name", "msq_array", "-o", str(out)]) == 0
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["name"] == "msq_array" and meta["dataflow"] == "ws"
    assert meta["weight"] == ["int4", "sp2-4", "sp2-4"] and meta["overflow"] == "saturate"
    assert meta["latency"] == 1 + 2 + 3 + 1
    assert "module msq_array(" in out.read_text()
    assert "wrote" in capsys.readouterr().out
    levels = tmp_path / "w.npy"
    np.save(levels, np.array([[64, -1], [2, 8], [0, 16]]))
    assert _array_command(["--rows", "2", "--cols", "2", "--weight", "pot4", "--act",
                           "uint8", "--acc-bits", "exact", "--weights", str(levels)]) == 0
    assert "module potgen_array(" in capsys.readouterr().out


@pytest.mark.parametrize("argv, words", [
    (["--rows", "2", "--cols", "3", "--weight", "pot4", "--weight", "int4", "--act",
      "uint8", "--k", "8"], ["--weight given 2 times", "--cols 3"]),
    (["--rows", "2", "--cols", "2", "--weight", "pot4", "--act", "uint8"], ["needs --k"]),
    (["--rows", "2", "--cols", "2", "--weight", "pot4", "--act", "uint8", "--acc-bits",
      "l1"], ["needs --weights"]),
    (["--rows", "0", "--cols", "2", "--weight", "pot4", "--act", "uint8", "--k", "8"],
     ["rows=0"]),
    (["--rows", "2", "--cols", "2", "--weight", "pot4", "--act", "uint8", "--k", "8",
      "--dataflow", "rs"], ["--dataflow", "'rs'"]),
])
def test_cli_bad_input(argv, words):
    with pytest.raises(ValueError) as info:
        _array_command(argv)
    for word in words:
        assert word in str(info.value)
