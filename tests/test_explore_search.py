"""Design-space search: exhaustive Pareto fronts, NSGA-II determinism, budgets."""

import itertools

import numpy as np
import pytest

from potgen.explore.network import Layer, Network
from potgen.explore.qnet import LayerChoice
from potgen.explore.search import (
    Budget,
    Explorer,
    SearchSpace,
    mixed_vs_uniform,
    pareto_front,
    parse_budget,
)


def tiny_network(seed=0):
    """A 10 - 6 - 3 teacher network: labels are its own float predictions."""
    rng = np.random.default_rng(seed)
    w1, b1 = rng.normal(0, 0.5, (10, 6)), rng.normal(0, 0.1, 6)
    w2, b2 = rng.normal(0, 0.5, (6, 3)), rng.normal(0, 0.1, 3)
    x = rng.uniform(0, 1, (400, 10))
    y = np.argmax(np.maximum(x @ w1 + b1, 0) @ w2 + b2, axis=1)
    layers = [Layer("fc1", "fc", w1, b1, relu=True, in_shape=(10,)),
              Layer("fc2", "fc", w2, b2, relu=False, in_shape=(6,))]
    return Network("tiny", layers, x[:200], y[:200], x[200:], y[200:])


SPACE = SearchSpace(weights=(("pot3", "int4"), ("pot4", "int8")), act_bits=(4, 8),
                    arrays=((2, 2), (4, 4)), dataflows=("os", "ws"))


def _objectives(p):
    r = p["resources"]
    return (-p["accuracy"], p["cycles"], r["lut4"], r["mult18"], r["dp16kd"])


def test_exhaustive_front_is_exactly_the_non_dominated_set():
    explorer = Explorer(tiny_network(), SPACE, device="85k")
    result = explorer.search()
    assert result.method == "exhaustive"
    assert result.evaluations == SPACE.size == 4 * 4 * 2 * 2
    # Independent O(n^2) dominance over every evaluated point.
    points = result.evaluated
    vecs = {p["key"]: _objectives(p) for p in points}

    def dominated(a):
        return any(all(x <= y for x, y in zip(b, a)) and b != a for b in vecs.values())

    expected = {v for k, v in vecs.items() if not dominated(v)}
    assert {_objectives(p) for p in result.pareto} == expected
    # Accuracy is evaluated once per per-layer choice, not once per array.
    assert result.accuracy_evaluations == 16


def test_accuracy_is_cached_and_array_independent():
    explorer = Explorer(tiny_network(), SPACE)
    choices = (LayerChoice("int4", 8), LayerChoice("int8", 8))
    a = explorer.evaluate(choices, (2, 2), "os")
    b = explorer.evaluate(choices, (4, 4), "ws")
    assert a["accuracy"] == b["accuracy"]
    assert explorer.evaluator.evaluations == 1
    assert a["cycles"] > b["cycles"] or a["resources"]["lut4"] < b["resources"]["lut4"]


def test_nsga2_is_deterministic_with_a_seed():
    def run(seed):
        explorer = Explorer(tiny_network(), SPACE)
        r = explorer.search(seed=seed, max_exhaustive=1, population=8, generations=4)
        assert r.method == "nsga2"
        return [p["key"] for p in r.pareto], r.evaluations

    assert run(3) == run(3)
    keys, _ = run(3)
    assert keys


def test_nsga2_front_points_are_non_dominated():
    explorer = Explorer(tiny_network(), SPACE)
    r = explorer.search(seed=0, max_exhaustive=1, population=8, generations=6)
    vecs = [_objectives(p) for p in r.pareto]
    for a, b in itertools.permutations(vecs, 2):
        assert not (all(x <= y for x, y in zip(b, a)) and a != b)


