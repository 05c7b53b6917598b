"""Explorer networks (layers, im2col shapes, the file format) and the integer evaluator."""

import json

import numpy as np
import pytest

from potgen import golden
from potgen.explore.network import Layer, Network, im2col, load_network
from potgen.explore.qnet import LayerChoice, QuantEvaluator
from potgen.formats import parse_format
from potgen.quantize import quantize


def _teacher(seed=0, hidden=5):
    rng = np.random.default_rng(seed)
    w1, b1 = rng.normal(0, 0.5, (6, hidden)), rng.normal(0, 0.1, hidden)
    w2, b2 = rng.normal(0, 0.5, (hidden, 3)), rng.normal(0, 0.1, 3)
    x = rng.uniform(0, 1, (120, 6))
    y = np.argmax(np.maximum(x @ w1 + b1, 0) @ w2 + b2, axis=1)
    return w1, b1, w2, b2, x, y


def _mlp(seed=0):
    w1, b1, w2, b2, x, y = _teacher(seed)
    layers = [Layer("fc1", "fc", w1, b1, True, (6,)), Layer("fc2", "fc", w2, b2, False,
                                                            (w1.shape[1],))]
    return Network("t", layers, x[:60], y[:60], x[60:], y[60:])


def test_conv_gemm_shape_and_im2col_match_a_direct_convolution():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 7, 6, 3))
    w = rng.normal(size=(3, 2, 3, 4))          # kh, kw, cin, cout
    layer = Layer("c", "conv2d", w.reshape(-1, 4), None, True, (7, 6, 3), (3, 2), 2, 1)
    assert layer.out_hw == (4, 4)
    assert layer.gemm_shape(batch=2) == (2 * 4 * 4, 18, 4)
    out = (im2col(x, (3, 2), 2, 1) @ layer.weights).reshape(2, 4, 4, 4)
    xp = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    ref = np.zeros((2, 4, 4, 4))
    for b, i, j, o in np.ndindex(ref.shape):
        patch = xp[b, 2 * i:2 * i + 3, 2 * j:2 * j + 2, :]
        ref[b, i, j, o] = np.sum(patch * w[..., o])
    np.testing.assert_allclose(out, ref, rtol=1e-12)


def test_bias_adds_a_row_to_k():
    w1, b1, *_ = _teacher()
    assert Layer("a", "fc", w1, b1, True, (6,)).gemm_shape(8) == (8, 7, 5)
    assert Layer("a", "fc", w1, None, True, (6,)).gemm_shape(8) == (8, 6, 5)


@pytest.mark.parametrize("kwargs, message", [
    (dict(kind="dense"), "kind='dense'"),
    (dict(in_shape=(7,)), "in_shape"),
    (dict(bias=np.zeros(3)), "bias"),
    (dict(weights=np.full((6, 5), np.nan)), "finite"),
])
def test_layer_errors(kwargs, message):
    w1, b1, *_ = _teacher()
    args = dict(name="a", kind="fc", weights=w1, bias=b1, relu=True, in_shape=(6,))
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        Layer(**args)


def test_network_shape_mismatch_refused():
    w1, b1, w2, b2, x, y = _teacher()
    with pytest.raises(ValueError, match="gives \\(5,\\) but fc2 takes \\(4,\\)"):
        Network("t", [Layer("fc1", "fc", w1, b1, True, (6,)),
                      Layer("fc2", "fc", w2[:4], b2, False, (4,))], x, y, x, y)


def test_file_round_trip(tmp_path):
    w1, b1, w2, b2, x, y = _teacher()
    np.savez(tmp_path / "net.npz", **{"fc1.weights": w1, "fc1.bias": b1,
                                      "fc2.weights": w2, "fc2.bias": b2,
                                      "x_train": x[:60], "y_train": y[:60],
                                      "x_test": x[60:], "y_test": y[60:]})
    (tmp_path / "net.json").write_text(json.dumps({"name": "teacher", "layers": [
        {"name": "fc1", "kind": "fc"}, {"name": "fc2", "kind": "fc"}]}))
    net = load_network(str(tmp_path / "net.npz"))
    assert net.name == "teacher" and [layer.relu for layer in net.layers] == [True, False]
    assert net.float_accuracy() == 1.0
    np.testing.assert_array_equal(net.layers[1].bias, b2)


def test_file_errors(tmp_path):
    with pytest.raises(ValueError, match="neither 'digits' nor an existing .npz"):
        load_network(str(tmp_path / "missing.npz"))
    np.savez(tmp_path / "n.npz", x_train=np.zeros((2, 3)))
    with pytest.raises(ValueError, match="needs its description"):
        load_network(str(tmp_path / "n.npz"))
    (tmp_path / "n.json").write_text(json.dumps({"layers": [{"name": "fc1", "kind": "fc"}]}))
    with pytest.raises(ValueError, match="no array 'fc1.weights'"):
        load_network(str(tmp_path / "n.npz"))


