"""Integer networks of GEMM layers: float layers in, codes and requantization out.

A :class:`QuantizedNetwork` is what the accelerator runs: a chain of fully-connected
layers ``C = A @ W`` over integer activations, each hidden layer's accumulators
requantized on chip (golden :func:`potgen.golden.requantize`: per-column multiplier,
shift, zero point 0, ReLU, clamp to the activation format) and the last layer's raw
accumulators read back and scored on the host.

Biases ride along as one extra input row: every layer's input gets a constant
activation ``c`` (the activation format's largest code) appended, and the weight
matrix the row ``bias / (c * input_scale)``, so ``[x, c] @ [W; b / c] = x @ W + b``
exactly in floats and the accelerator needs no bias adder. The bias row is quantized
with its column like any other weight.

Layer ``l`` with input scale ``s_in`` (a float ``x = s_in * code``), per-column weight
scales ``s_w[j]`` and output scale ``s_out`` computes, in integers only,

* ``acc = A @ decode(codes)`` (exact; the accumulator width is the L1 bound of the
  layer's quantized weights over the activation format, so it can never overflow);
* hidden: ``out = clamp(((acc * m_j + 2^(s_j - 1)) >> s_j), 0, 2^b - 1)`` with
  ``m_j 2^-s_j ~ s_in s_w[j] / s_out`` (:func:`potgen.golden.quantize_multiplier`);
* last: the logits are ``acc * s_w[j]`` (``s_in`` is common to all columns, so the
  argmax needs only ``s_w``).

Everything between float weights and integer outputs is here; the data set and the
training live in the network's own module (:mod:`potgen.networks.digits`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from .. import bounds, golden
from ..formats import Format, IntFormat, parse_format
from ..quantize import calibrate_scale, msq_split, quantize

__all__ = ["ConvGeometry", "FloatNetwork", "QuantLayer", "QuantizedNetwork",
           "quantize_network", "parse_layer_format", "MULTIPLIER_BITS", "MAX_SHIFT"]

#: Requantization multiplier width and largest shift (the accelerator's defaults).
MULTIPLIER_BITS = 16
MAX_SHIFT = 31


@dataclass(frozen=True)
class ConvGeometry:
    """A convolution layer's input shape and window, for im2col.

    Between layers an image is one row of features in ``(h, w, c)`` order: a
    convolution's GEMM output ``[images * Ho * Wo, Cout]`` reshaped to
    ``[images, Ho * Wo * Cout]`` is exactly that, so no transpose is ever needed.

    Members
    -------
    channels, height, width : int
        Input shape.
    kernel, stride, padding : int
        Square window, stride and zero padding.
    """

    channels: int
    height: int
    width: int
    kernel: int
    stride: int = 1
    padding: int = 0

    @property
    def out_size(self) -> tuple:
        """``(Ho, Wo)``."""
        def size(n):
            return (n + 2 * self.padding - self.kernel) // self.stride + 1
        return size(self.height), size(self.width)

    @property
    def window(self) -> int:
        """``K`` of the GEMM: ``C * R * S``."""
        return self.channels * self.kernel * self.kernel

    def unfold(self, images) -> np.ndarray:
        """``[images, H * W * C]`` -> ``[images * Ho * Wo, C * R * S]``.

        The column order is :func:`potgen.golden.im2col`'s (``(c, r, s)``), padding is 0
        (the activations are unsigned with zero point 0); works for ints and floats.
        """
        x = np.asarray(images)
        n = x.shape[0]
        nchw = x.reshape(n, self.height, self.width, self.channels).transpose(0, 3, 1, 2)
        p = self.padding
        padded = np.zeros((n, self.channels, self.height + 2 * p, self.width + 2 * p),
                          dtype=x.dtype)
        padded[:, :, p:p + self.height, p:p + self.width] = nchw
        k, st = self.kernel, self.stride
        ho, wo = self.out_size
        windows = np.lib.stride_tricks.sliding_window_view(padded, (k, k), axis=(2, 3))
        windows = windows[:, :, : (ho - 1) * st + 1 : st, : (wo - 1) * st + 1 : st]
        return windows.transpose(0, 2, 3, 1, 4, 5).reshape(n * ho * wo, self.window)


def _gemm_input(images, conv: ConvGeometry | None) -> np.ndarray:
    return np.asarray(images) if conv is None else conv.unfold(images)


@dataclass
class FloatNetwork:
    """A trained float MLP with its data.

    Members
    -------
    name : str
    weights : list of ndarray [K_l, N_l] of float64
        Layer weights, inputs along rows (``y = x @ W + b``).
    biases : list of ndarray [N_l] of float64
    x_train, x_test : ndarray [samples, features] of float64
        Inputs in the float domain the network was trained on.
    y_train, y_test : ndarray [samples] of int
        Labels.
    input_step : float
        The inputs are exact multiples of this step (0 for arbitrary floats), so an
        activation format wide enough holds them exactly.
    convs : list of ConvGeometry or None
        Per layer: its convolution geometry (``weights[l]`` is then ``[C R S, Cout]``),
        or ``None`` for a fully-connected layer. Empty: every layer is fully connected.
    """

    name: str
    weights: list
    biases: list
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    input_step: float = 0.0
    convs: list = field(default_factory=list)

    def conv(self, index: int) -> ConvGeometry | None:
        """Layer ``index``'s convolution geometry, ``None`` when fully connected."""
        return self.convs[index] if self.convs else None

    def split(self, split: str) -> tuple:
        """``(x, y)`` of ``"train"`` or ``"test"``."""
        if split == "train":
            return self.x_train, self.y_train
        if split == "test":
            return self.x_test, self.y_test
        raise ValueError(f"split={split!r}: must be 'train' or 'test'")

    def forward(self, x) -> np.ndarray:
        """Float logits: ReLU between layers, none after the last."""
        h = np.asarray(x, dtype=np.float64)
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            images = h.shape[0]
            h = (_gemm_input(h, self.conv(i)) @ w + b).reshape(images, -1)
            if i < len(self.weights) - 1:
                h = np.maximum(h, 0.0)
        return h

    def accuracy(self, split: str = "test") -> float:
        """Float accuracy on a split."""
        x, y = self.split(split)
        return float(np.mean(np.argmax(self.forward(x), axis=1) == y))


