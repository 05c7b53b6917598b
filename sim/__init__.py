"""Simulation of potgen's emitted Verilog under cocotb 2.x (not part of the installed package).

* :mod:`sim.runner` -- pytest side: emit Verilog into a cached build folder, build it
  with Verilator (or Icarus), run a cocotb bench module, check its results.
* :mod:`sim.tests` -- the cocotb bench modules (run inside the simulator) and the
  helpers they share.
"""
