"""Instant resource and Fmax estimates of systolic arrays and of the accelerator around one.

:func:`estimate_array` answers for a whole :class:`~potgen.hw.array.SystolicArray` what
``potgen synth --kind array`` measures in minutes to an hour, and
:func:`estimate_accelerator` adds the accelerator's buffers, controller and
requantizer, both in the synthesis report schema (DESIGN.md section 6) with a
``fits`` verdict against the device. The board fit check (``potgen build``) and the
design-space explorer call them in their inner loops, so they never build an
array: only the PE model runs (tens of milliseconds, memoised per PE), the rest is
arithmetic.

What is modelled
----------------
* **Logic (comb cells, LUT4 sites)** is all inside the PEs: the skew and deskew
  lines at the array's edges are registers only. Per PE it is linear in two figures
  of the PE model of :mod:`potgen.flow.estimate` -- the estimated comb cells (LUT4
  sites) of the MAC PE's product path (the MAC minus its accumulator) and the
  accumulator width ``P + 1`` (the accumulator or partial-sum adder, and the OS drain
  multiplexer) -- with one coefficient pair per dataflow, fitted by least squares
  (relative error) to ``potgen synth --kind array`` runs (:data:`CALIBRATION`, with
  its residuals). CCU2C are the PE model's per PE; MULT18X18D are counted: the PE's
  count times ``rows * cols``.
* **Flip-flops are counted, not fitted**, from the array's documented structure
  (:func:`array_flip_flops`): the PE registers, forwarding registers, drain /
  partial-sum registers, the triangular skew and deskew lines, and the token lines
  (``valid``, ``last``, ``load``) counted once per distinct delay, because synthesis
  merges the identical registers of PEs on one anti-diagonal. Exact (within one
  flip-flop) against every synthesized array at ``pipeline=0``.
* **Fmax** is the PE model's Fmax of the MAC PE times a derating for the routing of
  an array (:data:`CALIBRATION` ``fmax_scale`` for shift-add and LUT PEs,
  ``fmax_scale_dsp`` for DSP PEs, whose every PE routes to the fixed MULT18X18D
  columns), never above what the PE alone reaches.
* **Accelerator** (:func:`estimate_accelerator`): the array, plus block RAM for the
  activation buffer (``act_slots * k_max`` words of ``rows * A`` bits), the weight
  buffer (``weight_slots * k_max`` words of ``cols * W`` bits) and the output buffer
  (``out_rows`` words of ``cols * (P + 1)`` bits), each in the fewest DP16KD of any of
  its configurations (:func:`dp16kd_blocks`), or in LUT RAM when it is at most
  :data:`LUTRAM_MAX_DEPTH` deep (as yosys maps the output buffer of small arrays);
  the requantizer's MULT18X18D (``ceil(P / 18)`` per column: a ``P x 16``-bit
  multiplier per lane); and the controller, queues and the rest of the requantizer as
  a constant plus a cost per column (:data:`ACCELERATOR_OVERHEAD`), measured on
  accelerator syntheses minus their arrays.

Not modelled: the placer's ability to route a nearly full device (``fits`` compares
the counts with the device's limits; above about 85 % of the LUT4 sites nextpnr may
still fail to route, which ``utilization_max`` lets a caller judge); the LUT4 sites
that LUT RAM cells occupy (they are reported as ``dpram``, as yosys counts them);
and any Fmax limit of the accelerator's controller or requantizer (the accelerator's
Fmax is its array's). Weight-stationary Fmax is not yet validated by a placed array.
"""

from __future__ import annotations

import functools
import math
import time

from .. import bounds
from ..formats import IntFormat, parse_format
from .devices import check_package, check_speed
from .devices import device as _device
from .report import RESOURCE_KEYS

__all__ = ["estimate_array", "estimate_accelerator", "array_flip_flops", "dp16kd_blocks",
           "array_acc_bits", "pe_features", "CALIBRATION", "ACCELERATOR_OVERHEAD",
           "DP16KD_SHAPES", "LUTRAM_MAX_DEPTH"]

