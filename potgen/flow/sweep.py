"""Parameter sweeps: the cartesian product of PE parameters, synthesized and tabulated.

A sweep is described by a TOML file (``potgen sweep CONFIG.toml``)::

    [sweep]
    name = "pe-comparison"        # default: the file's stem
    kind = ["mac"]                # "mac", "product", "accumulator"
    designs = ["int8-lut", "pot4", "apot4"]   # design names (potgen.flow.designs)
    formats = ["int4"]            # weight formats; intN -> intN-dsp and intN-lut
    act = ["uint4", "uint8"]
    acc_bits = ["auto", 32]       # ints, "auto"; "l1" / "exact" / ... need [layer]
    k = [64]                      # dot-product lengths (the bounds' K)
    pipeline = [0]
    sign = ["fold"]               # "fold" / "negate" for signed shift-add MACs
    overflow = "wrap"
    device = ["85k"]
    package = "CABGA381"          # optional
    speed = 6
    seed = 1
    freq_mhz = 400
    place = true
    reference = "int8-lut"        # ratios relative to this design ("" for none)

    [layer]                       # optional: the synthetic layer of LayerSpec
    columns = 64
    seed = 0
    calibration = "max"

    [output]
    dir = "results"               # relative to the config file; default <stem>-results
    plots = true                  # or a list: ["area_vs_fmax", "area_vs_acc_bits"]
    acc_baseline = 32             # optional: a table of each accumulator choice's
                                  # (comb cells + FF) against this fixed width

Every list may also be a single value. The product is taken over designs x act x
acc_bits x k x pipeline x sign x device; combinations that do not apply collapse
(sign of a multiplier, K of a fixed width). :func:`run_sweep` synthesizes them all
(parallel, cached) and :func:`write_results` writes ``results.json``
(``{"config", "reports"}``), ``results.csv``, ``results.md`` (a Markdown table per
activation / accumulator group with links to the plots) and the plots:
``area_vs_fmax.png`` (per format family), ``area_vs_weight_bits.png`` and
``area_vs_acc_bits.png``.
"""

from __future__ import annotations

import itertools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from . import summary
from .designs import REFERENCE_DESIGN, DesignSpec, LayerSpec, expand_format
from .synth import DEFAULT_FREQ_MHZ, flow_options, synthesize_many

__all__ = ["SweepConfig", "PLOTS", "load_config", "parse_config", "points", "run_sweep",
           "write_results", "family"]

#: The plots a sweep can draw.
PLOTS = ("area_vs_fmax", "area_vs_weight_bits", "area_vs_acc_bits")

_SWEEP_KEYS = {"name", "kind", "designs", "formats", "act", "acc_bits", "k", "pipeline",
               "sign", "overflow", "device", "package", "speed", "seed", "freq_mhz",
               "place", "reference"}
_LAYER_KEYS = {"columns", "seed", "calibration"}
_OUTPUT_KEYS = {"dir", "plots", "acc_baseline"}


@dataclass
class SweepConfig:
    """A parsed sweep description (see the module documentation for the file format).

    Members
    -------
    name : str
    kind : list of str
    designs : list of str
        Design names after expanding ``formats``.
    act, acc_bits, k, pipeline, sign, device : list
        The swept axes.
    overflow : str
    package : str or None
    speed, seed : int
    freq_mhz : float
    place : bool
    reference : str or None
    layer : LayerSpec or None
    out_dir : Path
    plots : bool or list of str
        All plots, none, or the named ones (:data:`PLOTS`).
    acc_baseline : int or None
        Fixed accumulator width the accumulator choices are compared with.
    source : dict
        The TOML document as read (recorded in ``results.json``).
    """

    name: str
    kind: list = field(default_factory=lambda: ["mac"])
    designs: list = field(default_factory=list)
    act: list = field(default_factory=lambda: ["uint8"])
    acc_bits: list = field(default_factory=lambda: ["auto"])
    k: list = field(default_factory=lambda: [64])
    pipeline: list = field(default_factory=lambda: [0])
    sign: list = field(default_factory=lambda: ["fold"])
    overflow: str = "wrap"
    device: list = field(default_factory=lambda: ["85k"])
    package: str | None = None
    speed: int = 6
    seed: int = 1
    freq_mhz: float = DEFAULT_FREQ_MHZ
    place: bool = True
    reference: str | None = REFERENCE_DESIGN
    layer: LayerSpec | None = None
    out_dir: Path = Path(".")
    plots: object = True
    acc_baseline: int | None = None
    source: dict = field(default_factory=dict)


def _list(value, key):
    items = value if isinstance(value, list) else [value]
    if not items:
        raise ValueError(f"sweep config: {key} is an empty list")
    return items


