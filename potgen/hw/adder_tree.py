"""A balanced adder tree over n inputs with exact bit growth and optional pipelining."""

from __future__ import annotations

from amaranth.hdl import Module, Shape, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from .checks import check_signed_shape
from .product import check_pipeline, range_shape, silence_unused_on_error

__all__ = ["AdderTree"]


class AdderTree(wiring.Component):
    """Sum of ``n`` inputs by a balanced tree of two-input adders.

    Every node is exactly as wide as the range of the inputs it sums: a node over ``c``
    inputs of range ``[lo, hi]`` holds ``[c * lo, c * hi]``, so no level grows a bit it
    does not need. With ``input_range`` the growth follows the values the inputs really
    take: three products of ``uint8 x apot4`` (``[-2550, 2550]``, 13 bits) sum to
    ``[-7650, 7650]``, 14 bits, where ``13 + ceil(log2 3)`` would give 15. An odd node
    at the end of a level passes through to the next.

    Parameters
    ----------
    n : int
        Number of inputs, >= 1.
    input_shape : int or Shape
        Shape of each input; an int means ``signed(n)``. Unsigned inputs give an
        unsigned sum.
    input_range : (int, int) or None
        The values every input actually takes, when narrower than the range of
        ``input_shape`` (e.g. a product unit's exact range); the inputs must stay in it.
        ``None``: the whole range of ``input_shape``.
    pipeline : int
        Register stages. They are spread evenly over the ``ceil(log2 n)`` adder levels:
        stage ``j`` (1-based) sits after level ``ceil(j * levels / pipeline)``, so the
        last stage registers the output. More stages than levels stack at the output.

    Members
    -------
    inputs : ``In(ArrayLayout(input_shape, n))``
        The inputs; in Verilog one vector, input ``i`` at bits
        ``[(i+1)*w-1 : i*w]``.
    sum : ``Out(shape)``
        The exact sum, ``latency`` cycles after its inputs.

    Attributes
    ----------
    levels : int
        Adder levels, ``ceil(log2 n)``.
    latency : int
        Register stages between ``inputs`` and ``sum`` (equals ``pipeline``).
    sum_range : (int, int)
        Exact range of the sum.
    stage_levels : tuple of int
        The adder level after which each register stage sits (0: on the inputs).
    """

    @silence_unused_on_error
    def __init__(self, n, input_shape, *, pipeline=0, input_range=None):
        if isinstance(n, bool) or not isinstance(n, int):
            raise TypeError(f"n={n!r}: expected an int number of inputs >= 1")
        if n < 1:
            raise ValueError(f"n={n}: the tree needs at least 1 input")
        self._n = n
        self._input_shape = check_signed_shape(input_shape, "input_shape")
        self._pipeline = check_pipeline(pipeline)
        if self._input_shape.signed:
            shape_lo = -(1 << (self._input_shape.width - 1))
            shape_hi = (1 << (self._input_shape.width - 1)) - 1
        else:
            shape_lo, shape_hi = 0, (1 << self._input_shape.width) - 1
        if input_range is None:
            self._input_lo, self._input_hi = shape_lo, shape_hi
        else:
            pair = tuple(input_range) if isinstance(input_range, (tuple, list)) else ()
            if len(pair) != 2 or not all(isinstance(v, int) and not isinstance(v, bool)
                                         for v in pair):
                raise TypeError(f"input_range={input_range!r}: expected a pair of ints "
                                "(min, max)")
            if not shape_lo <= pair[0] <= pair[1] <= shape_hi:
                raise ValueError(f"input_range={input_range!r}: must satisfy min <= max "
                                 f"inside the range of input_shape={self._input_shape!r} "
                                 f"[{shape_lo}, {shape_hi}]")
            self._input_lo, self._input_hi = pair
        super().__init__({
            "inputs": In(data.ArrayLayout(self._input_shape, n)),
            "sum": Out(self.sum_shape),
        })

    @property
    def n(self) -> int:
        return self._n

    @property
    def input_shape(self) -> Shape:
        return self._input_shape

    @property
    def levels(self) -> int:
        return (self._n - 1).bit_length()

    @property
    def latency(self) -> int:
        return self._pipeline

    @property
    def stage_levels(self) -> tuple:
        d, p = self.levels, self._pipeline
        return tuple(-(-j * d // p) for j in range(1, p + 1))

    def _node_range(self, count: int) -> tuple:
        return count * self._input_lo, count * self._input_hi

    @property
    def input_range(self) -> tuple:
        return self._input_lo, self._input_hi

    @property
    def sum_range(self) -> tuple:
        return self._node_range(self._n)

    @property
    def sum_shape(self) -> Shape:
        return range_shape(*self.sum_range, force_signed=self._input_shape.signed)

    def elaborate(self, platform):
        m = Module()
        # Each node: (value, number of inputs it sums).
        nodes = [(self.inputs[i], 1) for i in range(self._n)]
        stages = list(self.stage_levels)
        level = 0
        while True:
            while stages and stages[0] == level:
                stages.pop(0)
                registered = []
                for index, (value, count) in enumerate(nodes):
                    reg = Signal(range_shape(*self._node_range(count),
                                             force_signed=self._input_shape.signed),
                                 name=f"l{level}_n{index}_r{len(stages)}")
                    m.d.sync += reg.eq(value)
                    registered.append((reg, count))
                nodes = registered
            if len(nodes) == 1:
                break
            level += 1
            paired = []
            for index in range(0, len(nodes), 2):
                if index + 1 == len(nodes):
                    paired.append(nodes[index])
                    continue
                (a, ca), (b, cb) = nodes[index], nodes[index + 1]
                node = Signal(range_shape(*self._node_range(ca + cb),
                                          force_signed=self._input_shape.signed),
                              name=f"l{level}_n{index // 2}")
                m.d.comb += node.eq(a + b)
                paired.append((node, ca + cb))
            nodes = paired
        m.d.comb += self.sum.eq(nodes[0][0])
        return m

    def metadata(self) -> dict:
        from .export import signature_ports
        lo, hi = self.sum_range
        return {
            "kind": "adder-tree",
            "n": self._n,
            "input": {"bits": self._input_shape.width, "signed": self._input_shape.signed,
                      "min": self._input_lo, "max": self._input_hi},
            "sum": {"bits": self.sum_shape.width, "signed": self.sum_shape.signed,
                    "min": lo, "max": hi},
            "levels": self.levels,
            "pipeline": self._pipeline,
            "stage_levels": list(self.stage_levels),
            "latency": self.latency,
            "ports": signature_ports(self),
        }
