"""The digits network: training, quantization, integer inference against an independent reference."""

import numpy as np
import pytest

from potgen import golden
from potgen.networks.quantized import ConvGeometry

from potgen.formats import parse_format
from potgen.networks import digits
from potgen.networks.quantized import parse_layer_format


@pytest.fixture(scope="module")
def net():
    return digits.load()


def _reference_layer(acts, layer, act_fmt):
    """Python-int arithmetic, written from the requantization formula, not the golden code."""
    levels = layer.levels()
    out = np.empty((acts.shape[0], layer.n), dtype=np.int64)
    for i in range(acts.shape[0]):
        for j in range(layer.n):
            acc = sum(int(a) * int(w) for a, w in zip(acts[i], levels[:, j]))
            if layer.is_last:
                out[i, j] = acc
                continue
            m, s = int(layer.multiplier[j]), int(layer.shift[j])
            v = (acc * m + (1 << (s - 1) if s else 0)) >> s
            out[i, j] = min(max(v, 0), act_fmt.max_level)
    return out


def test_float_network_is_trained(net):
    assert net.x_test.shape == (450, 64)
    assert net.accuracy("test") > 0.95
    # Pixels are multiples of 1/16, so uint8 holds the inputs exactly.
    assert np.all(np.round(net.x_train * 16) == net.x_train * 16)


@pytest.mark.parametrize("weights", ["pot4", "apot4", "sp2-4", "int8", "msq:0.5"])
def test_integer_inference_matches_reference(net, weights):
    q = digits.quantize(net, weights, "uint8")
    x = net.x_test[:12]
    outputs = q.run(x)
    for layer, acts, out in zip(q.layers, q.layer_inputs(x, outputs), outputs):
        np.testing.assert_array_equal(out, _reference_layer(acts, layer, q.act_format))
        # The accumulator bound the hardware is sized by holds every partial sum.
        partial = np.cumsum(acts[:, :, None] * layer.levels()[None, :, :], axis=1)
        assert partial.min() >= layer.acc_bound.min and partial.max() <= layer.acc_bound.max


def test_inputs_are_exact_in_uint8_and_bias_row_is_constant(net):
    q = digits.quantize(net, "int8", "uint8")
    codes = q.input_codes(net.x_test)
    np.testing.assert_array_equal(codes, np.round(net.x_test * 240).astype(int))
    acts = q.gemm_acts(codes, 0)
    np.testing.assert_array_equal(acts[:, :-1], codes)
    assert np.all(acts[:, -1] == 255)
    assert q.layers[0].k == 65 and q.layers[1].k == 33


@pytest.mark.parametrize("weights,floor", [("int8", 0.95), ("pot4", 0.94), ("apot4", 0.94),
                                           ("sp2-4", 0.94), ("msq:0.5", 0.94)])
def test_quantized_accuracy_close_to_float(net, weights, floor):
    q = digits.quantize(net, weights, "uint8")
    assert q.accuracy("test") >= floor
    assert q.accuracy("test") >= net.accuracy("test") - 0.03


def test_per_layer_formats_and_msq_columns(net):
    q = digits.quantize(net, ["msq:0.25:int4:sp2-4", "pot4"], "uint8")
    first = q.layers[0]
    sp2 = sum(f == parse_format("sp2-4") for f in first.formats)
    assert sp2 == round(0.25 * first.n)
    assert first.uniform_format is None and q.layers[1].uniform_format == parse_format("pot4")
    assert q.acc_bits == max(layer.acc_bound.bits for layer in q.layers)


def test_narrow_activations_round_inputs(net):
    q = digits.quantize(net, "pot4", "uint4")
    assert q.input_codes(net.x_test).max() <= 15
    assert q.accuracy("test") > 0.8


@pytest.mark.parametrize("kwargs,message", [
    (dict(weights=["pot4"]), "1 formats for 2 layers"),
    (dict(weights="pot4", act="int8"), "unsigned"),
    (dict(weights="uint4"), "signed format"),
    (dict(weights="msq:2"), "share must be in"),
    (dict(weights="msq:x"), "not a number"),
    (dict(weights="pot99"), "pot99"),
])
def test_bad_quantization_requests(net, kwargs, message):
    with pytest.raises(ValueError, match=message):
        digits.quantize(net, **kwargs)


def test_bad_load_arguments():
    with pytest.raises(ValueError, match="kind='rnn'"):
        digits.load("rnn")
    with pytest.raises(ValueError, match="hidden=0"):
        digits.load(hidden=0)
    with pytest.raises(TypeError, match="format string"):
        parse_layer_format(4)


def test_run_layer_hook_sees_golden_inputs(net):
    q = digits.quantize(net, "pot4")
    seen = []

    def hook(acts, layer, index):
        seen.append((index, acts.shape))
        return q.golden_layer(acts, layer, index)

    assert np.array_equal(q.predict(net.x_test[:5], hook), q.predict(net.x_test[:5]))
    assert seen == [(0, (5, 65)), (1, (5, 33))]


@pytest.fixture(scope="module")
def cnn():
    return digits.load("cnn")


def test_unfold_is_golden_im2col():
    rng = np.random.default_rng(1)
    geometry = ConvGeometry(channels=3, height=5, width=6, kernel=3, stride=2, padding=1)
    images = rng.integers(0, 256, (2, 5 * 6 * 3))
    nchw = images.reshape(2, 5, 6, 3).transpose(0, 3, 1, 2)
    np.testing.assert_array_equal(geometry.unfold(images),
                                  golden.im2col(nchw, 3, stride=2, padding=1))
    assert geometry.out_size == (3, 3) and geometry.window == 27


def test_cnn_float_forward_is_a_convolution(cnn):
    x = cnn.x_test[:3]
    wc, bc = cnn.weights[0], cnn.biases[0]
    channels = wc.shape[1]
    img = x.reshape(3, 8, 8)
    direct = np.zeros((3, 6, 6, channels))
    for y in range(6):
        for xx in range(6):
            window = img[:, y:y + 3, xx:xx + 3].reshape(3, 9)
            direct[:, y, xx, :] = np.maximum(window @ wc + bc, 0)
    logits = direct.reshape(3, -1) @ cnn.weights[1] + cnn.biases[1]
    np.testing.assert_allclose(cnn.forward(x), logits, rtol=1e-12, atol=1e-12)
    assert cnn.accuracy("test") > 0.95


@pytest.mark.parametrize("weights", ["pot4", "msq:0.5"])
def test_cnn_integer_inference_matches_reference(cnn, weights):
    q = digits.quantize(cnn, weights, "uint8")
    x = cnn.x_test[:2]
    outputs = q.run(x)
    inputs = q.layer_inputs(x, outputs)
    assert [layer.gemm_shape(2) for layer in q.layers] == [(72, 10, 8), (2, 289, 10)]
    for layer, acts, out in zip(q.layers, inputs, outputs):
        np.testing.assert_array_equal(out, _reference_layer(acts, layer, q.act_format))
    assert q.accuracy("test") >= cnn.accuracy("test") - 0.03
