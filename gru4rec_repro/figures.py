"""The study's figures (PNG), from the same inputs as the tables.

* ``training_loss``: training loss per epoch, one panel per setting (the run
  name without its ``torch-`` / ``keras-`` prefix) with one line per run: the
  mean over seeds, and a band of +- 1 sd over seeds when there are >= 2.
  Runs without a loss (one-pass baselines) are left out.
* ``metric_bars``: Recall@20 and MRR@20 per run (conservative ties): the bar
  is the mean over seeds, the error bar a 95% bootstrap-over-sessions CI of
  the seed-averaged metric (test-set sampling), the dots the single seeds
  (seed spread).
* ``epoch_seconds``: seconds per epoch per run (mean over epochs, then over
  seeds; error bar = sd over seeds), coloured by implementation; log scale
  when the runs differ by more than 20x.

Each is written atomically with :func:`make_figure`.
"""
from __future__ import annotations

import logging
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from . import atomic, stats  # noqa: E402
from .tables import METRIC_LABELS, Study  # noqa: E402

log = logging.getLogger(__name__)

FIGURES = ("training_loss", "metric_bars", "epoch_seconds")
FRAMEWORK_PREFIXES = ("torch-", "keras-")


def _save(fig, out_path) -> Path:
    out_path = Path(out_path)
    with atomic.atomic_path(out_path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    log.info("wrote %s", out_path)
    return out_path


def _message_figure(text: str):
    fig, ax = plt.subplots(figsize=(6, 1.5))
    ax.axis("off")
    ax.text(0.5, 0.5, text, ha="center", va="center")
    return fig


def setting_of(run: str) -> str:
    for prefix in FRAMEWORK_PREFIXES:
        if run.startswith(prefix):
            return run[len(prefix):]
    return run


def loss_curves(st: Study, run: str) -> pd.DataFrame | None:
    """Columns epoch, mean, sd, n of the training loss over seeds; None without a loss."""
    per_seed = []
    for lg in st.run(run).logs:
        if lg.empty or "loss" not in lg or lg["loss"].notna().sum() == 0:
            continue
        per_seed.append(lg.set_index("epoch")["loss"])
    if not per_seed:
        return None
    wide = pd.concat(per_seed, axis=1)
    return pd.DataFrame({
        "epoch": wide.index.to_numpy(),
        "mean": wide.mean(axis=1).to_numpy(),
        "sd": wide.std(axis=1, ddof=1).to_numpy(),
        "n": wide.notna().sum(axis=1).to_numpy(),
    })


def training_loss_figure(st: Study, out_path) -> Path:
    panels: dict[str, list[tuple[str, pd.DataFrame]]] = {}
    for run in st.runs_config:
        curve = loss_curves(st, run)
        if curve is not None:
            panels.setdefault(setting_of(run), []).append((run, curve))
    if not panels:
        return _save(_message_figure("no run logged a training loss"), out_path)
    ncols = min(4, len(panels))
    nrows = math.ceil(len(panels) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4 * ncols, 3 * nrows), squeeze=False)
    for ax, (setting, curves) in zip(axes.flat, panels.items()):
        for run, c in curves:
            (line,) = ax.plot(c["epoch"], c["mean"], marker="o", ms=3, label=f"{run} (n={int(c['n'].max())})")
            band = c["sd"].fillna(0).to_numpy()
            ax.fill_between(c["epoch"], c["mean"] - band, c["mean"] + band, color=line.get_color(), alpha=0.2)
        ax.set_title(setting, fontsize=9)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel("training loss")
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    fig.suptitle(f"{st.dataset}: training loss per epoch (mean over seeds, band = ±1 sd)")
    fig.tight_layout()
    return _save(fig, out_path)


def metric_bars_figure(st: Study, out_path) -> Path:
    runs = list(st.runs_config)
    if not runs:
        return _save(_message_figure("no runs in the config"), out_path)
    fig, axes = plt.subplots(1, 2, figsize=(11, 1.0 + 0.28 * len(runs)), sharey=True)
    y = np.arange(len(runs))
    for ax, (metric, lab) in zip(axes, METRIC_LABELS.items()):
        values, lo, hi = [], [], []
        for i, run in enumerate(runs):
            r = st.run(run)
            v, a, b = stats.metric_ci(r.ranks, metric, st.k, st.policy, n_boot=st.n_boot, seed=i)
            values.append(v)
            lo.append(v - a)
            hi.append(b - v)
            seeds = r.per_seed(metric, st.k, st.policy)
            ax.plot(seeds, np.full(len(seeds), i), "k.", ms=3, zorder=3)
        ax.barh(y, values, xerr=[lo, hi], color="tab:blue", alpha=0.6, capsize=2)
        ax.set_xlabel(f"{lab}@{st.k}")
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(y, runs, fontsize=8)
    axes[0].invert_yaxis()
    fig.suptitle(f"{st.dataset}: mean over seeds, 95% bootstrap CI over test sessions, dots = seeds "
                 "(conservative ties)", fontsize=9)
    fig.tight_layout()
    return _save(fig, out_path)


def epoch_seconds_figure(st: Study, out_path) -> Path:
    rows = []
    for run in st.runs_config:
        mean, sd, n = stats.seed_summary(st.run(run).seconds_per_epoch())
        if n:
            rows.append((run, st.runs_config[run].get("implementation", "?"), mean, sd))
    if not rows:
        return _save(_message_figure("no run logged seconds per epoch"), out_path)
    impls = sorted({r[1] for r in rows})
    colours = {impl: plt.cm.tab10(i % 10) for i, impl in enumerate(impls)}
    fig, ax = plt.subplots(figsize=(7, 1.0 + 0.28 * len(rows)))
    y = np.arange(len(rows))
    means = np.array([r[2] for r in rows])
    sds = np.nan_to_num(np.array([r[3] for r in rows]))
    ax.barh(y, means, xerr=sds, color=[colours[r[1]] for r in rows], capsize=2)
    ax.set_yticks(y, [r[0] for r in rows], fontsize=8)
    ax.invert_yaxis()
    positive = means[means > 0]
    if positive.size and positive.max() / positive.min() > 20:
        ax.set_xscale("log")
    ax.set_xlabel("seconds per epoch (mean over seeds, error bar = sd over seeds)")
    ax.legend(handles=[plt.Rectangle((0, 0), 1, 1, color=colours[i]) for i in impls], labels=impls, fontsize=8)
    ax.set_title(f"{st.dataset}: training time per epoch (machine-dependent)", fontsize=9)
    fig.tight_layout()
    return _save(fig, out_path)


BUILDERS = {
    "training_loss": training_loss_figure,
    "metric_bars": metric_bars_figure,
    "epoch_seconds": epoch_seconds_figure,
}


def make_figure(name: str, results_dir, config, dataset: str, out_path) -> Path:
    """Draw figure ``name`` from a results folder into the PNG ``out_path``."""
    if name not in BUILDERS:
        raise ValueError(f"unknown figure {name!r}; known: {', '.join(FIGURES)}")
    return BUILDERS[name](Study(results_dir, config, dataset), out_path)


def make_figures(results_dir, config, dataset: str, outdir) -> dict[str, Path]:
    """All figures as <outdir>/<name>.png (runs loaded once)."""
    st = Study(results_dir, config, dataset)
    return {name: BUILDERS[name](st, Path(outdir) / f"{name}.png") for name in FIGURES}