@dataclass
class QuantLayer:
    """One quantized fully-connected layer (bias folded in as the last input row).

    Members
    -------
    codes : ndarray [K, N] of int64
        Weight codes; row ``K - 1`` is the bias row.
    formats : tuple of Format, length N
        Each column's weight format (one format repeated, or MSQ's per-column split).
    weight_scales : ndarray [N] of float64
        Per-column scales: ``W[:, j] ~ weight_scales[j] * decode(codes[:, j])``.
    input_scale, output_scale : float
        Activation scales before and after (``output_scale`` is 0 for the last layer).
    acc_bound : Bound
        L1 bound of this layer's weight levels over the activation format.
    multiplier, shift : ndarray [N] of int64 or None
        Requantization of a hidden layer (``None`` for the last layer).
    relu : bool
    conv : ConvGeometry or None
        The convolution this layer computes by im2col (``None``: fully connected).
    """

    codes: np.ndarray
    formats: tuple
    weight_scales: np.ndarray
    input_scale: float
    output_scale: float
    acc_bound: bounds.Bound
    multiplier: np.ndarray | None = None
    shift: np.ndarray | None = None
    relu: bool = True
    conv: ConvGeometry | None = None

    @property
    def k(self) -> int:
        """Dot-product length, the bias row included."""
        return self.codes.shape[0]

    @property
    def n(self) -> int:
        """Output channels."""
        return self.codes.shape[1]

    @property
    def is_last(self) -> bool:
        return self.multiplier is None

    @property
    def uniform_format(self) -> Format | None:
        """The one weight format of every column, or ``None`` for a mixed (MSQ) layer."""
        first = self.formats[0]
        return first if all(f == first for f in self.formats) else None

    def levels(self) -> np.ndarray:
        """The exact integer weight levels ``[K, N]``."""
        out = np.empty(self.codes.shape, dtype=np.int64)
        for fmt in set(self.formats):
            cols = np.array([f == fmt for f in self.formats])
            out[:, cols] = fmt.decode(self.codes[:, cols])
        return out

    def accumulate(self, acts) -> np.ndarray:
        """Golden accumulators ``acts @ levels`` (exact)."""
        return golden.matmul_values(acts, self.levels()).acc

    def requantize(self, acc, act_fmt: IntFormat) -> np.ndarray:
        """Golden requantization of a hidden layer's accumulators to activation codes."""
        return golden.requantize(acc, self.multiplier, self.shift, 0,
                                 act_fmt.min_level, act_fmt.max_level, relu=self.relu)

    def rows_per_image(self) -> int:
        """GEMM rows per image: ``Ho * Wo`` for a convolution, 1 otherwise."""
        if self.conv is None:
            return 1
        ho, wo = self.conv.out_size
        return ho * wo

    def gemm_shape(self, images: int) -> tuple:
        """``(M, K, N)`` of this layer on ``images`` inputs."""
        return (images * self.rows_per_image(), self.k, self.n)


