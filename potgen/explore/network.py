"""Networks the explorer works on: float layers, their GEMM shapes, and the data set.

A :class:`Network` is a chain of fully-connected and conv2d layers in float, with the
data set used to measure accuracy. Each layer knows its GEMM shape on the accelerator
(``[M, K] @ [K, N]``; conv2d through im2col, BACKGROUND.md section 6) and carries its
weights as a ``[K, N]`` matrix in the order the accelerator consumes them.

Biases are folded into the GEMM as one extra weight row fed by a constant activation
(the accelerator has no bias adder), so a layer with a bias has ``K = fan_in + 1``.

Sources (:func:`load_network`):

* ``"digits"``: the built-in MLP on scikit-learn's bundled digits (no download), via
  :func:`digits_network` (one adapter to :mod:`potgen.networks.digits`).
* a ``.npz`` file with a JSON description beside it (``net.npz`` + ``net.json``), the
  format documented in ``docs/explore.md``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["Layer", "Network", "load_network", "digits_network", "LAYER_KINDS",
           "im2col"]

#: Layer kinds the explorer maps onto the accelerator.
LAYER_KINDS = ("fc", "conv2d")


def _positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name}={value!r}: expected an int >= 1")
    return int(value)


def im2col(x: np.ndarray, kernel: tuple, stride: int, padding: int) -> np.ndarray:
    """Patches of NHWC ``x`` as rows ``[B * Ho * Wo, kh * kw * Cin]`` (kh, kw, c order).

    Padding inserts zeros (the activation value 0).
    """
    kh, kw = kernel
    if padding:
        x = np.pad(x, ((0, 0), (padding, padding), (padding, padding), (0, 0)))
    windows = np.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(1, 2))
    windows = windows[:, ::stride, ::stride]          # [B, Ho, Wo, C, kh, kw]
    b, ho, wo = windows.shape[:3]
    return windows.transpose(0, 1, 2, 4, 5, 3).reshape(b * ho * wo, -1)


@dataclass(frozen=True, eq=False)
class Layer:
    """One layer as the accelerator runs it.

    Parameters
    ----------
    name : str
        Unique name within the network.
    kind : {"fc", "conv2d"}
    weights : ndarray of float, shape [fan_in, N]
        ``fc``: ``[in_features, out_features]``. ``conv2d``: ``[kh * kw * Cin, Cout]``
        with rows in ``(kh, kw, Cin)`` order (what :func:`im2col` produces).
    bias : ndarray of float, shape [N], or None
    relu : bool
        ReLU after the layer (every layer but the last in a classifier).
    in_shape : tuple of int
        ``fc``: ``(in_features,)``; ``conv2d``: ``(H, W, Cin)`` (NHWC).
    kernel : (int, int)
        ``conv2d`` only.
    stride, padding : int
        ``conv2d`` only.

    Members
    -------
    fan_in : int
        Rows of ``weights``.
    out_features : int
        ``N``.
    k : int
        GEMM reduction length: ``fan_in`` plus one row for a bias.
    """

    name: str
    kind: str
    weights: np.ndarray
    bias: np.ndarray | None = None
    relu: bool = True
    in_shape: tuple = ()
    kernel: tuple = (1, 1)
    stride: int = 1
    padding: int = 0

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"layer name={self.name!r}: expected a non-empty string")
        if self.kind not in LAYER_KINDS:
            raise ValueError(f"layer {self.name}: kind={self.kind!r}; allowed "
                             f"{', '.join(LAYER_KINDS)}")
        w = np.asarray(self.weights, dtype=np.float64)
        if w.ndim != 2 or 0 in w.shape or not np.isfinite(w).all():
            raise ValueError(f"layer {self.name}: weights must be a finite 2-D [fan_in, N] "
                             f"matrix, got shape {w.shape}")
        object.__setattr__(self, "weights", w)
        if self.bias is not None:
            b = np.asarray(self.bias, dtype=np.float64)
            if b.shape != (w.shape[1],) or not np.isfinite(b).all():
                raise ValueError(f"layer {self.name}: bias must be finite with shape "
                                 f"({w.shape[1]},), got {b.shape}")
            object.__setattr__(self, "bias", b)
        shape = tuple(int(v) for v in self.in_shape)
        object.__setattr__(self, "in_shape", shape)
        if self.kind == "fc":
            if shape != (w.shape[0],):
                raise ValueError(f"layer {self.name}: fc in_shape={shape} must be "
                                 f"({w.shape[0]},), the weights' fan-in")
        else:
            kernel = tuple(_positive_int(v, f"layer {self.name}: kernel")
                           for v in self.kernel)
            object.__setattr__(self, "kernel", kernel)
            object.__setattr__(self, "stride", _positive_int(self.stride, "stride"))
            if isinstance(self.padding, bool) or not isinstance(
                    self.padding, (int, np.integer)) or self.padding < 0:
                raise ValueError(f"layer {self.name}: padding={self.padding!r}: expected "
                                 "an int >= 0")
            if len(shape) != 3 or len(kernel) != 2:
                raise ValueError(f"layer {self.name}: conv2d needs in_shape (H, W, Cin) "
                                 f"and kernel (kh, kw), got {shape} and {kernel}")
            if kernel[0] * kernel[1] * shape[2] != w.shape[0]:
                raise ValueError(f"layer {self.name}: weights have {w.shape[0]} rows but "
                                 f"kernel {kernel} x Cin {shape[2]} needs "
                                 f"{kernel[0] * kernel[1] * shape[2]}")
            ho, wo = self.out_hw
            if ho < 1 or wo < 1:
                raise ValueError(f"layer {self.name}: kernel {kernel} does not fit the "
                                 f"{shape[0]}x{shape[1]} input with padding {self.padding}")

    @property
    def fan_in(self) -> int:
        return self.weights.shape[0]

    @property
    def out_features(self) -> int:
        return self.weights.shape[1]

    @property
    def k(self) -> int:
        return self.fan_in + (self.bias is not None)

    @property
    def out_hw(self) -> tuple:
        """``conv2d``: output height and width; ``fc``: ``(1, 1)``."""
        if self.kind == "fc":
            return 1, 1
        (h, w, _), (kh, kw) = self.in_shape, self.kernel
        p, s = self.padding, self.stride
        return (h + 2 * p - kh) // s + 1, (w + 2 * p - kw) // s + 1

    @property
    def out_shape(self) -> tuple:
        if self.kind == "fc":
            return (self.out_features,)
        return (*self.out_hw, self.out_features)

    def gemm_shape(self, batch: int = 1) -> tuple:
        """``(M, K, N)`` of this layer for ``batch`` inputs (conv2d: im2col rows)."""
        batch = _positive_int(batch, "batch")
        ho, wo = self.out_hw
        return batch * ho * wo, self.k, self.out_features

    def gemm_inputs(self, x: np.ndarray) -> np.ndarray:
        """The GEMM's activation matrix ``[M, fan_in]`` for a batch ``x`` of inputs."""
        x = np.asarray(x)
        if self.kind == "fc":
            return x.reshape(x.shape[0], -1)
        x = x.reshape(x.shape[0], *self.in_shape)
        return im2col(x, self.kernel, self.stride, self.padding)

    def folded_weights(self) -> np.ndarray:
        """``[K, N]`` float weights with the bias as the last row (for a constant input 1)."""
        if self.bias is None:
            return self.weights
        return np.vstack([self.weights, self.bias[None, :]])


