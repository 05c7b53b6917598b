"""MAC PEs side by side under long random valid / clear / reset streams, against golden.

The design is a :func:`sim.runner.bundle` of emitted MAC PEs sharing ``clk``, ``rst``,
``act``, ``weight``, ``valid`` and ``clear`` (each PE sees the low bits of ``act`` and
``weight``); their ``acc`` and ``overflow`` outputs are concatenated.

The stream is a sequence of phases with different statistics, so that every PE sees
short and long sums, sparse and dense ``valid``, and runs of extreme same-sign products
that drive narrow accumulators into wrap-around or saturation. A few ``rst`` pulses
land in the middle of sums.

Expected values (DESIGN.md section 4): a PE of latency ``L`` applies the inputs of step
``t - L`` at edge ``t``. ``clear`` starts a new sum whose first addend is the product
when ``valid`` is set; ``rst`` zeroes the sum and drops the ``L`` inputs in flight in
the pipeline. The stream is cut into sums at those points and each sum's every prefix is
computed by :func:`potgen.golden.matmul` with the PE's :class:`~potgen.golden.AccSpec`
(one matrix product per sum: row ``j`` holds the activations of addends ``0..j``).
The value sampled before edge ``s`` must equal the golden state after edge ``s - 1``,
``acc`` and the sticky ``overflow`` flag alike, every cycle.

Configuration::

    {"cycles": 4000, "seed": 1, "act_bits": 8, "weight_bits": 4, "resets": [1234, ...],
     "units": [{"name", "weight", "act", "latency", "acc_bits", "mode": "wrap",
                "acc": [offset, width], "overflow": [offset, 1],
                "expect_overflow": true}, ...]}

``expect_overflow`` makes the bench fail if the golden model never overflows for that
PE: the stream would not have exercised the overflow logic.
"""

import cocotb
import numpy as np

from potgen import golden, parse_format
from sim.tests.bench import Stepper, config, field, log

#: Phase kinds: (probability of clear, probability of valid, extreme operands).
_PHASES = [(0.02, 0.9, False), (0.1, 0.7, False), (0.4, 0.5, False), (0.0, 1.0, False),
           (0.05, 1.0, True), (0.01, 0.95, True), (0.2, 0.8, True)]
_PHASE_CYCLES = 120
#: Shared input patterns giving large products of one sign for every PE: 0x7F / 0x80 /
#: 0xFF are the extremes of int8 and uint8, 7 and 15 the largest codes of 3- and 4-bit
#: formats (sign clear / set).
_EXTREME_ACTS = (0x7F, 0x80, 0xFF)
_EXTREME_CODES = (0x7, 0xF)


def _stream(cfg):
    """Per-step inputs: arrays act, weight, valid, clear, rst."""
    rng = np.random.default_rng(cfg.get("seed", 1))
    n, a_bits, w_bits = cfg["cycles"], cfg["act_bits"], cfg["weight_bits"]
    act = rng.integers(0, 1 << a_bits, n)
    weight = rng.integers(0, 1 << w_bits, n)
    valid = np.zeros(n, dtype=bool)
    clear = np.zeros(n, dtype=bool)
    for start in range(0, n, _PHASE_CYCLES):
        p_clear, p_valid, extreme = _PHASES[rng.integers(len(_PHASES))]
        span = slice(start, min(start + _PHASE_CYCLES, n))
        size = span.stop - span.start
        valid[span] = rng.random(size) < p_valid
        clear[span] = rng.random(size) < p_clear
        if extreme:
            # One sign for the whole phase, so that the sums run away.
            act[span] = _EXTREME_ACTS[rng.integers(len(_EXTREME_ACTS))]
            weight[span] = _EXTREME_CODES[rng.integers(len(_EXTREME_CODES))]
    rst = np.zeros(n, dtype=bool)
    rst[:2] = True                          # initial reset
    for r in cfg.get("resets", []):
        rst[r] = True
    valid[:2] = clear[:2] = False
    return act, weight, valid, clear, rst