#: Deepest buffer yosys maps to LUT RAM (TRELLIS_DPR16X4) rather than block RAM.
LUTRAM_MAX_DEPTH = 32

#: ``(depth, width)`` configurations of a DP16KD (18 Kb) block RAM on ECP5; 512 x 36 is
#: the pseudo-dual-port mode the buffers use (one write port, one read port).
DP16KD_SHAPES = ((16384, 1), (8192, 2), (4096, 4), (2048, 9), (1024, 18), (512, 36))

#: Per-dataflow coefficients of the per-PE comb cells and LUT4 sites on the features
#: of :func:`pe_features`;
#: ``fmax_scale`` derates the MAC PE model's Fmax for a placed array. Fitted by
#: ``synth/arrays/fit_estimate_array.py`` to the array syntheses in ``synth/arrays/``;
#: ``errors`` are its relative residuals there.
CALIBRATION = {
    "version": 1,
    "tools": {"yosys": "Yosys 0.70", "nextpnr": "nextpnr-0.11.1"},
    "device": "LFE5U-85F",
    "speed": 6,
    "dataflows": {
        "os": {"comb_cells": {"product": 1.2027, "acc_bits": 2.6729, "mult18": -9.3865},
               "lut4_sites": {"product_sites": 0.9654, "acc_bits": 3.3918,
                              "mult18": -13.4867},
               "fmax_scale": 0.9259, "fmax_scale_dsp": 0.6928, "reports": 15,
               "placed": 2,
               "errors": {"comb_cells": {"max": 0.178, "mean": 0.069},
                          "lut4_sites": {"max": 0.087, "mean": 0.036},
                          "fmax": {"max": 0.0, "placed": 1},
                          "fmax_dsp": {"max": 0.0, "placed": 1}}},
        # No weight-stationary array was placed in time: its Fmax deratings are the
        # output-stationary ones (the PE's critical path, product unit into a P-bit
        # adder, is the same kind of path).
        "ws": {"comb_cells": {"product": 0.997, "acc_bits": 0.8122, "mult18": -4.9519},
               "lut4_sites": {"product_sites": 0.9958, "acc_bits": 1.2479,
                              "mult18": -3.1203},
               "fmax_scale": 0.9259, "fmax_scale_dsp": 0.6928, "reports": 11,
               "placed": 0,
               "errors": {"comb_cells": {"max": 0.175, "mean": 0.114},
                          "lut4_sites": {"max": 0.141, "mean": 0.085}}},
    },
}

#: Controller and requantizer of the accelerator: ``constant`` + ``per_column`` *
#: ``cols`` of each resource (the requantizer has one lane per column).
ACCELERATOR_OVERHEAD = {
    "source": "yosys counts of Accelerator(4, C, 'pot4', 'uint8', k_max=64), C = 4 and "
              "8, minus those of its SystolicArray, its buffers and its requantizer "
              "multipliers (synth/arrays/accelerator_overhead.json); the accelerator "
              "of the working tree of 2026-11-22 07:00 UTC",
    "resources": {"comb_cells": (622, 430.25), "lut4_sites": (710, 467.5),
                  "lut4": (460, 295.5), "ccu2c": (125, 86.0), "pfumx": (40, 53.5),
                  "l6mux": (0, 0), "ff": (394, 90.5), "dpram": (15, 0)},
}


def _check_dimension(value, name: str) -> int:
    from ..hw.array import MAX_DIMENSION
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name}={value!r}: expected an int 1..{MAX_DIMENSION}")
    if not 1 <= value <= MAX_DIMENSION:
        raise ValueError(f"{name}={value!r}: expected an int 1..{MAX_DIMENSION}")
    return value