@dataclass(eq=False)
class Network:
    """A chain of layers and the data set to measure it on.

    Parameters
    ----------
    name : str
    layers : list of Layer
        In order; each layer's input is the previous one's output (flattened into an
        ``fc`` layer's features in NHWC order).
    x_train, y_train, x_test, y_test : ndarray
        Inputs ``[n, *layers[0].in_shape]`` (floats) and integer class labels.
        ``x_train`` calibrates activation scales; accuracy is measured on the test split.
    """

    name: str
    layers: list
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    info: dict = field(default_factory=dict)

    def __post_init__(self):
        if not self.layers:
            raise ValueError(f"network {self.name}: needs at least one layer")
        names = [layer.name for layer in self.layers]
        if len(set(names)) != len(names):
            raise ValueError(f"network {self.name}: layer names repeat: {names}")
        for prev, nxt in zip(self.layers, self.layers[1:]):
            if int(np.prod(prev.out_shape)) != int(np.prod(nxt.in_shape)):
                raise ValueError(f"network {self.name}: layer {prev.name} gives "
                                 f"{prev.out_shape} but {nxt.name} takes {nxt.in_shape}")
        for split in ("train", "test"):
            x = np.asarray(getattr(self, f"x_{split}"), dtype=np.float64)
            y = np.asarray(getattr(self, f"y_{split}"))
            if len(x) == 0 or len(x) != len(y):
                raise ValueError(f"network {self.name}: x_{split} and y_{split} must be "
                                 f"non-empty and of equal length, got {len(x)} and {len(y)}")
            if int(np.prod(x.shape[1:])) != int(np.prod(self.layers[0].in_shape)):
                raise ValueError(f"network {self.name}: x_{split} samples of shape "
                                 f"{x.shape[1:]} do not match the first layer's input "
                                 f"{self.layers[0].in_shape}")
            setattr(self, f"x_{split}", x)
            setattr(self, f"y_{split}", y.astype(np.int64))

    def float_accuracy(self, split: str = "test") -> float:
        """Accuracy of the float network (the reference the quantized one is held to)."""
        x, y = getattr(self, f"x_{split}"), getattr(self, f"y_{split}")
        for layer in self.layers:
            rows = layer.gemm_inputs(x)
            out = rows @ layer.weights
            if layer.bias is not None:
                out = out + layer.bias
            if layer.relu:
                out = np.maximum(out, 0.0)
            x = out.reshape(len(x), *layer.out_shape)
        return float(np.mean(np.argmax(x.reshape(len(x), -1), axis=1) == y))


