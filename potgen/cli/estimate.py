"""``potgen estimate``: the synthesis table of ``potgen synth``, estimated instantly.

::

    potgen estimate                                   # the default PE family
    potgen estimate --designs pot4,int8-lut --acc-bits 32 --json est.json
    potgen estimate --formats apot5 --act int6,uint8 --device 25k --speed 8
    potgen estimate --compare synth/pe_comparison/results.json
    potgen estimate --kind array --rows 32 --cols 32 --weight pot4 --act uint4 --dataflow ws
    potgen estimate --compare synth/arrays/array_8x8_os.json

The design selection options are those of ``potgen synth`` and the table, JSON and
CSV have the same columns and keys (DESIGN.md section 6), so an estimate and a
synthesis run compare key by key. The numbers come from the calibrated analytic model
of :mod:`potgen.flow.estimate` (no tool runs); ``--compare FILE`` estimates every
design of a ``potgen synth --json`` / ``potgen sweep`` result file and prints the
estimate beside the synthesized figures, with the relative errors.

``--kind array`` estimates whole systolic arrays (:mod:`potgen.flow.estimate_array`:
the PE model scaled to the array with calibrated coefficients, flip-flops counted
from the array's structure) and says whether each fits the device.
"""

from __future__ import annotations

import json
import sys
import time

from ..flow import designs as _designs
from ..flow import summary
from ..flow.devices import DEVICES
from ..flow.estimate import estimate, extrapolation, load_model
from ..flow.estimate_array import estimate_array
from .synth import add_design_options, add_ratios, specs_from_args


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "estimate", help="estimate PE resources and Fmax instantly (no tool runs)",
        description="Estimate MAC PEs (or product units, accumulators) on Lattice ECP5 "
                    "with potgen's calibrated analytic model: the table of `potgen "
                    "synth` (comb cells, LUT4, CCU2C, FF, MULT18X18D, Fmax, ratios to "
                    "the int8 LUT-multiplier PE) in milliseconds. Same design options "
                    "as `potgen synth`; without them the default PE family ("
                    + ", ".join(_designs.DEFAULT_PE_FAMILY) + ").")
    add_design_options(p.add_argument_group("designs (as for potgen synth)"),
                       verb="estimate")
    target = p.add_argument_group("target")
    target.add_argument("--device", default="85k",
                        help="ECP5 device: " + ", ".join(DEVICES) + " (default 85k)")
    target.add_argument("--package", help="package (default CABGA381)")
    target.add_argument("--speed", type=int, default=6,
                        help="speed grade 6, 7 or 8 (default 6)")
    target.add_argument("--compare", metavar="FILE",
                        help="instead of selecting designs: estimate every report of a "
                             "synthesis result file (potgen synth --json, a sweep's "
                             "results.json) and print estimate against synthesis")
    out = p.add_argument_group("output")
    out.add_argument("--json", metavar="FILE", help='write {"reports": [...]} to FILE')
    out.add_argument("--csv", metavar="FILE", help="write the flat table to FILE")
    out.add_argument("--markdown", metavar="FILE", help="write a Markdown table to FILE")
    out.add_argument("--quiet", "-q", action="store_true", help="no table on stdout")
    p.set_defaults(func=run)


def _selection_given(args) -> bool:
    return any(getattr(args, name) for name in ("designs", "formats", "act", "acc_bits"))


def _estimate_spec(spec, *, device, package, speed) -> dict:
    """The estimate of a DesignSpec: the PE model, or the array model for an array."""
    if spec.kind == "array":
        acc = None if spec.acc_bits == "auto" else spec.acc_bits
        return estimate_array(spec.rows, spec.cols, spec.name, spec.act,
                              dataflow=spec.dataflow, acc_bits=acc, k=spec.k,
                              device=device, speed=speed, package=package)
    return estimate(spec, device=device, package=package, speed=speed)


def _estimate_report(report, args) -> dict:
    """The estimate of what a synthesis report describes."""
    design = report.get("design") or {}
    device = report.get("device") or args.device
    speed = report.get("speed") or args.speed
    if design.get("kind") == "array":
        try:
            return estimate_array(int(design["rows"]), int(design["cols"]),
                                  design["name"], design["act"],
                                  dataflow=design.get("dataflow") or "os",
                                  acc_bits=int(design["acc_bits"]), device=device,
                                  speed=speed, package=report.get("package"))
        except (KeyError, TypeError):
            raise ValueError("not an array report potgen synth wrote") from None
    return estimate(design, device=device, package=report.get("package"), speed=speed)


def _load_reports(path) -> list:
    try:
        with open(path) as f:
            doc = json.load(f)
    except OSError as e:
        raise ValueError(f"--compare {path}: {e.strerror}") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"--compare {path}: not JSON ({e})") from None
    reports = doc.get("reports") if isinstance(doc, dict) else None
    if not isinstance(reports, list) or not reports:
        raise ValueError(f"--compare {path}: expected {{\"reports\": [...]}} as written by "
                         "potgen synth --json or potgen sweep")
    return reports