def _expected(unit, act, weight, valid, clear, rst):
    """Golden ``(acc, overflow)`` after every edge, for one PE."""
    act_fmt, weight_fmt = parse_format(unit["act"]), parse_format(unit["weight"])
    acts = act_fmt.decode(act & ((1 << act_fmt.bits) - 1))
    codes = weight & ((1 << weight_fmt.bits) - 1)
    spec = golden.AccSpec(unit["acc_bits"], unit["mode"])
    lat, n = unit["latency"], len(act)

    # Walk the edges: which sum each edge belongs to and how many addends it has seen.
    segment_of = np.zeros(n, dtype=np.int64)
    count_after = np.zeros(n, dtype=np.int64)
    segments = []                       # list of lists of step indices (the addends)
    current = []
    segments.append(current)
    for t in range(n):
        if rst[t]:
            current = []
            segments.append(current)
        elif rst[max(t - lat, 0):t].any():
            pass                        # the input consumed now was zeroed in flight
        elif t >= lat:
            src = t - lat
            if clear[src]:
                current = []
                segments.append(current)
            if valid[src]:
                current.append(src)
        segment_of[t] = len(segments) - 1
        count_after[t] = len(current)

    acc = np.zeros(n, dtype=object)
    overflow = np.zeros(n, dtype=bool)
    prefix = {}
    for index, steps in enumerate(segments):
        if not steps:
            continue
        steps = np.asarray(steps)
        k = len(steps)
        # Row j: the activations of addends 0..j, zeros after (adding 0 changes nothing,
        # under wrap and saturate alike, and leaves the exact prefix sums as they are).
        rows = np.tril(np.ones((k, k), dtype=np.int64)) * acts[steps][None, :]
        result = golden.matmul(rows, codes[steps][:, None], weight_fmt, spec)
        prefix[index] = (result.acc[:, 0], result.overflow[:, 0])
    for t in range(n):
        c = count_after[t]
        if c:
            values, flags = prefix[segment_of[t]]
            acc[t], overflow[t] = int(values[c - 1]), bool(flags[c - 1])
    return acc, overflow


@cocotb.test()
async def macs_match_golden(dut):
    cfg = config()
    units = cfg["units"]
    act, weight, valid, clear, rst = _stream(cfg)
    n = len(act)
    stepper = Stepper(dut)
    acc_bus, flag_bus = [], []
    for t in range(n + 1):
        i = min(t, n - 1)
        inputs = {"act": int(act[i]), "weight": int(weight[i]), "valid": int(valid[i]),
                  "clear": int(clear[i]), "rst": int(rst[i])}
        if t == n:              # one more step, only to sample the last edge's result
            inputs.update(valid=0, clear=0, rst=0)
        acc_sample, flag_sample = await stepper.step(inputs, ("acc", "overflow"))
        acc_bus.append(acc_sample)
        flag_bus.append(flag_sample)

    failures, summary = [], []
    for unit in units:
        want_acc, want_flag = _expected(unit, act, weight, valid, clear, rst)
        offset, width = unit["acc"]
        got_acc = np.array([field(b, offset, width, signed=True) for b in acc_bus[1:]],
                           dtype=object)
        got_flag = np.array([field(b, unit["overflow"][0], 1) for b in flag_bus[1:]],
                            dtype=bool)
        # Sample t + 1 shows the state after edge t; the first edges are the reset.
        checked = slice(2, n)
        bad = np.flatnonzero((got_acc[checked] != want_acc[checked])
                             | (got_flag[checked] != want_flag[checked])) + 2
        overflowed = int(want_flag[checked].sum())
        summary.append(f"{unit['name']}: {overflowed} cycles flagged")
        if bad.size:
            first = "; ".join(
                f"edge {t}: acc {got_acc[t]} overflow {int(got_flag[t])}, want "
                f"{want_acc[t]} / {int(want_flag[t])}" for t in bad[:3])
            failures.append(f"{unit['name']} ({unit['weight']} x {unit['act']}, "
                            f"{unit['acc_bits']}-bit {unit['mode']}, latency "
                            f"{unit['latency']}): {bad.size} of {n - 2} cycles wrong; "
                            f"{first}")
        elif unit.get("expect_overflow") and not overflowed:
            failures.append(f"{unit['name']}: the stream never overflowed its "
                            f"{unit['acc_bits']}-bit accumulator; the bench did not "
                            "exercise the overflow logic")
    log(f"{len(units)} MAC PEs x {n} cycles; " + ", ".join(summary))
    if failures:
        # Raised, not asserted: cocotb's assertion rewriting would repeat the message.
        raise AssertionError("\n".join(failures))