# --- sources -----------------------------------------------------------------------------

def digits_network(seed: int = 0, hidden: int = 32) -> Network:
    """The built-in digits MLP (64 - hidden - 10).

    Uses :func:`potgen.networks.digits.load` when that module is present (the same
    trained network as ``potgen run digits``); otherwise trains the same kind of MLP
    with scikit-learn here (a few seconds, deterministic with ``seed``). Either way the
    float layers are converted into explorer :class:`Layer` objects.
    """
    try:
        from ..networks import digits as _digits
    except ImportError:
        _digits = None
    if _digits is not None and hasattr(_digits, "load"):
        net = _digits.load(kind="mlp", seed=seed)
        return _from_potgen_network(net)
    return _train_digits_mlp(seed, hidden)


def _from_potgen_network(net) -> Network:
    """Adapter from :class:`potgen.networks.quantized.FloatNetwork` (weights / biases lists)."""
    count = len(net.weights)
    layers = [Layer(f"fc{i + 1}", "fc", w, b, relu=i < count - 1, in_shape=(w.shape[0],))
              for i, (w, b) in enumerate(zip(net.weights, net.biases))]
    return Network("digits", layers, net.x_train, net.y_train, net.x_test, net.y_test,
                   info={"source": "potgen.networks.digits", "name": net.name})


def _train_digits_mlp(seed: int, hidden: int) -> Network:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    from sklearn.neural_network import MLPClassifier

    data = load_digits()
    x = data.data / 16.0
    x_train, x_test, y_train, y_test = train_test_split(
        x, data.target, test_size=0.2, random_state=seed, stratify=data.target)
    clf = MLPClassifier(hidden_layer_sizes=(hidden,), max_iter=400, random_state=seed,
                        alpha=1e-3)
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf.fit(x_train, y_train)
    layers = [Layer("fc1", "fc", clf.coefs_[0], clf.intercepts_[0], relu=True,
                    in_shape=(64,)),
              Layer("fc2", "fc", clf.coefs_[1], clf.intercepts_[1], relu=False,
                    in_shape=(hidden,))]
    return Network("digits", layers, x_train, y_train, x_test, y_test,
                   info={"source": "scikit-learn MLPClassifier (explorer fallback)",
                         "seed": seed, "hidden": hidden})


def _load_file(path: Path) -> Network:
    """``net.npz`` + ``net.json`` (see ``docs/explore.md``)."""
    desc_path = path.with_suffix(".json")
    if not path.is_file():
        raise ValueError(f"network: {str(path)!r} is neither 'digits' nor an existing "
                         ".npz file")
    if not desc_path.is_file():
        raise ValueError(f"network: {str(path)!r} needs its description "
                         f"{str(desc_path)!r} (layers as JSON) beside it")
    try:
        desc = json.loads(desc_path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"network: {desc_path} is not valid JSON: {e}") from None
    arrays = np.load(path, allow_pickle=False)

    def array(name, what):
        if name not in arrays:
            raise ValueError(f"network: {path.name} has no array {name!r} ({what}); "
                             f"it holds {', '.join(sorted(arrays.files))}")
        return arrays[name]

    specs = desc.get("layers")
    if not isinstance(specs, list) or not specs:
        raise ValueError(f"network: {desc_path.name} needs a non-empty 'layers' list")
    layers = []
    for i, spec in enumerate(specs):
        if not isinstance(spec, dict) or "name" not in spec or "kind" not in spec:
            raise ValueError(f"network: layer {i} of {desc_path.name} needs 'name' and "
                             "'kind'")
        name = spec["name"]
        weights = array(spec.get("weights", f"{name}.weights"), f"weights of {name}")
        bias_key = spec.get("bias", f"{name}.bias")
        bias = arrays[bias_key] if bias_key in arrays else None
        relu = bool(spec.get("relu", i < len(specs) - 1))
        if spec["kind"] == "fc":
            in_shape = tuple(spec.get("in_shape", (weights.shape[0],)))
            layers.append(Layer(name, "fc", weights, bias, relu, in_shape))
        else:
            layers.append(Layer(name, spec["kind"], weights, bias, relu,
                                tuple(spec.get("in_shape", ())),
                                tuple(spec.get("kernel", (1, 1))),
                                spec.get("stride", 1), spec.get("padding", 0)))
    return Network(desc.get("name", path.stem), layers,
                   array("x_train", "calibration inputs"), array("y_train", "labels"),
                   array("x_test", "test inputs"), array("y_test", "test labels"),
                   info={"source": str(path)})


def load_network(source, *, seed: int = 0) -> Network:
    """``"digits"``, a path to ``net.npz`` (with ``net.json``), or a :class:`Network`."""
    if isinstance(source, Network):
        return source
    if isinstance(source, str) and source.lower() == "digits":
        return digits_network(seed=seed)
    if isinstance(source, (str, Path)):
        return _load_file(Path(source))
    raise TypeError(f"network: expected 'digits', a .npz path or a Network, got "
                    f"{type(source).__name__}")
