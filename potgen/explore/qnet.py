"""Accuracy of a network under per-layer formats, measured with the golden model.

:class:`QuantEvaluator` turns a :class:`~potgen.explore.network.Network` and one
:class:`LayerChoice` per layer (weight format, activation bits) into the integer
network the accelerator would run, and measures its accuracy on the test split with
:func:`potgen.golden.matmul` and :func:`potgen.golden.requantize` -- the same exact
arithmetic the hardware is verified against, so the accuracy the explorer reports is
the accuracy the generated accelerator delivers.

Integer network, layer by layer:

* the layer's input activations are codes of ``uintA`` (``intA`` when the values can
  be negative: the network input with negative data, or the output of a layer without
  ReLU), scale ``s_a`` calibrated on up to ``calibration`` training samples by
  :func:`potgen.quantize.calibrate_scale` (``"mse"``) on the values that actually reach
  the layer through the quantized layers before it;
* the weights, bias folded in as the last row fed by the constant activation
  ``a_max`` (the largest code, so the bias row has the magnitude of a weight), are
  quantized per output column (``"mse"`` scales ``s_w[n]``);
* the accumulators are exact (``golden.matmul`` without an accumulator limit: the
  accelerator's accumulator width comes from the datatype bound, which no input
  exceeds);
* between layers, per column, ``m, s = quantize_multiplier(s_a s_w[n] / s_next)`` and
  ``golden.requantize(acc, m, s, 0, lo, hi, relu)``: the accelerator's requantization
  unit exactly (16-bit multipliers, shifts up to 31);
* the last layer's class is ``argmax_n acc[n] s_w[n]``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import golden
from ..formats import IntFormat, parse_format
from ..quantize import calibrate_scale, quantize
from .network import Network

__all__ = ["LayerChoice", "QuantEvaluator", "QuantLayer", "ACT_BITS", "MULTIPLIER_BITS",
           "MAX_SHIFT"]

#: Activation widths the explorer accepts.
ACT_BITS = range(2, 17)
#: Requantization multiplier width and largest shift (the accelerator's defaults).
MULTIPLIER_BITS = 16
MAX_SHIFT = 31


@dataclass(frozen=True)
class LayerChoice:
    """How one layer is quantized.

    Parameters
    ----------
    weight : str
        Weight format spec (canonical, e.g. ``"pot4"``, ``"upot:{0,1,4}+{0,2}"``).
    act_bits : int
        Width of the layer's input activations (2..16).
    """

    weight: str
    act_bits: int

    def __post_init__(self):
        fmt = parse_format(self.weight)
        object.__setattr__(self, "weight", str(fmt))
        if isinstance(self.act_bits, bool) or not isinstance(
                self.act_bits, (int, np.integer)) or self.act_bits not in ACT_BITS:
            raise ValueError(f"act_bits={self.act_bits!r}: expected an int in "
                             f"{ACT_BITS.start}..{ACT_BITS.stop - 1}")
        object.__setattr__(self, "act_bits", int(self.act_bits))

    def __str__(self):
        return f"{self.weight}/a{self.act_bits}"


@dataclass(frozen=True, eq=False)
class QuantLayer:
    """One quantized layer.

    Members
    -------
    codes : ndarray [K, N] of int64
        Weight codes (bias row last when the layer has a bias).
    weight_format, act_format : Format
    weight_scales : ndarray [N]
    act_scale : float
    bias_act : int
        Constant activation feeding the bias row (0 without a bias).
    """

    codes: np.ndarray
    weight_format: object
    act_format: IntFormat
    weight_scales: np.ndarray
    act_scale: float
    bias_act: int


class QuantEvaluator:
    """Golden-model accuracy of a network under per-layer choices, cached.

    Parameters
    ----------
    network : Network
    calibration : int
        Training samples used to calibrate activation scales (the first ones).

    Members
    -------
    evaluations : int
        Distinct choice tuples evaluated so far (cache misses).
    """

    def __init__(self, network: Network, calibration: int = 512):
        if not isinstance(network, Network):
            raise TypeError(f"network: expected an explore Network, got "
                            f"{type(network).__name__}")
        if isinstance(calibration, bool) or not isinstance(calibration, int) \
                or calibration < 1:
            raise ValueError(f"calibration={calibration!r}: expected an int >= 1")
        self.network = network
        self._x_cal = network.x_train[:calibration]
        self._cache = {}
        self._weights = {}
        self._prefixes = {}
        self._act_scales = {}
        self._split_acc = {}
        self.evaluations = 0

    def _check(self, choices) -> tuple:
        choices = tuple(choices)
        if len(choices) != len(self.network.layers):
            raise ValueError(f"choices: {len(choices)} given for "
                             f"{len(self.network.layers)} layers")
        for c in choices:
            if not isinstance(c, LayerChoice):
                raise TypeError(f"choices: expected LayerChoice items, got "
                                f"{type(c).__name__}")
        return choices

    def _act_format(self, index: int, bits: int) -> IntFormat:
        if index == 0:
            signed = bool(self.network.x_train.min() < 0)
        else:
            signed = not self.network.layers[index - 1].relu
        return IntFormat(bits, signed=signed)

    def _weight_codes(self, index: int, fmt, act_fmt: IntFormat, act_scale: float):
        # The bias row's float weight depends on the activation scale, so the key holds it.
        key = (index, str(fmt), str(act_fmt), act_scale)
        if key not in self._weights:
            layer = self.network.layers[index]
            w = layer.weights
            bias_act = 0
            if layer.bias is not None:
                bias_act = act_fmt.max_level
                w = np.vstack([w, layer.bias[None, :] / (bias_act * act_scale)])
            scales = calibrate_scale(w, fmt, "mse", axis=1)
            codes = quantize(w, fmt, scales, axis=1)
            self._weights[key] = (codes, scales, bias_act)
        return self._weights[key]

    def quantize(self, choices) -> list:
        """The quantized layers (:class:`QuantLayer`) for ``choices``.

        Layer ``i`` depends only on ``choices[:i + 1]``, so every prefix is computed
        once (a search revisits prefixes constantly).
        """
        choices = self._check(choices)
        layers, x = [], self._x_cal
        for i in range(len(choices)):
            key = choices[:i + 1]
            if key not in self._prefixes:
                self._prefixes[key] = self._quantize_layer(i, choices[:i], choices[i], x)
            q, x = self._prefixes[key]
            layers.append(q)
        return layers

    def _quantize_layer(self, i: int, before: tuple, choice: LayerChoice, x: np.ndarray):
        layer = self.network.layers[i]
        act_fmt = self._act_format(i, choice.act_bits)
        values = layer.gemm_inputs(x)
        # The input scale depends on the layers before and the width, not on this
        # layer's weights: calibrated once per (prefix, width).
        scale_key = (before, choice.act_bits)
        if scale_key not in self._act_scales:
            self._act_scales[scale_key] = calibrate_scale(values, act_fmt, "mse")
        scale = self._act_scales[scale_key]
        fmt = parse_format(choice.weight)
        codes, w_scales, bias_act = self._weight_codes(i, fmt, act_fmt, scale)
        q = QuantLayer(codes, fmt, act_fmt, w_scales, scale, bias_act)
        acc = self._gemm(quantize(values, act_fmt, scale), q)
        out = acc * (scale * w_scales)
        if layer.relu:
            out = np.maximum(out, 0.0)
        return q, out.reshape(len(x), *layer.out_shape)

    @staticmethod
    def _gemm(acts: np.ndarray, q: QuantLayer) -> np.ndarray:
        if q.bias_act:
            acts = np.hstack([acts, np.full((len(acts), 1), q.bias_act, np.int64)])
        return golden.matmul(acts, q.codes, q.weight_format).acc

    def predict(self, choices, x, qlayers=None) -> np.ndarray:
        """Class indices for inputs ``x`` under ``choices`` (integer network)."""
        qlayers = qlayers if qlayers is not None else self.quantize(choices)
        return self._predict(self._check(choices), qlayers, np.asarray(x, np.float64), None)

    def _predict(self, choices, qlayers, x, split) -> np.ndarray:
        layers = self.network.layers
        acc = None
        for i, (layer, q) in enumerate(zip(layers, qlayers)):
            # Layer i's accumulators depend on choices[:i + 1] only: cached per split.
            key = (split, choices[:i + 1])
            if split is not None and key in self._split_acc:
                acc = self._split_acc[key]
                continue
            if i == 0:
                acts = quantize(layer.gemm_inputs(x), q.act_format, q.act_scale)
            else:
                prev = qlayers[i - 1]
                mult, shift = zip(*(golden.quantize_multiplier(
                    prev.act_scale * float(s) / q.act_scale, MULTIPLIER_BITS, MAX_SHIFT)
                    for s in prev.weight_scales))
                out = golden.requantize(acc, np.array(mult), np.array(shift), 0,
                                        q.act_format.min_level, q.act_format.max_level,
                                        relu=layers[i - 1].relu)
                out = np.asarray(out, dtype=np.int64).reshape(len(x), *layer.in_shape)
                acts = layer.gemm_inputs(out)
            acc = self._gemm(acts, q)
            if split is not None:
                self._split_acc[key] = acc
        logits = acc * qlayers[-1].weight_scales
        return np.argmax(logits.reshape(len(x), -1), axis=1)

    def accuracy(self, choices, split: str = "test") -> float:
        """Test accuracy under ``choices`` (cached: same per-layer choices, same value)."""
        choices = self._check(choices)
        key = (choices, split)
        if key not in self._cache:
            self.evaluations += 1
            x = getattr(self.network, f"x_{split}")
            y = getattr(self.network, f"y_{split}")
            pred = self._predict(choices, self.quantize(choices), x, split)
            self._cache[key] = float(np.mean(pred == y))
        return self._cache[key]
