"""Accelerator overhead: yosys-only synthesis of the Accelerator and of its bare array.

    python synth/arrays/accelerator_overhead.py   # writes accelerator_overhead.json

Synthesizes ``Accelerator(4, C, "pot4", "uint8", k_max=64)`` and its
``SystolicArray`` for C = 4 and 8, flattened in the timing harness with the harness's
cells subtracted (as ``potgen synth --kind array`` does). The differences, less the
buffers and the requantizer's multipliers, give
``potgen.flow.estimate_array.ACCELERATOR_OVERHEAD`` (a constant and a cost per column).
"""

import json
import time

from potgen.flow.designs import _block_of_flattened, harness_cells
from potgen.flow.synth import flow_options, prepare, run_flow
from potgen.hw.accelerator import Accelerator
from potgen.hw.array import SystolicArray

OUT = "synth/arrays/accelerator_overhead.json"


def main():
    opts = flow_options(place=False)
    reports = []
    for rows, cols in ((4, 4), (4, 8)):
        for name, component in (
                ("accelerator", Accelerator(rows, cols, "pot4", "uint8", k_max=64)),
                ("array", SystolicArray(rows, cols, "pot4", "uint8", k=64))):
            start = time.monotonic()
            prepared = prepare(component, harness=True,
                               design={"label": f"{name} {rows}x{cols}", "rows": rows,
                                       "cols": cols})
            prepared.block = None  # flattened, as for arrays in potgen synth
            report = _block_of_flattened(run_flow(prepared, opts),
                                         harness_cells(component))
            reports.append(report)
            print(name, rows, cols, report["resources"],
                  f"{time.monotonic() - start:.0f} s", flush=True)
    with open(OUT, "w") as f:
        json.dump({"reports": reports}, f, indent=1)


if __name__ == "__main__":
    main()