#: ``run_layer(acts, layer, index) -> outputs``: a hidden layer's requantized codes or
#: the last layer's raw accumulators, for ``acts`` ``[M, K]`` (constant column included).
LayerRunner = Callable[[np.ndarray, QuantLayer, int], np.ndarray]


@dataclass
class QuantizedNetwork:
    """A network in integers, ready for the golden model or the accelerator.

    Members
    -------
    source : FloatNetwork
    act_format : IntFormat
        Unsigned activation format of every layer input.
    layers : list of QuantLayer
    input_scale : float
        Scale of the first layer's activation codes.
    """

    source: FloatNetwork
    act_format: IntFormat
    layers: list
    input_scale: float
    spec: tuple = field(default=())

    @property
    def acc_bits(self) -> int:
        """Accumulator width that holds every layer's partial sums (the widest bound)."""
        return max(layer.acc_bound.bits for layer in self.layers)

    @property
    def constant(self) -> int:
        """The constant activation code feeding the bias row."""
        return self.act_format.max_level

    def input_codes(self, x) -> np.ndarray:
        """Float inputs to activation codes per image (nearest, clamped)."""
        return quantize(np.asarray(x, dtype=np.float64), self.act_format, self.input_scale)

    def gemm_acts(self, images, index: int) -> np.ndarray:
        """Layer ``index``'s GEMM activations from its input codes ``[images, features]``:
        im2col for a convolution, then the constant column of the bias row."""
        rows = _gemm_input(np.asarray(images, dtype=np.int64), self.layers[index].conv)
        column = np.full((rows.shape[0], 1), self.constant, dtype=np.int64)
        return np.concatenate([rows, column], axis=1)

    def golden_layer(self, acts, layer: QuantLayer, index: int) -> np.ndarray:
        """The golden model's outputs of one layer (the default :data:`LayerRunner`)."""
        acc = layer.accumulate(acts)
        return acc if layer.is_last else layer.requantize(acc, self.act_format)

    def run(self, x, run_layer: LayerRunner | None = None) -> list:
        """Every layer's integer outputs on float inputs ``x``.

        ``run_layer`` computes one layer (default: the golden model); it receives each
        layer's input exactly as the golden model would have produced it only when the
        earlier layers agree, so compare layer by layer with :meth:`golden_layer`.
        """
        run_layer = run_layer or self.golden_layer
        images = self.input_codes(x)
        outputs = []
        for index, layer in enumerate(self.layers):
            acts = self.gemm_acts(images, index)
            out = np.asarray(run_layer(acts, layer, index), dtype=np.int64)
            if out.shape != (acts.shape[0], layer.n):
                raise ValueError(f"run_layer returned shape {out.shape} for layer {index}; "
                                 f"expected {(acts.shape[0], layer.n)}")
            outputs.append(out)
            images = out.reshape(images.shape[0], -1)
        return outputs

    def layer_inputs(self, x, outputs: list) -> list:
        """The GEMM activations (constant column included) each layer received."""
        images = self.input_codes(x)
        inputs = [self.gemm_acts(images, 0)]
        for index, out in enumerate(outputs[:-1], start=1):
            images = out.reshape(images.shape[0], -1)
            inputs.append(self.gemm_acts(images, index))
        return inputs

    def logits(self, last_acc) -> np.ndarray:
        """Float logits from the last layer's accumulators (up to the common input scale)."""
        return np.asarray(last_acc, dtype=np.float64) * self.layers[-1].weight_scales

    def predict(self, x, run_layer: LayerRunner | None = None) -> np.ndarray:
        """Class labels."""
        return np.argmax(self.logits(self.run(x, run_layer)[-1]), axis=1)

    def accuracy(self, split: str = "test", run_layer: LayerRunner | None = None) -> float:
        x, y = self.source.split(split)
        return float(np.mean(self.predict(x, run_layer) == y))


