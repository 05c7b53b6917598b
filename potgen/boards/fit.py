"""Does a board design fit its device? Answered from the estimate, before any tool runs.

:func:`estimate_board_design` gives the resources and Fmax of a whole board design
(accelerator, self-test, host link) without running yosys or nextpnr;
:func:`check_fit` turns it into a verdict against the board's device limits
(:mod:`potgen.flow.devices`, where the 12F has its own, smaller limits).

The accelerator's figure comes from ``potgen.flow.estimate_array.estimate_accelerator``
when that module is installed. Otherwise :func:`fallback_accelerator_estimate`
builds a deliberately conservative one from the fitted per-PE model of
:func:`potgen.flow.estimate.estimate` (one :class:`~potgen.hw.MacPE` times
``rows * cols``) plus counted buffers and documented per-column / fixed overheads;
swapping the source means changing :func:`accelerator_estimate` only.
"""

from __future__ import annotations

import math

from ..flow.devices import check_fit as _device_check_fit
from ..flow.devices import device as _device

__all__ = ["estimate_board_design", "check_fit", "accelerator_estimate",
           "fallback_accelerator_estimate", "LINK_OVERHEAD", "COLUMN_OVERHEAD",
           "CONTROL_OVERHEAD"]

#: Host link (UART, framing, CRC, replies) and LED logic, LUT4 sites / FF. Generous:
#: a UART pair with a CRC-checked frame parser is a few hundred cells.
LINK_OVERHEAD = {"lut4_sites": 900, "ff": 700}
#: Accelerator controller, status counter and command decode.
CONTROL_OVERHEAD = {"lut4_sites": 400, "ff": 250}
#: Per column: requantizer lane (its multiplier is counted in MULT18X18D), the
#: drain multiplexer and the per-column requantization registers.
COLUMN_OVERHEAD = {"lut4_sites": 220, "ff": 120}
#: Safety factor on the fitted per-PE figure (array wiring, forwarding registers
#: the PE model does not count, placement packing).
PE_MARGIN = 1.25
#: DP16KD geometry yosys uses for a simple dual-port RAM: 512 x 36 (1024 x 18, ...).
_BRAM_BITS = 18 * 1024


def _silence(obj, seen=None) -> None:
    """Mark a design built only to be measured, and every elaboratable inside it, as
    used: it is never elaborated, and Amaranth would warn about each part when it is
    collected."""
    from amaranth.hdl import Elaboratable
    seen = set() if seen is None else seen
    if id(obj) in seen:
        return
    seen.add(id(obj))
    if isinstance(obj, Elaboratable):
        obj._MustUse__silence = True
        children = vars(obj).values()
    elif isinstance(obj, dict):
        children = obj.values()
    elif isinstance(obj, (list, tuple)):
        children = obj
    elif type(obj).__name__ == "ndarray" and obj.dtype == object:
        children = obj.ravel().tolist()
    else:
        return
    for child in children:
        _silence(child, seen)


def _bram_blocks(width: int, depth: int) -> int:
    """DP16KD blocks of one RAM, the widest configuration that holds ``depth`` words."""
    for d, w in ((512, 36), (1024, 18), (2048, 9), (4096, 4), (8192, 2), (16384, 1)):
        if depth <= d:
            return math.ceil(width / w)
    return math.ceil(width * depth / _BRAM_BITS)


