"""Parsing yosys and nextpnr output into potgen's report schema (DESIGN.md section 6).

Two inputs, both machine-readable:

* yosys ``stat -json`` (written with ``tee -q -o stat.json stat -json``): cell counts
  per module and for the whole design. :func:`module_cells` totals one module with
  every module it instantiates, so the block under test is counted on its own even
  inside a timing harness; :func:`resources` turns cell counts into the schema.
* nextpnr-ecp5 ``--report r.json``: ``utilization.{BEL}.{used,available}``,
  ``fmax.{clock}.{achieved,constraint}`` (MHz) and ``critical_paths[]``;
  :func:`parse_nextpnr` extracts the clock's Fmax and its critical path.

Resource keys (``report["resources"]``)
---------------------------------------
``lut4``
    LUT4 cells (yosys ``LUT4``).
``ff``
    Flip-flops (``TRELLIS_FF``).
``ccu2c``
    Carry cells (``CCU2C``): one CCU2C is two LUT4s and their carry logic, i.e. one
    half of a slice.
``pfumx``, ``l6mux``
    The slice's wide-function multiplexers (``PFUMX`` combines two LUT4 outputs into a
    LUT5, ``L6MUX21`` two LUT5s into a LUT6). They use no LUT4 of their own.
``mult18``, ``dp16kd``, ``alu54b``, ``dpram``
    MULT18X18D, DP16KD block RAMs, ALU54B and LUT RAM (``TRELLIS_DPR16X4``).
``comb_cells``
    The combinational logic cells yosys maps to:
    ``lut4 + ccu2c + pfumx + l6mux`` (every cell of yosys ``stat`` except flip-flops,
    hard blocks and I/O). This is the figure potgen compares designs by.
``lut4_sites``
    LUT4 sites occupied: ``lut4 + 2 * ccu2c`` (a CCU2C fills both LUT4s of its slice
    half; the muxes sit beside the LUTs). This is what fills the device and what
    :func:`potgen.flow.devices.check_fit` checks.
"""

from __future__ import annotations

import json
import os

__all__ = ["CELL_KEYS", "RESOURCE_KEYS", "resources", "module_cells", "load_stat",
           "parse_yosys_stat", "parse_nextpnr", "load_json"]

#: yosys cell type -> resource key.
CELL_KEYS = {
    "LUT4": "lut4",
    "TRELLIS_FF": "ff",
    "CCU2C": "ccu2c",
    "PFUMX": "pfumx",
    "L6MUX21": "l6mux",
    "MULT18X18D": "mult18",
    "DP16KD": "dp16kd",
    "ALU54B": "alu54b",
    "TRELLIS_DPR16X4": "dpram",
}

#: Every key of ``report["resources"]``, in display order.
RESOURCE_KEYS = ("comb_cells", "lut4_sites", "lut4", "ccu2c", "pfumx", "l6mux", "ff",
                 "mult18", "dp16kd", "alu54b", "dpram")

# Cells that carry no hardware: yosys bookkeeping and I/O buffers (counted by nextpnr).
_IGNORED = {"$scopeinfo", "TRELLIS_IO", "VHI", "VLO", "GSR", "PUR"}


def load_json(source):
    """A parsed JSON document from a dict, a JSON string or a path."""
    if isinstance(source, dict):
        return source
    if isinstance(source, (bytes, str)) and str(source).lstrip().startswith("{"):
        return json.loads(source)
    with open(os.fspath(source)) as f:
        return json.load(f)


def resources(cells_by_type: dict) -> dict:
    """The ``resources`` dict of a report from yosys cell counts by type.

    Cell types potgen does not track (other than yosys bookkeeping cells) are kept
    under ``"other"`` so nothing is silently dropped.
    """
    out = {key: 0 for key in RESOURCE_KEYS}
    other = {}
    for cell, count in cells_by_type.items():
        if cell in CELL_KEYS:
            out[CELL_KEYS[cell]] += int(count)
        elif cell not in _IGNORED:
            other[cell] = int(count)
    out["comb_cells"] = out["lut4"] + out["ccu2c"] + out["pfumx"] + out["l6mux"]
    out["lut4_sites"] = out["lut4"] + 2 * out["ccu2c"]
    if other:
        out["other"] = dict(sorted(other.items()))
    return out


def _strip(name: str) -> str:
    return name[1:] if name.startswith("\\") else name


def load_stat(source) -> dict:
    """``{module: {cell_type: count}}`` (local counts) from yosys ``stat -json``.

    Module names lose yosys's leading backslash; instances of other modules of the
    design appear under the instantiated module's name.
    """
    doc = load_json(source)
    modules = doc.get("modules")
    if not isinstance(modules, dict):
        raise ValueError("yosys stat -json: no 'modules' object")
    out = {}
    for name, info in modules.items():
        cells = info.get("num_cells_by_type", {})
        out[_strip(name)] = {_strip(c): int(n) for c, n in cells.items()}
    return out