def _error(measured, estimated):
    if not measured or estimated is None:
        return "-"
    return f"{100.0 * (estimated - measured) / measured:+.0f}%"


def _comparison(synthesized: list, estimated: list) -> str:
    header = ["design", "kind", "act", "acc", "comb", "est", "err", "FF", "est",
              "Fmax", "est", "err"]
    body = []
    for s, e in zip(synthesized, estimated):
        d = s.get("design", {})
        comb, ecomb = s["resources"]["comb_cells"], e["resources"]["comb_cells"]
        fmax, efmax = s.get("fmax_mhz"), e["fmax_mhz"]
        body.append([str(d.get("label") or d.get("name")), str(d.get("kind")),
                     str(d.get("act")), str(d.get("acc_bits") or "-"), str(comb),
                     str(ecomb), _error(comb, ecomb), str(s["resources"]["ff"]),
                     str(e["resources"]["ff"]),
                     "-" if fmax is None else f"{fmax:.1f}", f"{efmax:.1f}",
                     _error(fmax, efmax)])
    widths = [max(len(r[i]) for r in [header] + body) for i in range(len(header))]

    def line(cells):
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                         for i, (c, w) in enumerate(zip(cells, widths)))
    errors = [abs(e["resources"]["comb_cells"] - s["resources"]["comb_cells"])
              / s["resources"]["comb_cells"] for s, e in zip(synthesized, estimated)
              if s["resources"]["comb_cells"]]
    fmax_errors = [abs(e["fmax_mhz"] - s["fmax_mhz"]) / s["fmax_mhz"]
                   for s, e in zip(synthesized, estimated) if s.get("fmax_mhz")]
    lines = [line(header), line(["-" * w for w in widths])] + [line(r) for r in body]
    lines.append("")
    if errors:
        lines.append(f"comb cells: mean |error| {100 * sum(errors) / len(errors):.1f}%, "
                     f"max {100 * max(errors):.1f}%, within 15%: "
                     f"{sum(x <= 0.15 for x in errors)}/{len(errors)}")
    if fmax_errors:
        lines.append(f"Fmax: mean |error| {100 * sum(fmax_errors) / len(fmax_errors):.1f}%, "
                     f"max {100 * max(fmax_errors):.1f}%")
    return "\n".join(lines) + "\n"


def _model_line() -> str:
    model = load_model()
    tools = model["provenance"]["tools"]
    return (f"estimated by potgen-estimate-{model['version']} (no tool ran), calibrated "
            f"on {tools.get('yosys')} / {tools.get('nextpnr')} synthesis reports of "
            f"{model['provenance']['fitted']}\n")


def run(args) -> int:
    if args.compare and _selection_given(args):
        raise ValueError("--compare: estimates the designs of the file; it takes no "
                         "--designs / --formats / --act / --acc-bits")
    start = time.monotonic()
    notes = []
    if args.compare:
        synthesized, reports = [], []
        for r in _load_reports(args.compare):
            design = r.get("design") or {}
            try:
                reports.append(_estimate_report(r, args))
            except ValueError:
                # Not a design the estimate models (an array, a packed unit, ...).
                notes.append(f"skipped {design.get('label') or design.get('name') or '?'}"
                             f" ({design.get('kind')}): not a component the estimate "
                             "models")
                continue
            synthesized.append(r)
        if not reports:
            raise ValueError(f"--compare {args.compare}: no report of a design the "
                             "estimate models (MAC PEs, product units, accumulators, "
                             "adder trees, systolic arrays)")
    else:
        specs = specs_from_args(args)
        reports = [_estimate_spec(spec, device=args.device, package=args.package,
                                  speed=args.speed) for spec in specs]
        for spec, report in zip(specs, reports):
            if spec.kind == "array":
                if not report["fits"]:
                    notes.append(f"{spec.label} x {spec.act}: does not fit the "
                                 f"{report['device']} (fullest resource at "
                                 f"{100 * report['utilization_max']:.0f}%)")
                spec = spec.with_(kind="mac", rows=None, cols=None, dataflow="os")
            outside = extrapolation(spec)
            if outside:
                notes.append(f"{spec.label} x {spec.act}: outside the fit data, "
                             "extrapolated (" + "; ".join(outside) + ")")
    wall = time.monotonic() - start
    reference = None if args.reference.lower() == "none" else \
        _designs.DesignSpec(args.reference).name
    add_ratios(reports, reference)

    summary.write_reports(reports, json_path=args.json, csv_path=args.csv,
                          markdown_path=args.markdown)
    if not args.quiet:
        if args.compare:
            sys.stdout.write(_comparison(synthesized, reports))
        else:
            sys.stdout.write(summary.format_table(reports))
        sys.stdout.write(_model_line())
        sys.stdout.writelines(f"note: {note}\n" for note in notes)
        sys.stdout.write(f"{len(reports)} designs in {1000 * wall:.0f} ms\n")
    return 0
