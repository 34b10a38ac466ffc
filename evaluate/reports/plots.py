"""The figures shared by `instdecay report` and `instdecay evaluate`, saved atomically as PNG."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ...atomic import atomic_write

ECDF_PNG = "ecdf.png"
ACCURACY_PNG = "accuracy_by_size.png"
DECOMPOSITION_PNG = "decomposition.png"


def figure(width: float = 5.5, height: float = 4.0, panels: int = 1):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(1, panels, figsize=(width, height), squeeze=panels == 1)


def save(fig, path: Path) -> None:
    """Write the figure atomically (never half a PNG, never through a symlink at ``path``) and close it."""
    import matplotlib.pyplot as plt

    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110, metadata={"Software": None}))
    plt.close(fig)


def _params_label(n: float) -> str:
    return f"{n / 1e9:.3g}B" if n >= 1e9 else f"{n / 1e6:.3g}M" if n >= 1e6 else f"{n / 1e3:.3g}K"


def accuracy_by_size(path: Path, sizes: Sequence[str], accuracy: Sequence[float], std: Sequence[float], *,
                     evaluation_set: str, params: Sequence[int] | None = None, majority: float | None = None,
                     submission: tuple[str, float, float, float, float | None] | None = None) -> None:
    """Mean accuracy ± std over runs per size (x: parameters on a log axis when known, else the size names),
    the majority-class rate, and optionally a submission as a point with its 95% interval:
    ``(name, accuracy, ci_low, ci_high, params)``. A submission without a parameter count is drawn apart, right of
    the ladder, and labelled so (never at an invented size)."""
    fig, ax = figure()
    use_params = params is not None and all(p and p > 0 for p in params)
    x = np.asarray(params, dtype=float) if use_params else np.arange(len(sizes))
    ax.errorbar(x, accuracy, yerr=np.nan_to_num(np.asarray(std, dtype=float)), marker="o", capsize=4,
                label="reference sizes (mean ± std over runs)")
    if use_params:
        ax.set_xscale("log")
        for xi, yi, name in zip(x, accuracy, sizes):
            ax.annotate(name, (xi, yi), xytext=(5, -11), textcoords="offset points", fontsize=7, color="0.3")
        ax.set_xlabel("parameters (log scale)")
        from matplotlib.ticker import NullLocator

        ax.set_xticks(x, [_params_label(v) for v in x])  # a tick per size: readable within one decade too
        ax.xaxis.set_minor_locator(NullLocator())
    else:
        ax.set_xticks(x, sizes)
        ax.set_xlabel("model size")
    if majority is not None:
        ax.axhline(majority, color="0.5", linestyle=":", label=f"majority class ({majority:.3f})")
    if submission is not None:
        name, acc, low, high, n = submission
        known = bool(n) and use_params
        sx = n if known else ((x[-1] * 4 if use_params else x[-1] + 1.5) if len(x) else 0)
        ax.errorbar([sx], [acc], yerr=[[acc - low], [high - acc]], marker="D", color="C1", capsize=4,
                    label=f"{name[:40]} (95% CI)" + ("" if known else ", parameter count not given"))
        if not known:
            ax.axvline((x[-1] * 2 if use_params else x[-1] + 0.75) if len(x) else 0, color="0.8", lw=1)
            ax.annotate("params\nnot given", (sx, acc), xytext=(6, 6), textcoords="offset points", fontsize=7,
                        color="C1")
    ax.set_ylabel("accuracy")
    ax.set_title(f"Accuracy by size: {evaluation_set}")
    ax.margins(x=0.15, y=0.2)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    save(fig, path)


def decomposition(path: Path, sizes: Sequence[str], components: dict[str, Sequence[float]], title: str) -> None:
    """Side-by-side bars of the mean loss components per size around a zero line, so a negative component (an
    unbiased estimate of a value near 0) stays visible; only components with values are drawn and listed."""
    drawn = {name: np.asarray(v, dtype=float) for name, v in components.items() if not np.isnan(np.asarray(v, float)).all()}
    fig, ax = figure(5.8, 3.9)
    width = 0.8 / max(len(drawn), 1)
    x = np.arange(len(sizes))
    for k, (name, values) in enumerate(drawn.items()):
        ax.bar(x + (k - (len(drawn) - 1) / 2) * width, np.nan_to_num(values), width, label=name)
    ax.axhline(0, color="0.3", lw=0.8)
    ax.set_xticks(x, sizes)
    ax.set_ylabel("mean over instances")
    ax.set_xlabel("model size")
    ax.set_title(_wrapped(title), fontsize=9)
    if any((v < 0).any() for v in drawn.values()):
        ax.text(0.01, 0.01, "below 0: an unbiased estimate of a component near 0", transform=ax.transAxes,
                fontsize=7, color="0.3")
    ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    save(fig, path)


def _wrapped(title: str, width: int = 60) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(title, width))


def ecdf(path: Path, panels: Sequence[dict]) -> None:
    """ECDFs of instance differences and their random baseline (the paper's Figure 4), one panel each; a panel
    has ``title``, ``t``, ``difference``, ``baseline`` and ``label`` (what the difference is)."""
    fig, axes = figure(5.5 * len(panels), 4.0, panels=len(panels))
    for ax, panel in zip(np.ravel(axes), panels):
        ax.step(panel["t"], panel["difference"], where="post", label=panel["label"])
        ax.step(panel["t"], panel["baseline"], where="post", linestyle="--", label="random baseline ΔAcc′")
        ax.set_title(_wrapped(panel["title"]), fontsize=9)
        ax.set_xlabel("instance accuracy difference t")
        ax.set_ylabel("fraction of instances ≤ t")
        ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    save(fig, path)


def ecdf_title(name: str, decay: float, lcb: float | None) -> str:
    """A title that never presents the biased paper estimate as a bound."""
    certified = "no decay certified" if lcb is None or lcb <= 0 else f"95% LCB {lcb:.3f}"
    return f"{name}: paper estimate {decay:.3f}; {certified}"