def module_cells(stat: dict, module: str) -> dict:
    """Cell counts of ``module`` including every module it instantiates (recursively).

    ``stat`` is the output of :func:`load_stat`. Raises ``KeyError`` naming the
    modules present when ``module`` is not one of them.
    """
    module = _strip(module)
    if module not in stat:
        raise KeyError(f"module {module!r} not in the yosys statistics; modules: "
                       + ", ".join(sorted(stat)))

    def total(name, depth):
        if depth > 64:
            raise ValueError(f"module hierarchy under {module!r} is recursive")
        out = {}
        for cell, count in stat[name].items():
            if cell in stat:
                for sub, n in total(cell, depth + 1).items():
                    out[sub] = out.get(sub, 0) + n * count
            else:
                out[cell] = out.get(cell, 0) + count
        return out

    return total(module, 0)


def parse_yosys_stat(source, *, block: str | None = None, top: str | None = None) -> dict:
    """Resources of the block and of the whole design from yosys ``stat -json``.

    Parameters
    ----------
    source : dict, str or path
        The ``stat -json`` output.
    block : str or None
        Module of the block under test (counted with its submodules). None: the
        whole design is the block.
    top : str or None
        Top module; None takes yosys's ``design`` totals.

    Returns
    -------
    dict
        ``{"block": resources, "design": resources}``.
    """
    doc = load_json(source)
    stat = load_stat(doc)
    if top is not None:
        design_cells = module_cells(stat, top)
    elif isinstance(doc.get("design"), dict):
        design_cells = {_strip(c): int(n)
                        for c, n in doc["design"].get("num_cells_by_type", {}).items()
                        if _strip(c) not in stat}
    else:
        raise ValueError("yosys stat -json: no 'design' totals and no top module given")
    block_cells = design_cells if block is None else module_cells(stat, block)
    return {"block": resources(block_cells), "design": resources(design_cells)}


def _step(step: dict) -> dict:
    def pin(end):
        if not end:
            return None
        return f"{end.get('cell')}.{end.get('port')}"
    out = {"type": step.get("type"), "from": pin(step.get("from")),
           "to": pin(step.get("to")), "delay_ns": round(float(step.get("delay", 0.0)), 3)}
    if step.get("net"):
        out["net"] = step["net"]
    return out


def _is_register_path(path: dict) -> bool:
    return str(path.get("from", "")).startswith("posedge") and \
        str(path.get("to", "")).startswith("posedge")


def parse_nextpnr(source, *, clock: str | None = None) -> dict:
    """Fmax, utilisation and critical path from nextpnr-ecp5's ``--report`` JSON.

    Parameters
    ----------
    source : dict, str or path
        The report.
    clock : str or None
        Clock net to report; None takes the slowest clock (the design's Fmax).

    Returns
    -------
    dict
        ``fmax_mhz`` (achieved, None when the design has no clocked path),
        ``freq_target_mhz`` (the constraint), ``clock``, ``utilization``
        (``{BEL: {"used", "available"}}`` for BELs with ``used > 0``),
        ``critical_path`` (register-to-register steps of that clock:
        ``{"type", "from", "to", "net", "delay_ns"}``, ``from`` / ``to`` as
        ``cell.port``) and ``critical_path_ns`` (the steps' total delay).
    """
    doc = load_json(source)
    fmax = doc.get("fmax") or {}
    if clock is None and fmax:
        clock = min(fmax, key=lambda c: fmax[c].get("achieved", float("inf")))
    if clock is not None and clock not in fmax:
        raise KeyError(f"clock {clock!r} not in the nextpnr report; clocks: "
                       + ", ".join(sorted(fmax)))
    achieved = constraint = None
    if clock is not None:
        achieved = round(float(fmax[clock]["achieved"]), 2)
        constraint = fmax[clock].get("constraint")
        constraint = round(float(constraint), 2) if constraint is not None else None
    util = {bel: {"used": int(v.get("used", 0)), "available": int(v.get("available", 0))}
            for bel, v in sorted((doc.get("utilization") or {}).items())
            if int(v.get("used", 0))}
    steps = []
    for path in doc.get("critical_paths") or []:
        if _is_register_path(path) and (clock is None or clock in str(path.get("to"))):
            steps = [_step(s) for s in path.get("path", [])]
            break
    return {"fmax_mhz": achieved, "freq_target_mhz": constraint, "clock": clock,
            "utilization": util, "critical_path": steps,
            "critical_path_ns": round(sum(s["delay_ns"] for s in steps), 3)}