def _unknown(table: dict, allowed: set, where: str):
    extra = sorted(set(table) - allowed)
    if extra:
        raise ValueError(f"sweep config: unknown key{'s' if len(extra) > 1 else ''} "
                         f"{', '.join(extra)} in [{where}]; allowed: "
                         + ", ".join(sorted(allowed)))


def parse_config(doc: dict, *, base_dir=".", default_name="sweep") -> SweepConfig:
    """A :class:`SweepConfig` from a parsed TOML document; ValueError on bad content."""
    if not isinstance(doc, dict) or "sweep" not in doc:
        raise ValueError("sweep config: needs a [sweep] table")
    _unknown(doc, {"sweep", "layer", "output"}, "top level")
    sw, layer_t, out_t = doc["sweep"], doc.get("layer"), doc.get("output", {})
    _unknown(sw, _SWEEP_KEYS, "sweep")
    _unknown(out_t, _OUTPUT_KEYS, "output")
    names = [str(n) for n in _list(sw.get("designs", []), "designs")] \
        if "designs" in sw else []
    for fmt in (_list(sw["formats"], "formats") if "formats" in sw else []):
        names += expand_format(str(fmt))
    if not names:
        raise ValueError("sweep config: [sweep] needs designs or formats")
    layer = None
    if layer_t is not None:
        _unknown(layer_t, _LAYER_KEYS, "layer")
        layer = LayerSpec(**layer_t)
    name = str(sw.get("name", default_name))
    if not re.fullmatch(r"[\w.\-]+", name):
        raise ValueError(f"sweep config: name {name!r} must be letters, digits, ., _, -")
    out_dir = Path(base_dir) / out_t.get("dir", f"{name}-results")
    reference = sw.get("reference", REFERENCE_DESIGN) or None
    config = SweepConfig(
        name=name, kind=[str(x) for x in _list(sw.get("kind", "mac"), "kind")],
        designs=names,
        act=[str(a) for a in _list(sw.get("act", "uint8"), "act")],
        acc_bits=_list(sw.get("acc_bits", "auto"), "acc_bits"),
        k=_list(sw.get("k", 64), "k"),
        pipeline=_list(sw.get("pipeline", 0), "pipeline"),
        sign=[str(s) for s in _list(sw.get("sign", "fold"), "sign")],
        overflow=str(sw.get("overflow", "wrap")),
        device=[str(d) for d in _list(sw.get("device", "85k"), "device")],
        package=sw.get("package"), speed=sw.get("speed", 6), seed=sw.get("seed", 1),
        freq_mhz=sw.get("freq_mhz", DEFAULT_FREQ_MHZ), place=sw.get("place", True),
        reference=DesignSpec(reference).name if reference else None, layer=layer,
        out_dir=out_dir, plots=out_t.get("plots", True),
        acc_baseline=out_t.get("acc_baseline"), source=doc)
    for device in config.device:  # every flow option checked before anything runs
        flow_options(device=device, package=config.package, speed=config.speed,
                     seed=config.seed, freq_mhz=config.freq_mhz, place=config.place)
    baseline = config.acc_baseline
    if baseline is not None and (isinstance(baseline, bool) or not isinstance(baseline, int)
                                 or baseline not in config.acc_bits):
        raise ValueError(f"sweep config: [output] acc_baseline {baseline!r} must be one "
                         "of the fixed widths in acc_bits")
    plots = config.plots
    if not (isinstance(plots, bool) or isinstance(plots, list)
            and all(p in PLOTS for p in plots)):
        raise ValueError(f"sweep config: [output] plots must be true, false or a list of "
                         f"{', '.join(PLOTS)}; got {plots!r}")
    points(config)  # every design name, format and choice checked now, not mid-sweep
    return config


