"""Fit the array estimate's coefficients (potgen.flow.estimate_array.CALIBRATION).

    python synth/arrays/fit_estimate_array.py synth/arrays/*.json

Reads ``potgen synth --kind array --json`` result files, fits per dataflow the per-PE
comb cells, LUT4 sites and CCU2C as a linear function (no constant) of the PE model's
features (:func:`potgen.flow.estimate_array.pe_features`: comb cells on the product
path's comb cells and ``P + 1``, LUT4 sites on its LUT4 sites and ``P + 1``) by least
squares on the
relative error, and the Fmax derating as the geometric mean of measured / PE-model
Fmax over the placed arrays. Prints the dict to paste into ``CALIBRATION`` and the
residuals of the current calibration on every report.
"""

from __future__ import annotations

import json
import math
import sys

import numpy as np

from potgen.flow.estimate_array import _pe_model, estimate_array, pe_features

#: Fitted resource -> the features of its per-PE linear model.
TARGETS = {"comb_cells": ("product", "acc_bits", "mult18"),
           "lut4_sites": ("product_sites", "acc_bits", "mult18")}


def load(paths):
    reports = []
    for path in paths:
        with open(path) as f:
            doc = json.load(f)
        for r in doc.get("reports", []):
            if (r.get("design") or {}).get("kind") == "array":
                reports.append(r)
    return reports


def fit(reports):
    out = {}
    for dataflow in ("os", "ws"):
        rows = [r for r in reports if r["design"]["dataflow"] == dataflow]
        if not rows:
            continue
        X, Y, fmax_ratios = [], {t: [] for t in TARGETS}, []
        names = sorted({f for feats in TARGETS.values() for f in feats})
        for r in rows:
            d = r["design"]
            model = _pe_model(d["name"], d["act"], d["acc_bits"], r["device"], r["speed"])
            feats = pe_features(model["mac"]["resources"],
                                model["accumulator"]["resources"], d["acc_bits"])
            X.append([feats[f] for f in names])
            for t in TARGETS:
                Y[t].append(r["resources"][t] / (d["rows"] * d["cols"]))
            if r.get("fmax_mhz"):
                fmax_ratios.append((model["mac"]["resources"]["mult18"] > 0,
                                    r["fmax_mhz"] / model["mac"]["fmax_mhz"]))
        X = np.asarray(X, dtype=float)
        coefficients = {}
        for t, used in TARGETS.items():
            x = X[:, [names.index(f) for f in used]]
            y = np.asarray(Y[t], dtype=float)
            w = 1.0 / np.maximum(y, 1.0)
            sol, *_ = np.linalg.lstsq(x * w[:, None], y * w, rcond=None)
            coefficients[t] = {f: round(float(c), 4) for f, c in zip(used, sol)}
            errors = np.abs(x @ sol - y) / y
            coefficients.setdefault("errors", {})[t] = {
                "max": round(float(errors.max()), 3), "mean": round(float(errors.mean()), 3)}
        # LUT PEs and DSP PEs apart: a DSP array routes every PE to the MULT18X18D
        # columns, a shift-add array keeps each PE local.
        for key, dsp in (("fmax_scale", False), ("fmax_scale_dsp", True)):
            ratios = [r for d, r in fmax_ratios if d == dsp]
            if ratios:
                scale = math.exp(sum(map(math.log, ratios)) / len(ratios))
                coefficients[key] = round(scale, 4)
                coefficients["errors"][f"fmax{'_dsp' if dsp else ''}"] = {
                    "max": round(max(abs(r / scale - 1) for r in ratios), 3),
                    "placed": len(ratios)}
        coefficients["reports"] = len(rows)
        coefficients["placed"] = len(fmax_ratios)
        out[dataflow] = coefficients
    first = reports[0]
    return {"version": 1, "dataflows": out, "tools": first.get("tools"),
            "device": first.get("device"), "speed": first.get("speed")}


def residuals(reports):
    lines = []
    for r in reports:
        d = r["design"]
        e = estimate_array(d["rows"], d["cols"], d["name"], d["act"],
                           dataflow=d["dataflow"], acc_bits=d["acc_bits"],
                           device=r["device"], speed=r["speed"])
        parts = [f"{d['label']:>22} {d['act']:>5}"]
        for key in ("comb_cells", "lut4_sites", "ff", "mult18"):
            m, x = r["resources"][key], e["resources"][key]
            parts.append(f"{key} {m} est {x} ({100 * (x - m) / m:+.1f}%)" if m else
                         f"{key} {m} est {x}")
        if r.get("fmax_mhz"):
            parts.append(f"fmax {r['fmax_mhz']:.1f} est {e['fmax_mhz']:.1f} "
                         f"({100 * (e['fmax_mhz'] - r['fmax_mhz']) / r['fmax_mhz']:+.1f}%)")
        lines.append("  ".join(parts))
    return lines


if __name__ == "__main__":
    reports = load(sys.argv[1:])
    print(json.dumps(fit(reports), indent=1))
    print("\n".join(residuals(reports)))
