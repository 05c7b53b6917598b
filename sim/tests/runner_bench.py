"""The runner's own bench: a registered adder checked against a scalar model.

The design under test (built by ``tests/test_verilator_runner.py``) has inputs ``a``,
``b`` (8 bits), ``en`` and outputs ``total = a + b`` (9 bits, combinational) and
``count`` (8 bits, incremented on every rising edge with ``en``, wrapping). The
configuration's ``bias`` is added to the expected ``total``: a non-zero bias must make
the bench fail, which is how the tests prove that a failing bench fails pytest.
"""

import random

import cocotb

from sim.tests.bench import Stepper, config, log


@cocotb.test()
async def adder_and_counter(dut):
    cfg = config()
    rng = random.Random(cfg.get("seed", 1))
    stepper = Stepper(dut)
    dut.rst.value = 1
    await stepper.step({"a": 0, "b": 0, "en": 0}, ())
    dut.rst.value = 0
    count, errors = 0, []
    for step in range(cfg.get("vectors", 500)):
        a, b, en = rng.randrange(256), rng.randrange(256), rng.randrange(2)
        total, got_count = await stepper.step({"a": a, "b": b, "en": en},
                                              ("total", "count"))
        if total != a + b + cfg.get("bias", 0) or got_count != count:
            errors.append(f"step {step}: a={a} b={b}: total {total} (want "
                          f"{a + b + cfg.get('bias', 0)}), count {got_count} (want {count})")
        count = (count + en) % 256
    log(f"{cfg.get('vectors', 500)} vectors, {len(errors)} mismatches")
    if errors:
        raise AssertionError(f"{len(errors)} mismatches; first: " + "; ".join(errors[:3]))


@cocotb.test()
async def reads_ports(dut):
    """A second test, so that the runner's parsing of several outcomes is exercised."""
    assert len(dut.total) == 9 and len(dut.count) == 8