def _reference_predict(evaluator, choices, x):
    """A per-sample scalar integer network from the quantized layers (no matmul)."""
    q = evaluator.quantize(choices)
    preds = []
    for sample in x:
        acts = [int(v) for v in quantize(sample, q[0].act_format, q[0].act_scale)]
        for i, layer in enumerate(q):
            fmt = parse_format(layer.weight_format)
            levels = fmt.decode(layer.codes)
            inputs = acts + ([layer.bias_act] if layer.bias_act else [])
            acc = [sum(a * int(levels[k, n]) for k, a in enumerate(inputs))
                   for n in range(levels.shape[1])]
            if i + 1 < len(q):
                nxt = q[i + 1]
                out = []
                for n, a in enumerate(acc):
                    m, s = golden.quantize_multiplier(
                        layer.act_scale * float(layer.weight_scales[n]) / nxt.act_scale,
                        16, 31)
                    v = (a * m + (1 << (s - 1) if s else 0)) >> s
                    out.append(min(max(v, 0), nxt.act_format.max_level))
                acts = out
            else:
                preds.append(int(np.argmax(np.array(acc) * layer.weight_scales)))
    return np.array(preds)


@pytest.mark.parametrize("w1, w2, a", [("pot4", "int8", 8), ("apot4", "sp2-4", 4),
                                       ("upot:{0,1,4}+{0,2}", "int4", 6)])
def test_integer_network_matches_a_scalar_reference(w1, w2, a):
    net = _mlp(1)
    ev = QuantEvaluator(net)
    choices = (LayerChoice(w1, a), LayerChoice(w2, a))
    x = net.x_test[:25]
    np.testing.assert_array_equal(ev.predict(choices, x), _reference_predict(ev, choices, x))


def test_wide_formats_keep_float_accuracy_and_cache_counts():
    net = _mlp(2)
    ev = QuantEvaluator(net)
    wide = (LayerChoice("int16", 16), LayerChoice("int16", 16))
    assert ev.accuracy(wide) >= net.float_accuracy() - 0.02
    ev.accuracy(wide)
    assert ev.evaluations == 1
    narrow = ev.accuracy((LayerChoice("int2", 2), LayerChoice("int2", 2)))
    assert narrow < ev.accuracy(wide)


def test_choice_errors():
    with pytest.raises(ValueError, match="act_bits=1"):
        LayerChoice("pot4", 1)
    with pytest.raises(ValueError, match="unknown format"):
        LayerChoice("pot", 8)
    with pytest.raises(ValueError, match="3 given for 2 layers"):
        QuantEvaluator(_mlp()).accuracy([LayerChoice("pot4", 8)] * 3)


def _conv_network(seed=0):
    """conv2d 3x3 (1 -> 3 channels, stride 2) on 6x6 images, then fc 27 -> 2."""
    rng = np.random.default_rng(seed)
    wc, bc = rng.normal(0, 0.5, (9, 3)), rng.normal(0, 0.1, 3)
    wf, bf = rng.normal(0, 0.5, (27, 2)), rng.normal(0, 0.1, 2)
    conv = Layer("conv1", "conv2d", wc, bc, True, (6, 6, 1), (3, 3), 2, 1)
    fc = Layer("fc1", "fc", wf, bf, False, (27,))
    x = rng.uniform(0, 1, (160, 6, 6, 1))
    hidden = np.maximum(conv.gemm_inputs(x) @ wc + bc, 0).reshape(160, -1)
    y = np.argmax(hidden @ wf + bf, axis=1)
    return Network("conv", [conv, fc], x[:80], y[:80], x[80:], y[80:])


def test_conv_network_integer_evaluation():
    net = _conv_network()
    assert net.float_accuracy() == 1.0
    assert net.layers[0].gemm_shape(4) == (4 * 3 * 3, 10, 3)
    ev = QuantEvaluator(net)
    wide = (LayerChoice("int12", 12), LayerChoice("int12", 12))
    assert ev.accuracy(wide) >= 0.95
    choices = (LayerChoice("pot4", 8), LayerChoice("apot4", 8))
    x = net.x_test[:10]
    np.testing.assert_array_equal(ev.predict(choices, x),
                                  ev.predict(choices, x[::-1])[::-1])


def test_conv_network_searches():
    from potgen.explore.search import Explorer, SearchSpace
    space = SearchSpace(weights=(("pot4",), ("int8",)), act_bits=(8,), arrays=((2, 2),),
                        dataflows=("os", "ws"))
    result = Explorer(_conv_network(), space, batch=4).search()
    point = result.pareto[0]
    assert [layer["M"] for layer in point["layers"]] == [36, 4]
    assert [layer["K"] for layer in point["layers"]] == [10, 28]


def test_digits_network_adapter():
    from potgen.explore.network import digits_network
    net = digits_network(seed=0)
    assert [layer.gemm_shape(16) for layer in net.layers] == [(16, 65, 32), (16, 33, 10)]
    assert net.float_accuracy() > 0.9
    assert len(net.x_test) == len(net.y_test) > 300
