"""cocotb bench modules, run inside the simulator by :mod:`sim.runner`.

Each ``*_bench`` module reads its configuration with :func:`sim.tests.bench.config`,
drives the emitted Verilog and compares every output bit for bit against
:mod:`potgen.golden` (or, for the runner's own bench, an independent scalar model).
"""