def _design_name(weight) -> tuple:
    """``(design name, Format)``: a bare ``intN`` / ``uintN`` weight means a DSP
    multiplier, as :class:`~potgen.hw.array.SystolicArray`'s ``unit="auto"`` builds."""
    from .designs import parse_design_name
    text = str(weight).strip().lower()
    try:
        fmt = parse_format(text)
    except (ValueError, TypeError):
        fmt = None
    if isinstance(fmt, IntFormat):
        text = f"{fmt}-dsp"
    try:
        fmt, _ = parse_design_name(text)
    except ValueError as e:
        raise ValueError(f"weight={weight!r}: {e}") from None
    return text, fmt


def _act_format(act) -> IntFormat:
    try:
        fmt = parse_format(act) if isinstance(act, str) else act
    except (ValueError, TypeError) as e:
        raise ValueError(f"act={act!r}: {e}") from None
    if not isinstance(fmt, IntFormat):
        raise ValueError(f"act={act!r}: expected an activation format intN or uintN")
    return fmt


def array_acc_bits(weight, act, *, acc_bits=None, k=64) -> int:
    """The accumulator width a :class:`~potgen.hw.array.SystolicArray` resolves.

    ``acc_bits=None`` (or ``"auto"``) is the datatype bound for ``k``, widened to one
    product, as the array computes it; an int is checked to hold one product.
    """
    from ..hw.product import interval_product
    _, fmt = _design_name(weight)
    act_fmt = _act_format(act)
    lo, hi = interval_product(act_fmt.min_level, act_fmt.max_level, fmt.min_level,
                              fmt.max_level)
    product_bits = bounds.signed_width(lo, hi)
    if acc_bits is None or acc_bits == "auto":
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"k={k!r}: the datatype bound needs a dot-product length "
                             "int >= 1")
        return max(bounds.datatype(act_fmt, fmt, k).bits, product_bits)
    if isinstance(acc_bits, bool) or not isinstance(acc_bits, int) \
            or not 2 <= acc_bits <= 64:
        raise ValueError(f"acc_bits={acc_bits!r}: expected None ('auto': the datatype "
                         "bound) or an int 2..64")
    if acc_bits < product_bits:
        raise ValueError(f"acc_bits={acc_bits}: narrower than one {fmt} x {act_fmt} "
                         f"product ({product_bits} signed bits)")
    return acc_bits


@functools.lru_cache(maxsize=1024)
def _pe_model(name: str, act: str, acc_bits: int, device, speed) -> dict:
    """The PE model's reports of the MAC PE and of its accumulator (memoised: an
    explorer asks for the same PE at many array sizes; callers never mutate them)."""
    from .designs import DesignSpec
    from .estimate import estimate
    mac = estimate(DesignSpec(name, act=act, kind="mac", acc_bits=acc_bits),
                   device=device, speed=speed)
    acc = estimate(DesignSpec(name, act=act, kind="accumulator", acc_bits=acc_bits),
                   device=device, speed=speed)
    return {"mac": mac, "accumulator": acc}


def pe_features(mac_resources: dict, acc_resources: dict, acc_bits: int) -> dict:
    """The per-PE features the logic coefficients of :data:`CALIBRATION` apply to.

    ``product`` / ``product_sites``: the PE model's comb cells / LUT4 sites of the MAC
    PE minus its accumulator's (the product path; at least 0); ``acc_bits``:
    ``P + 1``; ``mult18``: the PE's MULT18X18D (a DSP PE's product path is the block,
    and the LUTs around it follow their own rule).
    """
    return {"product": max(mac_resources["comb_cells"] - acc_resources["comb_cells"], 0),
            "product_sites": max(mac_resources["lut4_sites"]
                                 - acc_resources["lut4_sites"], 0),
            "acc_bits": acc_bits + 1, "mult18": mac_resources["mult18"]}


