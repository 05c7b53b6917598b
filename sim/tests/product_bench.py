"""Product units side by side, every activation x every code, against ``golden.product``.

The design is a :func:`sim.runner.bundle` of emitted product units: one shared ``act``
input and one shared ``weight`` input (each unit sees their low bits), the units'
``product`` outputs (or ``magnitude`` / ``negative`` of ``sign="split"`` units)
concatenated. One vector per clock cycle runs through all units at once; a unit of
latency ``L`` shows vector ``s - L`` at step ``s``.

Configuration (written by the pytest side)::

    {"act_bits": 8, "weight_bits": 4,             # widths of the shared inputs
     "vectors": "exhaustive" | N, "seed": 1,      # all input pairs, or N random ones
     "clocked": true,                              # the top has clk / rst
     "units": [{"name": ..., "weight": "apot4", "act": "int8", "latency": 0,
                "product": [offset, width]}       # or "magnitude": [o, w],
               ...]}                              #    "magnitude_signed", "negative": [o, 1]
"""

import cocotb
import numpy as np

from potgen import golden, parse_format
from sim.tests.bench import Stepper, config, field, log


def _vectors(cfg):
    """The shared (act pattern, weight pattern) pairs, in the order they are applied."""
    a_bits, w_bits = cfg["act_bits"], cfg["weight_bits"]
    if cfg.get("vectors", "exhaustive") == "exhaustive":
        acts, codes = np.meshgrid(np.arange(1 << a_bits), np.arange(1 << w_bits),
                                  indexing="ij")
        return acts.ravel(), codes.ravel()
    rng = np.random.default_rng(cfg.get("seed", 1))
    n = int(cfg["vectors"])
    return rng.integers(0, 1 << a_bits, n), rng.integers(0, 1 << w_bits, n)


def _unit_inputs(unit, act_patterns, weight_patterns):
    """The unit's activation values and codes (the low bits of the shared inputs)."""
    act_fmt, weight_fmt = parse_format(unit["act"]), parse_format(unit["weight"])
    acts = act_fmt.decode(act_patterns & ((1 << act_fmt.bits) - 1))
    codes = weight_patterns & ((1 << weight_fmt.bits) - 1)
    return acts, codes, weight_fmt


def _outputs(unit, buses):
    """The unit's product from the sampled output buses (Python ints)."""
    if "product" in unit:
        offset, width = unit["product"]
        return np.array([field(b, offset, width, signed=True) for b in buses["product"]],
                        dtype=object)
    offset, width = unit["magnitude"]
    magnitude = np.array([field(b, offset, width, signed=unit["magnitude_signed"])
                          for b in buses["magnitude"]], dtype=object)
    negative = np.array([field(b, unit["negative"][0], 1) for b in buses["negative"]],
                        dtype=bool)
    return np.where(negative, -magnitude, magnitude)


@cocotb.test()
async def products_match_golden(dut):
    cfg = config()
    units = cfg["units"]
    act_patterns, weight_patterns = _vectors(cfg)
    n = len(act_patterns)
    latency = max(u["latency"] for u in units)
    names = sorted({key for u in units for key in ("product", "magnitude", "negative")
                    if key in u})
    stepper = Stepper(dut, "clk" if cfg["clocked"] else None)
    if cfg["clocked"]:
        dut.rst.value = 0

    samples = {name: [] for name in names}
    for step in range(n + latency):
        i = min(step, n - 1)      # past the end, hold the last vector while draining
        values = await stepper.step({"act": int(act_patterns[i]),
                                     "weight": int(weight_patterns[i])}, names)
        for name, value in zip(names, values):
            samples[name].append(value)

    failures = []
    for unit in units:
        lat = unit["latency"]
        got = _outputs(unit, {k: v[lat:lat + n] for k, v in samples.items()})
        acts, codes, weight_fmt = _unit_inputs(unit, act_patterns, weight_patterns)
        want = golden.product(acts, codes, weight_fmt).astype(object)
        bad = np.flatnonzero(got != want)
        if bad.size:
            first = ", ".join(f"act={acts[j]} code={codes[j]}: got {got[j]} want {want[j]}"
                              for j in bad[:3])
            failures.append(f"{unit['name']} ({unit['weight']} x {unit['act']}, latency "
                            f"{lat}): {bad.size} of {n} wrong; {first}")
    log(f"{len(units)} units x {n} vectors checked, {len(failures)} unit(s) wrong")
    if failures:
        # Raised, not asserted: cocotb's assertion rewriting would repeat the message.
        raise AssertionError("\n".join(failures))
