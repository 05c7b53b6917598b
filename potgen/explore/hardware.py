"""The explorer's view of potgen's hardware: resources, accelerator timing, simulation.

Three adapters, each the only place the explorer touches another module's API:

* :func:`design_resources` -- resources and Fmax of an accelerator configuration.
  Uses ``potgen.flow.estimate_array.estimate_accelerator`` when that module exists;
  otherwise builds the figure from :func:`potgen.flow.estimate.estimate` of one
  :class:`~potgen.hw.mac.MacPE` per weight format (the calibrated PE model), scaled by
  the PE count, plus the array's documented forwarding / skew registers, block RAM
  for the buffers and the per-column requantizers (see :func:`design_resources`).
* :func:`config_from_accelerator` -- the :class:`~potgen.explore.cost.ArrayConfig`
  (timing model) of a built :class:`~potgen.hw.accelerator.Accelerator`, from its
  ``metadata()``.
* :func:`model_vs_sim` -- runs GEMMs on the simulated accelerator
  (:class:`~potgen.runtime.driver.AcceleratorDriver` with the Amaranth back end) and
  compares its ``cycles`` counter with :func:`potgen.explore.cost.gemm_cost`.
"""

from __future__ import annotations

import copy
import functools
import importlib

import numpy as np

from .. import bounds
from ..flow.devices import check_fit
from ..flow.devices import device as _device
from ..formats import IntFormat, parse_format
from .cost import ArrayConfig, gemm_cost

__all__ = ["design_resources", "config_from_accelerator", "model_vs_sim",
           "DEFAULT_SIM_CASES", "bram_blocks", "acc_bits_for"]

#: DP16KD aspect ratios (depth, width).
_DP16KD_SHAPES = ((512, 36), (1024, 18), (2048, 9), (4096, 4), (8192, 2), (16384, 1))
#: Memories at most this deep are mapped to distributed RAM / registers, not DP16KD.
_LUTRAM_DEPTH = 16
#: Fixed controller cost (command decoder, counters, stream handshakes), LUT4 / FF.
_CONTROLLER = {"lut4": 250, "ff": 200}

#: Small GEMMs on small arrays for :func:`model_vs_sim`: (rows, cols, weight, act,
#: k_max, M, K, N, requant). Shapes that do not divide the array, K < rows, K longer
#: than a slot, one tile and many.
DEFAULT_SIM_CASES = (
    (2, 3, "pot4", "uint8", 16, 5, 7, 4, False),
    (2, 3, "pot4", "uint8", 16, 9, 24, 10, True),
    (2, 2, "int4", "uint4", 8, 8, 20, 8, True),
    (3, 2, "apot4", "uint8", 12, 7, 2, 3, False),
    (4, 4, "sp2-4", "uint8", 16, 16, 16, 16, True),
    (2, 4, "upot:{0,1,4}+{0,2}", "uint6", 8, 12, 30, 9, True),
    (4, 4, "pot4", "uint8", 32, 24, 32, 24, True),
)


def acc_bits_for(weight_formats, act_fmt, k: int) -> int:
    """Accumulator width of an array built for ``k``: the widest datatype bound."""
    act_fmt = parse_format(act_fmt)
    return max(bounds.datatype(act_fmt, parse_format(f), k).bits for f in weight_formats)


