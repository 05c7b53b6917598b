"""Calibration of :mod:`potgen.flow.estimate`: the fit set, its synthesis and the fit.

The estimate's coefficients (``potgen/data/estimate_model.json``) are fitted by least
squares to real synthesis reports. After a generator or tool change, recalibrate::

    python -m potgen.flow.fit_estimate --synthesize -j 2   # rerun the fit set, ~30 min
    python -m potgen.flow.fit_estimate                     # refit from the result files

(from a checkout of the repository: the result files and the model file are paths in
it).

``--synthesize`` runs :func:`fit_set` (designs chosen to span every feature of the
model: formats, activation widths, accumulator widths, overflow rules, sign handling,
pipelining, lone product units, accumulators and adder trees, and a few speed grades
and devices) through :func:`potgen.flow.synth.synthesize_many` and writes
``synth/estimate_fit/results.json``. The fit then reads that file together with the
committed studies (:data:`DEFAULT_SOURCES`), leaves out the :data:`HELD_OUT`
configurations (the ones the test suite checks the estimate against), and writes the
model with its provenance (tool versions, source files and their SHA-256, date) and
its residuals.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import sys
from pathlib import Path

from amaranth.hdl import signed, unsigned

from .designs import DesignSpec

__all__ = ["DEFAULT_SOURCES", "FIT_RESULTS", "HELD_OUT", "MODEL_VERSION", "fit_set",
           "synthesize_fit_set", "load_reports", "fit", "main"]

_REPO = Path(__file__).resolve().parents[2]

#: Result files the model is fitted to (relative to the repository root).
FIT_RESULTS = "synth/estimate_fit/results.json"
DEFAULT_SOURCES = ("synth/pe_comparison/results.json",
                   "synth/accumulator_study/results.json",
                   FIT_RESULTS)

#: Configurations kept out of every fit: the test suite synthesizes them and checks the
#: estimate against them (DesignSpec keyword arguments).
HELD_OUT = (
    dict(name="apot5", act="int6", kind="mac", acc_bits="auto"),
    dict(name="sp2-5", act="uint8", kind="mac", acc_bits=28),
    dict(name="int4-lut", act="int8", kind="mac", acc_bits="auto"),
    dict(name="pot3", act="uint8", kind="mac", acc_bits="auto"),
)


def _spec_list():
    """DesignSpecs of the fit set at the default flow options (85k, speed 6)."""
    specs = []

    def add(names, acts, **kw):
        for act in acts:
            for name in names:
                specs.append(DesignSpec(name, act=act, **kw))

    # MAC PEs on the shift-add unit: every family, several activation formats.
    shift_add = ["pot2", "pot3-nz", "pot4", "pot4-nz", "pot5", "apot3", "apot4", "apot5",
                 "apot6", "apot7", "sp2-3", "sp2-4", "sp2-5", "sp2-6", "sp2-7", "sp2-8",
                 "upot:{0,1,4,16}+{0,2,8}", "upot:u{0,1,2,4}+{0,8}",
                 "upot:{0,1,8}+{0,2,16}+{0,4}"]
    in_pe_comparison = {"pot4", "pot4-nz", "pot5", "apot4", "apot5", "sp2-4", "sp2-5"}
    add([n for n in shift_add if n not in in_pe_comparison], ["uint8", "uint4"])
    add(shift_add, ["int8"])
    add(["pot3", "pot4", "apot4", "sp2-5", "apot6", "upot:{0,1,4,16}+{0,2,8}"], ["int6"])
    add(["pot4", "apot4", "sp2-4", "pot3-nz"], ["uint12"])
    add(["pot4", "apot4", "sp2-6"], ["uint2", "int16"])
    add(["pot3", "apot4"], ["uint6"])
    # Accumulator width, overflow rule, sign handling and pipelining.
    add(["pot4", "apot4", "sp2-4", "pot4-nz"], ["uint8"], acc_bits=32)
    add(["apot6", "sp2-6"], ["int8"], acc_bits=40)
    add(["pot4", "apot4", "sp2-4", "apot5", "pot5-nz"], ["uint8"], overflow="saturate")
    add(["apot4", "pot4"], ["int8"], overflow="saturate", acc_bits=24)
    add(["pot4", "apot4", "sp2-4", "apot5", "pot5"], ["uint8"], sign="negate")
    add(["pot4", "sp2-5"], ["int8"], sign="negate")
    add(["pot4", "apot4", "sp2-4", "apot5", "int8-lut", "int8-dsp", "int4-lut"],
        ["uint8"], pipeline=1)
    add(["pot4", "int8-lut"], ["uint8"], pipeline=2)

    # MAC PEs with a multiplier in LUTs.
    add(["int2-lut", "int3-lut", "int5-lut", "int6-lut", "int8-lut", "uint4-lut"],
        ["int8"])
    add(["int2-lut", "int3-lut", "int6-lut", "int7-lut", "uint4-lut", "uint8-lut",
         "int10-lut"], ["uint8"])
    add(["int2-lut", "int3-lut", "int6-lut", "uint4-lut"], ["uint4"])
    add(["int3-lut", "int4-lut", "int8-lut"], ["int4"])
    add(["int4-lut", "int6-lut"], ["uint6"])
    add(["int4-lut", "int8-lut"], ["uint12"])
    add(["int8-lut", "int4-lut"], ["uint8"], overflow="saturate")
    add(["int8-lut"], ["uint8"], acc_bits=32)
    add(["pot4-lut", "apot4-lut", "sp2-5-lut"], ["uint8"])
    add(["int3-lut", "int6-lut", "int5-lut"], ["int6"])
    add(["int5-lut", "int6-lut"], ["int4"])
    add(["uint6-lut", "int12-lut"], ["uint8"])
    add(["int6-lut"], ["uint12"])
    # MAC PEs on a MULT18X18D.
    add(["int2-dsp", "int6-dsp", "uint8-dsp", "int16-dsp"], ["uint8"])
    add(["int8-dsp", "int4-dsp"], ["int8", "uint16"])
    add(["int8-dsp"], ["uint8"], overflow="saturate")
    add(["int8-dsp"], ["uint8"], acc_bits=48)
    add(["pot4-dsp", "apot4-dsp"], ["uint8"])

    # Product units alone.
    add(["pot3", "pot4", "pot4-nz", "pot5", "apot4", "apot5", "apot6", "sp2-4", "sp2-5",
         "sp2-7", "upot:{0,1,4,16}+{0,2,8}", "upot:{0,1,8}+{0,2,16}+{0,4}"], ["uint8"],
        kind="product")
    add(["pot4", "apot4", "sp2-5", "pot5-nz"], ["int8"], kind="product")
    add(["pot4", "apot4", "sp2-3"], ["uint4"], kind="product")
    add(["pot4", "apot4"], ["uint8"], kind="product", pipeline=1)
    add(["int3-lut", "int4-lut", "int6-lut", "int8-lut", "uint4-lut"], ["uint8"],
        kind="product")
    add(["int4-lut", "int8-lut"], ["int8"], kind="product")
    add(["int4-lut", "int6-lut"], ["uint4"], kind="product")
    add(["int8-lut"], ["uint8"], kind="product", pipeline=1)
    add(["int2-lut", "int5-lut", "uint8-lut"], ["uint8"], kind="product")
    add(["int3-lut", "int6-lut"], ["int8"], kind="product")
    add(["pot2", "sp2-6", "apot7", "upot:u{0,1,2,4}+{0,8}", "pot5-nz"], ["uint8"],
        kind="product")
    add(["int8-dsp", "pot4-dsp"], ["uint8"], kind="product")
    add(["int4-dsp"], ["uint4"], kind="product")
    add(["int8-dsp"], ["uint8"], kind="product", pipeline=1)

    # Accumulators alone (the accumulation path of a MAC, at several widths).
    for name, act, widths in (("apot4", "uint8", ["auto", 16, 24, 40]),
                              ("int4-dsp", "uint8", ["auto", 12, 24, 40]),
                              ("pot5", "uint8", ["auto", 40]),
                              ("sp2-5", "int8", ["auto", 24]),
                              ("int8-lut", "int8", ["auto", 48])):
        for acc in widths:
            add([name], [act], kind="accumulator", acc_bits=acc)
    for name, act, widths in (("pot4", "uint8", ["auto", 24, 32]),
                              ("int8-dsp", "uint8", ["auto", 32]),
                              ("apot4", "uint8", ["auto", 16]),
                              ("int4-dsp", "uint8", [24])):
        for acc in widths:
            add([name], [act], kind="accumulator", acc_bits=acc, overflow="saturate")
    return specs


#: Adder trees of the fit set: (inputs, input shape, pipeline stages).
_ADDER_TREES = ((2, signed(8), 0), (3, signed(8), 0), (4, signed(8), 0),
                (4, unsigned(8), 0), (5, signed(12), 0), (8, signed(8), 0),
                (8, signed(16), 0), (9, signed(8), 0), (16, signed(8), 0),
                (4, signed(8), 1), (8, signed(8), 1), (8, signed(8), 2),
                (16, signed(12), 2), (16, signed(8), 4), (3, unsigned(12), 1),
                (2, signed(12), 0), (2, unsigned(8), 0), (3, signed(12), 0),
                (4, signed(12), 0), (6, signed(8), 0), (8, unsigned(8), 0),
                (12, signed(8), 0), (16, signed(8), 1), (8, signed(12), 3),
                (5, signed(8), 2), (3, signed(8), 1), (6, unsigned(4), 0))

#: Designs repeated at other speed grades and devices (Fmax scale factors).
_VARIANTS = ((("pot4", "apot4", "int8-dsp", "int8-lut", "sp2-5"),
              [dict(speed=7), dict(speed=8), dict(device="25k"), dict(device="45k"),
               dict(device="12k")]),)


def _tree_design(n, shape, pipeline) -> dict:
    sign = "int" if shape.signed else "uint"
    name = f"adder-tree-{n}x{sign}{shape.width}" + (f"-p{pipeline}" if pipeline else "")
    return {"name": name, "label": name, "kind": "adder-tree", "pipeline": pipeline}


def fit_set() -> list:
    """Every run of the fit set: ``[(options, [(component_factory, design), ...])]``.

    ``options`` are :func:`~potgen.flow.synth.synthesize_many` flow options (device,
    speed); each factory builds a fresh component (Amaranth components are elaborated
    once).
    """
    from ..hw import AdderTree

    def spec_entry(spec):
        def build():
            component = spec.build()
            return component, spec.design(component)
        return build

    def tree_entry(n, shape, pipeline):
        def build():
            return AdderTree(n, shape, pipeline=pipeline), _tree_design(n, shape, pipeline)
        return build

    held = [DesignSpec(**h) for h in HELD_OUT]
    groups = {(): []}
    for spec in _spec_list():
        if spec in held:
            raise AssertionError(f"held-out design {spec} in the fit set")
        groups[()].append(spec_entry(spec))
    groups[()] += [tree_entry(*t) for t in _ADDER_TREES]
    for names, option_list in _VARIANTS:
        for options in option_list:
            key = tuple(sorted(options.items()))
            groups.setdefault(key, [])
            groups[key] += [spec_entry(DesignSpec(n)) for n in names]
    return [(dict(key), entries) for key, entries in groups.items()]


def _stable(report: dict) -> dict:
    """A report for committing: without what changes from run to run (paths, cache
    state, timings) and with the critical path reduced to its two ends."""
    out = {k: v for k, v in report.items()
           if k not in ("build_dir", "cached", "seconds", "seconds_by_step",
                        "critical_path")}
    path = report.get("critical_path") or []
    out["critical_path_ends"] = [path[0]["from"], path[-1]["to"]] if path else None
    return out


def synthesize_fit_set(out=None, *, jobs=None, progress=None) -> Path:
    """Synthesize :func:`fit_set` (cached) and write the reports to ``out``."""
    from .synth import synthesize_many
    out = Path(out) if out is not None else _REPO / FIT_RESULTS
    reports = []
    for options, entries in fit_set():
        built = [entry() for entry in entries]
        reports += synthesize_many([c for c, _ in built], designs=[d for _, d in built],
                                   jobs=jobs, progress=progress, **options)
    out.parent.mkdir(parents=True, exist_ok=True)
    doc = {"about": "fit set of potgen.flow.estimate; regenerate with "
                    "`python -m potgen.flow.fit_estimate --synthesize`",
           "reports": [_stable(r) for r in reports]}
    out.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
    return out


# --- the fit ------------------------------------------------------------------------------

#: Model format version (bump when the features or the file layout change meaning).
MODEL_VERSION = 1
#: Ridge term (relative to the features' scale) that keeps nearly collinear features
#: from trading huge opposite coefficients.
RIDGE = 1e-3
#: Features a group with few reports is restricted to (the others get every feature
#: its reports have): enough to follow the structure, few enough to stay determined.
GROUP_FEATURES = {
    "product/multiplier-lut": ("mul_and", "mul_and_rows", "mul_and_signed", "mul_out"),
    "product/multiplier-dsp": ("decode",),
    "product/shift-add": ("sa_k4", "sa_k5", "sa_k6", "sa_k7", "sa_k8", "sa_wide",
                          "sa_add", "sa_macc_3op", "negate"),
    "adder-tree": ("tree_add", "tree_macc_3op", "tree_macc_fa"),
}
#: Flow options the resource and delay models are fitted at.
BASE_DEVICE, BASE_SPEED = "LFE5U-85F", 6


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _signature(group, block) -> tuple:
    return group, tuple(sorted(block.features.items())), block.ff


def _held_out_signatures() -> set:
    """What the model sees of each :data:`HELD_OUT` design. A report with the same
    signature is the same hardware to the model (``apot3`` has ``pot3``'s levels, for
    instance) and is left out of the fit too."""
    from .estimate import _block, _silence
    out = set()
    for held in HELD_OUT:
        component = DesignSpec(**held).build()
        _silence(component)
        out.add(_signature(*_block(component)))
    return out


def load_reports(paths=None) -> tuple:
    """``(samples, sources)``: the usable reports of the result files, deduplicated.

    Each sample is ``{"report", "component", "group", "block"}``; reports that cannot
    be rebuilt, that were not placed, or that are :data:`HELD_OUT` are left out, and
    ``sources`` says how many of each file were used.
    """
    from .estimate import _block, _silence, component_from_design
    paths = [Path(p) for p in (paths or [_REPO / s for s in DEFAULT_SOURCES])]
    samples, sources, seen = [], [], set()
    held_out = _held_out_signatures()
    for path in paths:
        if not path.exists():
            raise ValueError(f"fit source {path}: no such file (run with --synthesize "
                             "to create the fit set)")
        doc = json.loads(path.read_text())
        reports = doc.get("reports") if isinstance(doc, dict) else None
        if not isinstance(reports, list):
            raise ValueError(f"fit source {path}: expected {{\"reports\": [...]}}")
        used = held = 0
        for report in reports:
            design = report.get("design") or {}
            key = report.get("cache_key") or json.dumps(
                [design, report.get("device"), report.get("speed")], sort_keys=True)
            if key in seen or report.get("fmax_mhz") is None:
                continue
            try:
                component = component_from_design(design)
            except ValueError:
                continue
            _silence(component)
            group, block = _block(component)
            if _signature(group, block) in held_out:
                held += 1
                continue
            seen.add(key)
            samples.append({"report": report, "component": component, "group": group,
                            "block": block})
            used += 1
        try:
            shown = str(path.resolve().relative_to(_REPO))
        except ValueError:
            shown = str(path)
        sources.append({"path": shown, "sha256": _sha256(path), "reports": len(reports),
                        "used": used, "held_out": held})
    return samples, sources


def _lstsq(rows, targets, weights, ridge=RIDGE):
    """Weighted least squares; the ridge acts on unit-norm weighted columns."""
    import numpy as np
    x = np.asarray(rows, dtype=float) * np.asarray(weights, dtype=float)[:, None]
    y = np.asarray(targets, dtype=float) * np.asarray(weights, dtype=float)
    norms = np.linalg.norm(x, axis=0)
    norms[norms == 0] = 1.0
    xs = x / norms
    k = xs.shape[1]
    a = np.vstack([xs, np.sqrt(ridge) * np.eye(k)])
    b = np.concatenate([y, np.zeros(k)])
    coef, *_ = np.linalg.lstsq(a, b, rcond=None)
    return coef / norms


def _fit_linear(names, rows, targets):
    """Coefficients minimising the relative error, and the leave-one-out predictions."""
    import numpy as np
    weights = [1.0 / max(abs(t), 4.0) for t in targets]
    coef = _lstsq(rows, targets, weights)
    loo = []
    for i in range(len(rows)):
        keep = [j for j in range(len(rows)) if j != i]
        if len(keep) < len(names):
            loo.append(None)
            continue
        c = _lstsq([rows[j] for j in keep], [targets[j] for j in keep],
                   [weights[j] for j in keep])
        loo.append(float(np.dot(c, rows[i])))
    return {n: float(c) for n, c in zip(names, coef)}, loo


def _stats(pairs) -> dict:
    """Relative error statistics of (measured, predicted) pairs."""
    errors = [100.0 * (p - m) / m for m, p in pairs if m and p is not None]
    if not errors:
        return {"n": 0}
    absolute = sorted(abs(e) for e in errors)
    return {"n": len(errors),
            "mean_abs_pct": round(sum(absolute) / len(absolute), 2),
            "median_abs_pct": round(absolute[len(absolute) // 2], 2),
            "p90_abs_pct": round(absolute[min(int(0.9 * len(absolute)), len(absolute) - 1)],
                                 2),
            "max_abs_pct": round(absolute[-1], 2),
            "within_15_pct": round(sum(e <= 15 for e in absolute) / len(absolute), 3)}


def _label(report) -> str:
    d = report.get("design", {})
    parts = [d.get("kind"), d.get("label") or d.get("name"), d.get("act")]
    if d.get("acc_bits"):
        parts.append(f"acc{d['acc_bits']}")
    if d.get("overflow") == "saturate":
        parts.append("sat")
    if d.get("pipeline"):
        parts.append(f"p{d['pipeline']}")
    return " ".join(str(p) for p in parts if p)


def _fit_resources(samples) -> tuple:
    from .estimate import FITTED_RESOURCES
    # Resources do not depend on the speed grade or the device (yosys maps for ECP5 as
    # a whole); the variants' reports would only repeat the base ones.
    base = [s for s in samples if s["report"].get("device") == BASE_DEVICE
            and s["report"].get("speed") == BASE_SPEED]
    groups, residuals = {}, {}
    for group in sorted({s["group"] for s in base}):
        members = [s for s in base if s["group"] == group]
        allowed = GROUP_FEATURES.get(group)
        # A feature that never varies in the group is the constant's business.
        names = ["const"] + sorted(
            n for n in {n for s in members for n in s["block"].features}
            if (allowed is None or n in allowed)
            and len({s["block"].features.get(n, 0) for s in members}) > 1)
        rows = [[1.0 if n == "const" else s["block"].features.get(n, 0) for n in names]
                for s in members]
        coefficients, res = {}, {"samples": len(members)}
        for key in FITTED_RESOURCES:
            targets = [s["report"]["resources"][key] for s in members]
            coef, loo = _fit_linear(names, rows, targets)
            coefficients[key] = {n: round(c, 5) for n, c in coef.items()}
            if key == "comb_cells":
                fitted = [sum(coef[n] * r[i] for i, n in enumerate(names)) for r in rows]
                res["comb_cells"] = _stats(zip(targets, fitted))
                res["comb_cells_leave_one_out"] = _stats(zip(targets, loo))
                res["by_design"] = [
                    {"design": _label(s["report"]), "synth": t, "estimate": round(f, 1),
                     "leave_one_out": None if o is None else round(o, 1)}
                    for s, t, f, o in zip(members, targets, fitted, loo)]
        ranges = {n: [min(s["block"].features.get(n, 0) for s in members),
                      max(s["block"].features.get(n, 0) for s in members)]
                  for n in sorted({n for s in members for n in s["block"].features})}
        groups[group] = {"features": names, "coefficients": coefficients,
                         "feature_ranges": ranges, "samples": len(members)}
        residuals[group] = res
    return groups, residuals


#: Groups with at least this many in-block reports get delay coefficients of their own.
GROUP_DELAY_MIN = 20


def _delay_row(segment) -> list:
    from .estimate import DELAY_FEATURES
    return [1.0] + [float(segment[k]) for k in DELAY_FEATURES[1:]]


def _delay(coef: dict, segment) -> float:
    from .estimate import DELAY_FEATURES
    return sum(coef.get(k, 0.0) * r for k, r in zip(DELAY_FEATURES, _delay_row(segment)))


def _fit_delay_set(members) -> tuple:
    """Delay coefficients of one set of reports, and their leave-one-out predictions.

    Each report's period ``1000 / Fmax`` is its slowest segment's delay: start from
    the segments a rough prior calls slowest, then alternate fitting and re-picking.
    Features that are zero throughout the set get no coefficient.
    """
    from .estimate import DELAY_FEATURES
    targets = [1000.0 / s["report"]["fmax_mhz"] for s in members]
    used = [k for i, k in enumerate(DELAY_FEATURES)
            if k == "const" or len({_delay_row(seg)[i] for s in members
                                    for seg in s["block"].segments}) > 1]
    index = [DELAY_FEATURES.index(k) for k in used]
    coef = {"const": 2.0, "lut_levels": 0.8, "compress_levels": 0.8, "carry_bits": 0.05,
            "dsp": 4.0}
    chosen = None
    for _ in range(20):
        picked = [max(s["block"].segments, key=lambda seg: _delay(coef, seg))
                  for s in members]
        if picked == chosen:
            break
        chosen = picked
        rows = [[_delay_row(seg)[i] for i in index] for seg in chosen]
        c = _lstsq(rows, targets, [1.0 / t for t in targets])
        coef = {k: float(v) for k, v in zip(used, c)}
    rows = [[_delay_row(seg)[i] for i in index] for seg in chosen]
    _, loo = _fit_linear(used, rows, targets)
    return coef, loo


def _fit_delay(samples) -> tuple:
    """Segment delay coefficients (ns), fitted to ``1000 / Fmax`` of in-block paths:
    one shared set, and one per group with enough reports."""
    import numpy as np
    base = [s for s in samples if s["report"].get("device") == BASE_DEVICE
            and s["report"].get("speed") == BASE_SPEED]
    inside = [s for s in base if s["report"].get("critical_path_in_block") is not False]
    harness_limited = [s["report"]["fmax_mhz"] for s in base
                       if s["report"].get("critical_path_in_block") is False]
    limit = float(np.median(harness_limited)) if harness_limited else \
        max(s["report"]["fmax_mhz"] for s in base)
    shared, shared_loo = _fit_delay_set(inside)
    groups, loo_by_sample = {}, {id(s): p for s, p in zip(inside, shared_loo)}
    for group in sorted({s["group"] for s in inside}):
        members = [s for s in inside if s["group"] == group]
        if len(members) >= GROUP_DELAY_MIN:
            groups[group], loo = _fit_delay_set(members)
            loo_by_sample.update({id(s): p for s, p in zip(members, loo)})

    def predict(s):
        coef = groups.get(s["group"], shared)
        t = max(_delay(coef, seg) for seg in s["block"].segments)
        return min(1000.0 / t, limit)

    pairs, loo_pairs, by_group = [], [], {}
    for s in base:
        measured, predicted = s["report"]["fmax_mhz"], predict(s)
        pairs.append((measured, predicted))
        held = loo_by_sample.get(id(s))
        loo_pairs.append((measured, None if not held else min(1000.0 / held, limit)))
        by_group.setdefault(s["group"], []).append((measured, predicted))
    residuals = {"all": _stats(pairs), "all_leave_one_out": _stats(loo_pairs),
                 "by_group": {g: _stats(v) for g, v in sorted(by_group.items())},
                 "harness_limited": len(harness_limited)}

    def rounded(c):
        return {k: round(v, 5) for k, v in c.items()}
    return rounded(shared), {g: rounded(c) for g, c in groups.items()}, round(limit, 1), \
        residuals


def _scales(samples, key: str, base_value) -> dict:
    """Geometric-mean Fmax ratio of each value of ``key`` (speed, device) to the base."""
    import numpy as np
    ref = {}
    for s in samples:
        r = s["report"]
        if r.get("device") == BASE_DEVICE and r.get("speed") == BASE_SPEED:
            ref[_label(r)] = r["fmax_mhz"]
    ratios = {}
    for s in samples:
        r = s["report"]
        other = "device" if key == "speed" else "speed"
        base_other = BASE_DEVICE if other == "device" else BASE_SPEED
        if r.get(key) == base_value or r.get(other) != base_other:
            continue
        if _label(r) in ref:
            ratios.setdefault(str(r[key]), []).append(r["fmax_mhz"] / ref[_label(r)])
    out = {str(base_value): 1.0}
    for value, rs in sorted(ratios.items()):
        out[value] = round(float(np.exp(np.mean(np.log(rs)))), 4)
    return out


def fit(paths=None) -> dict:
    """Fit the model to the result files (:data:`DEFAULT_SOURCES` by default)."""
    samples, sources = load_reports(paths)
    if not samples:
        raise ValueError("fit: no usable reports in the sources")
    groups, resource_residuals = _fit_resources(samples)
    delay, delay_groups, limit, delay_residuals = _fit_delay(samples)
    ff_mismatch = [{"design": _label(s["report"]), "synth": s["report"]["resources"]["ff"],
                    "counted": s["block"].ff}
                   for s in samples if s["report"]["resources"]["ff"] != s["block"].ff]
    mult_mismatch = [_label(s["report"]) for s in samples
                     if s["report"]["resources"]["mult18"] != s["block"].mult18]
    tools = sorted({json.dumps(s["report"].get("tools"), sort_keys=True) for s in samples})
    return {
        "model": "potgen.flow.estimate",
        "version": MODEL_VERSION,
        "provenance": {
            "fitted": datetime.date.today().isoformat(),
            "command": "python -m potgen.flow.fit_estimate",
            "tools": json.loads(tools[0]) if len(tools) == 1 else
            {"mixed": [json.loads(t) for t in tools]},
            "device": BASE_DEVICE, "package": "CABGA381", "speed": BASE_SPEED, "seed": 1,
            "sources": sources,
            "held_out": [DesignSpec(**h).design() | {"acc_bits": h["acc_bits"]}
                         for h in HELD_OUT],
            "samples": len(samples),
        },
        "resources": groups,
        "fmax": {"coefficients": delay, "groups": delay_groups,
                 "harness_limit_mhz": limit,
                 "speed_scale": _scales(samples, "speed", BASE_SPEED),
                 "device_scale": _scales(samples, "device", BASE_DEVICE)},
        "residuals": {"resources": resource_residuals, "fmax": delay_residuals,
                      "ff_exact": {"checked": len(samples), "mismatches": ff_mismatch},
                      "mult18_exact": {"checked": len(samples), "mismatches": mult_mismatch}},
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m potgen.flow.fit_estimate",
        description="Refit potgen's resource / Fmax estimate to synthesis result files "
                    "(and optionally synthesize its fit set first).")
    parser.add_argument("sources", nargs="*", metavar="RESULTS.json",
                        help="result files ({\"reports\": [...]}); default: "
                             + ", ".join(DEFAULT_SOURCES))
    parser.add_argument("--synthesize", action="store_true",
                        help=f"synthesize the fit set first (cached) into {FIT_RESULTS}")
    parser.add_argument("--jobs", "-j", type=int, default=None,
                        help="parallel tool runs for --synthesize")
    parser.add_argument("--out", default=None, metavar="FILE",
                        help="model file to write (default: potgen/data/estimate_model.json)")
    args = parser.parse_args(argv)
    if args.synthesize:
        path = synthesize_fit_set(jobs=args.jobs)
        print(f"fit set: {path}")
    model = fit(args.sources or None)
    out = Path(args.out) if args.out else _REPO / "potgen" / "data" / "estimate_model.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(model, indent=1, sort_keys=True) + "\n")
    res = model["residuals"]
    print(f"model: {out} ({model['provenance']['samples']} reports)")
    for group, r in res["resources"].items():
        ins, loo = r["comb_cells"], r["comb_cells_leave_one_out"]
        print(f"  {group:24s} n={r['samples']:3d}  comb cells |error| mean "
              f"{ins['mean_abs_pct']:5.1f}% max {ins['max_abs_pct']:5.1f}%   "
              f"leave-one-out mean {loo.get('mean_abs_pct', float('nan')):5.1f}% max "
              f"{loo.get('max_abs_pct', float('nan')):5.1f}%")
    f = res["fmax"]["all"]
    print(f"  Fmax |error| mean {f['mean_abs_pct']:.1f}% max {f['max_abs_pct']:.1f}% "
          f"(n={f['n']})")
    if res["ff_exact"]["mismatches"]:
        print(f"  FF count differs from synthesis for "
              f"{len(res['ff_exact']['mismatches'])} reports")
    return 0


if __name__ == "__main__":
    sys.exit(main())