def fallback_accelerator_estimate(accelerator, device: str = "85k", speed: int = 6) -> dict:
    """Conservative resources and Fmax of an accelerator from the per-PE model.

    Returns ``{"resources": {...}, "fmax_mhz": float, "source": str}``.
    """
    from ..flow.estimate import estimate
    from ..hw import MacPE
    array = accelerator.array
    pes = []
    for fmt in dict.fromkeys(array.column_formats):
        pe = MacPE(fmt, array.act_format, acc_bits=accelerator.acc_bits,
                   overflow=array.overflow_mode, pipeline=array.pipeline)
        _silence(pe)
        count = sum(1 for f in array.column_formats if f == fmt) * accelerator.rows
        pes.append((estimate(pe, device=device, speed=speed), count))
    n_pe = accelerator.rows * accelerator.cols
    lut = sum(r["resources"]["lut4_sites"] * c for r, c in pes) * PE_MARGIN
    # Forwarding registers of the systolic array: activation and weight per PE.
    ff = sum(r["resources"]["ff"] * c for r, c in pes) + \
        n_pe * (accelerator.act_bits + array.weight_bits + 2)
    mult18 = sum(r["resources"]["mult18"] * c for r, c in pes)
    cols = accelerator.cols
    lut += CONTROL_OVERHEAD["lut4_sites"] + cols * COLUMN_OVERHEAD["lut4_sites"]
    ff += CONTROL_OVERHEAD["ff"] + cols * COLUMN_OVERHEAD["ff"]
    requant = accelerator.requantizer
    mult18 += cols * math.ceil((accelerator.acc_bits + 1) / 18) * \
        math.ceil(requant.multiplier_bits / 18)
    meta = accelerator.metadata()["buffers"]
    dp16kd = sum(_bram_blocks(b["lanes"] * b["lane_bits"], b["depth"] * b.get("slots", 1))
                 for b in meta.values())
    fmax = min(r["fmax_mhz"] for r, _ in pes)
    return {"resources": {"lut4_sites": math.ceil(lut), "ff": int(ff),
                          "mult18": int(mult18), "dp16kd": int(dp16kd)},
            "fmax_mhz": float(fmax),
            "source": f"per-PE model x {n_pe} x {PE_MARGIN} + buffers + overheads "
                      "(potgen.boards.fit.fallback_accelerator_estimate)"}


def accelerator_estimate(accelerator, device: str = "85k", speed: int = 6) -> dict:
    """The accelerator's estimated resources and Fmax (the one place to swap models).

    Uses ``potgen.flow.estimate_array.estimate_accelerator`` when it is installed and
    models this accelerator; otherwise (or when it refuses the design) the
    conservative :func:`fallback_accelerator_estimate`, with the reason in ``source``.
    """
    try:
        from ..flow.estimate_array import estimate_accelerator
    except ImportError:
        return fallback_accelerator_estimate(accelerator, device, speed)
    meta = accelerator.metadata()
    try:
        report = estimate_accelerator(
            meta["rows"], meta["cols"], meta["weight"], meta["act"], k_max=meta["k_max"],
            acc_bits=meta["acc_bits"], device=device, speed=speed,
            act_slots=meta["act_slots"],
            weight_slots=meta["weight_slots"], out_rows=meta["buffers"]["out"]["depth"])
    except (ValueError, TypeError, KeyError) as e:
        fallback = fallback_accelerator_estimate(accelerator, device, speed)
        fallback["source"] += f"; estimate_accelerator refused the design: {e}"
        return fallback
    resources = report.get("design_resources") or report["resources"]
    return {"resources": {k: int(resources.get(k) or 0)
                          for k in ("lut4_sites", "ff", "mult18", "dp16kd")},
            "fmax_mhz": report.get("fmax_mhz"),
            "source": "potgen.flow.estimate_array.estimate_accelerator"}


def estimate_board_design(config) -> dict:
    """Estimated resources / Fmax of the whole board design of a :class:`BuildConfig`."""
    info = config.board_info
    accelerator = config.accelerator()
    _silence(accelerator)
    est = accelerator_estimate(accelerator, info.device, info.speed)
    resources = dict(est["resources"])
    resources["lut4_sites"] += LINK_OVERHEAD["lut4_sites"]
    resources["ff"] += LINK_OVERHEAD["ff"]
    if config.self_test:
        # Vector ROMs in LUTs (16 words per LUT4 per bit), compare and counters.
        k = min(config.k_max, 8)
        words = 4 + k * (config.rows + config.cols)
        rom_bits = words * 32 + config.rows * config.cols * (accelerator.data_out_bits)
        resources["lut4_sites"] += math.ceil(rom_bits / 16) + 150
        resources["ff"] += 80
    dev = _device(info.device)
    return {"board": info.name, "device": dev.part, "resources": resources,
            "limits": dev.limits(), "fmax_mhz": est["fmax_mhz"],
            "clock_mhz": config.effective_clock_mhz, "source": est["source"]}


def check_fit(config) -> tuple:
    """``(estimate, problems)``: problems lists the exceeded resources (empty: fits)."""
    est = estimate_board_design(config)
    return est, _device_check_fit(_device(config.board_info.device), est["resources"])
