"""Design-space search: per-layer formats and activation widths x array shape x dataflow.

A *design point* picks, for every layer, a weight format and the width of its input
activations, and for the whole network one accelerator: an array shape and a
dataflow. It is scored on

* **accuracy** -- the integer network on the test split, golden model
  (:class:`~potgen.explore.qnet.QuantEvaluator`; cached: the same per-layer choices
  are evaluated once, whatever the array);
* **cycles** -- the sum over layers of :func:`~potgen.explore.cost.gemm_cost` on the
  array (``batch`` inputs per run);
* **resources** -- LUT4, MULT18X18D and DP16KD of one accelerator able to run every
  chosen format (:func:`~potgen.explore.hardware.design_resources`), which must fit
  the device and the user's budget.

Objectives minimised: ``-accuracy``, ``cycles``, ``lut4``, ``mult18``, ``dp16kd``. The
result is the Pareto front over them. Small spaces are enumerated exhaustively;
larger ones are searched with NSGA-II (pymoo), integer-coded, deterministic for a
given seed. Every evaluated feasible point is kept, so the front and the
mixed-versus-uniform comparison (:func:`mixed_vs_uniform`) come from the same data.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import re
from dataclasses import dataclass, field

import numpy as np

from ..flow.devices import device as _device
from ..formats import parse_format
from .cost import ArrayConfig, energy_proxy, gemm_cost
from .hardware import design_resources, schedule_cycles
from .network import Network
from .qnet import ACT_BITS, LayerChoice, QuantEvaluator
from .upot import search_term_sets

__all__ = ["SearchSpace", "Budget", "Explorer", "SearchResult", "parse_budget",
           "DEFAULT_WEIGHTS", "DEFAULT_ACT_BITS", "DEFAULT_ARRAYS", "BUDGET_KEYS",
           "OBJECTIVES", "pareto_front", "mixed_vs_uniform"]

#: Weight formats searched for every layer (UPoT term sets are added per layer).
DEFAULT_WEIGHTS = ("int2", "int3", "int4", "int5", "int6", "int8", "pot3", "pot4", "pot5",
                   "apot3", "apot4", "apot5", "sp2-3", "sp2-4", "sp2-5")
#: Activation widths searched.
DEFAULT_ACT_BITS = (4, 6, 8)
#: Array shapes searched (rows, cols).
DEFAULT_ARRAYS = ((4, 4), (4, 8), (8, 8), (8, 16), (16, 16))
#: Budget keys: resource ceilings, a cycle ceiling and an accuracy floor.
BUDGET_KEYS = {"lut": "lut4", "ff": "ff", "dsp": "mult18", "bram": "dp16kd",
               "cycles": "cycles", "accuracy": "accuracy"}
#: Objectives, all minimised (accuracy negated).
OBJECTIVES = ("-accuracy", "cycles", "lut4", "mult18", "dp16kd")


@dataclass(frozen=True)
class Budget:
    """Limits a design must meet beyond the device's.

    Members
    -------
    lut4, ff, mult18, dp16kd, cycles : int or None
        Ceilings (``None``: only the device limit).
    accuracy : float or None
        Floor on the test accuracy.
    """

    lut4: int | None = None
    ff: int | None = None
    mult18: int | None = None
    dp16kd: int | None = None
    cycles: int | None = None
    accuracy: float | None = None

    def describe(self) -> str:
        parts = [f"{k}={getattr(self, v)}" for k, v in BUDGET_KEYS.items()
                 if getattr(self, v) is not None]
        return ",".join(parts) or "none"


def parse_budget(text) -> Budget:
    """``"lut=20000,dsp=40,bram=30,cycles=5000,accuracy=0.95"`` -> :class:`Budget`."""
    if text is None or isinstance(text, Budget):
        return text or Budget()
    values = {}
    for item in filter(None, (t.strip() for t in str(text).split(","))):
        m = re.fullmatch(r"([a-z]+)\s*=\s*(\S+)", item)
        if not m or m[1] not in BUDGET_KEYS:
            raise ValueError(f"budget: {item!r} is not KEY=NUMBER with KEY one of "
                             f"{', '.join(BUDGET_KEYS)}")
        key = BUDGET_KEYS[m[1]]
        try:
            number = float(m[2])
        except ValueError:
            raise ValueError(f"budget: {item!r}: {m[2]!r} is not a number") from None
        if not math.isfinite(number):
            raise ValueError(f"budget: {item!r}: the limit must be finite")
        if key == "accuracy":
            if not 0 <= number <= 1:
                raise ValueError(f"budget: accuracy={m[2]} must be a fraction in 0..1")
            values[key] = number
        else:
            if number < 0 or number != int(number):
                raise ValueError(f"budget: {m[1]}={m[2]} must be a whole number >= 0")
            values[key] = int(number)
    return Budget(**values)


@dataclass(frozen=True)
class SearchSpace:
    """What the search may choose.

    Parameters
    ----------
    weights : tuple of tuple of str
        Candidate weight formats per layer.
    act_bits : tuple of int
        Candidate input-activation widths (every layer).
    arrays : tuple of (int, int)
        Candidate ``(rows, cols)``.
    dataflows : tuple of str
        ``"os"`` and / or ``"ws"``.
    """

    weights: tuple
    act_bits: tuple = DEFAULT_ACT_BITS
    arrays: tuple = DEFAULT_ARRAYS
    dataflows: tuple = ("os", "ws")

    def __post_init__(self):
        if not self.weights or any(not w for w in self.weights):
            raise ValueError("weights: every layer needs at least one candidate format")
        object.__setattr__(self, "weights", tuple(
            tuple(dict.fromkeys(str(parse_format(f)) for f in layer))
            for layer in self.weights))
        for layer in self.weights:
            for f in layer:
                if not parse_format(f).signed:
                    raise ValueError(f"weights: {f} is unsigned; the explorer quantizes "
                                     "signed weights")
        acts = tuple(dict.fromkeys(self.act_bits))
        for a in acts:
            if isinstance(a, bool) or not isinstance(a, int) or a not in ACT_BITS:
                raise ValueError(f"act_bits: {a!r} is not an int in "
                                 f"{ACT_BITS.start}..{ACT_BITS.stop - 1}")
        if not acts:
            raise ValueError("act_bits: at least one activation width is needed")
        object.__setattr__(self, "act_bits", acts)
        arrays = tuple(dict.fromkeys((int(r), int(c)) for r, c in self.arrays))
        if not arrays:
            raise ValueError("arrays: at least one array shape is needed")
        for r, c in arrays:
            if not (1 <= r <= 256 and 1 <= c <= 256):
                raise ValueError(f"arrays: {r}x{c}; rows and cols must be 1..256")
        object.__setattr__(self, "arrays", arrays)
        flows = tuple(dict.fromkeys(self.dataflows))
        if not flows or any(f not in ("os", "ws") for f in flows):
            raise ValueError(f"dataflows={self.dataflows!r}: allowed os, ws")
        object.__setattr__(self, "dataflows", flows)

    @property
    def size(self) -> int:
        per_layer = [len(w) * len(self.act_bits) for w in self.weights]
        return math.prod(per_layer) * len(self.arrays) * len(self.dataflows)

    @property
    def bounds(self) -> list:
        """Number of choices of each integer variable (layer formats, layer acts,
        array, dataflow)."""
        return ([len(w) for w in self.weights] + [len(self.act_bits)] * len(self.weights)
                + [len(self.arrays), len(self.dataflows)])

    def decode(self, x) -> tuple:
        """Variables -> ``(choices, (rows, cols), dataflow)``."""
        L = len(self.weights)
        x = [int(v) for v in x]
        choices = tuple(LayerChoice(self.weights[i][x[i]], self.act_bits[x[L + i]])
                        for i in range(L))
        return choices, self.arrays[x[2 * L]], self.dataflows[x[2 * L + 1]]


@dataclass
class SearchResult:
    """What :meth:`Explorer.search` found.

    Members
    -------
    pareto : list of dict
        Non-dominated feasible points (see :meth:`Explorer.evaluate`), by cycles.
    evaluated : list of dict
        Every feasible point evaluated.
    method : str
        ``"exhaustive"`` or ``"nsga2"``.
    space_size, evaluations, accuracy_evaluations, infeasible : int
    settings : dict
    """

    pareto: list
    evaluated: list
    method: str
    space_size: int
    evaluations: int
    accuracy_evaluations: int
    infeasible: int
    settings: dict = field(default_factory=dict)


def _objectives(point: dict) -> list:
    r = point["resources"]
    return [-point["accuracy"], point["cycles"], r["lut4"], r["mult18"], r["dp16kd"]]


def pareto_front(points: list) -> list:
    """The non-dominated points (all :data:`OBJECTIVES` minimised), by cycles."""
    if not points:
        return []
    from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting
    F = np.array([_objectives(p) for p in points], dtype=np.float64)
    # Identical objective vectors are kept once (the first evaluated).
    _, first = np.unique(F, axis=0, return_index=True)
    first = np.sort(first)
    front = NonDominatedSorting().do(F[first], only_non_dominated_front=True)
    chosen = [points[first[i]] for i in front]
    return sorted(chosen, key=lambda p: (p["cycles"], -p["accuracy"],
                                         p["resources"]["lut4"], p["key"]))


class Explorer:
    """Evaluates and searches design points of one network on one device.

    Parameters
    ----------
    network : Network
    space : SearchSpace
    device : str
        ECP5 device (its limits constrain every design).
    speed : int
        Speed grade (Fmax).
    budget : Budget
    batch : int
        Inputs per accelerator run (``M`` of a fully-connected layer).
    k_max : int or None
        Buffer depth; ``None``: the longest layer ``K`` rounded up to a power of two.
    timing : ArrayConfig or None
        Template whose stream, slot and timing fields (``word_bits``, ``packed``,
        ``outputs_per_word``, ``timing``, ``pipeline``, ``requant_latency``,
        ``requant_words_per_column``, slots and banks) every array shares; the output
        FIFO is ``2 rows`` deep; ``None``: the accelerator potgen builds, with its
        default parameters (:func:`potgen.explore.hardware.config_from_accelerator`).
    """

    def __init__(self, network: Network, space: SearchSpace, *, device="85k", speed=6,
                 budget: Budget | None = None, batch: int = 16, k_max=None, timing=None):
        if not isinstance(network, Network):
            raise TypeError(f"network: expected an explore Network, got "
                            f"{type(network).__name__}")
        if not isinstance(space, SearchSpace):
            raise TypeError(f"space: expected a SearchSpace, got {type(space).__name__}")
        if len(space.weights) != len(network.layers):
            raise ValueError(f"space: {len(space.weights)} layers of candidate formats for "
                             f"a network of {len(network.layers)} layers")
        if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
            raise ValueError(f"batch={batch!r}: expected an int >= 1")
        self.network = network
        self.space = space
        self.device = _device(device)
        self.speed = speed
        self.budget = budget or Budget()
        self.batch = batch
        k_need = max(layer.k for layer in network.layers)
        self.k_max = k_max if k_max is not None else 1 << (k_need - 1).bit_length()
        if isinstance(self.k_max, bool) or not isinstance(self.k_max, int) \
                or self.k_max < 1:
            raise ValueError(f"k_max={k_max!r}: expected an int >= 1")
        self.timing = timing if timing is not None else _default_timing()
        self.evaluator = QuantEvaluator(network)
        self._points = {}

    # --- one design point ---

    def _config(self, rows, cols, dataflow) -> ArrayConfig:
        # The template's streams, slots and latencies; the FIFO depth follows the rows.
        return dataclasses.replace(self.timing, rows=rows, cols=cols, dataflow=dataflow,
                                   k_max=self.k_max, out_rows=None)

    def hardware(self, choices, array, dataflow) -> dict:
        """Resources, cycles and energy proxy of a design point (no accuracy).

        The accelerator is built for the widest activation and weight code of the
        design, and its streams and buffers carry operands at those widths, so every
        layer's words, cycles and traffic are counted at the build widths. A layer's
        MACs switch only its own format's PE logic (the other formats' product units
        see no operand changes), so its energy proxy uses its own format's PE.
        """
        rows, cols = array
        act = f"uint{max(c.act_bits for c in choices)}"
        widest = max((c.weight for c in choices),
                     key=lambda w: (parse_format(w).bits, w))
        hw = design_resources(rows, cols, [c.weight for c in choices], act,
                              k_max=self.k_max, dataflow=dataflow,
                              device=self.device.key, speed=self.speed)
        config = self._config(rows, cols, dataflow)
        act_bits, weight_bits = parse_format(act).bits, parse_format(widest).bits
        layers, cycles, energy = [], 0, 0.0
        for i, (layer, choice) in enumerate(zip(self.network.layers, choices)):
            M, K, N = layer.gemm_shape(self.batch)
            last = i + 1 == len(choices)
            out_bits = min(act_bits if not last else hw["acc_bits"] + 1, 32)
            model = gemm_cost(config, M, K, N, weight_bits=weight_bits, act_bits=act_bits,
                              out_bits=out_bits, acc_bits=hw["acc_bits"], requant=not last)
            # The accelerator's own schedule model where it exists, else the analytic one.
            exact = schedule_cycles(config, M, K, N, widest, act, not last)
            cost = model if exact is None else dataclasses.replace(
                model, cycles=exact, utilization=M * K * N / (exact * rows * cols),
                stall_cycles=max(exact - model.compute_cycles, 0))
            e = energy_proxy(cost, hw["pe_by_format"][choice.weight], rows * cols,
                             config.word_bits)
            cycles += cost.cycles
            energy += e
            layers.append({"name": layer.name, "weight": choice.weight,
                           "act_bits": choice.act_bits, "M": M, "K": K, "N": N,
                           "cycles": cost.cycles, "model_cycles": model.cycles,
                           "cycles_source": "analytic" if exact is None else "schedule",
                           "utilization": round(cost.utilization, 4),
                           "stall_cycles": cost.stall_cycles, "chunks": cost.chunks,
                           "offchip_bytes": cost.offchip_bytes, "energy_proxy": round(e, 1)})
        return {"resources": dict(hw["resources"]), "fmax_mhz": hw["fmax_mhz"],
                "acc_bits": hw["acc_bits"], "fits_device": hw["fits"],
                "resource_model": hw["source"],
                "cycles": int(cycles), "energy_proxy": round(energy, 1), "layers": layers,
                "latency_us": round(cycles / hw["fmax_mhz"], 3)}

    def violations(self, point: dict) -> list:
        """Budget and device limits a point breaks (empty when feasible)."""
        out = []
        r = point["resources"]
        limits = {"lut4": self.device.lut4, "ff": self.device.ff,
                  "mult18": self.device.mult18, "dp16kd": self.device.dp16kd}
        for key, limit in limits.items():
            ceiling = getattr(self.budget, key)
            ceiling = limit if ceiling is None else min(limit, ceiling)
            if r[key] > ceiling:
                out.append(f"{key} {r[key]} > {ceiling}")
        if self.budget.cycles is not None and point["cycles"] > self.budget.cycles:
            out.append(f"cycles {point['cycles']} > {self.budget.cycles}")
        acc = point.get("accuracy")
        if self.budget.accuracy is not None and acc is not None \
                and acc < self.budget.accuracy:
            out.append(f"accuracy {acc:.4f} < {self.budget.accuracy}")
        return out

    def evaluate(self, choices, array, dataflow) -> dict:
        """Every figure of a design point (cached).

        Returns
        -------
        dict
            ``key``, ``accuracy``, ``cycles``, ``latency_us``, ``resources``,
            ``fmax_mhz``, ``energy_proxy``, ``array`` (rows, cols, dataflow, k_max,
            timing), ``layers`` (per layer: name, weight, act_bits, GEMM shape,
            cycles, utilisation, ...), ``violations``.
        """
        choices = tuple(choices)
        key = "|".join(str(c) for c in choices) + f"|{array[0]}x{array[1]}-{dataflow}"
        if key not in self._points:
            point = self.hardware(choices, array, dataflow)
            point["key"] = key
            point["accuracy"] = self.evaluator.accuracy(choices)
            point["array"] = {"rows": array[0], "cols": array[1], "dataflow": dataflow,
                              "k_max": self.k_max, "timing": self.timing.timing,
                              "packed": self.timing.packed}
            point["violations"] = self.violations(point)
            self._points[key] = point
        return self._points[key]

    # --- budgets that cannot be met ---

    def check_budget(self) -> None:
        """Refuse budgets no design of the space can meet, before searching.

        Lower bounds over every array shape and dataflow, with the narrowest
        activations: a design's resources are at least those of an accelerator for one of
        its formats alone (the floor: the cheapest single format), and its cycles at least
        those with every layer's narrowest weight code (fewest words to load). A ceiling
        below the floor is impossible.
        """
        floor = {}
        a = min(self.space.act_bits)

        def lower(key, value, where):
            if key not in floor or value < floor[key][0]:
                floor[key] = (value, where)

        narrowest = tuple(LayerChoice(min(layer, key=lambda f: (parse_format(f).bits, f)), a)
                          for layer in self.space.weights)
        for array in self.space.arrays:
            for flow in self.space.dataflows:
                where = f"{array[0]}x{array[1]}-{flow} array, {a}-bit activations"
                for f in sorted({f for layer in self.space.weights for f in layer}):
                    hw = self.hardware(tuple(LayerChoice(f, a) for _ in narrowest), array,
                                       flow)
                    for k, v in hw["resources"].items():
                        lower(k, v, f"{where}, {f} weights")
                hw = self.hardware(narrowest, array, flow)
                lower("cycles", hw["cycles"], f"{where}, the narrowest weight codes")
        names = {v: k for k, v in BUDGET_KEYS.items()}
        for key in ("lut4", "ff", "mult18", "dp16kd", "cycles"):
            ceiling = getattr(self.budget, key)
            if ceiling is not None and key in floor and floor[key][0] > ceiling:
                raise ValueError(
                    f"budget {names[key]}={ceiling} is impossible: the cheapest design in "
                    f"the space needs {names[key]}={floor[key][0]} ({floor[key][1]})")

    # --- search ---

    def search(self, *, seed: int = 0, max_exhaustive: int = 4000, population: int = 100,
               generations: int = 40, progress=None) -> SearchResult:
        """Search the space: exhaustive up to ``max_exhaustive`` points, else NSGA-II.

        Parameters
        ----------
        seed : int
            Seed of NSGA-II (the exhaustive search has no randomness).
        max_exhaustive : int
            Largest space enumerated point by point.
        population, generations : int
            NSGA-II settings (``population * generations`` evaluations at most). Five
            objectives give large fronts: the population should exceed the front's
            size (the digits space's exhaustive front has 78 points).
        progress : callable or None
            ``progress(n)`` after every ``n`` evaluations.

        Raises
        ------
        ValueError
            A budget no design can meet (before searching), or no evaluated design
            meeting every budget (after).
        """
        for name, v in (("seed", seed), ("max_exhaustive", max_exhaustive),
                        ("population", population), ("generations", generations)):
            if isinstance(v, bool) or not isinstance(v, int) or v < (0 if name == "seed"
                                                                     else 1):
                raise ValueError(f"{name}={v!r}: expected an int >= "
                                 f"{0 if name == 'seed' else 1}")
        self.check_budget()
        size = self.space.size
        if size <= max_exhaustive:
            method = "exhaustive"
            for x in itertools.product(*(range(n) for n in self.space.bounds)):
                self.evaluate(*self.space.decode(x))
                if progress:
                    progress(1)
        else:
            method = "nsga2"
            self._nsga2(seed, population, generations, progress)
        points = list(self._points.values())
        feasible = [p for p in points if not p["violations"]]
        if not feasible:
            closest = min(points, key=lambda p: len(p["violations"]))
            raise ValueError(f"no design meets the budget ({self.budget.describe()}) on the "
                             f"{self.device.part}: of {len(points)} evaluated, the closest "
                             f"breaks {'; '.join(closest['violations'])}")
        return SearchResult(
            pareto=pareto_front(feasible), evaluated=feasible, method=method,
            space_size=size, evaluations=len(points),
            accuracy_evaluations=self.evaluator.evaluations,
            infeasible=len(points) - len(feasible),
            settings={"seed": seed, "population": population, "generations": generations,
                      "max_exhaustive": max_exhaustive, "batch": self.batch,
                      "k_max": self.k_max, "device": self.device.part,
                      "speed": self.speed, "budget": self.budget.describe(),
                      "timing": self.timing.timing, "packed": self.timing.packed})

    def _nsga2(self, seed, population, generations, progress):
        from pymoo.algorithms.moo.nsga2 import NSGA2
        from pymoo.core.problem import Problem
        from pymoo.operators.crossover.sbx import SBX
        from pymoo.operators.mutation.pm import PM
        from pymoo.operators.repair.rounding import RoundingRepair
        from pymoo.operators.sampling.rnd import IntegerRandomSampling
        from pymoo.optimize import minimize

        explorer = self
        upper = np.array(self.space.bounds) - 1

        class _Problem(Problem):
            def __init__(self):
                super().__init__(n_var=len(upper), n_obj=len(OBJECTIVES), n_ieq_constr=1,
                                 xl=np.zeros(len(upper)), xu=upper, vtype=int)

            def _evaluate(self, X, out, *args, **kwargs):
                F, G = [], []
                for x in np.rint(X).astype(int):
                    point = explorer.evaluate(*explorer.space.decode(x))
                    F.append(_objectives(point))
                    G.append([float(len(point["violations"]))])
                out["F"] = np.array(F, dtype=np.float64)
                out["G"] = np.array(G, dtype=np.float64)
                if progress:
                    progress(len(X))

        algorithm = NSGA2(pop_size=population, sampling=IntegerRandomSampling(),
                          crossover=SBX(prob=0.9, eta=15, vtype=float,
                                        repair=RoundingRepair()),
                          mutation=PM(eta=20, vtype=float, repair=RoundingRepair()),
                          eliminate_duplicates=True)
        minimize(_Problem(), algorithm, ("n_gen", generations), seed=seed, verbose=False)


def _default_timing() -> ArrayConfig:
    """The timing model of the accelerator potgen builds today (its default parameters).

    From :func:`potgen.runtime.cycles.model_metadata` (no component is built) when the
    accelerator has a cycle model, else from a tiny accelerator's metadata.
    """
    from .hardware import config_from_accelerator
    try:
        from ..runtime.cycles import model_metadata
    except ImportError:
        from ..hw.accelerator import Accelerator
        accel = Accelerator(2, 2, "pot4", "uint8", k_max=16)
        accel._MustUse__silence = True     # built for its metadata only
        return config_from_accelerator(accel.metadata())
    return config_from_accelerator(model_metadata(2, 2, "pot4", "uint8", k_max=16))


def upot_candidates(network: Network, bits=(3, 4), *, progress=None) -> list:
    """Per layer, the best UPoT term-set format of each width in ``bits``."""
    out = []
    for layer in network.layers:
        out.append(tuple(search_term_sets(layer.weights, b, progress=progress)[0].format
                         for b in bits))
    return out


def _is_uniform(p: dict) -> bool:
    return len({(layer["weight"], layer["act_bits"]) for layer in p["layers"]}) == 1


def _metric(p: dict, metric: str):
    return p["resources"]["lut4"] if metric == "lut4" else p[metric]


def mixed_vs_uniform(points: list, floors=None) -> dict:
    """What per-layer (mixed) choices buy over uniform ones at equal accuracy.

    Uniform: every layer has the same weight format and activation width. For each
    accuracy floor, the least energy proxy (and cycles, LUT4) of any design meeting it
    against that of the uniform designs meeting it -- Klhufek et al.'s comparison
    ("energy saved with no accuracy drop"). Floors: the most accurate uniform design's
    accuracy (``reference_uniform``), and ``floors`` (default: every distinct accuracy
    some uniform design reaches, from the best down to 2 points below it).

    Returns
    -------
    dict
        ``reference_uniform``; ``best_energy_proxy`` / ``best_cycles`` / ``best_lut4`` at
        the reference's accuracy (``point``, ``best_uniform_point``,
        ``saving_vs_best_uniform``, ``mixed``); ``by_accuracy_floor``: per floor the
        best uniform and best overall energy proxy and the saving.
    """
    uni = [p for p in points if _is_uniform(p)]
    if not uni:
        return {"note": "no uniform design was evaluated"}
    ref = min(uni, key=lambda p: (-p["accuracy"], p["energy_proxy"], p["key"]))
    out = {"reference_uniform": _summary(ref)}
    ok = [p for p in points if p["accuracy"] >= ref["accuracy"]]
    for metric in ("energy_proxy", "cycles", "lut4"):
        best = min(ok, key=lambda p, m=metric: (_metric(p, m), p["key"]))
        best_uni = min([p for p in ok if _is_uniform(p)],
                       key=lambda p, m=metric: (_metric(p, m), p["key"]))
        out[f"best_{metric}"] = {
            "point": _summary(best),
            "best_uniform_point": _summary(best_uni),
            "saving_vs_best_uniform": round(1 - _metric(best, metric)
                                            / _metric(best_uni, metric), 4),
            "mixed": not _is_uniform(best)}
    if floors is None:
        floors = sorted({p["accuracy"] for p in uni
                         if p["accuracy"] >= ref["accuracy"] - 0.02}, reverse=True)
    table = []
    for floor in floors:
        meet = [p for p in points if p["accuracy"] >= floor]
        meet_uni = [p for p in meet if _is_uniform(p)]
        if not meet_uni:
            continue
        best = min(meet, key=lambda p: (p["energy_proxy"], p["key"]))
        best_uni = min(meet_uni, key=lambda p: (p["energy_proxy"], p["key"]))
        table.append({"accuracy_floor": floor, "best": _summary(best),
                      "best_uniform": _summary(best_uni),
                      "energy_saving": round(1 - best["energy_proxy"]
                                             / best_uni["energy_proxy"], 4),
                      "mixed": not _is_uniform(best)})
    out["by_accuracy_floor"] = table
    return out


def _summary(p: dict) -> dict:
    return {"key": p["key"], "accuracy": p["accuracy"], "cycles": p["cycles"],
            "energy_proxy": p["energy_proxy"], "lut4": p["resources"]["lut4"],
            "mult18": p["resources"]["mult18"], "dp16kd": p["resources"]["dp16kd"],
            "layers": [f"{x['weight']}/a{x['act_bits']}" for x in p["layers"]],
            "array": f"{p['array']['rows']}x{p['array']['cols']}-{p['array']['dataflow']}"}