def load_config(path) -> SweepConfig:
    """Read and check a sweep TOML file."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        try:
            import tomli as tomllib
        except ModuleNotFoundError:
            raise ValueError("reading TOML on Python 3.10 needs the tomli package "
                             "(pip install tomli)") from None
    path = Path(path)
    try:
        with open(path, "rb") as f:
            doc = tomllib.load(f)
    except OSError as e:
        raise ValueError(f"sweep config {path}: {e.strerror}") from None
    except tomllib.TOMLDecodeError as e:
        raise ValueError(f"sweep config {path}: not valid TOML ({e})") from None
    return parse_config(doc, base_dir=path.parent, default_name=path.stem)


def points(config: SweepConfig) -> list:
    """``[(DesignSpec, device)]`` of the sweep, without duplicates, in product order."""
    out, seen = [], set()
    axes = itertools.product(config.device, config.kind, config.act, config.acc_bits,
                             config.k, config.pipeline, config.designs, config.sign)
    for device, kind, act, acc, k, pipeline, name, sign in axes:
        spec = DesignSpec(name, act=act, kind=kind, acc_bits=acc, k=k,
                          overflow=config.overflow, pipeline=pipeline, sign=sign,
                          layer=config.layer)
        # K only matters to a bound and the sign only to signed shift-add MACs.
        k_key = spec.k if spec.kind != "product" and isinstance(spec.acc_bits, str) \
            else None
        acc_key = spec.acc_bits if spec.kind != "product" else None
        key = (device, spec.kind, spec.label, spec.act, acc_key, k_key, spec.pipeline)
        if key not in seen:
            seen.add(key)
            out.append((spec, device))
    return out


def run_sweep(config: SweepConfig, *, jobs=None, cache=True, progress=None) -> list:
    """Synthesize every point of the sweep; the reports (with ratios) in point order."""
    pts = points(config)
    built = [(spec, device, spec.build()) for spec, device in pts]
    reports = [None] * len(built)
    for device in config.device:
        idx = [i for i, (_, d, _) in enumerate(built) if d == device]
        got = synthesize_many(
            [built[i][2] for i in idx],
            designs=[built[i][0].design(built[i][2]) for i in idx],
            jobs=jobs, progress=progress, cache=cache, device=device,
            package=config.package, speed=config.speed, seed=config.seed,
            freq_mhz=config.freq_mhz, place=config.place)
        for i, report in zip(idx, got):
            reports[i] = report
    return summary.add_ratios(reports, config.reference)


_FAMILIES = (("int", r"int\d+$"), ("uint", r"uint\d+$"), ("pot-nz", r"pot\d+-nz$"),
             ("pot", r"pot\d+$"), ("apot", r"apot\d+$"), ("sp2", r"sp2-\d+$"),
             ("upot", r"upot:.*"))


def family(report: dict) -> str:
    """Format family of a report's design, with the multiplier for multiplier PEs."""
    d = report.get("design", {})
    weight, mult = str(d.get("weight", "")), d.get("multiplier")
    name = next((fam for fam, pattern in _FAMILIES if re.match(pattern, weight)), weight)
    return f"{name}-{mult}" if mult not in (None, "none") else name


def _weight_bits(report) -> int:
    from ..formats import parse_format
    return parse_format(report["design"]["weight"]).bits


_MARKERS = "osD^v<>pXh*"


def _save(plt, fig, ax, out_dir: Path, name: str, title: str, xlabel: str, ylabel: str,
          legend_size=8) -> str:
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=legend_size)
    fig.tight_layout()
    fig.savefig(out_dir / f"{name}.png", dpi=120)
    plt.close(fig)
    return f"{name}.png"


