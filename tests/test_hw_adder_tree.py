"""AdderTree in Amaranth simulation: exact sums, exact widths, pipeline latency."""

import numpy as np
import pytest
from amaranth.hdl import signed, unsigned
from hypothesis import given
from hypothesis import strategies as st

from amaranth_sim import collect_unelaborated, drive  # noqa: F401 (fixture)
from potgen import bounds, golden
from potgen.hw import AdderTree

pytestmark = pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")


def check_tree(tree, vectors):
    """Drive [T, n] input vectors; compare with the golden exact sums (no accumulator)."""
    vectors = np.asarray(vectors, dtype=np.int64)
    latency = tree.latency
    pad = np.zeros((max(latency - 1, 0), tree.n), dtype=np.int64)
    stream = np.concatenate([vectors, pad])
    out = drive(tree, {"inputs": [row.tolist() for row in stream]}, ["sum"],
                clocked=latency > 0)["sum"]
    got = out[latency - 1:] if latency else out
    want = golden.matmul_values(vectors, np.ones((tree.n, 1), np.int64)).acc[:, 0]
    np.testing.assert_array_equal(got, want)


@st.composite
def trees(draw):
    n = draw(st.integers(1, 9))
    is_signed = draw(st.booleans())
    width = draw(st.integers(1, 8))
    shape = signed(width) if is_signed else unsigned(width)
    lo, hi = (-(1 << (width - 1)), (1 << (width - 1)) - 1) if is_signed else (0, (1 << width) - 1)
    input_range = None
    if draw(st.booleans()):
        lo = draw(st.integers(lo, hi))
        hi = draw(st.integers(lo, hi))
        input_range = (lo, hi)
    pipeline = draw(st.integers(0, 5))
    return AdderTree(n, shape, pipeline=pipeline, input_range=input_range), lo, hi


@given(trees(), st.integers(0, 2 ** 32 - 1))
def test_adder_tree_matches_golden(spec, seed):
    tree, lo, hi = spec
    rng = np.random.default_rng(seed)
    vectors = rng.integers(lo, hi + 1, (60, tree.n))
    # The extremes of the sum, where too narrow a node would wrap.
    vectors[0], vectors[1] = lo, hi
    check_tree(tree, vectors)
    # Exact growth: the output is the smallest shape holding n * [lo, hi].
    assert tree.sum_range == (tree.n * lo, tree.n * hi)
    if tree.input_shape.signed:
        assert tree.sum_shape == signed(bounds.signed_width(tree.n * lo, tree.n * hi))
    else:
        assert tree.sum_shape == unsigned(max((tree.n * hi).bit_length(), 1))


def test_exact_growth_from_input_range():
    # Three uint8 x apot4 products ([-2550, 2550], 13 bits) sum to [-7650, 7650]:
    # 14 bits, where 13 + ceil(log2 3) would give 15.
    tree = AdderTree(3, 13, input_range=(-2550, 2550))
    assert tree.sum_range == (-7650, 7650) and len(tree.sum) == 14
    assert len(AdderTree(3, 13).sum) == 15
    # Four inputs in [-60, 60]: the sum needs 9 bits, not 8 + 2.
    tree = AdderTree(4, 8, input_range=(-60, 60))
    assert len(tree.sum) == 9
    check_tree(tree, [[-60] * 4, [60] * 4, [-60, 60, 7, -3]])


@pytest.mark.parametrize("n, pipeline, stages", [
    (8, 0, ()), (8, 1, (3,)), (8, 3, (1, 2, 3)), (8, 2, (2, 3)), (5, 5, (1, 2, 2, 3, 3)),
    (1, 2, (0, 0)), (2, 1, (1,)),
])
def test_stage_placement(n, pipeline, stages):
    tree = AdderTree(n, 8, pipeline=pipeline)
    assert tree.stage_levels == stages and tree.latency == pipeline
    check_tree(tree, np.arange(-3 * n, 3 * n).reshape(-1, n)[:6])


def test_levels_and_metadata():
    tree = AdderTree(9, signed(6), pipeline=2)
    assert tree.levels == 4
    meta = tree.metadata()
    assert meta["kind"] == "adder-tree" and meta["n"] == 9
    assert meta["sum"] == {"bits": 10, "signed": True, "min": -288, "max": 279}
    assert meta["stage_levels"] == [2, 4] and meta["latency"] == 2
    inputs = meta["ports"][0]
    assert inputs["name"] == "inputs" and inputs["width"] == 54
    assert inputs["elements"] == {"count": 9, "width": 6, "signed": True}


@pytest.mark.parametrize("args, kwargs, error, words", [
    ((0, 8), {}, ValueError, ["n=0", "at least 1"]),
    ((2.0, 8), {}, TypeError, ["n=2.0"]),
    ((4, 0), {}, ValueError, ["input_shape=0"]),
    ((4, "int8"), {}, TypeError, ["input_shape='int8'"]),
    ((4, 8), dict(pipeline=-1), ValueError, ["pipeline=-1"]),
    ((4, 8), dict(input_range=(5, 500)), ValueError, ["input_range=(5, 500)", "[-128, 127]"]),
    ((4, 8), dict(input_range=[1]), TypeError, ["input_range=[1]"]),
])
def test_bad_input(args, kwargs, error, words):
    with pytest.raises(error) as info:
        AdderTree(*args, **kwargs)
    for word in words:
        assert word in str(info.value)
