"""``potgen explore`` on a tiny network and a tiny space."""

import json

import numpy as np
import pytest

from potgen import cli


@pytest.fixture(autouse=True)
def _explore_registered(monkeypatch):
    # The lead registers the command in potgen.cli.COMMANDS; make sure it is there.
    monkeypatch.setitem(cli.COMMANDS, "explore", "potgen.cli.explore")


@pytest.fixture
def network_file(tmp_path):
    rng = np.random.default_rng(0)
    w1, b1 = rng.normal(0, 0.5, (8, 5)), rng.normal(0, 0.1, 5)
    w2, b2 = rng.normal(0, 0.5, (5, 3)), rng.normal(0, 0.1, 3)
    x = rng.uniform(0, 1, (200, 8))
    y = np.argmax(np.maximum(x @ w1 + b1, 0) @ w2 + b2, axis=1)
    np.savez(tmp_path / "net.npz", **{"fc1.weights": w1, "fc1.bias": b1,
                                      "fc2.weights": w2, "fc2.bias": b2,
                                      "x_train": x[:100], "y_train": y[:100],
                                      "x_test": x[100:], "y_test": y[100:]})
    (tmp_path / "net.json").write_text(json.dumps({"name": "teacher", "layers": [
        {"name": "fc1", "kind": "fc"}, {"name": "fc2", "kind": "fc"}]}))
    return str(tmp_path / "net.npz")


TINY = ["--weights", "pot3,int4", "--upot-bits", "3", "--act-bits", "4,8",
        "--arrays", "2x2,4x4", "--dataflows", "os,ws"]


def test_explore_writes_front_json_and_plot(network_file, tmp_path, capsys):
    out, png = tmp_path / "front.json", tmp_path / "front.png"
    code = cli.main(["explore", network_file, *TINY, "--budget", "lut=100000",
                     "--validate", "quick", "--json", str(out), "--plot", str(png)])
    assert code == 0
    report = json.loads(out.read_text())
    assert report["pareto"]
    for point in report["pareto"]:
        assert 0 <= point["accuracy"] <= 1 and point["cycles"] > 0
        assert set(point["resources"]) >= {"lut4", "mult18", "dp16kd"}
        assert [layer["name"] for layer in point["layers"]] == ["fc1", "fc2"]
        assert point["resources"]["lut4"] <= 100000
    assert report["search"]["method"] == "exhaustive"
    # Each layer's candidates: the two named formats and its best 3-bit UPoT term set.
    assert all(len(w) == 3 and w[2].startswith("upot:") for w in report["space"]["weights"])
    assert report["model_vs_sim"]["max_relative_cycle_error"] <= 0.05
    assert "reference_uniform" in report["mixed_vs_uniform"]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = capsys.readouterr().out
    assert table.splitlines()[0].split()[:3] == ["accuracy", "cycles", "latency_us"]


def test_explore_same_seed_same_front(network_file, tmp_path):
    fronts = []
    for name in ("a.json", "b.json"):
        args = ["explore", network_file, *TINY, "--max-exhaustive", "1", "--population",
                "6", "--generations", "3", "--seed", "5", "--validate", "none", "--quiet",
                "--json", str(tmp_path / name)]
        assert cli.main(args) == 0
        report = json.loads((tmp_path / name).read_text())
        assert report["search"]["method"] == "nsga2"
        fronts.append([p["key"] for p in report["pareto"]])
    assert fronts[0] == fronts[1]


@pytest.mark.parametrize("extra, message", [
    (["--budget", "lut=50"], "budget lut=50 is impossible"),
    (["--budget", "accuracy=1.5"], "accuracy=1.5 must be a fraction"),
    (["--arrays", "4by4"], "--arrays: '4by4' is not ROWSxCOLS"),
    (["--weights", "pot9"], "format 'pot9'"),
    (["--device", "99k"], "device: '99k'"),
])
def test_explore_bad_input_exits_2_with_one_line(network_file, capsys, extra, message):
    code = cli.main(["explore", network_file, *TINY, "--validate", "none", *extra])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert message in err[-1]
    assert not any(line.startswith("Traceback") for line in err)


def test_explore_unknown_network_exits_2(capsys):
    assert cli.main(["explore", "no_such_net.npz", "--validate", "none"]) == 2
    assert "neither 'digits' nor an existing .npz" in capsys.readouterr().err