def bram_blocks(depth: int, width: int) -> int:
    """DP16KD blocks of a ``depth x width`` memory (the cheapest aspect ratio).

    Memories of at most 16 words go to distributed RAM or registers: 0 blocks.
    """
    if depth <= _LUTRAM_DEPTH or width == 0:
        return 0
    return min(-(-width // w) * -(-depth // d) for d, w in _DP16KD_SHAPES)


def _estimate_array_module():
    try:
        return importlib.import_module("potgen.flow.estimate_array")
    except ModuleNotFoundError as e:
        if e.name != "potgen.flow.estimate_array":
            raise
        return None


def _measured(component):
    """Mark a component built only to be estimated (never elaborated) as used, so
    Amaranth does not warn when it is collected."""
    for obj in (component, getattr(component, "product_unit", None),
                getattr(component, "accumulator", None)):
        if obj is not None:
            obj._MustUse__silence = True
    return component


@functools.lru_cache(maxsize=4096)
def _pe_report(weight: str, act: str, acc_bits: int, device: str, speed: int) -> tuple:
    from ..flow.estimate import estimate
    from ..hw.mac import MacPE
    report = estimate(_measured(MacPE(weight, act, acc_bits=acc_bits)), device=device, speed=speed)
    return dict(report["resources"]), float(report["fmax_mhz"])


@functools.lru_cache(maxsize=4096)
def _product_report(weight: str, act: str, device: str, speed: int) -> dict:
    from ..flow.estimate import estimate
    from ..hw.product import product_unit
    report = estimate(_measured(product_unit(weight, act)), device=device, speed=speed)
    return dict(report["resources"])


def _extra_format(weight: str, act: str, acc_bits: int, device: str, speed: int) -> dict:
    """Per PE, what running one more format costs: its product unit and an
    ``acc_bits``-wide multiplexer (one LUT4 per bit) choosing the product."""
    extra = _product_report(weight, act, device, speed)
    return {"lut4": extra.get("lut4_sites", 0) + acc_bits, "ff": extra.get("ff", 0),
            "mult18": extra.get("mult18", 0)}


@functools.lru_cache(maxsize=1)
def _estimate_array_status() -> tuple:
    """``(module, None)`` when ``potgen.flow.estimate_array`` answers a probe design,
    else ``(None, reason)``: one model serves every design point of a search, so
    the figures stay comparable."""
    module = _estimate_array_module()
    if module is None or not hasattr(module, "estimate_accelerator"):
        return None, "potgen.flow.estimate_array is not available"
    try:
        module.estimate_accelerator(4, 4, "pot4", "uint8", k_max=16, dataflow="os")
        module.estimate_accelerator(4, 4, "pot4", "uint8", k_max=16, dataflow="ws")
    except (ValueError, KeyError, TypeError) as e:
        return None, f"potgen.flow.estimate_array refused a probe design: {e}"
    return module, None


def _fallback_base(rows, cols, weight, act_fmt, P, k_max, dataflow, device, speed) -> tuple:
    """Resources and Fmax of a one-format accelerator without estimate_array."""
    pe_res, fmax = _pe_report(weight, str(act_fmt), P, device, speed)
    A, W = act_fmt.bits, parse_format(weight).bits
    pes = rows * cols
    if dataflow == "os":
        ff_pe, lut_pe = (A + 2) + 2 * W + (P + 1), P + 1
    else:
        ff_pe, lut_pe = (A + 1) + 3 * W + (P + 1), P
    edge_ff = rows * rows * (A + 2) + cols * (cols + 1) * W // 2 \
        + cols * (cols - 1) * (P + 1) // 2
    brams = (bram_blocks(4 * k_max, rows * A) + bram_blocks(2 * k_max, cols * W)
             + bram_blocks(2 * rows if dataflow == "os" else k_max, cols * (P + 1)))
    resources = {
        "lut4": int(pes * (pe_res["lut4_sites"] + lut_pe) + cols * 3 * (P + 16)
                    + _CONTROLLER["lut4"]),
        "ff": int(pes * (pe_res["ff"] + ff_pe) + edge_ff + _CONTROLLER["ff"]),
        "mult18": int(pes * pe_res["mult18"] + cols * -(-P // 18)),
        "dp16kd": int(brams),
    }
    return resources, fmax


def design_resources(rows: int, cols: int, weights, act, *, k_max: int = 64,
                     dataflow: str = "os", device: str = "85k", speed: int = 6) -> dict:
    """Resources and Fmax of an accelerator running every weight format in ``weights``.

    Parameters
    ----------
    rows, cols : int
    weights : sequence of str
        The weight formats the array must run (one per layer; duplicates ignored).
    act : str or IntFormat
        Activation format of the array (the widest layer input).
    k_max : int
        Buffer depth, also the ``K`` the accumulators are sized for.
    dataflow : {"os", "ws"}
    device : str
    speed : int

    Returns
    -------
    dict
        ``resources`` (``lut4`` -- LUT4 sites, carry cells counted twice as in
        ``potgen estimate``'s ``lut4_sites`` --, ``ff``, ``mult18``, ``dp16kd``),
        ``fmax_mhz``, ``acc_bits``, ``pe`` (one PE's resources), ``pe_by_format``
        (the MAC PE of each format alone, with the accumulator), ``fits`` and
        ``over`` (the device limits exceeded), ``source`` (which model answered).

    Notes
    -----
    The accelerator of the costliest format (by its PE's LUT4 plus 20 per MULT18X18D)
    is estimated by ``potgen.flow.estimate_array.estimate_accelerator`` when it
    answers, else by the fallback below; each further format adds to every PE its
    product unit (:func:`potgen.flow.estimate.estimate`) and an ``acc_bits``-wide
    multiplexer. The same model serves every point of a search.

    Fallback model: ``rows * cols`` PEs as
    estimated by :func:`potgen.flow.estimate.estimate`; per PE the array's forwarding
    registers (OS: ``A + 2`` right, ``2W`` down, ``P + 1`` drain flip-flops and a
    ``P + 1``-bit multiplexer; WS: ``A + 1``, ``3W``, ``P + 1`` and a ``P``-bit adder);
    the edge skew lines (``rows^2 (A + 2) + cols (cols + 1) W / 2 + cols (cols - 1)
    (P + 1) / 2`` flip-flops); block RAM for 4 activation and 2 weight slots of
    ``k_max`` steps and an output FIFO of ``2 rows`` rows (:func:`bram_blocks`); one
    requantizer per column (a ``P x 16`` multiply on ``ceil(P / 18)`` MULT18X18D, about
    ``3 (P + 16)`` LUT4 of rounding, shift and clamp); a controller of 250 LUT4 / 200 FF.
    Fmax is the slowest PE's.
    """
    weights = tuple(sorted({str(parse_format(w)) for w in weights}))
    if not weights:
        raise ValueError("weights: at least one weight format is needed")
    act_fmt = parse_format(act)
    if not isinstance(act_fmt, IntFormat):
        raise ValueError(f"act={act!r}: activations must be intN / uintN")
    dev = _device(device)
    result = _design_resources(rows, cols, weights, str(act_fmt), k_max, dataflow, dev.key,
                               speed)
    return copy.deepcopy(result)     # the cached dict stays untouched


@functools.lru_cache(maxsize=65536)
def _design_resources(rows, cols, weights, act, k_max, dataflow, device, speed) -> dict:
    act_fmt = parse_format(act)
    dev = _device(device)
    P = acc_bits_for(weights, act_fmt, k_max)
    # The costliest format's accelerator is the base; every other format adds its
    # product unit and a multiplexer to each PE.
    pe_cost = {w: _pe_report(w, str(act_fmt), P, dev.key, speed) for w in weights}
    base = max(weights, key=lambda w: (pe_cost[w][0]["lut4_sites"]
                                       + 20 * pe_cost[w][0]["mult18"], w))
    module, reason = _estimate_array_status()
    if module is not None:
        report = module.estimate_accelerator(rows, cols, base, str(act_fmt), k_max=k_max,
                                             dataflow=dataflow, acc_bits=P,
                                             device=dev.key, speed=speed)
        res = report["resources"]
        resources = {"lut4": int(res.get("lut4_sites", res.get("lut4", 0))),
                     "ff": int(res.get("ff", 0)), "mult18": int(res.get("mult18", 0)),
                     "dp16kd": int(res.get("dp16kd", 0))}
        fmax = float(report["fmax_mhz"])
        source = "potgen.flow.estimate_array.estimate_accelerator"
    else:
        resources, fmax = _fallback_base(rows, cols, base, act_fmt, P, k_max, dataflow,
                                         dev.key, speed)
        source = ("potgen.flow.estimate MAC PE x PEs + array registers, buffers, "
                  f"requantizers, controller ({reason})")
    by_format = {w: {"lut4": r["lut4_sites"], "ff": r["ff"], "mult18": r["mult18"]}
                 for w, (r, _) in pe_cost.items()}
    pe = dict(by_format[base])
    for w in weights:
        if w == base:
            continue
        extra = _extra_format(w, str(act_fmt), P, dev.key, speed)
        for key in ("lut4", "ff", "mult18"):
            resources[key] += rows * cols * extra[key]
            pe[key] += extra[key]
        fmax = min(fmax, pe_cost[w][1])
    over = check_fit(dev, {"lut4_sites": resources["lut4"], "ff": resources["ff"],
                           "mult18": resources["mult18"], "dp16kd": resources["dp16kd"]})
    return {"resources": resources, "fmax_mhz": round(fmax, 1), "acc_bits": P, "pe": pe,
            "pe_by_format": by_format, "fits": not over, "over": over, "source": source,
            "device": dev.part}


def config_from_accelerator(accelerator) -> ArrayConfig:
    """The timing model of a built accelerator, from its ``metadata()``.

    Version 1 of :mod:`potgen.hw.accelerator` runs its commands one after another with
    one operand per ``din`` word and one result per ``dout`` word
    (``timing="sequential"``). Version 2 (metadata with a ``timing`` section) runs
    load, compute and drain engines concurrently on packed words
    (``timing="overlapped"``, ``packed``, ``dout_lanes`` results per word, one
    ``din`` word per column of requantization parameters).
    """
    meta = accelerator if isinstance(accelerator, dict) else accelerator.metadata()
    if meta.get("kind") != "accelerator":
        raise TypeError("accelerator: expected an Accelerator or its metadata() dict")
    common = dict(rows=meta["rows"], cols=meta["cols"], dataflow=meta.get("dataflow", "os"),
                  k_max=meta["k_max"],
                  word_bits=meta.get("commands", {}).get("data_in_bits", 32),
                  pipeline=meta.get("pipeline", 0),
                  requant_latency=meta.get("requant_latency", 1))
    timing = meta.get("timing")
    if isinstance(timing, dict):
        return ArrayConfig(**common, packed=True, timing="overlapped",
                           act_slots=int(meta.get("act_slots", 4)),
                           weight_slots=int(meta.get("weight_slots", 2)),
                           requant_banks=int(meta.get("requant_banks", 2)),
                           out_rows=int(timing.get("out_rows", 2 * meta["rows"])),
                           outputs_per_word=int(meta.get("dout_lanes", 1)),
                           requant_words_per_column=int(
                               timing.get("requant_words_per_column", 1)))
    return ArrayConfig(**common, packed=False, timing="sequential", outputs_per_word=1,
                       requant_words_per_column=3)


def _cycles_module():
    try:
        return importlib.import_module("potgen.runtime.cycles")
    except ModuleNotFoundError as e:
        if e.name != "potgen.runtime.cycles":
            raise
        return None


@functools.lru_cache(maxsize=65536)
def schedule_cycles(config: ArrayConfig, M: int, K: int, N: int, weight: str, act: str,
                    requant: bool) -> int | None:
    """Exact busy cycles from the accelerator's own schedule model, where one exists.

    :mod:`potgen.runtime.cycles` replays the driver's command plan through the
    accelerator's timing rules (equal to the simulated ``cycles`` counter). It covers
    the accelerator potgen builds, output- and weight-stationary (the latter with its
    default single partial-sum tile), with concurrent engines
    (``config.timing == "overlapped"``). Returns ``None`` elsewhere (other timings, a
    weight-stationary slot shallower than the array's rows, or no such module), where
    :func:`~potgen.explore.cost.gemm_cost`'s analytic figure stands.
    """
    module = _cycles_module()
    if module is None or config.timing != "overlapped" \
            or not hasattr(module, "model_metadata") \
            or (config.dataflow == "ws" and config.k_max < config.rows):
        return None
    meta = module.model_metadata(config.rows, config.cols, weight, act,
                                 dataflow=config.dataflow,
                                 k_max=config.k_max, k_total_max=max(K, config.k_max),
                                 pipeline=config.pipeline, act_slots=config.act_slots,
                                 weight_slots=config.weight_slots,
                                 dout_lanes=config.outputs_per_word,
                                 requant_pipeline=config.requant_latency)
    return int(module.gemm_cycles(meta, M, K, N, requant=requant).total)


def _simulate(case, rng):
    from ..hw.accelerator import Accelerator
    from ..runtime.amaranth_backend import AmaranthBackend
    from ..runtime.driver import AcceleratorDriver, RequantParams

    rows, cols, weight, act, k_max, M, K, N, requant = case
    accel = Accelerator(rows, cols, weight, act, k_max=k_max, k_total_max=max(K, k_max))
    driver = AcceleratorDriver(accel, AmaranthBackend(accel))
    act_fmt, w_fmt = parse_format(act), parse_format(weight)
    acts = rng.integers(act_fmt.min_level, act_fmt.max_level + 1, (M, K))
    codes = rng.integers(0, 1 << w_fmt.bits, (K, N))
    rq = RequantParams(multiplier=1, shift=4, zero_point=0, relu=True) if requant else None
    result = driver.gemm(acts, codes, rq)
    meta = accel.metadata()
    config = config_from_accelerator(meta)
    model = gemm_cost(config, M, K, N, weight_bits=w_fmt.bits, act_bits=act_fmt.bits,
                      acc_bits=meta["acc_bits"], requant=requant).cycles
    schedule = schedule_cycles(config, M, K, N, str(w_fmt), str(act_fmt), requant)
    return int(result.cycles), model, schedule


def model_vs_sim(cases=DEFAULT_SIM_CASES, seed: int = 0, progress=None) -> dict:
    """Cycle model against the simulated accelerator on small GEMMs.

    Parameters
    ----------
    cases : sequence of tuple
        ``(rows, cols, weight, act, k_max, M, K, N, requant)`` each.
    seed : int
        Seed of the random operands.
    progress : callable or None
        Called once per finished case (e.g. a tqdm ``update``).

    Returns
    -------
    dict
        ``cases`` (each with the shape, ``sim_cycles``, ``explorer_cycles`` -- the
        figure the search uses: :func:`schedule_cycles` where it applies, else the
        analytic model -- ``analytic_cycles`` and both relative errors),
        ``max_relative_cycle_error`` (of the explorer's figures),
        ``analytic_max_relative_cycle_error`` and ``..._mean_...``, ``backend``.
    """
    rng = np.random.default_rng(seed)
    rows_out = []
    for case in cases:
        sim, model, schedule = _simulate(case, rng)
        rows, cols, weight, act, k_max, M, K, N, requant = case
        used = schedule if schedule is not None else model
        rows_out.append({"rows": rows, "cols": cols, "weight": weight, "act": act,
                         "k_max": k_max, "M": M, "K": K, "N": N, "requant": requant,
                         "sim_cycles": sim, "explorer_cycles": used,
                         "cycles_source": "schedule" if schedule is not None else "analytic",
                         "analytic_cycles": model,
                         "relative_error": abs(used - sim) / sim,
                         "analytic_relative_error": abs(model - sim) / sim})
        if progress is not None:
            progress()
    return {"backend": "amaranth", "cases": rows_out,
            "max_relative_cycle_error": max(r["relative_error"] for r in rows_out),
            "analytic_max_relative_cycle_error": max(r["analytic_relative_error"]
                                                     for r in rows_out),
            "analytic_mean_relative_cycle_error": float(np.mean(
                [r["analytic_relative_error"] for r in rows_out]))}