def parse_layer_format(spec) -> tuple:
    """``"pot4"`` -> ``("uniform", Format)``; ``"msq:0.5"`` / ``"msq:0.5:int4:sp2-4"`` -> MSQ.

    MSQ puts the given share of a layer's output channels in the SP2 format (shift-add
    columns) and the rest in the uniform format (multiplier columns), with MSQ's
    optimal row split (:func:`potgen.quantize.msq_split`).
    """
    if isinstance(spec, Format):
        return ("uniform", spec)
    if not isinstance(spec, str):
        raise TypeError(f"weight format: expected a format string, got "
                        f"{type(spec).__name__}")
    if not spec.startswith("msq:"):
        return ("uniform", parse_format(spec))
    parts = spec.split(":")
    if len(parts) not in (2, 4):
        raise ValueError(f"weight format {spec!r}: MSQ is 'msq:FRACTION' or "
                         "'msq:FRACTION:UNIFORM:SP2' (e.g. 'msq:0.5:int4:sp2-4')")
    try:
        fraction = float(parts[1])
    except ValueError:
        raise ValueError(f"weight format {spec!r}: the SP2 share {parts[1]!r} is not a "
                         "number in [0, 1]") from None
    if not 0 <= fraction <= 1:
        raise ValueError(f"weight format {spec!r}: the SP2 share must be in [0, 1]")
    uniform, sp2 = (parts[2], parts[3]) if len(parts) == 4 else ("int4", "sp2-4")
    return ("msq", (fraction, parse_format(uniform), parse_format(sp2)))


def _quantize_weights(w: np.ndarray, spec) -> tuple:
    """``(codes [K, N], formats, scales [N])`` of one layer's weights."""
    kind, value = parse_layer_format(spec)
    n = w.shape[1]
    if kind == "uniform":
        fmt = value
        if isinstance(fmt, IntFormat) and not fmt.signed:
            raise ValueError(f"weight format {fmt}: weights need a signed format")
        scales = np.asarray(calibrate_scale(w, fmt, "mse", axis=1), dtype=np.float64)
        return quantize(w, fmt, scales, axis=1), (fmt,) * n, scales
    fraction, ufmt, sfmt = value
    split = msq_split(w.T, fraction, uniform=ufmt, sp2=sfmt)
    codes = np.empty(w.shape, dtype=np.int64)
    codes[:, ~split.sp2_rows] = split.uniform_codes.T
    codes[:, split.sp2_rows] = split.sp2_codes.T
    formats = tuple(sfmt if s else ufmt for s in split.sp2_rows)
    return codes, formats, np.asarray(split.scales, dtype=np.float64)


