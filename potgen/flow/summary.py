"""Tables of synthesis reports: ratios to a reference design, text, CSV and Markdown.

Ratios compare a design with the reference design (by default the int8
LUT-multiplier MAC PE) *synthesized under the same conditions*: same kind, activation
format, accumulator choice, K, overflow rule and pipeline depth. ``area_x`` is the
ratio of comb cells (``lut4 + ccu2c + pfumx + l6mux``), ``fmax_x`` the ratio of Fmax.
"""

from __future__ import annotations

import csv
import io
import json

__all__ = ["COLUMNS", "add_ratios", "rows", "format_table", "format_markdown",
           "write_csv", "to_csv"]

#: Flat columns of the CSV (and of :func:`rows`), in order.
COLUMNS = ("design", "kind", "weight", "act", "acc_bits", "multiplier", "sign",
           "pipeline", "device", "package", "speed", "seed", "comb_cells", "lut4_sites",
           "lut4", "ccu2c", "pfumx", "l6mux", "ff", "mult18", "dp16kd", "fmax_mhz",
           "area_x", "fmax_x", "reference", "critical_path_ns", "yosys", "nextpnr",
           "seconds", "cached")

_CONDITIONS = ("kind", "act", "acc_bits_choice", "k", "overflow", "pipeline")


def _condition(report):
    d = report.get("design", {})
    return tuple(d.get(key) for key in _CONDITIONS) + (
        report.get("device"), report.get("speed"), report.get("seed"))


def add_ratios(reports, reference: str | None) -> list:
    """Set ``report["ratios"] = {"reference", "area_x", "fmax_x"}`` on each report.

    The reference is the report named ``reference`` synthesized under the same
    conditions; without one the ratios are None. Returns ``reports``.
    """
    refs = {}
    if reference:
        for r in reports:
            if r.get("design", {}).get("name") == reference:
                refs.setdefault(_condition(r), r)
    for r in reports:
        ref = refs.get(_condition(r))
        area = fmax = None
        if ref is not None:
            ref_comb = ref["resources"].get("comb_cells") or 0
            if ref_comb:
                area = round(r["resources"]["comb_cells"] / ref_comb, 3)
            if ref.get("fmax_mhz") and r.get("fmax_mhz"):
                fmax = round(r["fmax_mhz"] / ref["fmax_mhz"], 3)
        r["ratios"] = {"reference": reference if ref is not None else None,
                       "area_x": area, "fmax_x": fmax}
    return reports


def rows(reports) -> list:
    """One flat dict per report with the keys of :data:`COLUMNS`."""
    out = []
    for r in reports:
        d, res = r.get("design", {}), r.get("resources", {})
        ratios = r.get("ratios") or {}
        row = {
            "design": d.get("label") or d.get("name") or d.get("component"),
            "kind": d.get("kind"), "weight": d.get("weight"), "act": d.get("act"),
            "acc_bits": d.get("acc_bits"), "multiplier": d.get("multiplier"),
            "sign": d.get("sign"), "pipeline": d.get("pipeline"),
            "device": r.get("device"), "package": r.get("package"),
            "speed": r.get("speed"), "seed": r.get("seed"),
            "fmax_mhz": r.get("fmax_mhz"), "area_x": ratios.get("area_x"),
            "fmax_x": ratios.get("fmax_x"), "reference": ratios.get("reference"),
            "critical_path_ns": r.get("critical_path_ns"),
            "yosys": (r.get("tools") or {}).get("yosys"),
            "nextpnr": (r.get("tools") or {}).get("nextpnr"),
            "seconds": r.get("seconds"), "cached": r.get("cached"),
        }
        for key in ("comb_cells", "lut4_sites", "lut4", "ccu2c", "pfumx", "l6mux", "ff",
                    "mult18", "dp16kd"):
            row[key] = res.get(key)
        out.append({key: row.get(key) for key in COLUMNS})
    return out


def _fmt(value, spec=""):
    if value is None:
        return "-"
    return format(value, spec) if spec else str(value)


_TABLE = (("design", "design", ""), ("act", "act", ""), ("acc", "acc_bits", ""),
          ("comb", "comb_cells", ""), ("LUT4", "lut4", ""), ("CCU2C", "ccu2c", ""),
          ("FF", "ff", ""), ("MULT18", "mult18", ""), ("Fmax MHz", "fmax_mhz", ".1f"),
          ("area x", "area_x", ".2f"), ("Fmax x", "fmax_x", ".2f"))


def _cells(reports):
    header = [title for title, _, _ in _TABLE]
    body = [[_fmt(row[key], spec) for _, key, spec in _TABLE] for row in rows(reports)]
    return header, body


def _footer(reports) -> list:
    if not reports:
        return []
    first = reports[0]
    refs = sorted({(r.get("ratios") or {}).get("reference") or "" for r in reports} - {""})
    tools = first.get("tools") or {}
    lines = [f"{first.get('device')} {first.get('package')} speed {first.get('speed')}, "
             f"seed {first.get('seed')}; {tools.get('yosys')}, {tools.get('nextpnr')}",
             "comb = LUT4 + CCU2C + PFUMX + L6MUX21 cells of the block (harness excluded); "
             "Fmax register to register inside a timing harness"]
    if refs:
        lines.append(f"area x / Fmax x: relative to {', '.join(refs)} under the same "
                     "activation and accumulator choice")
    return lines


def format_table(reports) -> str:
    """A fixed-width text table (ratios from :func:`add_ratios` if set)."""
    header, body = _cells(reports)
    widths = [max(len(row[i]) for row in [header] + body) for i in range(len(header))]

    def line(cells):
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                         for i, (c, w) in enumerate(zip(cells, widths)))
    out = [line(header), line(["-" * w for w in widths])]
    out += [line(row) for row in body]
    return "\n".join(out + [""] + _footer(reports)) + "\n"


def format_markdown(reports) -> str:
    """The same table in Markdown."""
    header, body = _cells(reports)
    out = ["| " + " | ".join(header) + " |",
           "|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|"]
    out += ["| " + " | ".join(row) + " |" for row in body]
    return "\n".join(out + [""] + _footer(reports)) + "\n"


def to_csv(reports) -> str:
    """The flat table (:data:`COLUMNS`) as CSV text."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows(reports):
        writer.writerow({k: "" if v is None else v for k, v in row.items()})
    return buf.getvalue()


def write_csv(path, reports) -> None:
    with open(path, "w", newline="") as f:
        f.write(to_csv(reports))


def write_reports(reports, *, json_path=None, csv_path=None, markdown_path=None) -> None:
    """Write ``{"reports": [...]}`` JSON, the flat CSV and the Markdown table (each when
    its path is given): the output files of ``potgen synth`` and ``potgen estimate``."""
    if json_path:
        with open(json_path, "w") as f:
            json.dump({"reports": reports}, f, indent=1, sort_keys=True)
            f.write("\n")
    if csv_path:
        write_csv(csv_path, reports)
    if markdown_path:
        with open(markdown_path, "w") as f:
            f.write(format_markdown(reports))
