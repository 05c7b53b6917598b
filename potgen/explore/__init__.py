"""Design-space exploration: which format per layer, on which array, for this network?

* :mod:`~potgen.explore.network` -- the float network, its GEMM shapes (conv2d via
  im2col), the ``digits`` network and the ``.npz`` + ``.json`` file format;
* :mod:`~potgen.explore.qnet` -- accuracy under per-layer formats, with the golden model;
* :mod:`~potgen.explore.cost` -- the analytic cost model (cycles by dataflow and tiling,
  packed words, buffers, traffic, utilisation, an energy proxy);
* :mod:`~potgen.explore.hardware` -- adapters to potgen's hardware: resources and Fmax,
  the accelerator's timing and schedule model, and the check against simulation;
* :mod:`~potgen.explore.upot` -- the per-layer UPoT term-set search;
* :mod:`~potgen.explore.search` -- the search (exhaustive or NSGA-II) and its Pareto front;
* :mod:`~potgen.explore.plot` -- the figure.

Command line: ``potgen explore`` (:mod:`potgen.cli.explore`); guide: ``docs/explore.md``.
"""

from .cost import ArrayConfig, GemmCost, energy_proxy, gemm_cost
from .network import Layer, Network, load_network
from .qnet import LayerChoice, QuantEvaluator
from .search import Budget, Explorer, SearchResult, SearchSpace, parse_budget
from .upot import search_term_sets

__all__ = ["ArrayConfig", "GemmCost", "gemm_cost", "energy_proxy", "Layer", "Network",
           "load_network", "LayerChoice", "QuantEvaluator", "Budget", "Explorer",
           "SearchResult", "SearchSpace", "parse_budget", "search_term_sets"]