def _input_scale(net: FloatNetwork, act: IntFormat) -> float:
    """The input scale: exact when the inputs sit on a grid the format can hold."""
    x = net.x_train
    top = float(np.max(x)) if x.size else 1.0
    if net.input_step > 0:
        steps = round(top / net.input_step)
        per_step = act.max_level // steps if steps else 0
        if per_step >= 1:
            return net.input_step / per_step
    return top / act.max_level


def quantize_network(net: FloatNetwork, weights="pot4", act="uint8",
                     calibration_samples: int = 512) -> QuantizedNetwork:
    """Quantize a float network for the accelerator.

    Parameters
    ----------
    net : FloatNetwork
    weights : str or sequence of str
        One weight format for every layer, or one per layer; ``"msq:F[:U:S]"`` for an
        MSQ split (see :func:`parse_layer_format`).
    act : str or IntFormat
        Unsigned activation format of every layer input (``uintN``).
    calibration_samples : int
        Training samples used to choose each hidden layer's output scale (the
        largest float activation the quantized network produces there).
    """
    act_fmt = parse_format(act)
    if not isinstance(act_fmt, IntFormat) or act_fmt.signed:
        raise ValueError(f"act={act!r}: activations must be an unsigned uintN format")
    specs = [weights] * len(net.weights) if isinstance(weights, (str, Format)) \
        else list(weights)
    if len(specs) != len(net.weights):
        raise ValueError(f"weights: {len(specs)} formats for {len(net.weights)} layers; "
                         "give one format or one per layer")
    if isinstance(calibration_samples, bool) or not isinstance(calibration_samples, int) \
            or calibration_samples < 1:
        raise ValueError(f"calibration_samples={calibration_samples!r}: must be an int >= 1")

    constant = act_fmt.max_level
    in_scale = _input_scale(net, act_fmt)
    first_scale = in_scale
    calib = net.x_train[:calibration_samples]
    layers = []
    for index, (w, b, spec) in enumerate(zip(net.weights, net.biases, specs)):
        folded = np.vstack([w, b[None, :] / (constant * in_scale)])
        codes, formats, w_scales = _quantize_weights(folded, spec)
        levels = np.empty(codes.shape, dtype=np.int64)
        for fmt in set(formats):
            cols = np.array([f == fmt for f in formats])
            levels[:, cols] = fmt.decode(codes[:, cols])
        bound = bounds.l1(act_fmt, levels)
        last = index == len(net.weights) - 1
        layer = QuantLayer(codes, formats, w_scales, in_scale, 0.0, bound, conv=net.conv(index))
        if not last:
            # The output scale comes from what the quantized layers so far produce.
            partial = QuantizedNetwork(net, act_fmt, layers + [layer], first_scale)
            images = partial.input_codes(calib)
            for i, earlier in enumerate(layers):
                images = partial.golden_layer(partial.gemm_acts(images, i), earlier, i) \
                    .reshape(images.shape[0], -1)
            acts = partial.gemm_acts(images, index)
            real = layer.accumulate(acts) * (in_scale * w_scales)
            top = float(np.max(np.maximum(real, 0.0)))
            out_scale = top / act_fmt.max_level if top > 0 else 1.0
            pairs = [golden.quantize_multiplier(in_scale * s / out_scale,
                                                MULTIPLIER_BITS, MAX_SHIFT) for s in w_scales]
            layer.output_scale = out_scale
            layer.multiplier = np.array([m for m, _ in pairs], dtype=np.int64)
            layer.shift = np.array([s for _, s in pairs], dtype=np.int64)
            in_scale = out_scale
        layers.append(layer)
    return QuantizedNetwork(net, act_fmt, layers, first_scale,
                            spec=tuple(str(s) for s in specs))
