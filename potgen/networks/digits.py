"""The built-in networks on scikit-learn's bundled digits data set (no download).

8x8 grey-level images with integer pixels 0..16, ten classes, 1797 samples. The split
is stratified, 75% train / 25% test (450 test images), fixed by the seed. Both networks
train on ``pixels / 16`` in seconds on one core:

``"mlp"``
    ``64 -> hidden -> 10`` with ReLU, scikit-learn's ``MLPClassifier`` (Adam).
``"cnn"``
    a 3x3 convolution (1 -> ``hidden // 4`` channels, no padding: 6x6 outputs), ReLU,
    and a fully-connected layer to 10 classes; trained here with NumPy (Adam,
    mini-batches, softmax cross-entropy). On the accelerator the convolution is one
    GEMM by im2col: ``M = 36`` rows per image, ``K = 9 + 1``, ``N`` = channels.

Inputs sit on the grid ``1/16``, so ``uint8`` activations hold them exactly
(code ``15 * pixel``, scale ``1/240``); narrower activation formats round them.
"""

from __future__ import annotations

import warnings
from functools import lru_cache

import numpy as np

from .quantized import ConvGeometry, FloatNetwork, QuantizedNetwork, quantize_network

__all__ = ["load", "quantize", "KINDS", "DEFAULT_HIDDEN"]

#: Network kinds this module builds.
KINDS = ("mlp", "cnn")
#: Hidden units of the default MLP.
DEFAULT_HIDDEN = 32


#: The CNN's convolution: one input channel, 8x8 images, 3x3 window.
CNN_CONV = dict(channels=1, height=8, width=8, kernel=3)


def _data(seed: int) -> tuple:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    data = load_digits()
    x = data.data.astype(np.float64) / 16.0
    y = data.target.astype(np.int64)
    return train_test_split(x, y, test_size=0.25, random_state=seed, stratify=y)


def _adam_cnn(x, y, conv: ConvGeometry, channels: int, seed: int, epochs: int = 60,
              batch: int = 64, rate: float = 3e-3) -> tuple:
    """Train conv -> ReLU -> FC with softmax cross-entropy; plain NumPy, float64."""
    rng = np.random.default_rng(seed)
    ho, wo = conv.out_size
    features = ho * wo * channels
    params = [rng.normal(0, np.sqrt(2 / conv.window), (conv.window, channels)),
              np.zeros(channels),
              rng.normal(0, np.sqrt(2 / features), (features, 10)),
              np.zeros(10)]
    moments = [(np.zeros_like(p), np.zeros_like(p)) for p in params]
    step = 0
    for _ in range(epochs):
        order = rng.permutation(len(y))
        for start in range(0, len(y), batch):
            idx = order[start:start + batch]
            n = len(idx)
            cols = conv.unfold(x[idx])
            pre = cols @ params[0] + params[1]
            hidden = np.maximum(pre, 0).reshape(n, features)
            logits = hidden @ params[2] + params[3]
            prob = np.exp(logits - logits.max(axis=1, keepdims=True))
            prob /= prob.sum(axis=1, keepdims=True)
            prob[np.arange(n), y[idx]] -= 1
            d_logits = prob / n
            d_hidden = (d_logits @ params[2].T).reshape(n * ho * wo, channels) * (pre > 0)
            grads = [cols.T @ d_hidden, d_hidden.sum(axis=0),
                     hidden.T @ d_logits, d_logits.sum(axis=0)]
            step += 1
            for p, g, (m, v) in zip(params, grads, moments):
                m *= 0.9
                m += 0.1 * g
                v *= 0.999
                v += 0.001 * g * g
                p -= rate * (m / (1 - 0.9 ** step)) / (np.sqrt(v / (1 - 0.999 ** step)) + 1e-8)
    return params


@lru_cache(maxsize=8)
def _train(kind: str, hidden: int, seed: int) -> FloatNetwork:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    x_train, x_test, y_train, y_test = _data(seed)
    if kind == "cnn":
        conv = ConvGeometry(**CNN_CONV)
        channels = max(1, hidden // 4)
        wc, bc, wf, bf = _adam_cnn(x_train, y_train, conv, channels, seed)
        return FloatNetwork(name=f"digits-cnn{channels}", weights=[wc, wf], biases=[bc, bf],
                            x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test,
                            input_step=1.0 / 16.0, convs=[conv, None])
    model = MLPClassifier(hidden_layer_sizes=(hidden,), activation="relu", solver="adam",
                          alpha=1e-4, learning_rate_init=3e-3, max_iter=400,
                          random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(x_train, y_train)
    return FloatNetwork(
        name=f"digits-{kind}{hidden}",
        weights=[np.array(w, dtype=np.float64) for w in model.coefs_],
        biases=[np.array(b, dtype=np.float64) for b in model.intercepts_],
        x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test,
        input_step=1.0 / 16.0)


def load(kind: str = "mlp", seed: int = 0, hidden: int = DEFAULT_HIDDEN) -> FloatNetwork:
    """Train (once per process) the float digits network.

    Parameters
    ----------
    kind : str
        ``"mlp"`` or ``"cnn"``.
    seed : int
        Seed of the split and of the training.
    hidden : int
        Hidden units of the MLP, 1..256 (the CNN has ``hidden // 4`` channels).
    """
    if kind not in KINDS:
        raise ValueError(f"kind={kind!r}: the digits networks are {', '.join(KINDS)}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed={seed!r}: must be an int >= 0")
    if isinstance(hidden, bool) or not isinstance(hidden, int) or not 1 <= hidden <= 256:
        raise ValueError(f"hidden={hidden!r}: must be an int in 1..256")
    return _train(kind, hidden, seed)


def quantize(net: FloatNetwork, weights="pot4", act="uint8") -> QuantizedNetwork:
    """The digits network in integers (see :func:`potgen.networks.quantized.quantize_network`)."""
    return quantize_network(net, weights, act)
