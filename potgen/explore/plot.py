"""The explorer's figure: accuracy against cycles and against LUT4, Pareto front marked."""

from __future__ import annotations

__all__ = ["plot_front"]


def plot_front(evaluated: list, pareto: list, path, title: str = "") -> None:
    """Write a PNG with two panels (accuracy vs cycles, accuracy vs LUT4): every
    feasible point in grey, the five-objective Pareto points coloured by dataflow and
    each panel's own two-objective front as a staircase.

    Parameters
    ----------
    evaluated : list of dict
        Every feasible design point (grey).
    pareto : list of dict
        The Pareto front (coloured by dataflow, labelled by array shape).
    path : str or Path
        Output PNG.
    title : str
    """
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8), sharey=True)
    colours = {"os": "tab:blue", "ws": "tab:orange"}
    for ax, (xkey, xlabel) in zip(axes, (("cycles", "cycles per batch"),
                                          ("lut4", "LUT4 (estimated)"))):
        def x(p, xkey=xkey):
            return p["cycles"] if xkey == "cycles" else p["resources"]["lut4"]
        ax.scatter([x(p) for p in evaluated], [p["accuracy"] for p in evaluated],
                   s=8, c="lightgrey", label="evaluated", zorder=1)
        for flow, colour in colours.items():
            pts = [p for p in pareto if p["array"]["dataflow"] == flow]
            if pts:
                ax.scatter([x(p) for p in pts], [p["accuracy"] for p in pts], s=28,
                           c=colour, edgecolors="black", linewidths=0.5,
                           label=f"Pareto ({flow})", zorder=2)
        # The two-objective front of this panel (max accuracy, min x) as a staircase.
        stairs, top = [], -1.0
        for p in sorted(evaluated, key=lambda p: (x(p), -p["accuracy"])):
            if p["accuracy"] > top:
                stairs.append((x(p), p["accuracy"]))
                top = p["accuracy"]
        if stairs:
            xs, ys = zip(*stairs)
            ax.step(xs, ys, where="post", color="black", linewidth=0.8,
                    label="front of this panel", zorder=1.5)
        values = [x(p) for p in evaluated] or [1]
        if max(values) > 20 * max(min(values), 1):
            ax.set_xscale("log")
            # Minor labels (3x10^3, 4x10^3, ...) overlap across decades.
            ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel(xlabel)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("test accuracy (golden model)")
    axes[0].legend(loc="lower right", fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