def test_budget_constrains_the_front():
    full = Explorer(tiny_network(), SPACE).search()
    luts = sorted(p["resources"]["lut4"] for p in full.evaluated)
    ceiling = luts[len(luts) // 3]
    limited = Explorer(tiny_network(), SPACE, budget=Budget(lut4=ceiling)).search()
    assert limited.pareto
    assert all(p["resources"]["lut4"] <= ceiling for p in limited.evaluated)
    assert limited.infeasible > 0


@pytest.mark.parametrize("budget, message", [
    (Budget(lut4=10), (r"budget lut=10 is impossible: the cheapest design in the space "
                       r"needs lut=\d+")),
    (Budget(cycles=5), r"budget cycles=5 is impossible"),
    (Budget(dp16kd=0, mult18=0, lut4=10**6), r"impossible"),
])
def test_impossible_budgets_refused_before_searching(budget, message):
    explorer = Explorer(tiny_network(), SPACE, budget=budget)
    with pytest.raises(ValueError, match=message):
        explorer.search()
    assert explorer.evaluator.evaluations == 0


def test_unreachable_accuracy_reported_after_searching():
    space = SearchSpace(weights=(("pot3",), ("pot3",)), act_bits=(2,), arrays=((2, 2),),
                        dataflows=("os",))
    reached = Explorer(tiny_network(), space).search().pareto[0]["accuracy"]
    assert reached < 1.0
    with pytest.raises(ValueError, match=r"no design meets the budget \(accuracy=1.0\).*"
                                         r"accuracy 0\.\d+ < 1.0"):
        Explorer(tiny_network(), space, budget=Budget(accuracy=1.0)).search()


@pytest.mark.parametrize("text, expected", [
    ("lut=20000,dsp=40", Budget(lut4=20000, mult18=40)),
    ("bram=3, cycles=1e4, accuracy=0.9", Budget(dp16kd=3, cycles=10000, accuracy=0.9)),
    ("", Budget()),
])
def test_parse_budget(text, expected):
    assert parse_budget(text) == expected


@pytest.mark.parametrize("text, message", [
    ("luts=3", "luts=3"), ("lut=-1", "whole number"), ("accuracy=2", "0..1"),
    ("lut", "KEY=NUMBER"), ("dsp=2.5", "whole number"), ("lut=many", "not a number")])
def test_parse_budget_errors(text, message):
    with pytest.raises(ValueError, match=message):
        parse_budget(text)


def test_space_errors():
    with pytest.raises(ValueError, match="uint4 is unsigned"):
        SearchSpace(weights=(("uint4",),))
    with pytest.raises(ValueError, match="act_bits"):
        SearchSpace(weights=(("pot4",),), act_bits=(1,))
    with pytest.raises(ValueError, match="dataflows"):
        SearchSpace(weights=(("pot4",),), dataflows=("xs",))
    with pytest.raises(ValueError, match="2 layers of candidate formats for a network "
                                         "of 2|1 layers of candidate formats"):
        Explorer(tiny_network(), SearchSpace(weights=(("pot4",),)))


def test_pareto_front_keeps_one_of_identical_points():
    base = {"accuracy": 0.9, "cycles": 10,
            "resources": {"lut4": 5, "mult18": 0, "dp16kd": 1}}
    pts = [dict(base, key="a"), dict(base, key="b"),
           dict(base, key="c", cycles=20), dict(base, key="d", accuracy=0.95, cycles=30)]
    assert [p["key"] for p in pareto_front(pts)] == ["a", "d"]


def test_mixed_vs_uniform_finds_the_saving():
    def point(key, layers, acc, energy):
        return {"key": key, "accuracy": acc, "cycles": 100, "energy_proxy": energy,
                "resources": {"lut4": 10, "mult18": 0, "dp16kd": 0},
                "array": {"rows": 2, "cols": 2, "dataflow": "os"},
                "layers": [{"weight": w, "act_bits": 8} for w in layers]}

    pts = [point("u8", ["int8", "int8"], 0.97, 100.0),
           point("u4", ["pot4", "pot4"], 0.93, 40.0),
           point("mix", ["pot4", "int8"], 0.97, 63.0)]
    out = mixed_vs_uniform(pts)
    assert out["reference_uniform"]["key"] == "u8"
    best = out["best_energy_proxy"]
    assert best["point"]["key"] == "mix" and best["mixed"]
    assert best["saving_vs_best_uniform"] == pytest.approx(0.37)
