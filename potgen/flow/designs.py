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
:class:`~potgen.hw.MacPE` (or product unit) and :meth:`DesignSpec.design` the
parameters a report records. :data:`DEFAULT_PE_FAMILY` is what ``potgen synth`` runs
without arguments.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ..formats import IntFormat, parse_format

__all__ = ["DesignSpec", "LayerSpec", "DEFAULT_PE_FAMILY", "REFERENCE_DESIGN", "KINDS",
           "SIGNS", "WEIGHT_BOUNDS", "parse_design_name", "expand_format",
           "parse_acc_bits"]

#: Component kinds a design can be synthesized as: the whole MAC PE, its product unit
#: alone, or its accumulator alone (the accumulation path, sized as in the MAC).
KINDS = ("mac", "product", "accumulator")
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
    kind : ``"mac"``, ``"product"`` or ``"accumulator"``
        A whole MAC PE, only its product unit, or only its accumulator (the
        accumulator the MAC would have, at the width its ``acc_bits`` choice gives).
    acc_bits : int or ``"auto"``
        Accumulator width, or the datatype bound for ``k`` (MAC only).
    k : int
        Dot-product length the datatype bound covers.
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
        return self.multiplier is None and self.kind in ("mac", "accumulator") \
            and parse_design_name(self.name)[0].signed

    @property
    def label(self) -> str:
        """Short label for tables: the name, plus the sign choice when it is not the default."""
        if self.places_sign and self.sign != "fold":
            return f"{self.name} ({self.sign})"
        return self.name

    def with_(self, **changes) -> DesignSpec:
        return replace(self, **changes)

    def build(self):
        """The Amaranth component (construction errors are ValueError / TypeError)."""
        from ..hw import MacPE, product_unit
        multiplier = self.multiplier
        unit = "multiplier" if multiplier else "shift-add"
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
        if self.kind in ("mac", "accumulator"):
            out.update({"acc_bits": getattr(component, "acc_bits", self.acc_bits),
                        "acc_bits_choice": self.acc_bits, "k": self.k,
                        "overflow": self.overflow,
                        "sign": self.sign if self.places_sign else None})
            if self.acc_bits in WEIGHT_BOUNDS:
                out["layer"] = self.layer.to_dict()
        else:
            out["acc_bits"] = None
        return out