def array_flip_flops(rows: int, cols: int, *, dataflow: str, act_bits: int,
                     weight_bits: int, acc_bits: int, pe_ff: int, pipeline: int = 0,
                     product_stage_bits: int = 0) -> dict:
    """Flip-flops of a systolic array, counted from its structure (``potgen.hw.array``).

    Parameters
    ----------
    rows, cols : int
        Array size.
    dataflow : ``"os"`` or ``"ws"``
    act_bits, weight_bits, acc_bits : int
        ``A``, ``W`` (code bits) and ``P``.
    pe_ff : int
        Flip-flops of one MAC PE (OS: accumulator, overflow flag, pipeline stages).
    pipeline : int
        Product unit register stages ``L``.
    product_stage_bits : int
        WS: bits of one product pipeline stage.

    Returns
    -------
    dict
        ``{"pes": ..., "edges": ..., "tokens": ..., "total": ...}``: registers inside
        the PE cells, in the skew / deskew lines, and on the token lines.
    """
    R, C, A, W, P, L = rows, cols, act_bits, weight_bits, acc_bits, pipeline
    right, below = R * (C - 1), (R - 1) * C
    deskew = (P + 1) * C * (C - 1) // 2
    if dataflow == "os":
        # drain_valid: one per row of the last column; the top row's is ``last``
        # delayed by C + 2 + L, a register of the ``last`` line itself when R >= 2.
        pes = R * C * (pe_ff + (P + 1)) + right * A + below * 2 * W + R - (R >= 2)
        edges = A * R * R + W * C * (C + 1) // 2 + deskew
        # valid: delays 1 .. 2R + C - 2; last: 1 .. 2R + C - 1; capture: L more.
        tokens = (2 * R + C - 2) + (2 * R + C - 1) + L
    elif dataflow == "ws":
        pes = R * C * (3 * W + P + 1 + L * product_stage_bits) + right * A
        edges = A * (R * (R - 1) // 2 + 2 * R) + W * C * (C - 1) // 2 \
            + (P + 1) * (C * (C - 1) // 2 + C * (2 + L)) + deskew
        # load: delays 1 .. R + C - 1; out_valid: one line of the step latency.
        tokens = (R + C - 1) + (L + R + C + 1)
    else:
        raise ValueError(f"dataflow={dataflow!r}: allowed: os, ws")
    return {"pes": pes, "edges": edges, "tokens": tokens, "total": pes + edges + tokens}


def dp16kd_blocks(depth: int, width: int, granularity: int | None = None) -> int:
    """Fewest DP16KD blocks holding a ``depth x width`` memory (0 for an empty one).

    ``granularity``: the write granularity in bits (a buffer written one operand lane
    at a time). The block's byte enables cover 9-bit lanes, so each lane of at most
    9 bits takes a 9-bit byte lane of its own: 4 per block at 512 x 36, 2 at
    1024 x 18, 1 at 2048 x 9 (as yosys maps the accelerator's buffers).
    """
    if depth <= 0 or width <= 0:
        return 0
    if granularity is None or granularity >= width:
        return min(math.ceil(depth / d) * math.ceil(width / w) for d, w in DP16KD_SHAPES)
    if granularity > 9:
        raise ValueError(f"granularity={granularity}: lanes wider than a 9-bit byte lane "
                         "are not modelled")
    lanes = math.ceil(width / granularity)
    return min(math.ceil(depth / d) * math.ceil(lanes / (w // 9))
               for d, w in DP16KD_SHAPES if w >= 9)


def _harness(rows, cols, dataflow, act_bits, weight_bits, acc_bits) -> dict:
    """Timing-harness cells around the array (as :func:`potgen.flow.designs.harness_cells`)."""
    inputs = rows * act_bits + cols * weight_bits + 1
    inputs += 1 if dataflow == "os" else 1 + cols * (acc_bits + 1)
    outputs = 1 + cols * (acc_bits + 1)
    ff, lut4, width = inputs + 1 + outputs, 0, outputs
    while width > 1:
        groups = -(-width // 4)
        lut4 += groups - (1 if width % 4 == 1 else 0)
        ff += groups
        width = groups
    return {"lut4": lut4, "ff": ff}


def _calibration(dataflow: str) -> dict:
    if dataflow not in CALIBRATION.get("dataflows", {}):
        raise ValueError(f"dataflow={dataflow!r}: allowed: "
                         f"{', '.join(CALIBRATION.get('dataflows', {})) or 'none'}")
    return CALIBRATION["dataflows"][dataflow]


def _linear(coefficients: dict, values: dict) -> float:
    return sum(c * values[name] for name, c in coefficients.items())


def _logic(pe_model, acc_bits, dataflow, pes) -> dict:
    """Comb cells, LUT4 sites, CCU2C, PFUMX and L6MUX21 of ``pes`` PEs."""
    cal = _calibration(dataflow)
    mac = pe_model["mac"]["resources"]
    feats = pe_features(mac, pe_model["accumulator"]["resources"], acc_bits)
    comb = max(round(pes * _linear(cal["comb_cells"], feats)), 0)
    sites = max(round(pes * _linear(cal["lut4_sites"], feats)), 0)
    # Carry cells are the PE model's own (the accumulator's or partial sum's adder and
    # a multi-term product's adders; matched on every calibration array).
    ccu2c = min(pes * mac["ccu2c"], sites // 2)
    lut4 = max(sites - 2 * ccu2c, 0)
    muxes = max(comb - lut4 - ccu2c, 0)
    # PFUMX / L6MUX21 split as in the PE model (they take no LUT4 site).
    pe_muxes = mac["pfumx"] + mac["l6mux"]
    pfumx = round(muxes * mac["pfumx"] / pe_muxes) if pe_muxes else muxes
    return {"comb_cells": lut4 + ccu2c + muxes, "lut4_sites": lut4 + 2 * ccu2c,
            "lut4": lut4, "ccu2c": ccu2c, "pfumx": pfumx, "l6mux": muxes - pfumx}


def _report(design, dev, pkg, spd, resources, harness, fmax, segment, start, pe_model):
    design_resources = dict(resources)
    for key in ("lut4", "comb_cells", "lut4_sites"):
        design_resources[key] += harness["lut4"]
    design_resources["ff"] += harness["ff"]
    limits = {"TRELLIS_COMB": ("lut4_sites", dev.lut4), "TRELLIS_FF": ("ff", dev.ff),
              "MULT18X18D": ("mult18", dev.mult18), "DP16KD": ("dp16kd", dev.dp16kd)}
    # The block's own use: the harness is a measuring device, not part of the design.
    utilization = {bel: {"used": resources[key], "available": limit}
                   for bel, (key, limit) in limits.items()}
    fits = all(u["used"] <= u["available"] for u in utilization.values())
    worst = max(u["used"] / u["available"] for u in utilization.values())
    mac = pe_model["mac"]
    path_ns = 1000.0 / fmax
    return {
        "design": design,
        "device": dev.part,
        "package": pkg,
        "speed": spd,
        "seed": mac.get("seed"),
        "harness": True,
        "resources": resources,
        "design_resources": design_resources,
        "harness_resources": harness,
        "utilization": utilization,
        "utilization_max": round(worst, 4),
        "fits": fits,
        "fmax_mhz": round(fmax, 1),
        "freq_target_mhz": None,
        "critical_path": [{"type": "estimate", "from": None, "to": None,
                           "segment": segment, "delay_ns": round(path_ns, 3)}],
        "critical_path_ns": round(path_ns, 3),
        "critical_path_in_block": True,
        "tools": {"estimate": f"potgen-estimate-array-{CALIBRATION.get('version')} "
                              f"over {mac['tools']['estimate']}",
                  "yosys": mac["tools"].get("yosys"),
                  "nextpnr": mac["tools"].get("nextpnr")},
        "seconds": round(time.perf_counter() - start, 4),
        "seconds_by_step": {"estimate": round(time.perf_counter() - start, 4)},
        "cached": False,
        "cache_key": None,
        "build_dir": None,
    }


def _array_parts(rows, cols, weight, act, dataflow, acc_bits, k, device, speed):
    rows = _check_dimension(rows, "rows")
    cols = _check_dimension(cols, "cols")
    if dataflow not in ("os", "ws"):
        raise ValueError(f"dataflow={dataflow!r}: allowed: os, ws")
    name, fmt = _design_name(weight)
    act_fmt = _act_format(act)
    P = array_acc_bits(name, act_fmt, acc_bits=acc_bits, k=k)
    dev = _device(device)
    spd = check_speed(speed)
    pe_model = _pe_model(name, str(act_fmt), P, device, spd)
    pes = rows * cols
    resources = {key: 0 for key in RESOURCE_KEYS}
    resources.update(_logic(pe_model, P, dataflow, pes))
    ff = array_flip_flops(rows, cols, dataflow=dataflow, act_bits=act_fmt.bits,
                          weight_bits=fmt.bits, acc_bits=P,
                          pe_ff=pe_model["mac"]["resources"]["ff"])
    resources["ff"] = ff["total"]
    resources["mult18"] = pes * pe_model["mac"]["resources"]["mult18"]
    cal = _calibration(dataflow)
    dsp = pe_model["mac"]["resources"]["mult18"] > 0
    scale = min(cal["fmax_scale_dsp" if dsp else "fmax_scale"], 1.0)
    fmax = pe_model["mac"]["fmax_mhz"] * scale
    segment = (f"PE: {pe_model['mac']['critical_path'][0]['segment']}; array routing "
               f"derating x{scale:.3f}" + (" (to the MULT18X18D columns)" if dsp else ""))
    design = {"name": name, "label": f"{name} {rows}x{cols} {dataflow}", "kind": "array",
              "weight": str(fmt), "act": str(act_fmt),
              "multiplier": name.rsplit("-", 1)[1] if name.endswith(("-dsp", "-lut"))
              else "none",
              "pipeline": 0, "rows": rows, "cols": cols, "pes": pes,
              "dataflow": dataflow, "acc_bits": P,
              "acc_bits_choice": "auto" if acc_bits in (None, "auto") else acc_bits,
              "k": k, "overflow": "wrap", "flip_flops": ff}
    return dev, spd, pe_model, resources, design, fmax, segment, (act_fmt, fmt, P)


def estimate_array(rows, cols, weight, act, *, dataflow="os", acc_bits=None, device="85k",
                   speed=6, k=64, package=None) -> dict:
    """Estimate a ``rows x cols`` systolic array's synthesis report without any tool.

    Parameters
    ----------
    rows, cols : int
        Array size, 1..256.
    weight : str
        The PE's weight: a format (``pot4``, ``apot4``, ``sp2-4``; a bare ``int8`` means
        a MULT18X18D multiplier, as the array builds it) or a design name
        (``int8-lut``).
    act : str
        Activation format (``uint8``).
    dataflow : ``"os"`` or ``"ws"``
        Output- or weight-stationary.
    acc_bits : int or None
        Accumulator width; None is the datatype bound for ``k`` (the array's
        ``acc_bits="auto"``).
    device : str
        ``"12k"``, ``"25k"``, ``"45k"`` or ``"85k"``.
    speed : int
        Speed grade 6, 7 or 8.
    k : int
        Dot-product length the datatype bound covers (when ``acc_bits`` is None).
    package : str or None
        Package (default: the device's first).

    Returns
    -------
    dict
        A report with the keys of :func:`potgen.flow.synth.synthesize`'s for the array
        (``resources`` the array's own; ``design_resources`` with the timing harness),
        plus ``harness_resources``, ``utilization`` (the array against the device's
        limits), ``utilization_max`` (the fullest resource's share) and ``fits``.
    """
    start = time.perf_counter()
    dev, spd, pe_model, resources, design, fmax, segment, (act_fmt, fmt, P) = \
        _array_parts(rows, cols, weight, act, dataflow, acc_bits, k, device, speed)
    pkg = check_package(dev, package)
    harness = _harness(rows, cols, dataflow, act_fmt.bits, fmt.bits, P)
    return _report(design, dev, pkg, spd, resources, harness, fmax, segment, start,
                   pe_model)


def estimate_accelerator(rows, cols, weight, act, *, k_max=64, dataflow="os",
                         acc_bits=None, device="85k", speed=6, act_slots=4,
                         weight_slots=2, out_rows=None, package=None) -> dict:
    """Estimate the accelerator top (:class:`potgen.hw.accelerator.Accelerator`) around
    a ``rows x cols`` array: the array, its buffers, controller and requantizer.

    Parameters
    ----------
    rows, cols, weight, act, dataflow, device, speed, package
        As for :func:`estimate_array`.
    k_max : int
        Steps per buffer slot (the depth of one activation / weight slot); the
        datatype bound covers ``K = k_max`` when ``acc_bits`` is None.
    acc_bits : int or None
        Accumulator width (None: datatype bound for ``k_max``).
    act_slots, weight_slots : int
        Buffer slots (the accelerator's defaults 4 and 2).
    out_rows : int or None
        Output buffer depth in result rows (default ``2 * rows``).

    Returns
    -------
    dict
        As :func:`estimate_array`, with ``resources`` of the whole accelerator and
        ``breakdown``: ``array``, ``buffers`` (per buffer: depth, width, DP16KD) and
        ``control`` (controller and requantizer) resources.
    """
    start = time.perf_counter()
    if isinstance(k_max, bool) or not isinstance(k_max, int) or not 1 <= k_max <= 1 << 16:
        raise ValueError(f"k_max={k_max!r}: expected an int 1..65536 (steps per slot)")
    for name, value in (("act_slots", act_slots), ("weight_slots", weight_slots)):
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 16:
            raise ValueError(f"{name}={value!r}: expected an int 1..16")
    dev, spd, pe_model, array_res, design, fmax, segment, (act_fmt, fmt, P) = \
        _array_parts(rows, cols, weight, act, dataflow, acc_bits, k_max, device, speed)
    if out_rows is None:
        out_rows = 2 * rows
    if isinstance(out_rows, bool) or not isinstance(out_rows, int) or out_rows < 1:
        raise ValueError(f"out_rows={out_rows!r}: expected an int >= 1 (result rows)")
    pkg = check_package(dev, package)
    # The operand buffers are written one lane (operand) at a time.
    buffers = {
        "act": {"depth": act_slots * k_max, "width": rows * act_fmt.bits,
                "granularity": act_fmt.bits},
        "weight": {"depth": weight_slots * k_max, "width": cols * fmt.bits,
                   "granularity": fmt.bits},
        "out": {"depth": out_rows, "width": cols * (P + 1), "granularity": None},
    }
    for buf in buffers.values():
        if buf["depth"] <= LUTRAM_MAX_DEPTH:
            # yosys maps a shallow memory to LUT RAM (16 x 4 bits per cell).
            buf.update(dp16kd=0, dpram=math.ceil(buf["depth"] / 16)
                       * math.ceil(buf["width"] / 4))
        else:
            gran = buf["granularity"] if buf["granularity"] and \
                buf["granularity"] <= 9 else None
            buf.update(dp16kd=dp16kd_blocks(buf["depth"], buf["width"], gran), dpram=0)
    control = {key: 0 for key in RESOURCE_KEYS}
    for key, (constant, per_column) in ACCELERATOR_OVERHEAD["resources"].items():
        control[key] = max(round(constant + per_column * cols), 0)
    # One requantization lane per column: its P x 16-bit multiplier on MULT18X18D.
    control["mult18"] = cols * math.ceil(P / 18)
    resources = dict(array_res)
    for key in RESOURCE_KEYS:
        resources[key] += control[key]
    resources["dp16kd"] += sum(b["dp16kd"] for b in buffers.values())
    resources["dpram"] += sum(b["dpram"] for b in buffers.values())
    design.update({"component": "Accelerator", "k_max": k_max, "act_slots": act_slots,
                   "weight_slots": weight_slots, "out_rows": out_rows,
                   "label": f"accelerator {design['label']}"})
    # The accelerator has its own pins; no timing harness around it.
    report = _report(design, dev, pkg, spd, resources, {"lut4": 0, "ff": 0}, fmax,
                     segment, start, pe_model)
    report["harness"] = False
    report["breakdown"] = {"array": array_res, "buffers": buffers, "control": control}
    return report
