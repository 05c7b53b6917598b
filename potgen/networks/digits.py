"""The built-in network: an MLP on scikit-learn's bundled digits data set (no download).

8x8 grey-level images with integer pixels 0..16, ten classes, 1797 samples. The split
is stratified, 75% train / 25% test (450 test images), fixed by the seed. The MLP is
``64 -> hidden -> 10`` with ReLU, trained by scikit-learn's ``MLPClassifier`` (Adam) on
``pixels / 16`` in about a second on one core.

Inputs sit on the grid ``1/16``, so ``uint8`` activations hold them exactly
(code ``15 * pixel``, scale ``1/240``); narrower activation formats round them.
"""

from __future__ import annotations

import warnings
from functools import lru_cache

import numpy as np

from .quantized import FloatNetwork, QuantizedNetwork, quantize_network

__all__ = ["load", "quantize", "KINDS", "DEFAULT_HIDDEN"]

#: Network kinds this module builds.
KINDS = ("mlp",)
#: Hidden units of the default MLP.
DEFAULT_HIDDEN = 32


@lru_cache(maxsize=8)
def _train(kind: str, hidden: int, seed: int) -> FloatNetwork:
    from sklearn.datasets import load_digits
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import train_test_split
    from sklearn.neural_network import MLPClassifier

    data = load_digits()
    x = data.data.astype(np.float64) / 16.0
    y = data.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=0.25, random_state=seed, stratify=y)
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
        ``"mlp"``.
    seed : int
        Seed of the split and of the training.
    hidden : int
        Hidden units, 1..256.
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