def _plots(reports, out_dir: Path, wanted) -> list:
    """Draw the ``wanted`` plots that the reports have data for; their file names."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    fams = sorted({family(r) for r in reports})

    placed = [r for r in reports if r.get("fmax_mhz")]
    if placed and "area_vs_fmax" in wanted:
        fig, ax = plt.subplots(figsize=(7, 5))
        for i, fam in enumerate(fams):
            rs = [r for r in placed if family(r) == fam]
            if rs:
                ax.scatter([r["resources"]["comb_cells"] for r in rs],
                           [r["fmax_mhz"] for r in rs], label=fam,
                           marker=_MARKERS[i % len(_MARKERS)])
        written.append(_save(plt, fig, ax, out_dir, "area_vs_fmax",
                             "Area vs Fmax per format family",
                             "comb cells (LUT4 + CCU2C + PFUMX + L6MUX21)", "Fmax (MHz)"))

    if "area_vs_weight_bits" in wanted:
        fig, ax = plt.subplots(figsize=(7, 5))
        for i, fam in enumerate(fams):
            groups = {}
            for r in reports:
                if family(r) == fam:
                    d = r["design"]
                    groups.setdefault((d["kind"], d["act"], str(d.get("acc_bits_choice"))),
                                      []).append(r)
            for (kind, act, acc), rs in sorted(groups.items()):
                rs = sorted(rs, key=_weight_bits)
                label = fam if len(groups) == 1 else f"{fam} {kind} {act} acc={acc}"
                ax.plot([_weight_bits(r) for r in rs],
                        [r["resources"]["comb_cells"] for r in rs],
                        marker=_MARKERS[i % len(_MARKERS)], label=label)
        written.append(_save(plt, fig, ax, out_dir, "area_vs_weight_bits",
                             "Area vs weight bits", "weight bits", "comb cells",
                             legend_size=7))

    accs = [r for r in reports if r["design"].get("acc_bits")]
    if accs and "area_vs_acc_bits" in wanted:
        fig, ax = plt.subplots(figsize=(7, 5))
        groups = {}
        for r in accs:
            d = r["design"]
            groups.setdefault((d["kind"], d["label"], d["act"]), []).append(r)
        for i, ((kind, label, act), rs) in enumerate(sorted(groups.items())):
            # One point per width (several K or bounds may land on the same width).
            by_width = {r["design"]["acc_bits"]: r for r in rs}
            widths = sorted(by_width)
            ax.plot(widths, [by_width[w]["resources"]["comb_cells"]
                             + by_width[w]["resources"]["ff"] for w in widths],
                    marker=_MARKERS[i % len(_MARKERS)], label=f"{kind} {label} x {act}")
        written.append(_save(plt, fig, ax, out_dir, "area_vs_acc_bits",
                             "Area vs accumulator width", "accumulator bits",
                             "comb cells + FF"))
    return written


def _acc_table(reports, baseline: int) -> str:
    """Markdown: each accumulator choice's comb cells + FF against the fixed width."""
    def area(r):
        return r["resources"]["comb_cells"] + r["resources"]["ff"]

    base = {}
    for r in reports:
        d = r["design"]
        if d.get("acc_bits_choice") == baseline:
            base[(d["kind"], d["label"], d["act"], r["device"])] = r
    lines = ["| kind | design | act | K | choice | bits | comb + FF | "
             f"{baseline}-bit comb + FF | smaller by | Fmax MHz | {baseline}-bit Fmax |",
             "|---|---|---|---:|---|---:|---:|---:|---:|---:|---:|"]
    for r in reports:
        d = r["design"]
        ref = base.get((d.get("kind"), d.get("label"), d.get("act"), r.get("device")))
        if ref is None or d.get("acc_bits_choice") == baseline:
            continue
        fmax = f"{r['fmax_mhz']:.1f}" if r.get("fmax_mhz") else "-"
        ref_fmax = f"{ref['fmax_mhz']:.1f}" if ref.get("fmax_mhz") else "-"
        lines.append(f"| {d['kind']} | {d['label']} | {d['act']} | {d['k']} | "
                     f"{d['acc_bits_choice']} | {d['acc_bits']} | {area(r)} | {area(ref)} "
                     f"| {area(ref) / area(r):.2f}x | {fmax} | {ref_fmax} |")
    return "\n".join(lines) + "\n"


def _stable(report: dict) -> dict:
    """A report for committing: without what changes from run to run (paths, cache
    state, timings), and with the critical path reduced to its two ends (the step
    list is in the cache's full report)."""
    out = {k: v for k, v in report.items()
           if k not in ("build_dir", "cached", "seconds", "seconds_by_step",
                        "critical_path")}
    path = report.get("critical_path") or []
    out["critical_path_ends"] = [path[0]["from"], path[-1]["to"]] if path else None
    return out


def write_results(config: SweepConfig, reports: list, out_dir=None) -> list:
    """Write results.json / .csv / .md and the plots; the paths written."""
    out = Path(out_dir) if out_dir is not None else config.out_dir
    out.mkdir(parents=True, exist_ok=True)
    stable = [_stable(r) for r in reports]
    (out / "results.json").write_text(json.dumps(
        {"config": config.source, "reports": stable}, indent=1, sort_keys=True) + "\n")
    summary.write_csv(out / "results.csv", stable)
    wanted = PLOTS if config.plots is True else (config.plots or [])
    plots = _plots(reports, out, wanted)
    groups = {}
    for r in stable:
        d = r["design"]
        groups.setdefault((d.get("kind"), d.get("act"), str(d.get("acc_bits_choice")),
                           d.get("k"), r.get("device")), []).append(r)
    md = [f"# {config.name}", ""]
    if config.acc_baseline is not None:
        md += [f"## Accumulator choices against {config.acc_baseline} bits", "",
               _acc_table(stable, config.acc_baseline), ""]
    for (kind, act, acc, k, device), rs in groups.items():
        head = f"## {kind}, {act} activations"
        if kind != "product":
            head += f", accumulator {acc}"
            if not acc.isdigit():
                head += f" (K = {k})"
        md += [head + f", {device}", "", summary.format_markdown(rs)]
    md += [f"![{p}]({p})" for p in plots]
    (out / "results.md").write_text("\n".join(md).rstrip() + "\n")
    return [out / "results.json", out / "results.csv", out / "results.md",
            *[out / p for p in plots]]
